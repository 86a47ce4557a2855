"""How many labels would the primary comparison need? A variance model fitted on the learning curve.

The protocol runs every arm at several fractions of each training fold (``TransferConfig.fractions``);
the test folds keep their size at every fraction. The standard error of the paired difference has two
parts, which the per-window intervals separate at every fraction (the verdict's own, with the share of the
overlap term it counts, ``intervals.OVERLAP_SHARE``; else the decomposition's):

- test noise: sigma_w^2 per window (the cluster-robust variance of the per-window paired score), which
  enters a fold's mean as sigma_w^2 / n_test and the whole estimate as sigma_w^2 / n;
- training variance: sigma_tau^2(n_train), the between-model variance of the difference beyond test noise,
  which depends on the training-set size only. It is fitted as a power law of n_train over the fractions
  (the test fold's size stays fixed, so the fit sees the training part alone and cannot pass by
  construction); with fewer than two fractions where it is positive the law n_train^-1 is assumed and the
  caveats say so.

With n labelled windows, K folds and R repeats (n_train = n (K - 1) / K, n_test = n / K), the model gives
se(n) for the verdict's interval method (a metric without per-window scores: all of the fold variance counted
as training variance), scaled to pass through the se the run measured, and the minimal
detectable effect mde(n) = (t(1 - alpha/2) + t(power)) se(n). "Labels needed to detect d" is the smallest
n with mde(n) <= |d|: reported as a power curve (``TARGETS``: +3, +5, +10 pp; 0.01, 0.02, 0.05 nats for
the log-loss) and over the observed effect's confidence interval (the effect's own uncertainty: the answer
scales about as 1 / effect^2, and an interval that includes 0 admits any number). The effect itself may
change with more labels (pretraining effects tend to shrink), which no variance model can know.
``validate.py --labels-check`` checks se(n) and the labels needed against larger labelled sets drawn from
the generator (VALIDATION.md).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .config import LOWER_IS_BETTER, TransferConfig
from .intervals import OVERLAP_SHARE, PER_WINDOW, all_methods, compare_methods

TARGETS = {"pp": (0.03, 0.05, 0.10), "nats": (0.01, 0.02, 0.05)}
MAX_FACTOR = 100  # labels needed beyond 100x today's are reported as "more than"
DEFAULT_EXPONENT = -1.0  # sigma_tau^2 ~ n_train^-1 when the curve cannot fit it
EXPONENT_RANGE = (-2.0, 0.0)


def variance_points(runs: dict, cfg: TransferConfig, y: np.ndarray, groups: np.ndarray) -> list[dict]:
    """Per fraction: mean n_train, n_test, the effect, its se (verdict method) and the two variance terms."""
    arm, ref = cfg.primary_pair()
    metric = cfg.primary_metric
    points = []
    for f in sorted(runs):
        d = compare_methods(runs[f][arm], runs[f][ref], y, groups, cfg.alpha, cfg.power)[metric]
        methods = all_methods(d)  # the training term of the printed method when it has one (per-window methods)
        dec = methods.get(d["interval"] if d["interval"] in OVERLAP_SHARE else "decomposition", {})
        folds = runs[f][ref]["folds"]
        n_test = float(np.mean([x["n_test"] for x in folds]))
        points.append(
            {
                "fraction": f,
                "n_train": float(np.mean([x["n_train"] for x in folds])),
                "n_test": n_test,
                "effect": d["mean"],
                "se": d["se"],
                "df": d["df"],
                "mde": d["mde"],
                "interval": d["interval"],
                "sd2": d["sd"] ** 2,
                "ci": [d["ci_low"], d["ci_high"]],
                "sigma_tau2": dec.get("sigma_tau2", math.nan),
                "sigma_w2": dec.get("var_test", math.nan) * len(y),
                "sigma_w2_fold": dec.get("var_fold_test", math.nan) * n_test,
            }
        )
    return points


def fit_training_exponent(points: list[dict]) -> tuple[float, bool]:
    """Exponent b of sigma_tau^2 ~ n_train^b (least squares on logs, clipped to EXPONENT_RANGE) and whether
    it was fitted (False: DEFAULT_EXPONENT, fewer than two fractions with a positive sigma_tau^2)."""
    ok = [(p["n_train"], p["sigma_tau2"]) for p in points if p["sigma_tau2"] > 0 and p["n_train"] > 0]
    if len({n for n, _ in ok}) < 2:
        return DEFAULT_EXPONENT, False
    n, v = np.log(np.array(ok)).T
    return float(np.clip(np.polyfit(n, v, 1)[0], *EXPONENT_RANGE)), True


def se_model(full: dict, exponent: float, folds: int, repeats: int, interval: str):
    """se(n) for n labelled windows (module docstring), scaled to equal the measured se at today's size."""
    J, ratio, n0 = folds * repeats, 1.0 / (folds - 1), full["n_train"] + full["n_test"]
    w2, w2_fold, tau0 = (
        full[k] if math.isfinite(full[k]) else 0.0 for k in ("sigma_w2", "sigma_w2_fold", "sigma_tau2")
    )
    if not math.isfinite(full["sigma_tau2"]):  # no per-window scores: all of the fold variance as training
        tau0 = full["sd2"] if math.isfinite(full["sd2"]) else 0.0

    def raw(n: float) -> float:
        tau = tau0 * (n * (folds - 1) / folds / full["n_train"]) ** exponent
        if interval in OVERLAP_SHARE:  # a per-window method: test noise + its count of the training term
            return math.sqrt(w2 / n + (1 / J + OVERLAP_SHARE[interval] * ratio) * tau)
        return math.sqrt((1 / J + ratio) * (tau + w2_fold * folds / n))  # a fold's test noise: one repeat

    scale = full["se"] / raw(n0) if raw(n0) > 0 and math.isfinite(full["se"]) else math.nan
    return lambda n: scale * raw(n)


