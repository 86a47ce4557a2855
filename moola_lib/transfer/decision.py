"""Which arm to use: each arm's probability of being the best and the expected loss of choosing it.

Contract. ``decision(results)`` reads the fold records (``results["arms"][arm]["folds"]``: the metric,
``repeat``, ``fold``, ``n_train``, ``n_test``, ``test_idx``), each arm's ``oof_probabilities`` and the protocol's
``primary_metric``, ``y`` and ``groups`` where the file has them, so it answers for any transfer_results.json,
files written before it existed included. It returns (JSON-ready)::

    {"metric", "higher_is_better", "rope",
     "arms": {arm: {"mean", "p_best", "expected_loss"}},           # in the results' arm order
     "recommended", "runner_up", "p_ahead_of_runner_up", "p_within_rope_of_runner_up", "separable",
     "lead": {other arm: {"mean", "ci_low", "ci_high"}},           # recommended minus other, 95%
     "rule", "model": {"name", "interval", "n_splits", "df", "test_train_ratio", "draws", "seed"[, "mismatch"]}}

``mean``, ``expected_loss``, ``lead`` and ``rope`` are in the metric's own unit (a fraction for the label
metrics: x 100 = percentage points; nats for the log-loss). ``expected_loss`` and ``lead`` are oriented so
that positive favours the arm named first whatever the metric's direction (for the log-loss: lower is
better, and a lead is the other arm's loss minus the recommended arm's). ``p_best`` sums to 1 over the arms.
``classify fit --arm auto`` reads ``recommended`` and the ``p_best`` values of a run directory.

Model: one posterior of all arms' mean scores, the same model as the interval the verdict prints. Where the
verdict prints the hierarchical interval (a per-window metric, out-of-fold probabilities in the file, enough
between-model degrees of freedom: 5 folds x 5 repeats, not 5 x 2), the posterior is that interval made joint
(``joint_posterior.hierarchical_posterior``: a multivariate t whose every pairwise difference has the pair's
hierarchical variance), and each ``lead`` is the pair's own hierarchical interval, the one the comparison table
prints. Elsewhere (``model["interval"]`` says which) it is the Bayesian correlated t of Corani & Benavoli (2015)
generalised from one pair to K arms: the J = folds x repeats (repeat, fold) splits give each arm a score; the
posterior of the arms' means is a multivariate Student t with J - 1 degrees of freedom, located at the arms'
mean scores, scale matrix (1/J + n_test/n_train) x the sample covariance of the scores over the splits (the
Nadeau-Bengio correction: the J training sets overlap); the difference of any two arms under it is exactly the
pairwise Bayesian correlated t of their per-split differences (``intervals.bayesian_correlated_t``; its 95%
interval equals the corrected t's). ``DRAWS`` draws with seed ``SEED`` (the answer is deterministic): P(best)
= the share of draws in which the arm's mean is the highest (exact ties, as of two arms with identical scores,
shared equally); expected loss = E[max_j mu_j - mu_i].

Rules (``RULE``): the recommended arm has the smallest expected loss; ties within ``TIE`` go to the cheaper
arm (``arms.FIT_COST`` of its kind), then to the earlier row of the arm table. The runner-up has the next
smallest expected loss. ``separable`` is True when the recommended arm is the best with posterior
probability above ``SEPARABLE_P`` (0.95, the threshold of Benavoli et al. 2017's Bayesian comparisons of
classifiers) and ahead of the runner-up by more than the region of practical equivalence
(``intervals.rope_for``: 1 pp, 0.01 nats for the log-loss) with probability above it too; otherwise the data
cannot separate the top arms and the recommendation is the smallest expected loss, ties to the cheaper arm.
The threshold was 0.5 ("more likely than not") until 2026-12-06: on the truth study's 24 verdicts (VALIDATION.md)
that called 6 recommendations separable at P(best) 0.55-0.81, and each of those arms is truly below the
baseline at its size; at 0.95 none of the 24 is called separable.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .arms import arm as arm_row
from .arms import names
from .config import LOWER_IS_BETTER
from .fits import KINDS
from .intervals import VERDICT_INTERVAL, bayesian_correlated_t, rope_for
from .joint_posterior import draw, hierarchical_posterior
from .stats import fold_test_train_ratio

DRAWS = 20_000
SEED = 0
TIE = 1e-9  # expected losses / draws closer than this are equal (identical arms differ by rounding only)
SEPARABLE_P = 0.95
RULE = (
    "recommended: the smallest expected loss (ties: the cheaper fit, then arm-table order); separable: "
    f"P(best) > {SEPARABLE_P} and P(ahead of the runner-up by more than the rope) > {SEPARABLE_P}"
)
MODEL = "multivariate Bayesian correlated t over all arms (Corani & Benavoli 2015; Nadeau-Bengio correction)"
HIERARCHICAL_MODEL = "the verdict's hierarchical interval made joint over all arms (transfer/joint_posterior.py)"


def score_matrix(results: dict, metric: str) -> tuple[list[str], np.ndarray, float]:
    """(arms, scores [J, K], n_test / n_train) on the (repeat, fold) splits every arm has a finite score on,
    oriented so that higher is better (the log-loss negated)."""
    arms = list(results["arms"])
    by_split = [{(f["repeat"], f["fold"]): f for f in results["arms"][a]["folds"]} for a in arms]
    splits = sorted(set.intersection(*(set(s) for s in by_split)))
    scores = np.array([[s[k][metric] for s in by_split] for k in splits], dtype=float).reshape(len(splits), len(arms))
    keep = np.isfinite(scores).all(axis=1)
    if keep.sum() < 2:
        raise ValueError(f"decision: {int(keep.sum())} split(s) with a finite {metric} for every arm; 2 needed")
    ratio = fold_test_train_ratio([by_split[0][k] for k, ok in zip(splits, keep) if ok])
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    return arms, sign * scores[keep], ratio


def posterior_draws(scores: np.ndarray, ratio: float, draws: int = DRAWS, seed: int = SEED) -> np.ndarray:
    """Draws [draws, K] of the arms' mean scores from the multivariate correlated t (module docstring).

    A draw is mean + sqrt((1/J + ratio) / (J - 1)) x g' (scores - mean) / sqrt(chi2 / df) with g ~ N(0, I_J):
    g' X has covariance X'X, so the draws get the sample covariance without factorising it. That keeps a
    singular covariance (identical or constant arms) exact: identical arms get bitwise identical draws."""
    J = len(scores)
    centred = scores - scores.mean(axis=0)
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((draws, J))
    w = np.sqrt(rng.chisquare(J - 1, size=draws) / (J - 1))
    return scores.mean(axis=0) + math.sqrt((1.0 / J + ratio) / (J - 1)) * (g @ centred) / w[:, None]


def best_and_loss(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per arm of the draws ``theta`` [draws, K]: P(best), ties shared equally, and E[max - own]."""
    top = theta.max(axis=1, keepdims=True)
    is_top = theta >= top - TIE
    p_best = (is_top / is_top.sum(axis=1, keepdims=True)).mean(axis=0)
    return p_best, (top - theta).mean(axis=0)


