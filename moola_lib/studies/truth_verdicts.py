"""The truth study doubles as the protocol's validation (issue 28): the verdict on one set against the truth.

For the first ``verdicts`` sets of a size, the transfer protocol runs on that set alone (``run_transfer``,
cross-validated, one encoder: ``verdict_encoder``), as a user with those labels would run it. Each printed
comparison (its interval under every method, validated or not) and the verdict's recommended arm are kept, keyed by
the truth study's names (``truth_key``). ``check(results)`` then asks, per size: how often each interval
covers the true difference of the pair (the truth study's mean over its sets; with its Clopper-Pearson
interval), how wide it is against the true spread of the estimate (half-width / (1.96 x the sd of the
estimate over sets); with that sd's chi-square interval), and the regret of following the recommendation
(the true accuracy of the truly best arm the verdict could recommend minus that of the recommended one; how
often it is that arm, how often within 1 pp of it). The cross-validated estimate is about models trained on
(folds - 1) / folds of the set; the truth is about models trained on the whole set: the coverage is measured
against the truth at the set's own size (the model ``classify fit`` deploys), and the mean estimate over the
verdicts is also held against the truth at the size cross-validation trains on (log-linear between the truth
study's sizes), which says how much of its bias that size explains. ``labels_check`` holds each
verdict's labels_needed (the primary pair's minimal detectable effect as the labels grow, the effect held
fixed) against the truth curves: at each larger truth size, does the true difference reach the predicted
MDE, and how do the predicted se, the se the verdicts at that size printed and their true spread compare.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from ..labels.provenance import EncoderSource
from ..transfer.arms import arm as arm_row
from ..transfer.config import TransferConfig
from ..transfer.intervals import all_methods
from ..transfer.protocol import run_transfer
from .truth_report import difference, size_scores
from .validation_pairs import clopper_pearson

METRIC = "balanced_accuracy"


def truth_key(arm: str, encoder: str, architecture: str) -> str:
    """The truth study's key of protocol arm ``arm`` run with encoder ``encoder`` of ``architecture``."""
    reads = arm_row(arm).encoder
    return arm if reads is None else f"{architecture if reads == 'random' else encoder}:{arm}"


def verdict_record(results: dict, encoder: str, architecture: str) -> dict:
    """What one protocol run printed, in the truth study's names: each comparison's estimate and intervals,
    the recommended arm and its P(best)."""
    comparisons = {}
    for comp in results["comparisons"].values():
        name = (
            f"{truth_key(comp['arm'], encoder, architecture)} - {truth_key(comp['reference'], encoder, architecture)}"
        )
        m = comp[METRIC]
        intervals = {k: [v["ci_low"], v["ci_high"]] for k, v in all_methods(m).items() if "ci_low" in v}
        comparisons[name] = {
            "mean": m["mean"],
            "se": m["se"],
            "printed": [m["ci_low"], m["ci_high"]],
            "intervals": intervals,
        }
    decided = results["decision"]
    needed = results.get("labels_needed") or {}
    if "comparison" in needed:  # the primary pair's labels_needed, in truth names
        a, b = needed["comparison"].split(" vs ")
        needed = {
            "pair": f"{truth_key(a, encoder, architecture)} - {truth_key(b, encoder, architecture)}",
            **{k: needed[k] for k in ("mde", "observed", "predicted_se")},
        }
    return {
        "labels_needed": needed,
        "comparisons": comparisons,
        "recommended": truth_key(decided["recommended"], encoder, architecture),
        "p_best": decided["arms"][decided["recommended"]]["p_best"],
        "separable": decided["separable"],  # under the rule of the day (decision.SEPARABLE_P: 0.5 before 2026-12-06)
        "p_ahead_of_runner_up": decided["p_ahead_of_runner_up"],
    }


VERDICT_RUNS = "verdict-runs"  # a study folder's run directories of the verdicts under way (git-ignored)


def run_verdict(
    labelled, source: EncoderSource | Path, cfg: TransferConfig, encoder: str, architecture: str, run_dir=None
) -> dict:
    """The protocol on one set, recorded by ``verdict_record``. ``run_dir``: where the protocol keeps its
    finished fits (``transfer.fit_store``), so that a verdict stopped part-way continues there."""
    return verdict_record(run_transfer(labelled, source, cfg, run_dir), encoder, architecture)