def labels_for(effect: float, se_of_n, factor: float, n_now: int) -> int | None:
    """Smallest n with factor x se(n) <= |effect| (bisection; se decreases with n); None beyond
    MAX_FACTOR x n_now or for no effect."""
    target = abs(effect)
    if not (target > 1e-12 and math.isfinite(se_of_n(n_now))):
        return None
    lo, hi = 2, MAX_FACTOR * n_now
    if factor * se_of_n(hi) > target:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if factor * se_of_n(mid) > target else (lo, mid)
    return hi


def labels_needed(runs: dict, cfg: TransferConfig, y: np.ndarray, groups: np.ndarray) -> dict:
    """The answer for the primary comparison (module docstring); ``runs``: fraction -> arm -> {"folds",
    "oof"} as the protocol produces them, ``y`` and ``groups`` of the labelled set."""
    metric, n_now = cfg.primary_metric, len(y)
    points = variance_points(runs, cfg, y, groups)
    full = points[-1]
    exponent, fitted = fit_training_exponent(points)
    se_of_n = se_model(full, exponent, cfg.folds, cfg.repeats, full["interval"])
    factor = (
        stats.t.ppf(1 - cfg.alpha / 2, full["df"]) + stats.t.ppf(cfg.power, full["df"]) if full["df"] >= 1 else math.nan
    )
    unit = "nats" if metric in LOWER_IS_BETTER else "pp"
    lo, hi = full["ci"]
    far = max(abs(lo), abs(hi)) if math.isfinite(lo) else math.nan
    near = 0.0 if not math.isfinite(lo) or lo <= 0 <= hi else min(abs(lo), abs(hi))
    out = {
        "comparison": " vs ".join(cfg.primary_pair()),
        "metric": metric,
        "unit": unit,
        "n_labelled": n_now,
        "points": points,
        "effect": full["effect"],
        "ci": full["ci"],
        "mde": full["mde"],
        "power": cfg.power,
        "alpha": cfg.alpha,
        "training_exponent": exponent,
        "exponent_fitted": fitted,
        "interval": full["interval"],
        "power_curve": [{"effect": d, "labels": labels_for(d, se_of_n, factor, n_now)} for d in TARGETS[unit]],
        "observed": labels_for(full["effect"], se_of_n, factor, n_now),
        "over_interval": [labels_for(far, se_of_n, factor, n_now), labels_for(near, se_of_n, factor, n_now)],
        "predicted_se": {str(k * n_now): se_of_n(k * n_now) for k in (1, 2, 4, 8)},
        "method": "se(n) from test-noise and training-variance terms fitted on the learning curve (test fold "
        "size fixed); labels needed = smallest n with mde(n) <= effect",
    }
    out["caveats"] = _caveats(points, fitted, metric, n_now)
    return out


