"""One arm fitted on one split: a fitted model per kind of arm (``arms.Arm.kind``), and the inputs they share.

``Inputs`` holds what every fold of a run needs: the windows as tensors on the device, the encoder, and the
fixed features of the deterministic arms, computed once per run by each kind's ``prepare`` (the pooled
features of every read-out of the frozen encoders, and of the pretrained encoder's own read-out for LP-FT's
probe; window summaries; the series the rocket transforms read).

Each kind is one class in ``KINDS`` (a ``FittedArm``): everything the protocol, the parallel runner and the
classifier know of it. ``fit`` learns the parameters on the fit windows and chooses what the kind chooses
(epoch, read-out, C, ridge temperature) on the inner validation windows; the object it returns is the fitted
model. It predicts any windows (``predict_proba``: the kind's ``features`` of the windows, then
``member_probabilities``, averaged over its members, the training seeds of a trained arm), and the protocol
predicts its test windows through the same object from the run's fixed features (``split_probabilities``),
so a model fitted on all labelled windows (``moola_lib.classifier``) is exactly what the protocol evaluated.
``state`` holds its parameters as plain tensors, arrays and values, which ``from_state`` reads back. A new
kind is one subclass here, registered in ``KINDS``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch

from ..labels.sets import LabelledSet
from ..pretraining.checkpoints import encoder_from_file_object, encoder_state
from ..pretraining.devices import resolve_device
from ..pretraining.model import JadeClassifier, JadeEncoder, inference_batch_size
from .arms import Arm, result_arms
from .arms import arm as arm_row
from .config import TransferConfig
from .linear import LinearModel, fit_logistic
from .probe import build_classifier, fit_classifier, head_from_probe, predict_proba
from .readouts import DEFAULT_READOUT, choose, readout_features
from .rocket import CalibratedRidge, RocketTransform, fit_ridge, rocket_series
from .simple import HEADS, as_arrays, fit_simple, window_summaries

RANDOM_ENCODER = 7919  # seed key of the random_frozen encoder (apart from every fold's fit seeds)


def fit_seed(*keys: int) -> int:
    """A seed in [0, 2^31) derived from integer keys (run seed, repeat, fold, ...)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] % (2**31))


def probe_encoder(row: Arm, encoder: JadeEncoder | None, seed: int) -> JadeEncoder | None:
    """The encoder a probe arm reads: the pretrained one, or (``encoder="random"``) one random encoder of its
    architecture per run, from the run ``seed`` (the global torch generator is left as it was)."""
    if row.encoder != "random":
        return encoder
    with torch.random.fork_rng(devices=[]):
        return build_classifier(row.name, encoder, 2, 0.0, fit_seed(seed, RANDOM_ENCODER)).encoder


def take(features, idx):
    """The rows ``idx`` of fixed features: an array or tensor, or a tuple or dict of them."""
    if isinstance(features, dict):
        return {k: take(v, idx) for k, v in features.items()}
    if isinstance(features, tuple):
        return tuple(take(v, idx) for v in features)
    return features[idx]


def _no_expansion(expansion, n: int) -> np.ndarray:
    # windows without the labelled leg's offsets: -1 (the span read-out pools them over the whole window)
    return np.full((n, 2), -1, dtype=np.int64) if expansion is None else np.asarray(expansion)


@dataclasses.dataclass
class Inputs:
    """What every fold of a run needs (see the module docstring)."""

    data: tuple
    encoder: JadeEncoder | None  # None when only fixed-feature arms run (the validation's null)
    fixed: dict

    @classmethod
    def build(cls, labelled: LabelledSet, encoder: JadeEncoder | None, cfg: TransferConfig, arms=None) -> Inputs:
        """The inputs of the arms ``arms`` (default: those ``cfg`` runs) on ``labelled``."""
        device = resolve_device(cfg.device)
        data = tuple(torch.as_tensor(a, device=device) for a in (labelled.X, labelled.valid, labelled.y))
        fixed: dict = {}
        for name in result_arms(cfg.arms) if arms is None else arms:
            row = arm_row(name)
            fixed.update(KINDS[row.kind].prepare(row, labelled, data, encoder, cfg))
        return cls(data, encoder, fixed)