def remove_verdict_run(run_dir: Path) -> None:
    """Once its record is written: the verdict's results file (the protocol removed its fits), then its folder
    and the study's folder of verdict runs if that leaves them empty."""
    (run_dir / "transfer_results.json").unlink(missing_ok=True)
    for folder in (run_dir, run_dir.parent):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _coverage(records: list[dict], name: str, estimates: np.ndarray, truth: float, key: str | None) -> dict:
    """Coverage of the truth by one interval method over the verdicts (with its Clopper-Pearson interval) and
    its mean half-width against 1.96 x the true spread of the estimate (with the chi-square interval of that
    spread over the sets: a few sets measure it loosely). ``estimates``: the pair's estimate on every verdict."""
    intervals = [
        r["comparisons"][name]["printed"] if key is None else r["comparisons"][name]["intervals"].get(key)
        for r in records
    ]
    # undefined on a set (the hierarchical interval at 5 x 2): not a miss, and not counted among its sets
    intervals = [iv for iv in intervals if iv is not None and all(map(math.isfinite, iv))]
    if not intervals:
        return {"coverage": math.nan, "width_ratio": math.nan, "sets": 0}
    half = float(np.mean([(hi - lo) / 2 for lo, hi in intervals]))
    hits = int(sum(lo <= truth <= hi for lo, hi in intervals))
    out = {
        "coverage": hits / len(intervals),
        "coverage_ci": clopper_pearson(hits, len(intervals)),
        "width_ratio": math.nan,
        "width_ratio_ci": [math.nan, math.nan],
        "sets": len(intervals),
    }
    df = len(estimates) - 1
    spread = float(np.std(estimates, ddof=1)) if df else math.nan
    if spread > 0:
        # sd's 95% interval: spread * sqrt(df / chi2): the ratio's bounds are the inverse
        low, high = (spread * math.sqrt(df / stats.chi2.ppf(q, df)) for q in (0.975, 0.025))
        out["width_ratio"] = half / (1.96 * spread)
        out["width_ratio_ci"] = [half / (1.96 * high), half / (1.96 * low)]
    return out


def _interp(points: dict[int, float], n: float, log_y: bool) -> float:
    """``points`` (size -> value) at size n, linear in log size between the sizes around it (and in log value
    with ``log_y``); NaN outside them."""
    xs = sorted(points)
    if not xs or not xs[0] <= n <= xs[-1]:
        return math.nan
    ys = [points[x] for x in xs]
    y = np.interp(math.log(n), np.log(xs), np.log(ys) if log_y else ys)
    return float(np.exp(y) if log_y else y)


def _true_curve(results: dict, a: str, b: str) -> dict[int, float]:
    """size -> the true difference a - b (mean over the sets of that size that ran both; two at least)."""
    curve = {}
    for size, sets in results["sets"].items():
        scores = size_scores(sets)
        if a in scores and b in scores and len(sets) >= 2:
            n = min(len(scores[a]), len(scores[b]))
            curve[int(size)] = float(np.mean(scores[a][:n] - scores[b][:n]))
    return curve


def _measured(records: list[dict], pair: str) -> tuple[float, float]:
    """(median printed se, sd of the estimates over sets) of ``pair`` in the verdicts ``records``."""
    rows = [r["comparisons"][pair] for r in records if pair in r["comparisons"] and "se" in r["comparisons"][pair]]
    if len(rows) < 2:
        return math.nan, math.nan
    return float(np.median([x["se"] for x in rows])), float(np.std([x["mean"] for x in rows], ddof=1))