def recommend(arms: list[str], expected_loss: np.ndarray) -> list[str]:
    """The arms in order of preference: expected loss, then (within ``TIE``) fit cost, then table order."""
    table = names()
    rounded = np.round(expected_loss / TIE)  # losses within TIE (rounded to its multiples) compare equal
    return sorted(arms, key=lambda a: (rounded[arms.index(a)], KINDS[arm_row(a).kind].fit_cost, table.index(a)))


def _correlated_t(scores: np.ndarray, ratio: float, rope: float):
    """The fallback model: (oriented draws, lead(b, i) -> the pair's record, model description)."""

    def lead(b: int, i: int) -> dict:
        return bayesian_correlated_t(scores[:, b] - scores[:, i], ratio, rope)

    model = {"name": MODEL, "interval": "corrected_t", "n_splits": len(scores), "df": len(scores) - 1}
    return posterior_draws(scores, ratio), lead, model


def oriented_lead(rec: dict, sign: float, rope: float) -> dict:
    """A pair's hierarchical record (metric units, first minus second) turned by ``sign`` (+1 or -1) into a
    lead (positive favours the arm named first), with P(lead > rope) and P(|lead| <= rope) of its t."""
    mean, lo, hi = (sign * rec[k] for k in ("mean", "ci_low", "ci_high"))
    if rec["se"] == 0:  # identical arms: a point
        return {
            "mean": mean,
            "ci_low": mean,
            "ci_high": mean,
            "p_above_rope": float(mean > rope),
            "p_in_rope": float(abs(mean) <= rope),
        }
    t = stats.t(rec["df"], loc=mean, scale=rec["se"])
    return {
        "mean": mean,
        "ci_low": min(lo, hi),
        "ci_high": max(lo, hi),
        "p_above_rope": float(t.sf(rope)),
        "p_in_rope": float(t.cdf(rope) - t.cdf(-rope)),
    }


