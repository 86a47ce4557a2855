"""The check of ``labels_needed`` against the generator (``validate.py --labels-check``).

On the pair ``probe_vs_logistic`` (cheap, deterministic arms; a true difference of several pp):
``labels_replicates`` labelled sets of today's size (``n_labelled``), each from its own market, run the
protocol with the learning curve ``labels_fractions`` and give ``labels_needed``'s predictions: the standard
error at 2x, 4x, 8x the labels, and the power curve (labels needed to detect +3, +5, +10 pp). Then as many
sets of each larger size (``labels_multiples`` x n_labelled) are drawn and run at full size: their mean
printed standard error and the true spread of their estimates are what the predictions are compared with,
and the labels "actually needed" for each target effect are read off a power law through the measured
minimal detectable effects (printed, and from the true spread).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

from ..pretraining.model import JadeEncoder
from ..transfer.arms import REFERENCE
from ..transfer.config import TransferConfig
from ..transfer.extrapolation import labels_needed
from ..transfer.folds import config_groups, make_folds
from ..transfer.intervals import compare_methods
from .validation_arms import arm_features, encoders, run_arms

LABELS_MARKET_SEED = 5_000_000
PREDICTED_MULTIPLES = (2, 4, 8)  # the sizes labels_needed predicts se for (x today's labels)
ARMS = {"probe_random": "frozen", "logistic": "simple_logistic"}


def _labels_job(vc, make_set, cfg: TransferConfig, size_index: int, n: int, r: int) -> dict:
    """One labelled set of ``n`` windows: the estimate and se; at today's size also labels_needed."""
    key = 1000 * size_index + r
    ls = make_set(n, 30_000 + key, LABELS_MARKET_SEED + key, period=vc.labels_check_period)
    arch = dict(hidden_size=vc.hidden_size, num_layers=vc.num_layers)
    encs = {k: v for k, v in encoders(arch, vc.seed).items() if k in ARMS}
    groups = config_groups(ls, cfg)
    assign = make_folds(ls.y, groups, cfg.folds, cfg.repeats, seed=key)
    fractions = sorted(set(vc.labels_fractions) | {1.0}) if size_index == 0 else [1.0]
    feats = arm_features(ls, encs)
    runs = {
        f: {ARMS[a]: v for a, v in run_arms(list(ARMS), ls, feats, JadeEncoder(**arch), cfg, assign, groups, f).items()}
        for f in fractions
    }
    d = compare_methods(runs[1.0]["frozen"], runs[1.0]["simple_logistic"], ls.y, groups, cfg.alpha, cfg.power)[
        "balanced_accuracy"
    ]
    out = {"n": n, "estimate": d["mean"], "se": d["se"], "df": d["df"], "mde": d["mde"]}
    if size_index == 0:
        tcfg = dataclasses.replace(
            cfg,
            arms=[REFERENCE, "frozen", "simple"],
            primary="frozen vs simple_logistic",
            primary_metric="balanced_accuracy",
            fractions=fractions,
        )
        x = labels_needed(runs, tcfg, ls.y, groups)
        out["labels_needed"] = {
            k: x[k]
            for k in (
                "power_curve",
                "predicted_se",
                "training_exponent",
                "exponent_fitted",
                "observed",
                "over_interval",
            )
        }
    return out


def _power_law_labels(ns: list[float], mdes: list[float], target: float) -> float:
    """n at which the power law through (n, mde) gives mde = target (NaN without two usable sizes)."""
    ok = [(n, m) for n, m in zip(ns, mdes) if m > 0 and math.isfinite(m)]
    if len({n for n, _ in ok}) < 2:
        return math.nan
    b, a = np.polyfit(*np.log(np.array(ok)).T, 1)
    return float(math.exp((math.log(target) - a) / b)) if b < 0 else math.nan


def labels_check(vc, make_set, cfg: TransferConfig, parallel) -> dict:
    """Predictions at today's size against measurements at larger sizes (module docstring)."""
    multiples = [1] + [k for k in vc.labels_multiples if k in PREDICTED_MULTIPLES]
    jobs = [
        (vc, make_set, cfg, i, k * vc.n_labelled, r)
        for i, k in enumerate(multiples)
        for r in range(vc.labels_replicates)
    ]
    rows = parallel(_labels_job, jobs, vc.workers, "labels check set")
    factor = stats.t.ppf(1 - cfg.alpha / 2, cfg.folds * cfg.repeats - 1) + stats.t.ppf(
        cfg.power, cfg.folds * cfg.repeats - 1
    )
    base = [row["labels_needed"] for row in rows if "labels_needed" in row]
    sizes = []
    for k in multiples:
        at = [row for row in rows if row["n"] == k * vc.n_labelled]
        spread = float(np.std([row["estimate"] for row in at], ddof=1)) if len(at) > 1 else math.nan
        predicted = [b["predicted_se"].get(str(k * vc.n_labelled), math.nan) for b in base]
        sizes.append(
            {
                "n": k * vc.n_labelled,
                "sets": len(at),
                "mean_estimate": float(np.mean([r["estimate"] for r in at])),
                "measured_se": float(np.mean([r["se"] for r in at])),
                "true_spread": spread,
                "predicted_se": float(np.mean(predicted)),
                "predicted_se_range": [float(np.min(predicted)), float(np.max(predicted))],
            }
        )
    targets = []
    for j, point in enumerate(base[0]["power_curve"] if base else []):
        predicted = [b["power_curve"][j]["labels"] for b in base]
        targets.append(
            {
                "effect": point["effect"],
                "predicted_median": _median(predicted),
                "predicted_range": _extent(predicted),
                "from_printed_mde": _power_law_labels(
                    [s["n"] for s in sizes], [factor * s["measured_se"] for s in sizes], point["effect"]
                ),
                "from_true_spread": _power_law_labels(
                    [s["n"] for s in sizes], [factor * s["true_spread"] for s in sizes], point["effect"]
                ),
            }
        )
    return {"pair": "probe_vs_logistic", "sizes": sizes, "targets": targets, "sets": rows}


def _median(values) -> float | None:
    """Median of label counts, None ("more than the search range") counted as infinite."""
    v = [math.inf if x is None else x for x in values]
    return None if not v or math.isinf(float(np.median(v))) else float(np.median(v))


def _extent(values) -> list:
    v = [math.inf if x is None else x for x in values]
    return [None if math.isinf(x) else x for x in (min(v), max(v))] if v else [None, None]