def labels_check(results: dict, size: str) -> dict | None:
    """labels_needed of the verdicts at ``size`` against the truth curves: at each truth size from ``size`` up,
    the primary pair's true difference, the minimal detectable effect labels_needed predicts there (median over
    the verdicts; its model holds the effect fixed and shrinks the noise), whether the true difference reaches
    it, and, where verdicts ran at that size too, the se they printed and the true spread of their estimates."""
    needed = [r["labels_needed"] for r in results["verdicts"][size].values() if r.get("labels_needed")]
    if len(needed) < 2:
        return None
    pair = needed[0]["pair"]
    a, b = pair.split(" - ")
    # mde / se at the set's own size (labels_needed's first predicted size): the t quantiles' sum
    factor = float(np.median([x["mde"] / x["predicted_se"][min(x["predicted_se"], key=int)] for x in needed]))
    rows = []
    for other, truth in sorted(_true_curve(results, a, b).items()):
        if other < int(size):
            continue
        se = float(np.median([_interp({int(k): v for k, v in x["predicted_se"].items()}, other, True) for x in needed]))
        printed, spread = _measured(list(results["verdicts"].get(str(other), {}).values()), pair)
        rows.append(
            {
                "size": other,
                "truth": truth,
                "se_predicted": se,
                "mde_predicted": factor * se,
                "detected": bool(abs(truth) >= factor * se),
                "se_printed": printed,
                "sd_true": spread,
            }
        )
    observed = [x["observed"] if x["observed"] is not None else math.inf for x in needed]
    return {"pair": pair, "verdicts": len(needed), "observed_labels": float(np.median(observed)), "rows": rows}


def _regret(records: list[dict], scores: dict) -> dict:
    """Following each verdict's recommendation against the truly best of the arms it could recommend (those
    its comparisons name): the regret in true accuracy (mean, largest), how often it named that arm, how
    often an arm within 1 pp of it."""
    arms = {a for r in records for pair in r["comparisons"] for a in pair.split(" - ") if a in scores}
    best = max(arms, key=scores.get)
    regret = [scores[best] - scores.get(r["recommended"], math.nan) for r in records]
    return {
        "truly_best": best,
        "regret_mean": float(np.nanmean(regret)),
        "regret_max": float(np.nanmax(regret)),
        "best_share": float(np.mean([r["recommended"] == best for r in records])),
        "within_1pp": float(np.mean([x <= 0.01 for x in regret])),
        "sets": len(records),
    }


def check(results: dict) -> dict:
    """Per size with verdicts: per comparison the true difference and, for the printed interval and each
    method, coverage / width ratio / sets (``_coverage``); the mean estimate over the verdicts with its t interval
    (``truth_report.difference``), the truth at the size CV trains on and the printed interval's coverage of it;
    the recommendation's regret (``_regret``)."""
    out = {}
    for size, records in results.get("verdicts", {}).items():
        records = list(records.values())
        scores = {k: v.mean() for k, v in size_scores(results["sets"][size]).items()}
        if len(records) < 2 or not scores:
            continue
        rows, estimates = {}, {}
        folds = {**results["transfer"], **results["config"].get("verdict_transfer", {})}["folds"]
        cv_size = int(size) * (folds - 1) / folds
        for name in records[0]["comparisons"]:
            a, b = name.split(" - ")
            if a not in scores or b not in scores:
                continue
            truth, x = scores[a] - scores[b], np.array([r["comparisons"][name]["mean"] for r in records])
            methods = {"printed": None, **{k: k for k in records[0]["comparisons"][name]["intervals"]}}
            rows[name] = {"truth": truth, **{m: _coverage(records, name, x, truth, k) for m, k in methods.items()}}
            # the mean estimate over the verdicts against the truth: its bias, and against the truth at the size
            # cross-validation trains on, the part of it that size explains
            mean = difference(x, np.zeros_like(x))
            at_cv = _interp(_true_curve(results, a, b), cv_size, False)
            covered = _coverage(records, name, x, at_cv, None)["coverage"] if math.isfinite(at_cv) else math.nan
            estimates[name] = {"mean": mean["difference"], "ci": mean["ci"], "truth_cv": at_cv, "coverage_cv": covered}
        if not rows:  # no comparison the truth scores: nothing to check
            continue
        out[size] = {
            "cv_size": cv_size,
            "labels": labels_check(results, size),
            "comparisons": rows,
            "estimates": estimates,
            **_regret(records, scores),
        }
    return out


