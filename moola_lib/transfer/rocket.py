"""The ``rocket`` arm: the cheap baselines of time-series classification, on the same folds as every arm.

MiniRocket (Dempster, Schmidt & Webb 2021) and MultiRocket (Tan et al. 2022), as aeon 1.6.0 implements them,
turn the 10 relativity-feature series of each window ([N, 10, 105], multivariate; invalid warm-up bars
included as the neural arms receive them) into thousands of convolution-pooling features (~10,000 and
~50,000). The transform's data-dependent part (the biases, quantiles of convolution outputs of training
windows) is fitted on the fit windows only, seeded by the fold's seed, so the arm is deterministic.

Classifier: the field's standard, a ridge classifier with its built-in efficient leave-one-out choice of
the strength over ``ALPHAS`` (``RidgeClassifierCV``), on standardised features, fitted on the fit windows.
Its labels are the ridge's. Ridge gives decision values, not probabilities, and the log-loss and ROC AUC
need probabilities: ``predict_proba`` is softmax(T x decision values) with one temperature T > 0 fitted by
log-loss on the inner validation windows (windows the ridge did not train on; decision values of its own
training windows are near +-1 whatever the truth, since ~10,000 features fit ~140 windows exactly). One
positive temperature keeps the ridge's ranking and labels: the AUC and the label metrics are the ridge's
own; only the log-loss depends on the calibration (the temperature is ``calibration.fit_temperature``).

A fitted transform (``RocketTransform``) is kept as what it was fitted on: the fit windows' series and the
seed, refitted when read back from a file (aeon's fitted parameters are aeon's internals; its public fit
with the same windows and seed gives the same transform), with a fingerprint that proves it: a fixed random
projection of the features of the first ``FINGERPRINT_WINDOWS`` fit windows, computed when the state is
taken and checked after the refit, so an aeon or numba that computes another transform is refused rather
than fed to a ridge fitted on other features. The ridge is kept as arrays (``linear.LinearModel``).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from sklearn.linear_model import RidgeClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .calibration import fit_temperature, scaled_probabilities
from .linear import LinearModel

ALPHAS = np.logspace(-3, 3, 10)  # the ROCKET papers' grid
FINGERPRINT_WINDOWS = 4  # fit windows whose features prove a refitted transform
FINGERPRINT_SIZE = 8  # random directions their features are projected on


def rocket_series(X: np.ndarray) -> np.ndarray:
    """Windows [N, T, F] as aeon's collections want them: [N, F, T] float64 (ValueError if not finite)."""
    series = np.ascontiguousarray(np.asarray(X, dtype=np.float64).transpose(0, 2, 1))
    if not np.isfinite(series).all():
        raise ValueError(
            f"rocket arm: {int((~np.isfinite(series)).sum())} non-finite feature values in the "
            "labelled windows; the transforms need finite series"
        )
    return series


