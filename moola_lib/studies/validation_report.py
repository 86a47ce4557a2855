"""The Markdown summary of a validation run (``validate.py``): what VALIDATION.md reports."""

from __future__ import annotations

import math

from ..transfer.intervals import METHOD_TITLES
from .validation_arms import PAIR_TITLES


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _pp(x: float, signed: bool = True) -> str:
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _rate(r: dict) -> str:
    return f"{r['k']}/{r['n']} = {_pct(r['rate'])} [{_pct(r['ci'][0])}, {_pct(r['ci'][1])}]"


def _pair(name: str, p: dict) -> list[str]:
    t, mde = p["truth"], p["mde"]
    lines = [
        f"### {name}: {PAIR_TITLES[name]}",
        "",
        f"True difference {_pp(t['difference'])} pp (se {_pp(t['se'], False)} pp over {t['draws']} draws); "
        f"{p['replicates']} replicates: mean estimate {_pp(p['mean_estimate'])} pp, true spread (sd) "
        f"{_pp(p['spread'], False)} pp.",
        "",
        "| interval | coverage [95% CI] | true spread / printed se | mean width pp | half-width / (1.96 x true sd) "
        "| rejects 0 (p < 0.05) | power implied at the truth | undefined on |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, m in p["methods"].items():
        rej = _rate(m["rejection"]) if "rejection" in m else "-"
        implied = _pct(m["implied_power"]) if "implied_power" in m and math.isfinite(m["implied_power"]) else "-"
        lines.append(
            f"| {METHOD_TITLES[method]} | {_rate(m['coverage'])} | {m['spread_over_se']:.2f} | "
            f"{_pp(m['mean_width'], False)} | {m['width_over_need']:.2f} | {rej} | {implied} | "
            f"{m['undefined']} |"
        )
    if "test_noise_only" in p:
        b = p["test_noise_only"]
        lines.append(
            f"| test-window bootstrap (test-set noise only, not a CI of the difference) | "
            f"{_rate(b['coverage'])} | - | {_pp(b['mean_width'], False)} | - | - | - | - |"
        )
    lines += [
        "",
        f"Printed minimal detectable effect: mean {_pp(mde['mean'], False)} pp, sd {_pp(mde['sd'], False)} "
        f"pp (range {_pp(mde['min'], False)}-{_pp(mde['max'], False)}); from the true spread "
        f"{_pp(mde['from_true_spread'], False)} pp; its printed 95% range holds that in "
        f"{_rate(mde['range_holds_it'])} of the replicates.",
        "",
    ]
    return lines


def _pairs(res: dict) -> list[str]:
    enc = res["label_encoder"]
    lines = [
        "## Pairs of arms with known true differences",
        "",
        f"Label-carrying encoder: trained on {enc['windows']} labelled windows of an independent market "
        f"(best epoch {enc['best_epoch']}, val loss {enc['best_val_loss']:.3f}).",
        "",
    ]
    lines += _overview(res["pairs"])
    for name, p in res["pairs"].items():
        lines += _pair(name, p)
    return lines + [f"- {res['seconds_total']:.0f} s", ""]


def _overview(pairs: dict) -> list[str]:
    """Per interval method, over every pair: its coverage and its half-width against the true need, the two
    figures an interval must get right together (coverage >= 93%, half-width <= 1.3x the need)."""
    names = list(pairs)
    lines = [
        "Per method, each pair's coverage / half-width over 1.96 x the true sd (" + ", ".join(names) + "):",
        "",
        "| interval | " + " | ".join(names) + " | lowest coverage | widest |",
        "|---|" + "---|" * (len(names) + 2),
    ]
    methods = dict.fromkeys(m for p in pairs.values() for m in p["methods"])
    for method in methods:
        cells = [pairs[n]["methods"].get(method) for n in names]
        got = [c for c in cells if c is not None]
        low = min(c["coverage"]["rate"] for c in got)
        wide = max(c["width_over_need"] for c in got)
        row = [f"{_pct(c['coverage']['rate'])} / {c['width_over_need']:.2f}" if c else "-" for c in cells]
        lines.append(f"| {METHOD_TITLES[method]} | " + " | ".join(row) + f" | {_pct(low)} | {wide:.2f} |")
    return lines + [""]


def _labels(res: dict) -> list[str]:
    lines = [
        "## Labels needed, checked against larger labelled sets",
        "",
        f"Pair {res['pair']}; per size, the mean printed se and the true spread of the estimate against "
        "the se labels_needed predicted from today's size.",
        "",
        "| labelled windows | sets | mean estimate pp | predicted se pp [range] | printed se pp | true spread pp |",
        "|---|---|---|---|---|---|",
    ]
    for s in res["sizes"]:
        lo, hi = s["predicted_se_range"]
        lines.append(
            f"| {s['n']} | {s['sets']} | {_pp(s['mean_estimate'])} | {_pp(s['predicted_se'], False)} "
            f"[{_pp(lo, False)}, {_pp(hi, False)}] | {_pp(s['measured_se'], False)} | "
            f"{_pp(s['true_spread'], False)} |"
        )
    lines += [
        "",
        "| effect to detect | labels predicted (median [range]) | from printed se at larger sizes | from true spread |",
        "|---|---|---|---|",
    ]
    for t in res["targets"]:
        lo, hi = t["predicted_range"]
        lines.append(
            f"| {_pp(t['effect'])} pp | {_n(t['predicted_median'])} [{_n(lo)}, {_n(hi)}] | "
            f"{_n(t['from_printed_mde'])} | {_n(t['from_true_spread'])} |"
        )
    return lines + ["", f"- {res['seconds_total']:.0f} s", ""]


def _n(x) -> str:
    return "beyond the search range" if x is None else ("-" if not math.isfinite(x) else f"{x:,.0f}")


def _real(real: dict) -> list[str]:
    pre = real["pretraining"]
    refs = pre["reference_losses"]["val"]
    train = pre["data"]["splits"]["train"]
    lines = [
        "## The real question: masked-reconstruction pretraining vs the baseline (embedded data)",
        "",
        f"- pretraining: {train['windows']} training windows ({train['start']} .. {train['end']}), "
        f"{pre['epochs_completed']} epochs, {pre['total_seconds']:.0f} s; best val loss "
        f"{pre['best_val_loss']:.4f} against training mean {refs['train_mean']['loss']:.4f} and "
        f"interpolation {refs['interpolation']['loss']:.4f}",
        "",
        "| arm | balanced accuracy [95% CI] |",
        "|---|---|",
    ]
    for arm, s in real["balanced_accuracy"].items():
        lines.append(f"| {arm} | {_pct(s['mean'])} [{_pct(s['ci_low'])}, {_pct(s['ci_high'])}] |")
    lines += [
        "",
        "| comparison | difference pp [95% CI] | p | p (Holm) | detectable effect pp [range] |",
        "|---|---|---|---|---|",
    ]
    for key, c in real["comparisons"].items():
        d = c["balanced_accuracy"]
        holm = f"{d['p_holm']:.3g}" if "p_holm" in d else "primary"
        lo, hi = d.get("mde_range", (math.nan, math.nan))
        lines.append(
            f"| {key} | {_pp(d['mean'])} [{_pp(d['ci_low'])}, {_pp(d['ci_high'])}] | "
            f"{d['p_value']:.3g} | {holm} | {_pp(d['mde'], False)} [{_pp(lo, False)}, {_pp(hi, False)}] |"
        )
    lines += ["", "Learning curve (training windows, balanced accuracy):", ""]
    for arm, points in real["learning_curve"].items():
        lines.append(f"- {arm}: " + ", ".join(f"{n:.0f} -> {_pct(v)}" for n, v in points))
    lines += ["", "Verdict:", "", real["verdict"], "", f"- {real['seconds_total']:.0f} s", ""]
    return lines


def markdown(results: dict) -> str:
    """The summary: command, machine, each experiment's figures."""
    m = results["machine"]
    head = [
        f"Command: `{results.get('command', 'python -m moola_lib.studies.validate')}`",
        *([f"Intervals recomputed by: `{results['rescore_command']}`"] if "rescore_command" in results else []),
        f"Machine: {m['platform']}, {m['processor']}, torch {m['torch']}, {m['threads']} thread per process, "
        f"{m.get('workers', 1)} process(es); total {results['seconds']:.0f} s",
        f"Sizes: {results['config']}",
        "",
    ]
    body = []
    for name, part in (("pairs", _pairs), ("labels", _labels), ("real", _real)):
        if name in results:
            body += part(results[name])
    return "\n".join(head + body)
