"""Which candidate windows to label next: ``random``, ``uncertainty`` and ``diverse`` (k-center greedy).

``suggest(strategy, points, ...)`` ranks candidates described by ``points`` [N, D] (the encoder's pooled
features, or ``summary_features`` when there is no encoder) and returns at most ``n`` of them, no two of
which overlap in time (a batch of near-duplicates wastes the labeller's clicks).

- ``random``: a seeded permutation (the honest baseline for any active-learning claim);
- ``uncertainty``: a logistic-regression probe on the standardised points, refit on the labels so far;
  the windows whose top two predicted class probabilities are closest (for two classes: probability
  closest to 0.5) come first;
- ``diverse``: k-center greedy: each pick is the candidate farthest from everything labelled or picked;
- ``mixed``: uncertainty, then diversity: k-center greedy among the ``MIXED_SHORTLIST`` x n least certain
  candidates (a batch of the most uncertain windows is often n near-copies of one ambiguous pattern).

Candidates from a classifier's scan (label.ipynb's ``candidates_path``) come with the model's own uncertainty
(1 - its largest class probability): ``most_uncertain`` ranks them by it, highest first, instead of a strategy.

``uncertainty`` and ``mixed`` need at least ``min_labels`` labels and two of every class; without them, or without an
encoder, it falls back to ``diverse`` (on summary features without an encoder) and says so in ``note``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRATEGIES = ("random", "uncertainty", "diverse", "mixed")
MIXED_SHORTLIST = 5  # mixed: k-center greedy among this many times n least certain candidates


@dataclass
class Suggestions:
    """Positions into the candidates, best first; ``strategy`` is the one actually used, ``note`` says
    why it differs from the one asked for; ``score``: per suggestion, the probe's margin (uncertainty),
    the distance to the nearest covered point (diverse) or NaN (random)."""

    order: np.ndarray
    strategy: str
    features: str
    note: str | None
    score: np.ndarray


def summary_features(X: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per window [N, 2F]: mean and standard deviation of every feature over its valid bars."""
    w = valid[..., None].astype(np.float64)
    n = np.maximum(w.sum(axis=1), 1.0)
    mean = (X * w).sum(axis=1) / n
    var = (((X - mean[:, None, :]) ** 2) * w).sum(axis=1) / n
    return np.concatenate([mean, np.sqrt(var)], axis=1)


