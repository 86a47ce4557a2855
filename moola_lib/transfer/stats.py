"""Statistics of the protocol: metrics (label metrics weighted and vectorised for the bootstrap;
log-loss and ROC AUC from probabilities), the Nadeau-Bengio corrected resampled t-test with the minimal
detectable effect it implies, Holm's correction, the paired bootstrap over groups, per-arm summaries,
paired comparisons and confusion counts."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from .config import LABEL_METRICS, LOWER_IS_BETTER, METRICS

_PROB_FLOOR = 1e-7  # log-loss of a confident wrong answer stays finite (-ln 1e-7 = 16.1)


def weighted_metrics(y: np.ndarray, pred: np.ndarray, n_classes: int, weights=None) -> dict:
    """Accuracy, balanced accuracy, macro F1 and per-class recall of ``pred`` against ``y``.

    ``weights`` [..., N] (default ones) weight each window; leading dimensions are kept, which lets the
    bootstrap evaluate thousands of resamples at once. A class absent from a resample is left out of
    the balanced accuracy / macro F1 means.
    """
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    onehot_y = np.eye(n_classes)[y]
    onehot_p = np.eye(n_classes)[pred]
    tp = w @ (onehot_y * onehot_p)
    support = w @ onehot_y
    predicted = w @ onehot_p
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / support
        f1 = 2 * tp / (support + predicted)
        return {
            "accuracy": tp.sum(-1) / w.sum(-1),
            "balanced_accuracy": np.nanmean(recall, axis=-1),
            "macro_f1": np.nanmean(f1, axis=-1),
            "recall": recall,
        }


def probability_metrics(y: np.ndarray, proba: np.ndarray) -> dict:
    """Log-loss (mean -ln p(true class), nats) and ROC AUC (binary: of the second class's probability;
    more classes: macro one-vs-rest; NaN when the windows hold one class only)."""
    p_true = np.clip(proba[np.arange(len(y)), y], _PROB_FLOOR, 1.0)
    out = {"log_loss": float(-np.mean(np.log(p_true))), "roc_auc": math.nan}
    if len(np.unique(y)) == proba.shape[1]:
        out["roc_auc"] = float(
            roc_auc_score(y, proba[:, 1]) if proba.shape[1] == 2 else roc_auc_score(y, proba, multi_class="ovr")
        )
    return out


def fold_metrics(y: np.ndarray, proba: np.ndarray) -> dict:
    """Every metric of METRICS plus per-class recall for test windows ``y`` and probabilities [n, C]."""
    m = weighted_metrics(y, proba.argmax(-1), proba.shape[1])
    return {**{k: float(m[k]) for k in LABEL_METRICS}, **probability_metrics(y, proba), "recall": m["recall"]}


def minimal_detectable_effect(se: float, df: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true effect the two-sided corrected t-test finds with probability ``power``:
    (t(1 - alpha/2, df) + t(power, df)) x se, in the unit of the values."""
    if not (df >= 1 and math.isfinite(se)):
        return math.nan
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


def holm(p_values) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order; NaN kept."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), math.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out.tolist()