class FittedArm:
    """An arm fitted on one split (see the module docstring); one subclass per kind of arm."""

    # Relative cost of one fit per training window (BENCHMARKS.md, "where the time goes, per arm": the SGD-trained
    # arms and MultiRocket take seconds, the summaries' models and the probes a fraction of one); ``parallel``
    # hands the expected longest fits to the workers first.
    fit_cost: ClassVar[float]
    needs_aeon: ClassVar[bool] = False  # its fits run aeon's compiled kernels (each worker loads them first)

    def __init__(self, arm: str, chosen: dict):
        self.arm, self.chosen = arm, chosen  # chosen: what the fit chose on the inner validation windows

    @classmethod
    def prepare(cls, row: Arm, labelled: LabelledSet, data: tuple, encoder, cfg: TransferConfig) -> dict:
        """The fixed features of every window the arm reads (entries of ``Inputs.fixed``), once per run."""
        return {}

    @classmethod
    def fit(cls, arm: str, inputs: Inputs, y: np.ndarray, split: tuple, cfg: TransferConfig, seed: int):
        raise NotImplementedError

    def run_features(self, inputs: Inputs):
        """What of a run's ``Inputs`` the model's predictions read (rows: the run's windows)."""
        raise NotImplementedError

    def features(self, X: np.ndarray, valid: np.ndarray, expansion=None):
        """The same features for windows X [N, T, F], valid [N, T], expansion [N, 2] (None: unknown)."""
        raise NotImplementedError

    def member_probabilities(self, features) -> list[np.ndarray]:
        """Class probabilities [N, C] of each member model from ``features`` of N windows."""
        raise NotImplementedError

    def predict_proba(self, X: np.ndarray, valid: np.ndarray, expansion=None) -> np.ndarray:
        """Class probabilities [N, C] of any windows: the mean over the members, as the protocol scores it."""
        return np.mean(self.member_probabilities(self.features(X, valid, expansion)), axis=0)

    def state(self) -> dict:
        """The model as plain tensors, numpy arrays and values (``from_state`` reads it back)."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, arm: str, chosen: dict, state: dict) -> FittedArm:
        raise NotImplementedError


class TrainedArm(FittedArm):
    """``trained``: the encoder and the classifier head trained by SGD (``probe.fit_classifier``), one
    member per training seed; LP-FT's head starts from the probe on the frozen encoder's own read-out."""

    fit_cost = 1.0

    def __init__(self, arm: str, chosen: dict, models: list[JadeClassifier]):
        super().__init__(arm, chosen)
        self.models = models

    @classmethod
    def prepare(cls, row, labelled, data, encoder, cfg) -> dict:
        if not row.probe_head:
            return {}
        return {
            row.name: readout_features(encoder, data[0], data[1], labelled.expansion, [DEFAULT_READOUT])[
                DEFAULT_READOUT
            ]
        }

    @classmethod
    def fit(cls, arm, inputs, y, split, cfg, seed) -> TrainedArm:
        fit_idx, val_idx, _ = split
        chosen: dict = {"best_epoch": [], "epochs_run": []}
        start = None
        if arm_row(arm).probe_head:  # LP-FT: the probe on the frozen features, fitted once for every seed
            start = fit_logistic(inputs.fixed[arm], y, fit_idx, val_idx, cfg.class_weighting)
            chosen["probe_C"] = start.chosen_C
        models = []
        for s in range(cfg.seeds_per_fold):
            seed_s = fit_seed(seed, s) if s else seed
            model = build_classifier(arm, inputs.encoder, int(y.max()) + 1, cfg.dropout, seed_s)
            model.to(inputs.data[0].device)
            if start is not None:
                head_from_probe(model, start)
            history = fit_classifier(model, arm, inputs.data, fit_idx, val_idx, cfg, seed_s)
            models.append(model)
            chosen["best_epoch"].append(history["best_epoch"])
            chosen["epochs_run"].append(history["epochs_run"])
        return cls(arm, chosen, models)

    def run_features(self, inputs):
        return inputs.data[:2]

    def features(self, X, valid, expansion=None):
        device = next(self.models[0].parameters()).device
        return (
            torch.as_tensor(np.asarray(X, dtype=np.float32), device=device),
            torch.as_tensor(np.asarray(valid, dtype=bool), device=device),
        )

    def member_probabilities(self, features) -> list[np.ndarray]:
        X, V = features
        step = inference_batch_size(X.device)
        batches = [slice(i, i + step) for i in range(0, len(X), step)]
        return [np.concatenate([predict_proba(m, X[b], V[b], slice(None)) for b in batches]) for m in self.models]

    def state(self) -> dict:
        first = self.models[0]
        return {
            "arch": dict(first.encoder.arch),
            "n_classes": first.head.out_features,
            "dropout": first.dropout.p,
            "members": [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in self.models],
        }

    @classmethod
    def from_state(cls, arm, chosen, state) -> TrainedArm:
        models = []
        for member in state["members"]:
            model = JadeClassifier(JadeEncoder(**state["arch"]), int(state["n_classes"]), float(state["dropout"]))
            model.load_state_dict(member, strict=True)
            models.append(model.eval())
        return cls(arm, chosen, models)


class ProbeArm(FittedArm):
    """``probe``: the encoder frozen, the deterministic linear probe (``linear.fit_logistic``) on its pooled
    features of each read-out (``TransferConfig.readouts``); the one with the lowest log-loss on the inner
    validation windows predicts, and the fit records which it was."""

    fit_cost = 0.05

    def __init__(self, arm: str, chosen: dict, encoder: JadeEncoder, readout: str, linear: LinearModel):
        super().__init__(arm, chosen)
        self.encoder, self.readout, self.linear = encoder, readout, linear

    @classmethod
    def prepare(cls, row, labelled, data, encoder, cfg) -> dict:
        encoder = probe_encoder(row, encoder, cfg.seed)
        return {row.name: readout_features(encoder, data[0], data[1], labelled.expansion, cfg.readouts)}

    @classmethod
    def fit(cls, arm, inputs, y, split, cfg, seed) -> ProbeArm:
        fit_idx, val_idx, _ = split
        features = inputs.fixed[arm]
        models = {r: fit_logistic(Z, y, fit_idx, val_idx, cfg.class_weighting) for r, Z in features.items()}
        readout = choose({r: m.val_log_loss for r, m in models.items()})
        chosen = {"C": models[readout].chosen_C, "readout": readout}
        if len(models) > 1:
            chosen["readout_val_log_loss"] = {r: m.val_log_loss for r, m in models.items()}
        encoder = probe_encoder(arm_row(arm), inputs.encoder, cfg.seed)
        return cls(arm, chosen, encoder, readout, LinearModel.from_fitted(models[readout]))

    def run_features(self, inputs):
        return inputs.fixed[self.arm][self.readout]

    def features(self, X, valid, expansion=None):
        X, V = torch.as_tensor(np.asarray(X, dtype=np.float32)), torch.as_tensor(np.asarray(valid, dtype=bool))
        return readout_features(self.encoder, X, V, _no_expansion(expansion, len(X)), [self.readout])[self.readout]

    def member_probabilities(self, features) -> list[np.ndarray]:
        return [self.linear.predict_proba(features)]

    def state(self) -> dict:
        return {"encoder": encoder_state(self.encoder), "readout": self.readout, "linear": self.linear.state()}

    @classmethod
    def from_state(cls, arm, chosen, state) -> ProbeArm:
        encoder = encoder_from_file_object(state["encoder"], arm, input_size=None, hidden_size=None, num_layers=None)
        return cls(arm, chosen, encoder, state["readout"], LinearModel.from_state(state["linear"]))


class SummariesArm(FittedArm):
    """``summaries``: a scikit-learn model on per-window feature summaries (``simple``), kept as arrays."""

    fit_cost = 0.1

    def __init__(self, arm: str, chosen: dict, head):
        super().__init__(arm, chosen)
        self.head = head  # simple.HEADS[model]

    @classmethod
    def prepare(cls, row, labelled, data, encoder, cfg) -> dict:
        return {"simple": window_summaries(labelled.X, labelled.valid)}

    @classmethod
    def fit(cls, arm, inputs, y, split, cfg, seed) -> SummariesArm:
        fit_idx, val_idx, _ = split
        model = arm_row(arm).model
        fitted = fit_simple(model, inputs.fixed["simple"], y, fit_idx, val_idx, seed, cfg.class_weighting)
        chosen = {"C": fitted.chosen_C} if hasattr(fitted, "chosen_C") else {}
        return cls(arm, chosen, as_arrays(model, fitted))

    def run_features(self, inputs):
        return inputs.fixed["simple"]

    def features(self, X, valid, expansion=None):
        return window_summaries(X, valid)

    def member_probabilities(self, features) -> list[np.ndarray]:
        return [self.head.predict_proba(features)]

    def state(self) -> dict:
        return {"head": self.head.state()}

    @classmethod
    def from_state(cls, arm, chosen, state) -> SummariesArm:
        return cls(arm, chosen, HEADS[arm_row(arm).model].from_state(state["head"]))


class RocketArm(FittedArm):
    """``rocket``: MiniRocket / MultiRocket features of the 10 feature series (the transform fitted on the
    fit windows, seeded by the split's seed) with a ridge classifier and its temperature (``rocket``)."""

    fit_cost = 1.0
    needs_aeon = True

    def __init__(self, arm: str, chosen: dict, transform: RocketTransform, ridge: CalibratedRidge):
        super().__init__(arm, chosen)
        self.transform, self.ridge = transform, ridge

    @classmethod
    def prepare(cls, row, labelled, data, encoder, cfg) -> dict:
        return {"series": rocket_series(labelled.X)}

    @classmethod
    def fit(cls, arm, inputs, y, split, cfg, seed) -> RocketArm:
        fit_idx, val_idx, _ = split
        series = inputs.fixed["series"]
        transform = RocketTransform(arm_row(arm).model, series[fit_idx], seed)
        # only the windows the ridge learns from are transformed (a learning-curve subsample leaves out many)
        used = np.concatenate([fit_idx, val_idx])
        local = np.arange(len(used))
        Z = transform.features(series[used])
        ridge = fit_ridge(Z, y[used], local[: len(fit_idx)], local[len(fit_idx) :], cfg.class_weighting)
        return cls(arm, {"alpha": ridge.chosen_alpha, "temperature": ridge.temperature}, transform, ridge)

    def run_features(self, inputs):
        return inputs.fixed["series"]

    def features(self, X, valid, expansion=None):
        return rocket_series(X)

    def member_probabilities(self, features) -> list[np.ndarray]:
        return [self.ridge.predict_proba(self.transform.features(features))]

    def state(self) -> dict:
        return {"transform": self.transform.state(), "ridge": self.ridge.state()}

    @classmethod
    def from_state(cls, arm, chosen, state) -> RocketArm:
        return cls(
            arm, chosen, RocketTransform.from_state(state["transform"]), CalibratedRidge.from_state(state["ridge"])
        )


KINDS: dict[str, type[FittedArm]] = {
    "trained": TrainedArm,
    "probe": ProbeArm,
    "summaries": SummariesArm,
    "rocket": RocketArm,
}


def fit_arm(name: str, inputs: Inputs, y: np.ndarray, split: tuple, cfg: TransferConfig, seed: int) -> FittedArm:
    """Arm ``name`` fitted on ``split`` (fit, inner validation, test indices; the test windows unused)."""
    return KINDS[arm_row(name).kind].fit(name, inputs, y, split, cfg, seed)


def split_probabilities(model: FittedArm, inputs: Inputs, idx: np.ndarray) -> list[np.ndarray]:
    """Each member's probabilities of the run's windows ``idx``, from the run's fixed features."""
    return model.member_probabilities(take(model.run_features(inputs), idx))


def arm_probabilities(
    name: str, inputs: Inputs, y: np.ndarray, split: tuple, cfg: TransferConfig, seed: int
) -> tuple[list[np.ndarray], dict]:
    """Test-window probabilities of each of the arm's fits on one split (fit, val, test indices), and
    what the fits chose (epochs for trained arms, the probe's C, the ridge's alpha and temperature)."""
    model = fit_arm(name, inputs, y, split, cfg, seed)
    return split_probabilities(model, inputs, split[2]), model.chosen
