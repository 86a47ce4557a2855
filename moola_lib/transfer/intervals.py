"""Intervals for the difference between two methods evaluated by repeated K-fold cross-validation.

Five estimates of the uncertainty of one paired difference (arm - reference), each a small pure function:

- ``corrected_t`` (``stats.py``): Nadeau & Bengio (2003). The J = folds x repeats per-fold differences,
  variance of their mean (1/J + n_test/n_train) s^2, Student t with J - 1 degrees of freedom.
- ``bayesian_correlated_t``: Corani & Benavoli (2015). The posterior of the mean difference is a Student
  t with J - 1 degrees of freedom, location the mean and scale^2 = (1/J + rho / (1 - rho)) s^2 with
  rho = n_test / (n_train + n_test); since rho / (1 - rho) = n_test / n_train its 95% credible interval
  equals the corrected t interval. What it adds are probabilities: P(difference > rope), P(|difference|
  <= rope), P(difference < -rope) for a region of practical equivalence ``rope`` (default 1 pp for the
  label metrics, 0.01 nats for the log-loss, ``DEFAULT_ROPE``).
- ``decomposition``: out-of-fold per-window scores with an explicit training-variance term. The paired
  per-window score difference e[r, i] (window i, repeat r) is split into what the test windows contribute
  (the cluster-robust variance of the mean over windows of e averaged over repeats, clusters = fold
  groups: windows of one session are not independent) and what the training sets contribute (within each
  repeat, the variance of the fold means beyond their own test noise, sigma_tau^2, counted with the
  Nadeau-Bengio factor 1/J + n_test/n_train because the J models share training windows). Degrees of
  freedom by Welch-Satterthwaite. Unlike the corrected t it does not inflate the test windows' noise by
  the training-overlap factor; unlike a bootstrap of fixed out-of-fold predictions it keeps the training
  sets' variance. Defined for the metrics that are means of per-window scores (``PER_WINDOW``).

- ``hierarchical``: the decomposition with sigma_tau^2 from its posterior (``between_models.py``: the fold
  means' REML likelihood, a flat prior on sigma_tau) instead of a method-of-moments estimate floored at 0;
  its posterior mean is never 0 and its posterior variance sets the training term's degrees of freedom; the
  test term's degrees of freedom are effective ones (``cluster_variance_df``: sparse differences, as of two
  arms that disagree on a few windows, give a far noisier variance estimate than G - 1 says).
- ``calibrated``: ``hierarchical`` with the Nadeau-Bengio overlap term n_test/n_train counted at
  ``CALIBRATED_OVERLAP_SHARE`` (0.25) of its size: on the testbed the training sets' contribution to the
  spread of the estimate beyond the test windows' noise was 0.1-0.45 of what the full term assumes. Fitted
  on one setting of the validation, checked on the others (VALIDATION.md, issue 28).

The paired bootstrap of fixed out-of-fold predictions (``stats.paired_bootstrap``) holds the test
windows' noise only and is reported as such (``test_noise_only_ci``), never as a CI of a difference.

``VERDICT_INTERVAL`` names the method whose interval, p-value and minimal detectable effect the verdict
prints: the narrowest that covered the true difference in at least 93% of the validation's replicates in
every pair (VALIDATION.md, ``python -m moola_lib.studies.validate``). Issue 18's runs (80 replicates a pair,
174 windows) kept the corrected t (98.8-100%; true spread / printed se 0.45-0.81): the decomposition covered
92.5% on the primary comparison's null (its misses: sets where sigma_tau^2 came out 0 and the interval held
test noise only). Issue 28's runs (174 windows at two difficulties, 700 windows; 20-80 replicates a pair)
chose ``hierarchical``: 95-100% in every pair of the three settings, as narrow as the corrected t or narrower
(the primary comparison's null 7-15%, two random probes 8-43%); its half-width is still 1.1-1.9x what the
true spread requires. The decomposition (92.5% in two settings) and ``calibrated`` (half-width 0.9-1.4x the
need, but 90-92.5% in two of them) are not validated: ``compare_methods`` stores them under
``unvalidated_intervals`` (the decomposition's variance terms feed ``extrapolation`` when the verdict's
method has none), never under ``intervals``, and the verdict does not print them.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .between_models import tau2_posterior
from .stats import (
    compare,
    corrected_t,
    fold_test_train_ratio,
    minimal_detectable_effect,
)

PER_WINDOW = ("accuracy", "balanced_accuracy", "log_loss")  # metrics that are means of per-window scores
DEFAULT_ROPE = {"log_loss": 0.01}  # every other metric: 0.01 (1 pp)
METHODS = ("corrected_t", "bayesian_correlated_t", "decomposition", "hierarchical", "calibrated")
# the share of the Nadeau-Bengio overlap term that the testbed's truth showed (VALIDATION.md, issue 28): fitted on
# one setting (174 windows, difficulty 0.75; the training term's excess over the test noise was 0.1-0.45 of
# n_test/n_train x sigma_tau^2 across its five pairs), then checked on the others
CALIBRATED_OVERLAP_SHARE = 0.25
# the per-window methods by the share of the overlap term n_test/n_train x sigma_tau^2 they count
OVERLAP_SHARE = {"decomposition": 1.0, "hierarchical": 1.0, "calibrated": CALIBRATED_OVERLAP_SHARE}
# covered >= 93% in every pair of the validation (VALIDATION.md: issue 18's runs; issue 28's three settings)
VALIDATED = ("corrected_t", "bayesian_correlated_t", "hierarchical")
# the narrowest of them (VALIDATION.md, issue 28): where it is undefined (fewer than between_models.MIN_DF
# between-model degrees of freedom, a metric without per-window scores) the corrected t is printed
VERDICT_INTERVAL = "hierarchical"
METHOD_TITLES = {
    "corrected_t": "corrected resampled t (Nadeau-Bengio)",
    "bayesian_correlated_t": "Bayesian correlated t (Corani-Benavoli)",
    "decomposition": "per-window variance decomposition (test + training)",
    "hierarchical": "per-window decomposition, between-model variance from its posterior",
    "calibrated": "per-window decomposition, posterior between-model variance, overlap term x 0.25 (testbed)",
}
_PROB_FLOOR = 1e-7
# the printed minimal detectable effect varied across replicate labelled sets with a coefficient of variation
# of 20-30% (VALIDATION.md): as noisy as a variance estimate on about 8 degrees of freedom, whatever the
# degrees of freedom of the interval
MDE_RANGE_DF = 8


def t_interval(mean: float, se: float, df: float, alpha: float = 0.05) -> tuple[float, float]:
    """The two-sided (1 - alpha) Student t interval mean -+ t(1 - alpha/2, df) se (NaN when undefined)."""
    if not (math.isfinite(se) and df >= 1):
        return math.nan, math.nan
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return mean - half, mean + half


def bayesian_correlated_t(values, test_train_ratio: float, rope: float = 0.01, alpha: float = 0.05) -> dict:
    """Posterior of the mean difference (Corani & Benavoli 2015): Student t(J - 1, mean, scale) with scale^2
    = (1/J + n_test/n_train) s^2. Returns mean, scale, df, the (1 - alpha) credible interval and the
    posterior probabilities that the difference lies above ``rope``, inside [-rope, rope], below -rope."""
    nb = corrected_t(values, test_train_ratio, alpha)
    mean, scale, df = nb["mean"], nb["se"], nb["df"]
    out = {
        "mean": mean,
        "scale": scale,
        "df": df,
        "rope": rope,
        "ci_low": nb["ci_low"],
        "ci_high": nb["ci_high"],
        "p_above_rope": math.nan,
        "p_in_rope": math.nan,
        "p_below_rope": math.nan,
    }
    if not math.isfinite(scale):
        return out
    if scale == 0.0:  # the posterior is a point mass at the mean
        above, below = float(mean > rope), float(mean < -rope)
    else:
        above = float(stats.t.sf(rope, df, loc=mean, scale=scale))
        below = float(stats.t.cdf(-rope, df, loc=mean, scale=scale))
    out.update(p_above_rope=above, p_below_rope=below, p_in_rope=max(0.0, 1.0 - above - below))
    return out


def per_window_scores(y: np.ndarray, proba: np.ndarray, metric: str) -> np.ndarray:
    """Scores whose mean over the windows is the metric: correct (accuracy), correct x N / (C x n_class)
    (balanced accuracy: the mean of the class recalls), -ln p(true class) (log-loss). ``proba`` [..., N, C]."""
    y = np.asarray(y)
    n_classes = proba.shape[-1]
    if metric == "log_loss":
        p_true = np.take_along_axis(proba, np.broadcast_to(y[:, None], proba.shape[:-1] + (1,)), -1)[..., 0]
        return -np.log(np.clip(p_true, _PROB_FLOOR, 1.0))
    correct = (proba.argmax(-1) == y).astype(float)
    if metric == "accuracy":
        return correct
    if metric == "balanced_accuracy":
        counts = np.bincount(y, minlength=n_classes).astype(float)
        present = int((counts > 0).sum())
        return correct * len(y) / (present * counts[y])
    raise ValueError(f"per_window_scores: {metric!r} is not a mean of per-window scores (one of {PER_WINDOW})")


def _cluster_sums(values: np.ndarray, clusters) -> np.ndarray:
    """Per cluster, the sum of the values' deviations from their mean (G entries)."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return np.zeros(0)
    _, c = np.unique(clusters, return_inverse=True)
    return np.bincount(c, weights=values - values.mean(), minlength=int(c.max()) + 1)


