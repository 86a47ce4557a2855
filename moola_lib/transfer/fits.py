"""One arm fitted on one split: the fit function of each arm kind (``arms.Arm.kind``) and the inputs they
share.

``Inputs`` holds what every fold of a run needs: the windows as tensors on the device, the encoder, and
the fixed features of the deterministic arms, computed once per run (the pooled features of every read-out
of the frozen encoders, and of the pretrained encoder's own read-out for LP-FT's probe; window summaries;
the series the rocket transforms read). ``arm_probabilities`` looks the arm up
in the table and calls ``FITS[kind]``: each fit learns its parameters on the fit windows, chooses what it
chooses (epoch, C, ridge temperature) on the inner validation windows, and returns the test windows'
probabilities of each of its fits (one per training seed) and what it chose.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..labels.sets import LabelledSet
from ..pretraining.devices import resolve_device
from ..pretraining.model import JadeEncoder
from .arms import arm as arm_row
from .arms import result_arms
from .config import TransferConfig
from .linear import fit_logistic
from .probe import build_classifier, fit_classifier, head_from_probe, predict_proba
from .readouts import DEFAULT_READOUT, choose, readout_features
from .rocket import fit_ridge, rocket_features, rocket_series
from .simple import fit_simple, window_summaries

RANDOM_ENCODER = 7919  # seed key of the random_frozen encoder (apart from every fold's fit seeds)


def fit_seed(*keys: int) -> int:
    """A seed in [0, 2^31) derived from integer keys (run seed, repeat, fold, ...)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] % (2**31))


@dataclasses.dataclass
class Inputs:
    """What every fold of a run needs (see the module docstring)."""

    data: tuple
    encoder: JadeEncoder | None  # None when only fixed-feature arms run (the validation's null)
    fixed: dict

    @classmethod
    def build(cls, labelled: LabelledSet, encoder: JadeEncoder | None, cfg: TransferConfig) -> Inputs:
        device = resolve_device(cfg.device)
        data = tuple(torch.as_tensor(a, device=device) for a in (labelled.X, labelled.valid, labelled.y))
        rows = [arm_row(a) for a in result_arms(cfg.arms)]
        fixed = {}
        for row in rows:
            if row.kind == "probe" and row.encoder == "random":  # one random encoder per run, from its seed
                encoder_ = build_classifier(row.name, encoder, 2, 0.0, fit_seed(cfg.seed, RANDOM_ENCODER)).encoder
            elif row.kind == "probe" or row.probe_head:
                encoder_ = encoder
            else:
                continue
            # probes: read-out -> features; LP-FT: the classifier's own read-out, the features its head reads
            wanted = cfg.readouts if row.kind == "probe" else [DEFAULT_READOUT]
            features = readout_features(encoder_, data[0], data[1], labelled.expansion, wanted)
            fixed[row.name] = features if row.kind == "probe" else features[DEFAULT_READOUT]
        if any(row.kind == "summaries" for row in rows):
            fixed["simple"] = window_summaries(labelled.X, labelled.valid)
        if any(row.kind == "rocket" for row in rows):
            fixed["series"] = rocket_series(labelled.X)
        return cls(data, encoder, fixed)


def _fit_trained(
    name: str, inputs: Inputs, y: np.ndarray, split: tuple, cfg: TransferConfig, seed: int
) -> tuple[list[np.ndarray], dict]:
    fit_idx, val_idx, test_idx = split
    probas, info = [], {"best_epoch": [], "epochs_run": []}
    n_classes = int(y.max()) + 1
    start = None
    if arm_row(name).probe_head:  # LP-FT: the probe on the frozen features, fitted once for every seed
        start = fit_logistic(inputs.fixed[name], y, fit_idx, val_idx, cfg.class_weighting)
        info["probe_C"] = start.chosen_C
    for s in range(cfg.seeds_per_fold):
        seed_s = fit_seed(seed, s) if s else seed
        model = build_classifier(name, inputs.encoder, n_classes, cfg.dropout, seed_s).to(inputs.data[0].device)
        if start is not None:
            head_from_probe(model, start)
        history = fit_classifier(model, name, inputs.data, fit_idx, val_idx, cfg, seed_s)
        probas.append(predict_proba(model, inputs.data[0], inputs.data[1], test_idx))
        info["best_epoch"].append(history["best_epoch"])
        info["epochs_run"].append(history["epochs_run"])
    return probas, info


def _fit_probe(
    name: str, inputs: Inputs, y: np.ndarray, split: tuple, cfg: TransferConfig, seed: int
) -> tuple[list[np.ndarray], dict]:
    """The probe on each read-out (``TransferConfig.readouts``); the one with the lowest log-loss on the
    inner validation windows predicts, and the fold records which it was."""
    fit_idx, val_idx, test_idx = split
    features = inputs.fixed[name]
    models = {r: fit_logistic(Z, y, fit_idx, val_idx, cfg.class_weighting) for r, Z in features.items()}
    chosen = choose({r: m.val_log_loss for r, m in models.items()})
    info = {"C": models[chosen].chosen_C, "readout": chosen}
    if len(models) > 1:
        info["readout_val_log_loss"] = {r: m.val_log_loss for r, m in models.items()}
    return [models[chosen].predict_proba(features[chosen][test_idx])], info


def _fit_summaries(
    name: str, inputs: Inputs, y: np.ndarray, split: tuple, cfg: TransferConfig, seed: int
) -> tuple[list[np.ndarray], dict]:
    fit_idx, val_idx, test_idx = split
    Z = inputs.fixed["simple"]
    model = fit_simple(arm_row(name).model, Z, y, fit_idx, val_idx, seed, cfg.class_weighting)
    return [model.predict_proba(Z[test_idx])], ({"C": model.chosen_C} if hasattr(model, "chosen_C") else {})


def _fit_rocket(
    name: str, inputs: Inputs, y: np.ndarray, split: tuple, cfg: TransferConfig, seed: int
) -> tuple[list[np.ndarray], dict]:
    # only the split's windows are transformed (a learning-curve subsample leaves out most of the set)
    used = np.concatenate(split)
    fit_idx, val_idx, test_idx = np.split(np.arange(len(used)), np.cumsum([len(i) for i in split])[:-1])
    threads = torch.get_num_threads()
    try:
        Z = rocket_features(arm_row(name).model, inputs.fixed["series"][used], fit_idx, seed)
    finally:
        # aeon sets numba's thread count and restores it, which sets OpenMP's for the whole process: torch
        # (the same OpenMP) would then train the next arms on every core, many times slower on a small CPU
        torch.set_num_threads(threads)
    model = fit_ridge(Z, y[used], fit_idx, val_idx, cfg.class_weighting)
    return [model.predict_proba(Z[test_idx])], {"alpha": model.chosen_alpha, "temperature": model.temperature}


FITS = {"trained": _fit_trained, "probe": _fit_probe, "summaries": _fit_summaries, "rocket": _fit_rocket}


def arm_probabilities(
    name: str, inputs: Inputs, y: np.ndarray, split: tuple, cfg: TransferConfig, seed: int
) -> tuple[list[np.ndarray], dict]:
    """Test-window probabilities of each of the arm's fits on one split (fit, val, test indices), and
    what the fits chose (epochs for trained arms, the probe's C, the ridge's alpha and temperature)."""
    return FITS[arm_row(name).kind](name, inputs, y, split, cfg, seed)
