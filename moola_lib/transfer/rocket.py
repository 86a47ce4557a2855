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
own; only the log-loss depends on the calibration.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.linear_model import RidgeClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ALPHAS = np.logspace(-3, 3, 10)  # the ROCKET papers' grid
LOG_TEMPERATURE = (-6.0, 8.0)  # search range of ln T


def rocket_series(X: np.ndarray) -> np.ndarray:
    """Windows [N, T, F] as aeon's collections want them: [N, F, T] float64 (ValueError if not finite)."""
    series = np.ascontiguousarray(np.asarray(X, dtype=np.float64).transpose(0, 2, 1))
    if not np.isfinite(series).all():
        raise ValueError(
            f"rocket arm: {int((~np.isfinite(series)).sum())} non-finite feature values in the "
            "labelled windows; the transforms need finite series"
        )
    return series


def rocket_features(model: str, series: np.ndarray, fit_idx: np.ndarray, seed: int) -> np.ndarray:
    """The ``model`` ("minirocket" or "multirocket") features [N, K] of every window, the transform
    fitted on the windows ``fit_idx``."""
    from aeon.transformations.collection.convolution_based import MiniRocket, MultiRocket

    transforms = {"minirocket": MiniRocket, "multirocket": MultiRocket}
    if model not in transforms:
        raise ValueError(f"unknown rocket model {model!r}; choose one of {sorted(transforms)}")
    transform = transforms[model](random_state=seed, n_jobs=1).fit(series[fit_idx])
    return np.asarray(transform.transform(series), dtype=np.float64)


def load_kernels(n_features: int = 10, length: int = 105) -> None:
    """Import aeon and load both transforms' compiled kernels (numba's on-disk cache; compiled on a machine's
    first use) with a transform of four random windows of the given shape, so that a fresh worker process
    (``parallel``) does it before its first fit rather than during it."""
    series = np.random.default_rng(0).normal(size=(4, n_features, length))
    for model in ("minirocket", "multirocket"):
        rocket_features(model, series, np.arange(4), 0)


class CalibratedRidge:
    """A fitted ridge pipeline plus the temperature that maps its decision values to probabilities."""

    def __init__(self, pipeline, temperature: float):
        self.pipeline, self.temperature = pipeline, temperature
        self.chosen_alpha = float(pipeline[-1].alpha_)

    def logits(self, Z: np.ndarray) -> np.ndarray:
        d = self.pipeline.decision_function(Z)
        return np.stack([-d, d], axis=1) if d.ndim == 1 else d  # binary: the score of the second class

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        return np.exp(log_softmax(self.temperature * self.logits(Z), axis=1))


def fit_ridge(
    Z: np.ndarray, y: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray, class_weighting: bool = True
) -> CalibratedRidge:
    """Standardised ridge classifier on ``fit_idx`` (strength by leave-one-out over ``ALPHAS``), its
    temperature fitted by log-loss on ``val_idx`` (see the module docstring)."""
    pipeline = make_pipeline(
        StandardScaler(), RidgeClassifierCV(alphas=ALPHAS, class_weight="balanced" if class_weighting else None)
    ).fit(Z[fit_idx], y[fit_idx])
    model = CalibratedRidge(pipeline, 1.0)
    logits, y_val = model.logits(Z[val_idx]), y[val_idx]

    def val_loss(log_t: float) -> float:
        return float(-np.mean(log_softmax(np.exp(log_t) * logits, axis=1)[np.arange(len(y_val)), y_val]))

    best = minimize_scalar(val_loss, bounds=LOG_TEMPERATURE, method="bounded", options={"xatol": 1e-4})
    model.temperature = float(np.exp(best.x))
    return model
