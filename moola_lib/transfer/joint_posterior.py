"""The joint posterior of every arm's mean score that ``decision`` draws from: the verdict's own interval, made joint.

Contract. ``hierarchical_posterior(results, metric)`` returns the joint posterior of the arms' mean scores that
matches the verdict's printed interval (``intervals.hierarchical``) pair by pair, or None where that interval
is undefined for the run (a metric that is not a mean of per-window scores, a results file without the
out-of-fold probabilities, fewer than ``between_models.MIN_DF`` between-model degrees of freedom, e.g. 5 folds x
2 repeats): ``decision`` then keeps the Bayesian correlated t of the fold scores, and says which it used.
Returned (all oriented as the results' metric, not as "higher is better"): ``mean`` [K] (the arms' mean fold
scores, where the printed comparisons centre their intervals), ``cov`` [K, K], ``df``, ``pairs`` {(i, j): the
hierarchical record of arm i minus arm j, i < j} and ``mismatch`` (below).

Why: one model for the table and the choice. The verdict prints the hierarchical interval for a pair (covered
95-100% in the validation, 7-15% narrower than the corrected t); a P(best) from the corrected t's model of
all arms was more cautious than the interval printed beside it, and the recommended arm's 95% lead could
disagree with the comparison table's interval for the same pair.

How: per pair of arms the hierarchical interval's variance V_ij (its se squared: the test windows' term plus
the between-model term, from the pair's per-window differences, ``intervals.fold_statistics``). A covariance of
the K means whose pairwise differences have exactly these variances exists when V is a squared Euclidean
distance matrix; the test term always is one (a cluster-robust covariance of the arms' per-window scores), the
between-model term, estimated pair by pair, nearly. The covariance is V's classical multidimensional scaling
(Torgerson: -1/2 of V double-centred, negative eigenvalues set to 0); ``mismatch`` is the largest relative
difference between a pair's variance under the joint and V_ij (0 when V is Euclidean). The joint is a
multivariate t with the median of the pairs' Welch-Satterthwaite degrees of freedom: one df cannot match each
pair's own, and the pairwise leads the verdict prints use each pair's own record (``pairs``).
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np

from .intervals import PER_WINDOW, fold_statistics, hierarchical, per_window_scores
from .stats import fold_test_train_ratio


def _per_window(results: dict, arms: list[str], metric: str) -> list[np.ndarray] | None:
    """Each arm's per-window scores [repeats, N] from its out-of-fold probabilities (None where any is missing)."""
    y = np.asarray(results["protocol"]["y"])
    scores = []
    for arm in arms:
        oof = results["arms"][arm].get("oof_probabilities")
        if oof is None:
            return None
        s = per_window_scores(y, np.asarray(oof, dtype=float), metric)
        if not np.isfinite(s).all():
            return None
        scores.append(s)
    return scores


def _positive(values: np.ndarray) -> np.ndarray:
    """Eigenvalues with the negative and the numerically zero ones set to 0 (a square root would turn a rounding
    error of 1e-19 into differences of 1e-9 between the draws of identical arms)."""
    return np.where(values > 1e-12 * max(values.max(), 0.0), values, 0.0)


def torgerson(v: np.ndarray) -> np.ndarray:
    """A covariance [K, K] whose pairwise difference variances C_ii + C_jj - 2 C_ij are the squared distances
    ``v`` where they are Euclidean (classical multidimensional scaling, negative eigenvalues set to 0)."""
    k = len(v)
    h = np.eye(k) - 1.0 / k
    values, vectors = np.linalg.eigh(-0.5 * h @ v @ h)
    return (vectors * _positive(values)) @ vectors.T


def _difference_variances(c: np.ndarray) -> np.ndarray:
    d = np.diag(c)
    return d[:, None] + d[None, :] - 2 * c


def hierarchical_posterior(results: dict, arms: list[str], means: np.ndarray, metric: str) -> dict | None:
    """The joint posterior of the module docstring for ``arms`` with mean scores ``means`` (None: undefined)."""
    protocol = results["protocol"]
    if metric not in PER_WINDOW or "y" not in protocol or "groups" not in protocol or len(arms) < 2:
        return None
    scores = _per_window(results, arms, metric)
    if scores is None:
        return None
    folds = results["arms"][arms[0]]["folds"]
    if not all("test_idx" in f for f in folds):
        return None
    models = [(f["repeat"], np.asarray(f["test_idx"])) for f in folds]
    groups, ratio = np.asarray(protocol["groups"]), fold_test_train_ratio(folds)
    v, pairs = np.zeros((len(arms), len(arms))), {}
    for i, j in combinations(range(len(arms)), 2):
        e = scores[i] - scores[j]
        rec = hierarchical(fold_statistics(e, models, groups, ratio), means[i] - means[j])
        if not np.any(e):  # identical predictions: no difference, no variance
            rec = {**rec, "se": 0.0, "df": math.inf, "ci_low": rec["mean"], "ci_high": rec["mean"]}
        if not math.isfinite(rec["se"]):
            return None  # the hierarchical interval is undefined here (e.g. too few between-model df)
        v[i, j] = v[j, i] = rec["se"] ** 2
        pairs[i, j] = rec
    cov = torgerson(v)
    fitted = _difference_variances(cov)
    off = ~np.eye(len(arms), dtype=bool) & (v > 0)
    mismatch = float(np.max(np.abs(fitted[off] - v[off]) / v[off])) if off.any() else 0.0
    dfs = [p["df"] for p in pairs.values() if math.isfinite(p["df"])]
    return {
        "mean": np.asarray(means, dtype=float),
        "cov": cov,
        "df": float(np.median(dfs)) if dfs else math.inf,
        "pairs": pairs,
        "mismatch": mismatch,
    }


def draw(mean: np.ndarray, cov: np.ndarray, df: float, draws: int, seed: int) -> np.ndarray:
    """Draws [draws, K] of a multivariate t (normal for infinite df) located at ``mean`` with scale ``cov``;
    a singular ``cov`` (identical arms) gives those arms identical draws."""
    rng = np.random.default_rng(seed)
    values, vectors = np.linalg.eigh(cov)
    root = vectors * np.sqrt(_positive(values))
    z = rng.standard_normal((draws, len(mean))) @ root.T
    w = np.sqrt(rng.chisquare(df, size=draws) / df) if math.isfinite(df) else np.ones(draws)
    return mean + z / w[:, None]
