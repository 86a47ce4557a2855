"""Interval methods of the transfer protocol (moola_lib.transfer.intervals) against known values."""

import math

import numpy as np
import pytest
from scipy import stats

from moola_lib.transfer.config import METRICS
from moola_lib.transfer.intervals import (
    MDE_RANGE_DF,
    METHODS,
    OVERLAP_SHARE,
    VALIDATED,
    VERDICT_INTERVAL,
    all_methods,
    bayesian_correlated_t,
    cluster_variance_of_mean,
    compare_methods,
    decomposition,
    fold_statistics,
    mde_range,
    per_window_scores,
    t_interval,
)
from moola_lib.transfer.stats import corrected_t, probability_metrics, weighted_metrics

D = [0.02, 0.05, -0.01, 0.04, 0.03]  # mean 0.026, s^2 = 0.00053; (1/5 + 1/4) s^2 = 0.0002385


def _t4_cdf(t: float) -> float:
    """Student t CDF with 4 degrees of freedom, closed form."""
    u = t / math.sqrt(1 + t * t / 4)
    return 0.5 + 0.375 * u * (1 - u * u / 12)


def test_t_interval_uses_the_student_quantile():
    lo, hi = t_interval(0.1, 0.02, 4)
    assert hi - 0.1 == pytest.approx(2.776445 * 0.02, rel=1e-6)  # t(0.975, 4) from tables
    assert (lo + hi) / 2 == pytest.approx(0.1)
    assert t_interval(0.0, 1.0, 10.5, alpha=0.1)[1] == pytest.approx(stats.t.ppf(0.95, 10.5))
    assert all(math.isnan(x) for x in t_interval(0.1, math.nan, 4))


def test_bayesian_correlated_t_hand_computed():
    out = bayesian_correlated_t(D, test_train_ratio=0.25, rope=0.01)
    scale = math.sqrt(0.0002385)
    nb = corrected_t(D, 0.25)
    assert out["scale"] == pytest.approx(scale) and out["df"] == 4
    # its credible interval equals the corrected t interval (rho / (1 - rho) = n_test / n_train)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((nb["ci_low"], nb["ci_high"]))
    assert out["p_above_rope"] == pytest.approx(1 - _t4_cdf((0.01 - 0.026) / scale), rel=1e-6)
    assert out["p_below_rope"] == pytest.approx(_t4_cdf((-0.01 - 0.026) / scale), rel=1e-6)
    assert out["p_above_rope"] + out["p_in_rope"] + out["p_below_rope"] == pytest.approx(1)
    assert out["p_above_rope"] > out["p_in_rope"] > out["p_below_rope"]
    wide = bayesian_correlated_t(D, 0.25, rope=0.5)
    assert wide["p_in_rope"] > 0.99
    point = bayesian_correlated_t([0.02] * 5, 0.25, rope=0.01)
    assert point["p_above_rope"] == 1.0 and point["p_in_rope"] == 0.0
    assert math.isnan(bayesian_correlated_t([0.1], 0.25)["p_in_rope"])


def test_per_window_scores_average_to_the_metrics():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 80)
    proba = rng.dirichlet(np.ones(3), size=80)
    m = weighted_metrics(y, proba.argmax(1), 3)
    assert per_window_scores(y, proba, "balanced_accuracy").mean() == pytest.approx(m["balanced_accuracy"])
    assert per_window_scores(y, proba, "accuracy").mean() == pytest.approx(m["accuracy"])
    assert per_window_scores(y, proba, "log_loss").mean() == pytest.approx(probability_metrics(y, proba)["log_loss"])
    stacked = per_window_scores(y, np.stack([proba, proba[::-1]]), "balanced_accuracy")
    assert stacked.shape == (2, 80) and stacked[0] == pytest.approx(per_window_scores(y, proba, "balanced_accuracy"))
    with pytest.raises(ValueError, match="macro_f1"):
        per_window_scores(y, proba, "macro_f1")


def test_cluster_variance_of_the_mean():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    # singletons: the usual s^2 / n
    assert cluster_variance_of_mean(x, np.arange(4)) == pytest.approx(np.var(x, ddof=1) / 4)
    # two clusters {1, 2}, {3, 4}: summed deviations -2, +2; 2 / 1 x 8 / 16 = 1.0
    assert cluster_variance_of_mean(x, [0, 0, 1, 1]) == pytest.approx(1.0)
    assert math.isnan(cluster_variance_of_mean(x, [0, 0, 0, 0]))


def test_decomposition_hand_computed():
    # one repeat, two folds {0, 1}, {2, 3}, every window its own group, n_test / n_train = 1
    e = np.array([[1.0, 3.0, 5.0, 7.0]])
    folds = [(0, np.array([0, 1])), (0, np.array([2, 3]))]
    out = decomposition(fold_statistics(e, folds, np.arange(4), test_train_ratio=1.0))
    # fold means 2, 6: variance 8; each fold mean's test noise s^2 / 2 = 1, times 1 - 2/4 for a partition
    assert out["sigma_tau2"] == pytest.approx(7.5) and out["var_fold_test"] == pytest.approx(1.0)
    assert out["var_train"] == pytest.approx((1 / 2 + 1) * 7.5)
    assert out["var_test"] == pytest.approx((20 / 3) / 4)
    var = 11.25 + 5 / 3
    assert out["se"] == pytest.approx(math.sqrt(var))
    assert out["df"] == pytest.approx(var**2 / ((5 / 3) ** 2 / 3 + 11.25**2 / 1))  # Welch-Satterthwaite
    half = stats.t.ppf(0.975, out["df"]) * out["se"]
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((4 - half, 4 + half))
    assert out["p_value"] == pytest.approx(2 * stats.t.sf(4 / out["se"], out["df"]))


