"""The ``simple`` arm: what a reviewer tries first, on the same folds as the neural arms.

Each window becomes a vector of per-feature summaries over its valid bars (``SUMMARIES`` of each of
the 10 features: 50 numbers), fed to two scikit-learn models: a regularised logistic regression (the
strength C chosen on the inner split, like the frozen-encoder probe) and gradient boosting (shallow
trees, fixed settings; deterministic for its seed). Both fit on the fit windows only, like every arm
(``linear`` says why). If the neural arms do not beat these, the encoder
adds nothing a summary cannot see.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.utils.class_weight import compute_sample_weight

from .linear import fit_logistic

SUMMARIES = ("mean", "std", "min", "max", "last")
SIMPLE_MODELS = ("logistic", "boosting")


def window_summaries(X: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[N, F * 5]: mean, sd, min, max and last value of every feature over each window's valid bars
    (all bars where a window has none valid)."""
    X = np.asarray(X, dtype=np.float64)
    v = np.asarray(valid, dtype=bool)
    v = np.where(v.any(axis=1, keepdims=True), v, True)[..., None]
    count = v.sum(axis=1)
    mean = np.where(v, X, 0.0).sum(axis=1) / count
    std = np.sqrt(np.where(v, (X - mean[:, None]) ** 2, 0.0).sum(axis=1) / count)
    low = np.where(v, X, np.inf).min(axis=1)
    high = np.where(v, X, -np.inf).max(axis=1)
    last_step = X.shape[1] - 1 - np.argmax(v[:, ::-1, 0], axis=1)
    last = X[np.arange(len(X)), last_step]
    return np.concatenate([mean, std, low, high, last], axis=1)


def fit_simple(
    model: str,
    Z: np.ndarray,
    y: np.ndarray,
    fit_idx: np.ndarray,
    val_idx: np.ndarray,
    seed: int,
    class_weighting: bool = True,
):
    """A fitted scikit-learn-style classifier (``predict_proba``) of kind ``model`` on summaries ``Z``.
    Both fit on ``fit_idx``; the logistic regression picks its C on ``val_idx`` (boosting has fixed settings)."""
    if model == "logistic":
        return fit_logistic(Z, y, fit_idx, val_idx, class_weighting)
    if model == "boosting":
        weight = compute_sample_weight("balanced", y[fit_idx]) if class_weighting else None
        gb = GradientBoostingClassifier(
            n_estimators=150, max_depth=2, learning_rate=0.05, subsample=0.8, random_state=seed
        )
        return gb.fit(Z[fit_idx], y[fit_idx], sample_weight=weight)
    raise ValueError(f"unknown simple model {model!r}; choose one of {SIMPLE_MODELS}")