def corrected_t(values, test_train_ratio: float, alpha: float = 0.05, power: float = 0.8) -> dict:
    """Mean of per-fold scores (or paired differences) with the Nadeau-Bengio corrected resampled t-test.

    Variance of the mean = (1/J + n_test/n_train) * s^2 over the J = folds x repeats values (the naive
    1/J ignores that training sets overlap). Returns mean, sd, se, df, t, two-sided p against 0, and the
    (1 - alpha) CI. Zero variance: p = 1 when the mean is 0, else 0, and the CI collapses to the mean;
    a single value gives NaN for everything but the mean. ``mde``: the minimal detectable effect at
    ``power`` (NaN values, e.g. an AUC of a one-class fold, are left out).
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    J, mean = len(v), float(np.mean(v)) if len(v) else math.nan
    out = {
        "mean": mean,
        "sd": math.nan,
        "se": math.nan,
        "df": J - 1,
        "t": math.nan,
        "p_value": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "n": J,
        "mde": math.nan,
    }
    if J < 2:
        return out
    sd = float(np.std(v, ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):  # constant values (up to rounding)
        sd = 0.0
    se = math.sqrt((1.0 / J + test_train_ratio) * sd**2)
    out.update(sd=sd, se=se, mde=minimal_detectable_effect(se, J - 1, alpha, power))
    if se == 0.0:
        if abs(mean) <= 1e-12:  # identical values: rounding must not make a "difference"
            mean = out["mean"] = 0.0
        out.update(
            t=0.0 if mean == 0 else math.copysign(math.inf, mean),
            p_value=1.0 if mean == 0 else 0.0,
            ci_low=mean,
            ci_high=mean,
        )
        return out
    t = mean / se
    half = float(stats.t.ppf(1 - alpha / 2, J - 1)) * se
    out.update(t=t, p_value=float(2 * stats.t.sf(abs(t), J - 1)), ci_low=mean - half, ci_high=mean + half)
    return out


def paired_bootstrap(y, pred_a, pred_b, groups, n_classes: int, n_boot: int, seed: int, alpha: float = 0.05) -> dict:
    """Percentile CI of metric(a) - metric(b) on out-of-fold predictions ([repeats, N] each), resampling
    groups of overlapping windows with replacement. It captures test-set sampling noise only (not the
    variability of training), so it is usually narrower than the corrected t interval."""
    _, gidx = np.unique(groups, return_inverse=True)
    n_groups = gidx.max() + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(n_groups, size=(n_boot, n_groups))
    counts = np.zeros((n_boot, n_groups))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    w = counts[:, gidx]
    out = {}
    for metric in LABEL_METRICS:
        diff = np.mean(
            [
                weighted_metrics(y, a, n_classes, w)[metric] - weighted_metrics(y, b, n_classes, w)[metric]
                for a, b in zip(pred_a, pred_b)
            ],
            axis=0,
        )
        lo, hi = np.nanpercentile(diff, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        out[metric] = {"ci_low": float(lo), "ci_high": float(hi)}
    return out


def fold_test_train_ratio(folds: list[dict]) -> float:
    return float(np.mean([f["n_test"] for f in folds]) / np.mean([f["n_train"] for f in folds]))


def summarise(arm_folds: list[dict], classes) -> dict:
    """Per-metric mean and 95% corrected-t CI over the (repeat, fold) scores of one arm (the CI is
    clipped to [0, 1], the range of every metric but the log-loss)."""
    ratio = fold_test_train_ratio(arm_folds)
    values = {m: [f[m] for f in arm_folds] for m in METRICS}
    values.update({f"recall_{c}": [f["recall"][c] for f in arm_folds] for c in classes})
    out = {}
    for name, v in values.items():
        stat = corrected_t(v, ratio)
        hi = math.inf if name in LOWER_IS_BETTER else 1.0
        stat["ci_low"], stat["ci_high"] = (float(np.clip(stat[k], 0, hi)) for k in ("ci_low", "ci_high"))
        out[name] = stat
    return out


def compare(arm_folds: list[dict], ref_folds: list[dict], alpha: float = 0.05, power: float = 0.8) -> dict:
    """Paired per-fold differences arm - reference with the corrected resampled t-test and the minimal
    detectable effect, per metric (for the log-loss a negative difference favours the arm)."""
    ratio = fold_test_train_ratio(ref_folds)
    return {m: corrected_t([a[m] - b[m] for a, b in zip(arm_folds, ref_folds)], ratio, alpha, power) for m in METRICS}


def confusion(y: np.ndarray, oof: np.ndarray, n_classes: int) -> list[list[int]]:
    """Counts [true, predicted] summed over repeats (``oof``: predicted labels [repeats, N])."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for pred in oof:
        np.add.at(cm, (y, pred), 1)
    return cm.tolist()
