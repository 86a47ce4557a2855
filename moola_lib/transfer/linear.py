"""A deterministic linear probe: L2-regularised logistic regression on fixed features.

Used for frozen encoders (on their pooled features) and for the simple arm (on window summaries). No
stochastic optimiser: for given features and windows the fit is a convex problem with one solution, so
the probe adds no training noise to the paired comparison (an SGD head trained for a few dozen epochs
does). Features are standardised with the fitted windows' statistics (inside the pipeline, never the
test fold's); the strength C is chosen from ``C_GRID`` by log-loss on the inner validation split, and the
probe fitted on the fit windows at that C is the one that predicts.

Why no refit on fit + validation windows: the SGD-trained arms learn from the fit windows only (the
validation windows choose their epoch), so a probe refitted on fit + validation would see a quarter more
training windows than the arms it is compared with. Refitting the trained arms instead would double their
cost (and an epoch count chosen on 80% of the windows is not the right one for 100%); fitting every arm on
the fit windows and selecting on the validation windows is the cheaper of the two honest rules.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

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