@contextlib.contextmanager
def _torch_threads_kept():
    # aeon sets numba's thread count and restores it, which sets OpenMP's for the whole process: torch
    # (the same OpenMP) would then train the next arms on every core, many times slower on a small CPU
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class RocketTransform:
    """The ``model`` ("minirocket" or "multirocket") transform fitted on ``fit_series`` [n, F, T] with
    ``seed`` (its state and why: the module docstring)."""

    def __init__(self, model: str, fit_series: np.ndarray, seed: int):
        from aeon.transformations.collection.convolution_based import MiniRocket, MultiRocket

        transforms = {"minirocket": MiniRocket, "multirocket": MultiRocket}
        if model not in transforms:
            raise ValueError(f"unknown rocket model {model!r}; choose one of {sorted(transforms)}")
        self.model, self.seed = model, int(seed)
        self.fit_series = np.ascontiguousarray(fit_series, dtype=np.float64)
        with _torch_threads_kept():
            self.transform = transforms[model](random_state=self.seed, n_jobs=1).fit(self.fit_series)

    def features(self, series: np.ndarray) -> np.ndarray:
        """The features [N, K] of windows' series [N, F, T] (each window's alone)."""
        with _torch_threads_kept():
            return np.asarray(self.transform.transform(series), dtype=np.float64)

    def fingerprint(self) -> np.ndarray:
        """The features of the first fit windows on ``FINGERPRINT_SIZE`` fixed random directions."""
        Z = self.features(self.fit_series[:FINGERPRINT_WINDOWS])
        directions = np.random.default_rng(0).normal(size=(Z.shape[1], FINGERPRINT_SIZE)) / np.sqrt(Z.shape[1])
        return Z @ directions

    def state(self) -> dict:
        return {
            "model": self.model,
            "seed": self.seed,
            "fit_series": self.fit_series,
            "fingerprint": self.fingerprint(),
        }

    @classmethod
    def from_state(cls, state: dict) -> RocketTransform:
        """The transform refitted from its state; ValueError when it does not reproduce the fingerprint."""
        transform = cls(state["model"], np.asarray(state["fit_series"]), int(state["seed"]))
        stored, now = np.asarray(state["fingerprint"]), transform.fingerprint()
        if stored.shape != now.shape or not np.allclose(now, stored, rtol=1e-6, atol=1e-6):
            raise ValueError(
                f"the {state['model']} transform refitted from the stored windows does not reproduce the "
                "stored features: this aeon/numba computes another transform than the one the model was "
                "fitted with; install the versions the model records"
            )
        return transform


def rocket_features(model: str, series: np.ndarray, fit_idx: np.ndarray, seed: int) -> np.ndarray:
    """The ``model`` ("minirocket" or "multirocket") features [N, K] of every window, the transform
    fitted on the windows ``fit_idx``."""
    return RocketTransform(model, series[fit_idx], seed).features(series)


def load_kernels(n_features: int = 10, length: int = 105) -> None:
    """Import aeon and load both transforms' compiled kernels (numba's on-disk cache; compiled on a machine's
    first use) with a transform of four random windows of the given shape, so that a fresh worker process
    (``parallel``) does it before its first fit rather than during it."""
    series = np.random.default_rng(0).normal(size=(4, n_features, length))
    for model in ("minirocket", "multirocket"):
        rocket_features(model, series, np.arange(4), 0)


class CalibratedRidge:
    """A fitted ridge (``linear.LinearModel``) plus the temperature that maps its decision values to
    probabilities; ``pipeline``: the scikit-learn pipeline it was fitted as (None when read from a file)."""

    def __init__(self, linear: LinearModel, temperature: float, alpha: float, pipeline=None):
        self.linear, self.temperature, self.chosen_alpha, self.pipeline = linear, temperature, alpha, pipeline

    def logits(self, Z: np.ndarray) -> np.ndarray:
        d = self.linear.decision(Z)
        return np.stack([-d, d], axis=1) if d.ndim == 1 else d  # binary: the score of the second class

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        return scaled_probabilities(self.logits(Z), self.temperature)

    def state(self) -> dict:
        return {"linear": self.linear.state(), "temperature": self.temperature, "alpha": self.chosen_alpha}

    @classmethod
    def from_state(cls, state: dict) -> CalibratedRidge:
        return cls(LinearModel.from_state(state["linear"]), float(state["temperature"]), float(state["alpha"]))


def fit_ridge(
    Z: np.ndarray, y: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray, class_weighting: bool = True
) -> CalibratedRidge:
    """Standardised ridge classifier on ``fit_idx`` (strength by leave-one-out over ``ALPHAS``), its
    temperature fitted by log-loss on ``val_idx`` (see the module docstring)."""
    pipeline = make_pipeline(
        StandardScaler(), RidgeClassifierCV(alphas=ALPHAS, class_weight="balanced" if class_weighting else None)
    ).fit(Z[fit_idx], y[fit_idx])
    model = CalibratedRidge(LinearModel.from_fitted(pipeline), 1.0, float(pipeline[-1].alpha_), pipeline)
    model.temperature = fit_temperature(model.logits(Z[val_idx]), y[val_idx])
    return model