def _standardise(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    mu, sd = reference.mean(axis=0), reference.std(axis=0)
    return (points - mu) / np.where(sd > 0, sd, 1.0)


def random_order(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates by ascending random ``key``: a fixed key per candidate keeps the order of the others
    when some are labelled (reopening continues where the labeller stopped)."""
    return np.argsort(key, kind="stable"), np.full(len(key), np.nan)


def uncertainty_order(points, labelled_points, labelled_y, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Candidates ordered by the probe's margin (top-1 minus top-2 probability), smallest first."""
    from sklearn.linear_model import LogisticRegression

    both = np.concatenate([points, labelled_points])
    probe = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    probe.fit(_standardise(labelled_points, both), labelled_y)
    proba = np.sort(probe.predict_proba(_standardise(points, both)), axis=1)
    margin = proba[:, -1] - proba[:, -2]
    order = np.argsort(margin, kind="stable")
    return order, margin[order]


def k_center_greedy(points, n: int, covered=None, blocked_by=lambda i: (), rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center: repeatedly pick the point farthest from its nearest center. ``covered`` [M, D]:
    centers that exist already (the labelled windows); without any, the first pick is random (``rng``).
    ``blocked_by(i)``: indices that picking i rules out (e.g. windows overlapping it)."""
    points = np.asarray(points, dtype=np.float64)
    ref = points if covered is None or not len(covered) else np.concatenate([points, covered])
    z = _standardise(points, ref)
    dist = np.full(len(z), np.inf)
    if covered is not None and len(covered):
        for c in _standardise(np.asarray(covered, dtype=np.float64), ref):
            dist = np.minimum(dist, np.linalg.norm(z - c, axis=1))
    rng = rng or np.random.default_rng(0)
    picked, scores = [], []
    while len(picked) < n and len(z):
        # no center yet (nothing labelled): a random first one; then the farthest point
        i = int(rng.integers(len(z))) if np.isposinf(dist).all() else int(np.argmax(dist))
        if dist[i] == -np.inf:  # everything left is picked or blocked
            break
        picked.append(i)
        scores.append(dist[i] if np.isfinite(dist[i]) else np.nan)  # the random first center has none
        dist = np.minimum(dist, np.linalg.norm(z - z[i], axis=1))
        dist[[i, *blocked_by(i)]] = -np.inf
    return np.asarray(picked, dtype=np.int64), np.asarray(scores, dtype=float)


def _non_overlapping(order, score, n, blocked_by) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` of ``order`` such that none is ruled out by an earlier pick."""
    out, ruled_out = [], set()
    for k, i in enumerate(order):
        if len(out) == n:
            break
        if int(i) in ruled_out:
            continue
        out.append(k)
        ruled_out.update(int(j) for j in blocked_by(int(i)))
    return np.asarray(order)[out].astype(np.int64), np.asarray(score)[out]


def _mixed(points, n, labelled_points, labelled_y, blocked_by, rng, seed) -> tuple[np.ndarray, np.ndarray]:
    """k-center greedy among the MIXED_SHORTLIST * n least certain candidates; score: the k-center distance."""
    shortlist = uncertainty_order(points, labelled_points, labelled_y, seed)[0][: MIXED_SHORTLIST * n]
    where = np.full(len(points), -1)
    where[shortlist] = np.arange(len(shortlist))

    def blocked_in_shortlist(j):  # blocked_by speaks of positions into points; k-center of the shortlist's
        return [int(where[i]) for i in blocked_by(int(shortlist[j])) if where[i] >= 0]

    picked, score = k_center_greedy(np.asarray(points)[shortlist], n, labelled_points, blocked_in_shortlist, rng)
    return shortlist[picked], score


def most_uncertain(uncertainty, n: int, blocked_by=None, asked: str | None = None) -> Suggestions:
    """Up to ``n`` candidates by their given ``uncertainty`` (a scan's 1 - max p), highest first, none ruled
    out by an earlier pick (``blocked_by``); ``asked``: the strategy this ranking replaces (named in ``note``)."""
    uncertainty = np.asarray(uncertainty, dtype=float)
    order = np.argsort(-uncertainty, kind="stable")
    order, score = _non_overlapping(order, uncertainty[order], n, blocked_by or (lambda i: ()))
    note = "candidates from a classifier's scan: its least certain windows first (score: 1 - its largest p)"
    note += f"; strategy {asked!r} is not used" if asked else ""
    return Suggestions(order=order, strategy="scan uncertainty", features="scan", note=note, score=score)


def suggest(
    strategy: str,
    points,
    n: int,
    *,
    labelled_points=None,
    labelled_y=None,
    features: str = "encoder",
    min_labels: int = 10,
    blocked_by=None,
    seed: int = 0,
    random_key=None,
) -> Suggestions:
    """Up to ``n`` suggestions among the candidates ``points`` (see the module docstring).

    ``labelled_points`` / ``labelled_y``: the labelled windows described the same way; ``features``: what
    the points are ("encoder" or "summary"), for the fallback rule and the note; ``random_key``: a fixed
    random number per candidate for ``random`` (default: drawn with ``seed``)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    rng = np.random.default_rng(seed)
    blocked_by = blocked_by or (lambda i: ())
    labelled_y = np.asarray([] if labelled_y is None else labelled_y)
    used, note = strategy, None
    if strategy in ("uncertainty", "mixed"):
        counts = np.unique(labelled_y, return_counts=True)[1]
        if features != "encoder":
            used, note = "diverse", "no encoder: suggestions are diverse on summary features, not uncertainty"
        elif len(labelled_y) < min_labels or len(counts) < 2 or counts.min() < 2:
            used, note = (
                "diverse",
                (
                    f"only {len(labelled_y)} labels (uncertainty needs {min_labels}, two of every "
                    "class): suggestions are diverse until then"
                ),
            )
    if used == "random":
        key = rng.random(len(points)) if random_key is None else np.asarray(random_key)
        order, score = _non_overlapping(*random_order(key), n, blocked_by)
    elif used == "uncertainty":
        order, score = _non_overlapping(*uncertainty_order(points, labelled_points, labelled_y, seed), n, blocked_by)
    elif used == "mixed":
        order, score = _mixed(points, n, labelled_points, labelled_y, blocked_by, rng, seed)
    else:
        order, score = k_center_greedy(points, n, labelled_points, blocked_by, rng)
    return Suggestions(order=order, strategy=used, features=features, note=note, score=score)