def cluster_variance_of_mean(values: np.ndarray, clusters: np.ndarray) -> float:
    """Cluster-robust (CR1) variance of the mean of ``values``: G / (G - 1) x sum over clusters of the
    squared summed deviations / N^2 (NaN with fewer than two clusters)."""
    sums = _cluster_sums(values, clusters)
    G = len(sums)
    if G < 2:
        return math.nan
    return float(G / (G - 1) * np.sum(sums**2) / len(values) ** 2)


def cluster_variance_df(values: np.ndarray, clusters: np.ndarray) -> float:
    """The effective degrees of freedom of ``cluster_variance_of_mean``: 2 E^2 / Var of the estimate, from
    the spread of the G squared cluster sums u_g it adds up (2 G mean(u)^2 / var(u), at most G - 1; normal
    sums give about G). Sparse, heavy-tailed per-window differences (two arms that disagree on a few windows)
    make the variance estimate far noisier than G - 1 degrees of freedom say. NaN with fewer than 3 clusters."""
    u = _cluster_sums(values, clusters) ** 2
    G = len(u)
    if G < 3:
        return math.nan
    spread = float(np.var(u, ddof=1))
    return float(G - 1) if spread == 0 else float(min(G - 1, 2 * G * u.mean() ** 2 / spread))