def _caveats(points: list[dict], fitted: bool, metric: str, n_now: int) -> list[str]:
    notes = []
    if metric not in PER_WINDOW:
        notes.append(
            f"{metric} is not a mean of per-window scores: the variance model has no test-noise term "
            "and treats all of the standard error as training variance"
        )
    if not fitted:
        notes.append(
            f"the learning curve ({len(points)} fraction(s)) could not fit how the training variance "
            "shrinks: n_train^-1 assumed (run fractions such as [0.25, 0.5, 1.0])"
        )
    full = points[-1]
    if not (math.isfinite(full["se"]) and abs(full["effect"]) > full["se"]):
        notes.append(
            "the observed effect is smaller than its standard error: it may be noise, so read the power "
            "curve rather than the labels needed for the observed effect"
        )
    notes.append(f"beyond about 4x today's {n_now} labels the answer extrapolates far outside the curve")
    notes.append(
        "the effect is held fixed: labels needed say how fast the noise falls, not that the effect stays; on the "
        "testbed the frozen probe's true difference to the baseline was -0.5, +1.5, -0.5, -1.7, -3.0 pp at 50, "
        "100, 174, 350, 700 labels (VALIDATION.md, the truth study)"
    )
    return notes


def labels_count(n: int | None, n_now: int) -> str:
    """A number of labels ``labels_for`` found, in words ("more than ..." where it found none)."""
    return f"more than {MAX_FACTOR * n_now:,}" if n is None else f"{n:,}"


def labels_needed_sentence(x: dict) -> str:
    """The answer in words: the power curve, the range over the effect's interval, how it was made."""
    scale, unit, n_now = (1.0 if x["unit"] == "nats" else 100.0), x["unit"], x["n_labelled"]
    fmt = (lambda v: f"{scale * v:.3f}") if unit == "nats" else (lambda v: f"{scale * v:.0f}")
    curve = "; ".join(f"{fmt(p['effect'])} {unit}: {labels_count(p['labels'], n_now)}" for p in x["power_curve"])
    head = (
        f"{x['comparison']} ({x['metric'].replace('_', ' ')}): with {n_now} labelled windows the smallest "
        f"detectable effect is about {scale * x['mde']:.1f} {unit}. Labelled windows needed to detect a true "
        f"difference of {curve} (power {x['power']:.0%}, alpha {x['alpha']:g})."
    )
    far, near = x["over_interval"]
    lo, hi = x["ci"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        span = " The observed effect has no interval, so no range of labels can be given for it."
    elif lo <= 0 <= hi:
        span = (
            f" The observed effect's 95% CI [{scale * lo:+.1f}, {scale * hi:+.1f}] {unit} includes 0: "
            f"anywhere from {labels_count(far, n_now)} labels (a true effect at the interval's far end) to no "
            "number that suffices (no effect)."
        )
    else:
        span = (
            f" Over the observed effect's 95% CI [{scale * lo:+.1f}, {scale * hi:+.1f}] {unit}: "
            f"{labels_count(far, n_now)} to {labels_count(near, n_now)} labels."
        )
    how = (
        " Model: test noise plus a training variance going as n_train^"
        f"{x['training_exponent']:.2f} ({'fitted on' if x['exponent_fitted'] else 'assumed, not fitted on'} "
        "the learning curve). Caveats: " + "; ".join(x["caveats"]) + "."
    )
    return head + span + how