def check_markdown(checked: dict) -> str:
    """The verdicts' check as Markdown: per size the recommendation against the truly best arm, a summary per
    interval method, per comparison the truth against the mean estimate and each interval's coverage and width
    ratio with their intervals, labels_needed against the truth curves ("" without verdicts)."""
    lines = []
    for size, c in checked.items():
        lines += [
            f"Verdicts on {c['sets']} sets of {size}: the truly best arm they could recommend is {c['truly_best']}; "
            f"they recommend it on {100 * c['best_share']:.0f}% and an arm within 1 pp of it on "
            f"{100 * c['within_1pp']:.0f}%; following the recommendation costs {100 * c['regret_mean']:.1f} pp of "
            f"true balanced accuracy on average, {100 * c['regret_max']:.1f} pp at most.",
            "",
            *_methods_markdown(c["comparisons"]),
            f"| comparison | true difference | mean estimate over the verdicts [95% CI] | true difference at "
            f"{c['cv_size']:.0f} (the size CV trains on) | printed interval covers it |",
            "|---|---|---|---|---|",
            *(
                _estimate_row(name, row["truth"], e)
                for (name, row), e in zip(c["comparisons"].items(), c["estimates"].values())
            ),
            "",
            "| comparison | true difference | interval | coverage [95% CI] | half-width / true need [95% CI] | sets |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in c["comparisons"].items():
            for method, v in row.items():
                if method != "truth" and v["sets"]:  # an interval undefined on every set has no row
                    cov, ratio = v["coverage_ci"], v["width_ratio_ci"]
                    lines.append(
                        f"| {name} | {100 * row['truth']:+.1f} | {method} | {100 * v['coverage']:.0f}% "
                        f"[{100 * cov[0]:.0f}, {100 * cov[1]:.0f}] | {v['width_ratio']:.2f} "
                        f"[{ratio[0]:.2f}, {ratio[1]:.2f}] | {v['sets']} |"
                    )
        lines.append("")
        if c.get("labels"):
            lines += _labels_markdown(size, c["labels"])
    return "\n".join(lines)


def _estimate_row(name: str, truth: float, e: dict) -> str:
    at_cv = f"{100 * e['truth_cv']:+.1f} | {100 * e['coverage_cv']:.0f}%" if math.isfinite(e["truth_cv"]) else " | "
    low, high = e["ci"]
    return f"| {name} | {100 * truth:+.1f} | {100 * e['mean']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] | {at_cv} |"


def _methods_markdown(rows: dict) -> list[str]:
    """Per interval method over the comparisons: its lowest coverage, its coverage over all of them, the
    median and range of its width ratio (the comparisons share the sets: read it as a summary, not a test)."""
    methods = {m for row in rows.values() for m, v in row.items() if m != "truth" and v["sets"]}
    lines = [
        "| interval | lowest coverage | coverage over every comparison | half-width / true need: median (range) |",
        "|---|---|---|---|",
    ]
    for m in sorted(methods, key=lambda m: (m != "printed", m)):
        cells = [row[m] for row in rows.values() if row[m]["sets"]]
        ratios = [v["width_ratio"] for v in cells if math.isfinite(v["width_ratio"])]
        pooled = sum(v["coverage"] * v["sets"] for v in cells) / sum(v["sets"] for v in cells)
        spread = f"{np.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else ""
        lines.append(f"| {m} | {100 * min(v['coverage'] for v in cells):.0f}% | {100 * pooled:.1f}% | {spread} |")
    return [*lines, ""]


def _labels_markdown(size: str, x: dict) -> list[str]:
    observed = "more than 100x today's" if math.isinf(x["observed_labels"]) else f"{x['observed_labels']:,.0f}"
    lines = [
        f"labels_needed against the truth ({x['verdicts']} verdicts of {size}, {x['pair']}): to detect the effect "
        f"each verdict observed it asks for {observed} labelled windows (median), holding that effect fixed.",
        "",
        "| size | true difference | predicted MDE | true difference detectable | predicted se | printed se | true sd |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in x["rows"]:
        cells = [f"{100 * r[k]:.1f}" if math.isfinite(r[k]) else "" for k in ("se_predicted", "se_printed", "sd_true")]
        lines.append(
            f"| {r['size']} | {100 * r['truth']:+.1f} | {100 * r['mde_predicted']:.1f} | "
            f"{'yes' if r['detected'] else 'no'} | " + " | ".join(cells) + " |"
        )
    return lines + [""]