def fold_statistics(e: np.ndarray, folds: list[np.ndarray], groups: np.ndarray, test_train_ratio: float) -> dict:
    """What the per-window intervals are computed from (small: one entry per fitted model), so that a study can
    store it and recompute every method later: the mean of ``e`` [repeats, N], var_test (the cluster-robust
    variance of the mean over windows of e averaged over repeats) and its effective degrees of freedom, per
    model its repeat, test-fold size, mean of e and test noise (the cluster-robust variance of that mean), N,
    G (windows and clusters) and n_test / n_train."""
    e = np.asarray(e, dtype=float)
    groups = np.asarray(groups)
    e_bar = e.mean(axis=0)
    return {
        "mean": float(np.mean(e)),
        "var_test": cluster_variance_of_mean(e_bar, groups),
        "var_test_df": cluster_variance_df(e_bar, groups),
        "fold_repeat": [int(r) for r, _ in folds],
        "fold_size": [len(idx) for _, idx in folds],
        "fold_mean": [float(e[r, idx].mean()) for r, idx in folds],
        "fold_noise": [cluster_variance_of_mean(e[r, idx], groups[idx]) for r, idx in folds],
        "n": int(e.shape[1]),
        "clusters": len(np.unique(groups)),
        "test_train_ratio": float(test_train_ratio),
    }


def _interval_record(mean: float, var_test: float, var_train: float, tau2: float, fold_noise) -> dict:
    nan = math.nan
    return {
        "mean": mean,
        "var_test": var_test,
        "var_train": var_train,
        "sigma_tau2": tau2,
        "var_fold_test": float(np.nanmean(fold_noise)),
        **dict.fromkeys(("se", "df", "t", "p_value", "ci_low", "ci_high", "mde"), nan),
    }


