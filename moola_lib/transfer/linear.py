"""A deterministic linear probe: L2-regularised logistic regression on fixed features.

Used for frozen encoders (on their pooled features) and for the simple arm (on window summaries). No
stochastic optimiser: for given features and windows the fit is a convex problem with one solution, so
the probe adds no training noise to the paired comparison (an SGD head trained for a few dozen epochs
does). Features are standardised with the fitted windows' statistics (inside the pipeline, never the
test fold's); the strength C is chosen from ``C_GRID`` by log-loss on the inner validation split, then
the probe is refitted on fit + validation windows.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def _probe(C: float, class_weighting: bool):
    return make_pipeline(StandardScaler(), LogisticRegression(
        C=C, max_iter=2000, class_weight="balanced" if class_weighting else None))


def choose_C(Z: np.ndarray, y: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray,
             class_weighting: bool = True) -> float:
    """The C of ``C_GRID`` with the lowest validation log-loss (ties: the strongest regularisation)."""
    labels = np.unique(y)
    losses = []
    for C in C_GRID:
        model = _probe(C, class_weighting).fit(Z[fit_idx], y[fit_idx])
        losses.append(log_loss(y[val_idx], model.predict_proba(Z[val_idx]), labels=labels))
    return C_GRID[int(np.argmin(np.round(losses, 10)))]


def fit_logistic(Z: np.ndarray, y: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray,
                 class_weighting: bool = True):
    """The probe with C chosen on ``val_idx``, refitted on fit + validation windows."""
    C = choose_C(Z, y, fit_idx, val_idx, class_weighting)
    train = np.concatenate([fit_idx, val_idx])
    model = _probe(C, class_weighting).fit(Z[train], y[train])
    model.chosen_C = C
    return model
