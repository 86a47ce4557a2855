"""Which arm to deploy, and how sure that choice is: ``decision(results)`` for a loaded transfer_results.json.

Per arm: ``mean`` balanced accuracy over the run's (repeat, fold) rows, ``p_best`` the probability that it
is the best arm and ``expected_loss`` the balanced accuracy expected to be lost by taking it, E[best - own],
both over ``N_RESAMPLES`` resamples of the (repeat, fold) rows (one row holds every arm's score on the same
fold, so the arms' correlation is kept), with a fixed seed. ``recommended``: the arm with the highest mean;
``separable``: whether it is the best in at least ``SEPARABLE`` of the resamples.
"""

from __future__ import annotations

import numpy as np

N_RESAMPLES = 4000
SEPARABLE = 0.95


def decision(results: dict) -> dict:
    """The decision among the arms of ``results`` (see the module docstring)."""
    names = list(results["arms"])
    rows = [{(f["repeat"], f["fold"]): f["balanced_accuracy"] for f in results["arms"][a]["folds"]} for a in names]
    keys = sorted(set.intersection(*(set(r) for r in rows)))
    scores = np.array([[r[k] for r in rows] for k in keys])  # [rows, arms]
    draws = np.random.default_rng(0).integers(0, len(keys), size=(N_RESAMPLES, len(keys)))
    means = scores[draws].mean(axis=1)  # [resamples, arms]
    best = np.bincount(means.argmax(axis=1), minlength=len(names)) / N_RESAMPLES
    loss = (means.max(axis=1, keepdims=True) - means).mean(axis=0)
    mean = scores.mean(axis=0)
    recommended = names[int(np.argmax(mean))]
    arms = {
        a: {"p_best": float(best[i]), "expected_loss": float(loss[i]), "mean": float(mean[i])}
        for i, a in enumerate(names)
    }
    return {"arms": arms, "recommended": recommended, "separable": bool(arms[recommended]["p_best"] >= SEPARABLE)}