def decomposition(fs: dict, mean: float | None = None, alpha: float = 0.05, power: float = 0.8) -> dict:
    """The variance-decomposition interval (module docstring) from ``fold_statistics`` ``fs``; ``mean``
    (default the mean of e) centres the interval. Returns mean, se, df, t, p_value, ci_low, ci_high, mde and
    the two variance terms var_test and var_train (with sigma_tau^2, the between-model variance beyond test
    noise, and var_fold_test, the mean test noise of one model's fold mean)."""
    mean = fs["mean"] if mean is None else float(mean)
    var_test, J, G = fs["var_test"], len(fs["fold_mean"]), fs["clusters"]
    tau2 = _between_model_variance(fs["fold_mean"], fs["fold_noise"], fs["fold_repeat"], fs["fold_size"], fs["n"])
    var_train = (1.0 / J + fs["test_train_ratio"]) * tau2
    var = var_test + var_train
    out = _interval_record(mean, var_test, var_train, tau2, fs["fold_noise"])
    if not (math.isfinite(var) and var > 0):
        return out
    denominator = var_test**2 / (G - 1) + (var_train**2 / (J - 1) if var_train > 0 else 0.0)
    df = var**2 / denominator  # Welch-Satterthwaite
    return out | _t_record(mean, math.sqrt(var), df, alpha, power)


def hierarchical(fs: dict, mean: float | None = None, alpha=0.05, power=0.8, overlap_share: float = 1.0) -> dict:
    """The decomposition with sigma_tau^2 from its posterior (``between_models.tau2_posterior``) instead of a
    point estimate floored at 0: var_train = (1/J + overlap_share x n_test/n_train) E[sigma_tau^2], its
    degrees of freedom 2 E^2 / Var (the scaled chi-square with the posterior's mean and variance),
    Welch-Satterthwaite for the sum with var_test (its effective degrees of freedom, ``cluster_variance_df``).
    ``overlap_share`` 1 is the Nadeau-Bengio count of the shared training windows; ``CALIBRATED_OVERLAP_SHARE``
    the testbed's measured one (module docstring). Same fields as ``decomposition``."""
    mean = fs["mean"] if mean is None else float(mean)
    var_test, J, G = fs["var_test"], len(fs["fold_mean"]), fs["clusters"]
    tau2, tau2_var = tau2_posterior(fs["fold_mean"], fs["fold_noise"], fs["fold_repeat"])
    var_train = (1.0 / J + overlap_share * fs["test_train_ratio"]) * tau2
    var = var_test + var_train
    out = _interval_record(mean, var_test, var_train, tau2, fs["fold_noise"])
    if not (math.isfinite(var) and var > 0 and G > 1):
        return out
    train_df = 2 * tau2**2 / tau2_var if tau2_var > 0 else math.inf
    test_df = fs.get("var_test_df", G - 1)  # statistics stored before 2026-12-05 (second commit) lack it
    df = var**2 / (var_test**2 / test_df + var_train**2 / train_df)
    return out | _t_record(mean, math.sqrt(var), df, alpha, power)


def _t_record(mean: float, se: float, df: float, alpha: float, power: float) -> dict:
    """se, df, t, two-sided p, the t interval and the minimal detectable effect of a t-distributed mean."""
    lo, hi = t_interval(mean, se, df, alpha)
    return {
        "se": se,
        "df": df,
        "t": mean / se,
        "p_value": float(2 * stats.t.sf(abs(mean / se), df)),
        "ci_low": lo,
        "ci_high": hi,
        "mde": minimal_detectable_effect(se, df, alpha, power),
    }


def _between_model_variance(means, noise, repeats, sizes, n: int) -> float:
    """sigma_tau^2: per repeat, the variance of its fold means less their test noise (each fold mean's noise
    times 1 - n_test / N: the folds of a repeat partition the windows, so their means vary less than
    independent samples would), averaged over the repeats, floored at 0; NaN with no repeat of two folds."""
    means, noise, repeats, sizes = (np.asarray(a, dtype=float) for a in (means, noise, repeats, sizes))
    per_repeat = [
        np.var(means[repeats == r], ddof=1) - np.nanmean(noise[repeats == r] * (1 - sizes[repeats == r] / n))
        for r in np.unique(repeats)
        if (repeats == r).sum() > 1
    ]
    return max(0.0, float(np.mean(per_repeat))) if per_repeat else math.nan