def test_decomposition_without_a_training_effect_is_the_test_noise():
    rng = np.random.default_rng(0)
    e = np.tile(rng.normal(0.05, 0.3, 200), (3, 1))  # same per-window difference in every repeat
    folds = [(r, idx) for r in range(3) for idx in np.array_split(rng.permutation(200), 5)]
    out = decomposition(fold_statistics(e, folds, np.arange(200), 0.25))
    assert out["var_train"] < 0.2 * out["var_test"]
    assert out["se"] == pytest.approx(np.std(e[0], ddof=1) / math.sqrt(200), rel=0.1)
    shifted = e.copy()
    for (r, idx), shift in zip(folds, rng.normal(0, 0.2, len(folds))):
        shifted[r, idx] += shift  # each model shifts its own test fold: training variance
    with_training = decomposition(fold_statistics(shifted, folds, np.arange(200), 0.25))
    assert with_training["sigma_tau2"] > 0.01 and with_training["se"] > 1.5 * out["se"]


def test_mde_range_inverts_the_chi_square_of_the_variance():
    lo, hi = mde_range(0.10, 4)
    assert lo == pytest.approx(0.10 * math.sqrt(4 / stats.chi2.ppf(0.975, 4)))
    assert hi == pytest.approx(0.10 * math.sqrt(4 / stats.chi2.ppf(0.025, 4)))
    assert lo < 0.10 < hi
    # large df: no narrower than the spread the validation measured (MDE_RANGE_DF degrees of freedom)
    assert mde_range(0.10, 1000) == pytest.approx(mde_range(0.10, MDE_RANGE_DF))
    assert mde_range(0.10, 1000)[1] - mde_range(0.10, 1000)[0] < hi - lo
    assert all(math.isnan(x) for x in mde_range(math.nan, 24))


def _run(rng, y, assign, skill):
    """A fake arm: probabilities that favour the true class by ``skill``, fold records from them."""
    R, N = assign.shape
    p1 = np.clip(0.5 + skill * (2 * y - 1) + rng.normal(0, 0.25, (R, N)), 0.01, 0.99)
    oof = np.stack([1 - p1, p1], axis=-1)
    folds = []
    for r in range(R):
        for k in range(assign[r].max() + 1):
            idx = np.flatnonzero(assign[r] == k)
            m = weighted_metrics(y[idx], oof[r, idx].argmax(-1), 2)
            folds.append(
                {
                    "repeat": r,
                    "n_test": len(idx),
                    "n_train": N - len(idx),
                    "test_idx": idx.tolist(),
                    **{k2: float(m[k2]) if k2 in m else 0.5 for k2 in METRICS},
                    "log_loss": float(probability_metrics(y[idx], oof[r, idx])["log_loss"]),
                }
            )
    return {"folds": folds, "oof": oof}


def test_compare_methods_reports_every_method_and_the_chosen_one():
    rng = np.random.default_rng(0)
    y = np.arange(120) % 2
    assign = np.stack([rng.permutation(np.arange(120) % 5) for _ in range(5)])  # 5 x 5: 20 between-model df
    a, b = _run(rng, y, assign, 0.15), _run(rng, y, assign, 0.05)
    groups = np.arange(120) // 2
    out = compare_methods(a, b, y, groups)
    d = out["balanced_accuracy"]
    few = compare_methods(*(_run(rng, y, assign[:3], e) for e in (0.15, 0.05)), y, groups)["balanced_accuracy"]
    # 5 x 3: 12 < MIN_DF between-model df, no posterior: the corrected t is printed
    assert few["interval"] == "corrected_t" and math.isnan(few["intervals"]["hierarchical"]["se"])
    # only the validated intervals are presented as intervals; the others are kept apart, named so
    assert set(d["intervals"]) == set(VALIDATED) and {"corrected_t", "bayesian_correlated_t"} <= set(VALIDATED)
    assert set(d["unvalidated_intervals"]) == set(METHODS) - set(VALIDATED)
    assert set(all_methods(d)) == set(METHODS) == set(OVERLAP_SHARE) | {"corrected_t", "bayesian_correlated_t"}
    # macro F1 is no mean of per-window scores: the corrected t and its Bayesian twin only
    assert set(out["macro_f1"]["intervals"]) | set(out["macro_f1"]["unvalidated_intervals"]) == {
        "corrected_t",
        "bayesian_correlated_t",
    }
    assert d["interval"] == VERDICT_INTERVAL and "fold_statistics" in d and "fold_statistics" not in out["macro_f1"]
    chosen = d["intervals"][d["interval"]]
    assert (d["ci_low"], d["ci_high"], d["p_value"], d["mde"]) == (
        chosen["ci_low"],
        chosen["ci_high"],
        chosen["p_value"],
        chosen["mde"],
    )
    assert d["mde_range"][0] < d["mde"] < d["mde_range"][1] and d["mean"] > 0
    dec = compare_methods(a, b, y, groups, chosen="decomposition")["balanced_accuracy"]
    assert dec["interval"] == "decomposition" and dec["se"] == d["unvalidated_intervals"]["decomposition"]["se"]
    assert dec["mean"] == pytest.approx(d["mean"])  # every method centres on the mean per-fold difference
