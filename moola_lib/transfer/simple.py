"""The ``simple`` arm: what a reviewer tries first, on the same folds as the neural arms.

Each window becomes a vector of per-feature summaries over its valid bars (``SUMMARIES`` of each of
the 10 features: 50 numbers), fed to two scikit-learn models: a regularised logistic regression (the
strength C chosen on the inner split, like the frozen-encoder probe) and gradient boosting (shallow
trees, fixed settings; deterministic for its seed). Both fit on the fit windows only, like every arm
(``linear`` says why). If the neural arms do not beat these, the encoder
adds nothing a summary cannot see.

The fitted models predict as plain arrays (``as_arrays``): the logistic regression as ``linear.LinearModel``,
gradient boosting as ``BoostedTrees``, its trees read from scikit-learn's public ``estimators_[i, k].tree_``
arrays and its prior's raw score, and walked by a few vectorised lines with scikit-learn's arithmetic (the
windows' summaries as float32 against the float64 thresholds, stage by stage; tests/test_classifier.py
checks ``predict_proba`` equal to scikit-learn's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit
from scipy.stats import gmean
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.extmath import softmax

from .linear import LinearModel, fit_logistic

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


@dataclass(frozen=True)
class BoostedTrees:
    """Fitted gradient boosting as arrays: ``init`` [K] raw score of the prior, ``learning_rate``, and the
    trees of S stages x K raw scores (K = 1 for two classes) with their nodes padded to M:
    ``left``, ``right``, ``feature`` int64 [S, K, M] (-1: a leaf), ``threshold``, ``value`` float64 [S, K, M]."""

    init: np.ndarray
    learning_rate: float
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray

    @classmethod
    def from_fitted(cls, gb: GradientBoostingClassifier) -> BoostedTrees:
        """The arrays of a fitted ``GradientBoostingClassifier`` (public attributes only)."""
        trees = [[est.tree_ for est in stage] for stage in gb.estimators_]
        width = max(t.node_count for stage in trees for t in stage)

        def padded(attribute, fill, dtype):
            out = np.full((len(trees), len(trees[0]), width), fill, dtype=dtype)
            for i, stage in enumerate(trees):
                for k, t in enumerate(stage):
                    out[i, k, : t.node_count] = np.asarray(getattr(t, attribute)).reshape(t.node_count)
            return out

        # the prior's raw score, as scikit-learn's _init_raw_predictions makes it: clipped probabilities, its link
        eps = np.finfo(np.float64).eps
        prior = np.clip(gb.init_.predict_proba(np.zeros((1, gb.n_features_in_))), eps, 1 - eps)[0]
        init = logit(prior[1:]) if len(prior) == 2 else np.log(prior / gmean(prior))
        return cls(
            np.asarray(init, dtype=np.float64),
            float(gb.learning_rate),
            *(padded(a, -1, np.int64) for a in ("children_left", "children_right", "feature")),
            padded("threshold", 0.0, np.float64),
            padded("value", 0.0, np.float64),
        )

    def raw(self, Z: np.ndarray) -> np.ndarray:
        """Raw scores [N, K]: the prior's, plus learning_rate x each stage's leaf values, stage by stage."""
        X = np.asarray(Z, dtype=np.float32)  # scikit-learn's trees compare float32 inputs
        S, K, _ = self.left.shape
        trees = np.arange(S * K)
        node = np.zeros((len(X), S * K), dtype=np.int64)
        left, right = self.left.reshape(S * K, -1), self.right.reshape(S * K, -1)
        feature, threshold = self.feature.reshape(S * K, -1), self.threshold.reshape(S * K, -1)
        for _ in range(left.shape[1]):  # a path is never longer than the nodes of its tree
            inner = left[trees, node] >= 0
            if not inner.any():
                break
            x = np.take_along_axis(X, np.maximum(feature[trees, node], 0), axis=1)
            step = np.where(x <= threshold[trees, node], left[trees, node], right[trees, node])
            node = np.where(inner, step, node)
        leaf = self.value.reshape(S * K, -1)[trees, node].reshape(len(X), S, K)
        raw = np.tile(self.init, (len(X), 1))
        for s in range(S):  # scikit-learn's order of additions, for its exact sums
            raw += self.learning_rate * leaf[:, s]
        return raw

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        raw = self.raw(Z)
        if raw.shape[1] == 1:
            p = expit(raw[:, 0])
            return np.stack([1 - p, p], axis=1)
        return softmax(raw)

    def state(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_state(cls, state: dict) -> BoostedTrees:
        arrays = {k: np.asarray(state[k]) for k in ("init", "left", "right", "feature", "threshold", "value")}
        return cls(learning_rate=float(state["learning_rate"]), **arrays)


HEADS = {"logistic": LinearModel, "boosting": BoostedTrees}  # each simple model's array form


def as_arrays(model: str, fitted) -> LinearModel | BoostedTrees:
    """The array form (``HEADS``) of a fitted simple model of kind ``model`` (``fit_simple``'s result)."""
    return HEADS[model].from_fitted(fitted)
