"""The arms and pairs of the validation (``validate.py``), run on one labelled set through the protocol.

Validation arms map to protocol arms: the probes are the protocol's ``frozen`` arm (a deterministic
linear probe) on the pooled features of a fixed encoder: ``probe_random`` and ``probe_random_b`` (two
random BiLSTMs, different seeds), ``probe_label`` (an encoder trained on labelled windows of an
independent market: it carries the label); ``baseline`` is the SGD-trained network, ``logistic`` and
``boosting`` the simple models on window summaries. Every pair in ``PAIRS`` has its true difference
measured on the generator (``validation_truth.py``). ``primary_null`` is the primary comparison's null:
a frozen probe on an encoder that carries nothing the baseline could not learn, against the baseline.
"""

from __future__ import annotations

import numpy as np
import torch

from ..labels.sets import LabelledSet
from ..pretraining.checkpoints import load_encoder
from ..pretraining.model import JadeEncoder
from ..transfer.config import TransferConfig
from ..transfer.probe import pooled
from ..transfer.protocol import Inputs, evaluate_arms
from ..transfer.readouts import DEFAULT_READOUT
from ..transfer.simple import window_summaries

PROTOCOL_ARM = {
    "baseline": "baseline",
    "probe_random": "frozen",
    "probe_random_b": "frozen",
    "probe_label": "frozen",
    "logistic": "simple_logistic",
    "boosting": "simple_boosting",
}
SGD_ARMS = ("baseline",)
PAIRS = {
    "primary_null": ("probe_random", "baseline"),
    "positive": ("probe_label", "baseline"),
    "probe_vs_logistic": ("probe_random", "logistic"),
    "boosting_vs_logistic": ("boosting", "logistic"),
    "two_random_probes": ("probe_random", "probe_random_b"),
}
PAIR_TITLES = {
    "primary_null": "frozen probe on a random encoder vs the trained baseline (the primary comparison's null)",
    "positive": "frozen probe on a label-carrying encoder vs the trained baseline (positive control)",
    "probe_vs_logistic": "frozen probe on a random encoder vs logistic regression on summaries",
    "boosting_vs_logistic": "gradient boosting vs logistic regression on summaries",
    "two_random_probes": "frozen probes on two random encoders (seeds differ)",
}
RANDOM_SEEDS = {"probe_random": 1, "probe_random_b": 2}


def encoders(arch: dict, seed: int, label_encoder_path=None) -> dict:
    """The fixed encoders of the probe arms: the random ones from their seeds, the label-carrying one
    from its file (absent when ``label_encoder_path`` is None)."""
    out = {}
    for arm, key in RANDOM_SEEDS.items():
        torch.manual_seed(seed * 1000 + key)
        out[arm] = JadeEncoder(**arch)
    if label_encoder_path is not None:
        out["probe_label"] = load_encoder(label_encoder_path, input_size=None, hidden_size=None, num_layers=None)
    return out


def arm_features(ls: LabelledSet, encs: dict) -> dict:
    """Fixed features of every deterministic arm on ``ls``: pooled encoder features, window summaries."""
    X, V = torch.as_tensor(ls.X), torch.as_tensor(ls.valid)
    feats = {arm: pooled(enc, X, V) for arm, enc in encs.items()}
    feats["simple"] = window_summaries(ls.X, ls.valid)
    return feats


def inputs_for(arm: str, ls: LabelledSet, feats: dict, template: JadeEncoder) -> Inputs:
    """The protocol's Inputs for one validation arm (a probe arm's features stand in as "frozen")."""
    data = tuple(torch.as_tensor(a) for a in (ls.X, ls.valid, ls.y))
    fixed = {"simple": feats["simple"]}
    if PROTOCOL_ARM[arm] == "frozen":
        fixed["frozen"] = {DEFAULT_READOUT: feats[arm]}  # a probe arm's features: read-out -> features
    return Inputs(data=data, encoder=template, fixed=fixed)


def run_arms(
    arms,
    ls: LabelledSet,
    feats: dict,
    template: JadeEncoder,
    cfg: TransferConfig,
    assign: np.ndarray,
    groups: np.ndarray,
    fraction: float = 1.0,
) -> dict:
    """Every arm on the folds ``assign`` (training folds subsampled to ``fraction``): validation arm ->
    {"folds", "oof"} (``protocol.evaluate_arms``)."""
    return {
        arm: evaluate_arms(
            ls, inputs_for(arm, ls, feats, template), cfg, assign, groups, fraction, arms=[PROTOCOL_ARM[arm]]
        )[PROTOCOL_ARM[arm]]
        for arm in arms
    }


def arms_of(pairs) -> list[str]:
    """The arms the pairs need, in a stable order."""
    return [a for a in PROTOCOL_ARM if any(a in PAIRS[p] for p in pairs)]
