"""The posterior of the between-model variance sigma_tau^2 (transfer/between_models.py) and the interval built on it."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from moola_lib.transfer.between_models import _repeat_log_likelihood, tau2_posterior
from moola_lib.transfer.intervals import (
    CALIBRATED_OVERLAP_SHARE,
    cluster_variance_df,
    decomposition,
    fold_statistics,
    hierarchical,
    per_window_methods,
)


def _folds(repeats: int, k: int):
    return np.repeat(np.arange(repeats), k)


def test_repeat_likelihood_is_the_normal_likelihood_with_the_mean_integrated_out():
    m, a, tau2 = np.array([0.1, -0.05, 0.02, 0.2]), np.array([0.01, 0.02, 0.015, 0.01]), 0.03
    cov = np.diag(a + tau2)
    marginal, _ = integrate.quad(lambda mu: stats.multivariate_normal(np.full(4, mu), cov).pdf(m), -5, 5)
    ours = _repeat_log_likelihood(m, a, np.array([tau2, 0.5]))
    other, _ = integrate.quad(lambda mu: stats.multivariate_normal(np.full(4, mu), np.diag(a + 0.5)).pdf(m), -9, 9)
    # the same function of tau2 up to a constant: the differences of log-likelihood agree
    assert ours[0] - ours[1] == pytest.approx(math.log(marginal) - math.log(other), rel=1e-6)


def test_the_posterior_finds_a_clear_between_model_variance():
    rng = np.random.default_rng(0)
    R, k, tau2, noise = 20, 5, 0.04, 0.01
    means = rng.normal(0, math.sqrt(tau2 + noise), R * k) + np.repeat(rng.normal(0, 1, R), k)  # any repeat means
    mean, var = tau2_posterior(means, np.full(R * k, noise), _folds(R, k))
    assert mean == pytest.approx(tau2, rel=0.35) and 0 < var < mean**2  # 80 df: a few tens of percent


def test_no_spread_beyond_the_noise_still_leaves_a_positive_between_model_variance():
    rng = np.random.default_rng(1)
    means = rng.normal(0, 0.1, 25) * 0.01  # fold means far closer than their noise (0.01) allows
    mean, var = tau2_posterior(means, np.full(25, 0.01), _folds(5, 5))  # 20 df, the default 5 x 5
    assert 0 < mean < 0.01 and var > 0


def test_too_few_between_model_degrees_of_freedom_give_nan():
    assert all(map(math.isnan, tau2_posterior([0.1, 0.2, 0.0, 0.3], [0.01] * 4, [0, 0, 1, 1])))  # 2 df
    assert all(map(math.isnan, tau2_posterior(np.arange(10.0), [0.01] * 10, _folds(2, 5))))  # 5 x 2: 8 < MIN_DF
    assert math.isfinite(tau2_posterior(np.arange(20.0), [0.01] * 20, _folds(4, 5))[0])  # 5 x 4: 16
    assert all(map(math.isnan, tau2_posterior([0.0] * 25, [0.0] * 25, _folds(5, 5))))  # nothing varies


def _e(rng, training_sd: float, repeats=5, n=200, k=5):
    """Per-window differences [repeats, n] with a per-model shift of sd ``training_sd`` on its test fold."""
    base = rng.normal(0.03, 0.4, n)
    e, folds = np.tile(base, (repeats, 1)), []
    for r in range(repeats):
        for idx in np.array_split(rng.permutation(n), k):
            e[r, idx] += rng.normal(0, training_sd)
            folds.append((r, idx))
    return e, folds


def test_hierarchical_widens_where_the_training_term_is_small_and_agrees_where_it_is_clear():
    rng = np.random.default_rng(2)
    e, folds = _e(rng, 0.0)
    fs = fold_statistics(e, folds, np.arange(200), 0.25)
    dec, hier = decomposition(fs), hierarchical(fs)
    assert hier["sigma_tau2"] > dec["sigma_tau2"] and hier["se"] > dec["se"]  # the floor's 0 is a possibility
    assert hier["ci_low"] < dec["ci_low"] < dec["ci_high"] < hier["ci_high"]
    e, folds = _e(rng, 0.3)
    fs = fold_statistics(e, folds, np.arange(200), 0.25)
    dec, hier = decomposition(fs), hierarchical(fs)
    assert hier["se"] == pytest.approx(dec["se"], rel=0.2) and hier["df"] >= 5
    assert hier["p_value"] == pytest.approx(2 * stats.t.sf(abs(hier["t"]), hier["df"]))


def test_the_calibrated_interval_counts_a_share_of_the_overlap_term():
    rng = np.random.default_rng(3)
    e, folds = _e(rng, 0.2)
    fs = fold_statistics(e, folds, np.arange(200), 0.25)
    full, share = hierarchical(fs), hierarchical(fs, overlap_share=CALIBRATED_OVERLAP_SHARE)
    assert full["sigma_tau2"] == share["sigma_tau2"] > 0
    assert full["var_train"] == pytest.approx((1 / 25 + 0.25) * full["sigma_tau2"])
    assert share["var_train"] == pytest.approx((1 / 25 + CALIBRATED_OVERLAP_SHARE * 0.25) * full["sigma_tau2"])
    assert share["var_test"] == full["var_test"] and share["se"] < full["se"]
    methods = per_window_methods(fs, fs["mean"])
    assert methods["calibrated"] == share and methods["hierarchical"] == full


def test_the_test_terms_degrees_of_freedom_fall_for_sparse_differences():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(100), 2)
    normal = rng.normal(0, 1, 200)
    assert 70 < cluster_variance_df(normal, groups) <= 99  # about G for normal cluster sums
    sparse = np.zeros(200)
    sparse[rng.choice(200, 6, replace=False)] = rng.choice([-1.0, 1.0], 6)  # two arms disagree on 6 windows
    assert 8 < cluster_variance_df(sparse, groups) < 20  # about 2 x the 6 disagreements, not 99
    assert cluster_variance_df(np.ones(200), groups) == 99 and math.isnan(cluster_variance_df(normal[:4], [0, 0, 1, 1]))