def mde_range(mde: float, df: float, alpha: float = 0.05) -> list[float]:
    """A (1 - alpha) range of the minimal detectable effect, which is an estimate: it scales with the
    estimated standard error, whose square is taken as s^2 x chi^2(d) / d with d = min(df, MDE_RANGE_DF)
    (the spread the validation measured); the range inverts that."""
    if not (math.isfinite(mde) and df >= 1):
        return [math.nan, math.nan]
    df = min(df, MDE_RANGE_DF)
    lo, hi = stats.chi2.ppf(1 - alpha / 2, df), stats.chi2.ppf(alpha / 2, df)
    return [float(mde * math.sqrt(df / lo)), float(mde * math.sqrt(df / hi))]


def rope_for(metric: str) -> float:
    return DEFAULT_ROPE.get(metric, 0.01)


def compare_methods(
    arm_run: dict,
    ref_run: dict,
    y: np.ndarray,
    groups: np.ndarray,
    alpha: float = 0.05,
    power: float = 0.8,
    chosen: str = VERDICT_INTERVAL,
) -> dict:
    """Per metric, the paired difference arm - reference under every method of ``METHODS`` (runs: {"folds":
    fold records, "oof": probabilities [repeats, N, C]} as ``protocol.evaluate_arms`` makes them). The top
    level carries the ``chosen`` method's mean, se, df, p_value, CI and minimal detectable effect (with its
    range, ``mde_range``), and ``interval`` names it; ``intervals`` holds the validated methods
    (``VALIDATED``), ``unvalidated_intervals`` the others (module docstring); ``all_methods`` joins them."""
    a_folds, r_folds = arm_run["folds"], ref_run["folds"]
    nb_all = compare(a_folds, r_folds, alpha, power)
    ratio = fold_test_train_ratio(r_folds)
    models = [(f["repeat"], np.asarray(f["test_idx"])) for f in r_folds]
    out = {}
    for m, nb in nb_all.items():
        values = [a[m] - b[m] for a, b in zip(a_folds, r_folds)]
        methods = {"corrected_t": nb, "bayesian_correlated_t": bayesian_correlated_t(values, ratio, rope_for(m), alpha)}
        fs = None
        if m in PER_WINDOW and "oof" in arm_run and "oof" in ref_run:
            e = per_window_scores(y, arm_run["oof"], m) - per_window_scores(y, ref_run["oof"], m)
            fs = fold_statistics(e, models, groups, ratio)
            methods.update(per_window_methods(fs, nb["mean"], alpha, power))
        name = (
            chosen if chosen in methods and math.isfinite(methods[chosen].get("p_value", math.nan)) else "corrected_t"
        )
        pick = methods[name]
        out[m] = {
            **{k: pick[k] for k in ("mean", "se", "df", "t", "p_value", "ci_low", "ci_high", "mde")},
            "sd": nb["sd"],
            "n": nb["n"],
            "interval": name,
            "mde_range": mde_range(pick["mde"], pick["df"], alpha),
            "intervals": {k: v for k, v in methods.items() if k in VALIDATED},
            "unvalidated_intervals": {k: v for k, v in methods.items() if k not in VALIDATED},
        }
        if fs is not None:  # what the per-window methods are computed from: a study can recompute them
            out[m]["fold_statistics"] = fs
    return out


def per_window_methods(fs: dict, mean: float, alpha: float = 0.05, power: float = 0.8) -> dict:
    """The methods computed from ``fold_statistics`` ``fs``, centred on ``mean``:
    what ``compare_methods`` adds for a per-window metric, and what a study recomputes from stored statistics."""
    return {
        "decomposition": decomposition(fs, mean, alpha, power),
        "hierarchical": hierarchical(fs, mean, alpha, power),
        "calibrated": hierarchical(fs, mean, alpha, power, CALIBRATED_OVERLAP_SHARE),
    }


def interval_method(comparison: dict) -> str:
    """The method that made one metric's interval in a results file (files from before ``interval`` was
    recorded carry no name: their intervals are the corrected t)."""
    return comparison.get("interval", "corrected_t")


def all_methods(comparison: dict) -> dict:
    """Every method of one metric's ``compare_methods`` entry, validated or not (the validation measures them all)."""
    return {**comparison["intervals"], **comparison.get("unvalidated_intervals", {})}
