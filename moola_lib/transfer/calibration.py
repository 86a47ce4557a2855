"""Probabilities that mean what they say: one temperature fitted by log-loss on windows the model did not
learn from, and the expected calibration error (ECE) with the data of its reliability diagram.

``fit_temperature(logits, y)``: the T > 0 minimising the log-loss of softmax(T x logits) (a bounded search
over ln T). One positive factor keeps every window's ranking of the classes, so the labels, and a binary
task's ROC AUC, do not change; only the probabilities do. The ROCKET arms scale the ridge's decision values
with it (``rocket.fit_ridge``), the classifier the log-probabilities of its arm (``moola_lib.classifier``).

``reliability(proba, y)``: top-label calibration (Guo et al. 2017): each window's confidence is its highest
probability and it is correct when that class is its label; windows are binned by confidence into
``ECE_BINS`` equal bins of [0, 1], and the ECE is the window-weighted mean of |observed frequency - mean
confidence| over the bins.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

LOG_TEMPERATURE = (-6.0, 8.0)  # search range of ln T
ECE_BINS = 10


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T > 0 with the lowest log-loss of softmax(T x ``logits``) [N, C] for labels ``y``."""
    rows = np.arange(len(y))

    def loss(log_t: float) -> float:
        return float(-np.mean(log_softmax(np.exp(log_t) * logits, axis=1)[rows, y]))

    best = minimize_scalar(loss, bounds=LOG_TEMPERATURE, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(best.x))


def scaled_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(``temperature`` x ``logits``) row by row."""
    return np.exp(log_softmax(temperature * logits, axis=1))


def log_probabilities(proba: np.ndarray) -> np.ndarray:
    """ln of probabilities (a zero becomes the log of the smallest float): the logits whose softmax they are."""
    return np.log(np.maximum(proba, np.finfo(np.float64).tiny))


def reliability(proba: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> dict:
    """The reliability diagram's data and the ECE of probabilities ``proba`` [N, C] for labels ``y`` (see the
    module docstring): per bin its edges, mean confidence, observed frequency (None when empty) and count."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(y)
    edges = np.round(np.linspace(0.0, 1.0, bins + 1), 12)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    safe = np.maximum(counts, 1)
    mean_conf = np.bincount(which, weights=confidence, minlength=bins) / safe
    observed = np.bincount(which, weights=correct.astype(float), minlength=bins) / safe
    ece = float(np.sum(counts * np.abs(observed - mean_conf)) / max(len(y), 1))
    return {
        "bins": [[float(edges[i]), float(edges[i + 1])] for i in range(bins)],
        "mean_predicted": [float(m) if c else None for m, c in zip(mean_conf, counts)],
        "observed_frequency": [float(o) if c else None for o, c in zip(observed, counts)],
        "counts": counts.tolist(),
        "ece": ece,
    }
