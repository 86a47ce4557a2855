"""A deterministic linear probe: L2-regularised logistic regression on fixed features.

Used for frozen encoders (on their pooled features) and for the simple arm (on window summaries). No
stochastic optimiser: for given features and windows the fit is a convex problem with one solution, so
the probe adds no training noise to the paired comparison (an SGD head trained for a few dozen epochs
does). Features are standardised with the fitted windows' statistics (inside the pipeline, never the
test fold's); the strength C is chosen from ``C_GRID`` by log-loss on the inner validation split, and the
probe fitted on the fit windows at that C is the one that predicts.

``LinearModel`` holds a fitted standardise-then-linear pipeline (this probe, or the ROCKET arms' ridge) as
plain arrays and predicts with scikit-learn's own arithmetic (``StandardScaler.transform``, then
``decision_function``; tests/test_classifier.py checks equality): the fitted arms predict with it, so a
model read back from its file predicts exactly as the one the protocol evaluated.

Why no refit on fit + validation windows: the SGD-trained arms learn from the fit windows only (the
validation windows choose their epoch), so a probe refitted on fit + validation would see a quarter more
training windows than the arms it is compared with. Refitting the trained arms instead would double their
cost (and an epoch count chosen on 80% of the windows is not the right one for 100%); fitting every arm on
the fit windows and selecting on the validation windows is the cheaper of the two honest rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.extmath import softmax

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def _probe(C: float, class_weighting: bool):
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=C, max_iter=2000, class_weight="balanced" if class_weighting else None)
    )


def fit_logistic(Z: np.ndarray, y: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray, class_weighting: bool = True):
    """The probe fitted on ``fit_idx`` at the C of ``C_GRID`` with the lowest log-loss on ``val_idx``
    (ties: the strongest regularisation); ``chosen_C`` records it, ``val_log_loss`` that log-loss (what
    chooses among read-outs, ``readouts.choose``)."""
    labels = np.unique(y)
    models, losses = [], []
    for C in C_GRID:
        models.append(_probe(C, class_weighting).fit(Z[fit_idx], y[fit_idx]))
        losses.append(log_loss(y[val_idx], models[-1].predict_proba(Z[val_idx]), labels=labels))
    best = int(np.argmin(np.round(losses, 10)))
    model = models[best]
    model.chosen_C = C_GRID[best]
    model.val_log_loss = float(losses[best])
    return model


@dataclass(frozen=True)
class LinearModel:
    """A fitted ``StandardScaler`` + linear classifier as arrays: (Z - mean) / scale @ coef.T + intercept."""

    mean: np.ndarray  # [D]
    scale: np.ndarray  # [D]
    coef: np.ndarray  # [C, D], or one row for two classes: [1, D] (logistic) or [D] (ridge)
    intercept: np.ndarray  # [C], [1] or a scalar

    @classmethod
    def from_fitted(cls, pipeline) -> LinearModel:
        """The arrays of a fitted scikit-learn pipeline (scaler first, linear classifier last)."""
        scaler, linear = pipeline[0], pipeline[-1]
        return cls(
            *(np.array(a, dtype=np.float64) for a in (scaler.mean_, scaler.scale_, linear.coef_, linear.intercept_))
        )

    def decision(self, Z: np.ndarray) -> np.ndarray:
        """Decision values: [N] for a binary model (the second class's score), else [N, C]."""
        coef_t = self.coef.T if self.coef.ndim == 2 else self.coef  # a binary ridge keeps one coefficient row: [D]
        scores = (np.asarray(Z, dtype=np.float64) - self.mean) / self.scale @ coef_t + self.intercept
        return scores.reshape(-1) if scores.ndim > 1 and scores.shape[1] == 1 else scores

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        """A logistic regression's probabilities [N, C]: binary 1 - sigmoid and sigmoid, else softmax."""
        d = self.decision(Z)
        if d.ndim == 1:
            p = expit(d)
            return np.stack([1 - p, p], axis=1)
        return softmax(d)

    def state(self) -> dict:
        return {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept}

    @classmethod
    def from_state(cls, state: dict) -> LinearModel:
        return cls(*(np.asarray(state[k], dtype=np.float64) for k in ("mean", "scale", "coef", "intercept")))