def _hierarchical(joint: dict, sign: float, rope: float, n_splits: int):
    """The verdict's interval made joint (``joint_posterior``): (oriented draws, lead(b, i), model description)."""

    def lead(b: int, i: int) -> dict:
        return oriented_lead(joint["pairs"][min(b, i), max(b, i)], sign if b < i else -sign, rope)

    theta = sign * draw(joint["mean"], joint["cov"], joint["df"], DRAWS, SEED)
    model = {
        "name": HIERARCHICAL_MODEL,
        "interval": "hierarchical",
        "n_splits": n_splits,
        "df": joint["df"],
        "mismatch": joint["mismatch"],
    }
    return theta, lead, model


def decision(results: dict, metric: str | None = None) -> dict:
    """The decision of the module docstring on ``metric`` (default the run's primary metric)."""
    metric = metric or results["protocol"].get("primary_metric", "balanced_accuracy")
    arms, scores, ratio = score_matrix(results, metric)
    sign, rope = (-1.0 if metric in LOWER_IS_BETTER else 1.0), rope_for(metric)
    # the printed interval's own model: the joint hierarchical one only while the verdict prints that interval
    use_joint = VERDICT_INTERVAL == "hierarchical"
    joint = hierarchical_posterior(results, arms, sign * scores.mean(axis=0), metric) if use_joint else None
    if joint is None:
        theta, lead, model = _correlated_t(scores, ratio, rope)
    else:
        theta, lead, model = _hierarchical(joint, sign, rope, len(scores))
    p_best, loss = best_and_loss(theta)
    order = recommend(arms, loss)
    best = arms.index(order[0])
    leads = {a: lead(best, i) for i, a in enumerate(arms) if i != best}  # the recommended arm minus each other
    runner = order[1] if len(order) > 1 else None
    ahead = leads[runner]["p_above_rope"] if runner else 1.0
    return {
        "metric": metric,
        "higher_is_better": sign > 0,
        "rope": rope,
        "arms": {
            a: {"mean": float(sign * scores[:, i].mean()), "p_best": float(p_best[i]), "expected_loss": float(loss[i])}
            for i, a in enumerate(arms)
        },
        "recommended": order[0],
        "runner_up": runner,
        "p_ahead_of_runner_up": float(ahead),
        "p_within_rope_of_runner_up": float(leads[runner]["p_in_rope"]) if runner else 0.0,
        "separable": bool(p_best[best] > SEPARABLE_P and ahead > SEPARABLE_P),
        "lead": {a: {k: float(d[k]) for k in ("mean", "ci_low", "ci_high")} for a, d in leads.items()},
        "rule": RULE,
        "model": {**model, "test_train_ratio": ratio, "draws": DRAWS, "seed": SEED},
    }
