"""The verdict of a transfer run, generated from the numbers of transfer_results.json: the answer first,
then the statistical detail as a table.

``verdict(results)`` is a Markdown string: the three plain lines of ``answer`` (which model, by how much,
what more labels would buy; no statistics jargon), a blank line, and ``verdict_table(results)`` rendered
as a Markdown table (every row: a notebook shows it whole, ``print`` shows it readable).
``verdict_table`` is that table as a DataFrame (index "topic", column "detail"), one row per finding.
Which model to use comes from ``results["decision"]`` (``decision.decision``; computed from the fold
records for a results file written before it existed).

The table states the protocol and the baseline's score; the decision (each arm's probability of being the
best, its expected loss, the rule); the primary comparison (named before the run) with its p-value,
confidence interval (naming the method that made it, ``intervals.VERDICT_INTERVAL``), the Bayesian
correlated t-test's probabilities and the minimal detectable effect with its range (it is an estimate), so
that "no significant difference" always comes with the size of effect the run could not have seen; the
other comparisons with Holm-corrected p-values; whether the pretrained arms beat the best non-neural arm
(simple models, ROCKET), with the intervals; and what is known about the encoder having seen the labelled
windows' bars.
"""

from __future__ import annotations

import math

import pandas as pd

from .answer import answer_lines
from .arms import REFERENCE
from .arms import arm as arm_row
from .config import LOWER_IS_BETTER
from .decision import decision
from .intervals import METHOD_TITLES, interval_method


def _fmt(x: float, metric: str, signed: bool = True) -> str:
    """A value of ``metric`` in its unit: percentage points, or nats for the log-loss."""
    if metric in LOWER_IS_BETTER:
        return f"{x:+.3f}" if signed else f"{x:.3f}"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _unit(metric: str) -> str:
    return "nats" if metric in LOWER_IS_BETTER else "pp"


def _title(arm: str) -> str:
    return "the baseline" if arm == REFERENCE else f"the {arm_row(arm).title}"


def _interval_note(d: dict) -> str:
    return f"; interval: {METHOD_TITLES[interval_method(d)]}"


def _mde_note(d: dict, metric: str) -> str:
    """The minimal detectable effect is an estimate: its 95% range, when the results carry it. With the
    conservative corrected t it also errs large: 1.2-2.3x the one the true spread implies (VALIDATION.md)."""
    lo, hi = d.get("mde_range", (math.nan, math.nan))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return ""
    return (
        f" That detectable effect is itself an estimate from this run's spread (95% range "
        f"{_fmt(lo, metric, signed=False)}-{_fmt(hi, metric, signed=False)} {_unit(metric)})"
        + (", and errs on the large side, like the interval" if interval_method(d) == "corrected_t" else "")
        + "."
    )


def _posterior_note(d: dict, metric: str, arm: str) -> str:
    """The Bayesian correlated t-test's probabilities for the primary comparison."""
    b = d.get("intervals", {}).get("bayesian_correlated_t")
    if not b or not math.isfinite(b.get("p_in_rope", math.nan)):
        return ""
    up, down = (
        (b["p_below_rope"], b["p_above_rope"]) if metric in LOWER_IS_BETTER else (b["p_above_rope"], b["p_below_rope"])
    )
    rope = f"{_fmt(b['rope'], metric, signed=False)} {_unit(metric)}"
    return (
        f" Bayesian correlated t-test (Corani-Benavoli, region of practical equivalence +-{rope}): "
        f"P({arm} better by more than {rope}) = {up:.2f}, P(within +-{rope}) = {b['p_in_rope']:.2f}, "
        f"P({arm} worse by more than {rope}) = {down:.2f}."
    )


def _finding(comp: dict, metric: str, alpha: float, power: float, p_key: str) -> str:
    """One sentence on one comparison: significant or not, the numbers, and the smallest detectable
    effect when nothing was found. The test-window bootstrap (test noise only) is not a CI of the
    difference between the methods and is not printed here."""
    d, name, unit = comp[metric], metric.replace("_", " "), _unit(metric)
    p = d.get(p_key, d["p_value"])
    numbers = (
        f"{_fmt(d['mean'], metric)} {unit} {name}, 95% CI [{_fmt(d['ci_low'], metric)}, "
        f"{_fmt(d['ci_high'], metric)}], p = {p:.2g}"
        + (" (Holm-corrected)" if p_key == "p_holm" else "")
        + _interval_note(d)
    )
    who = f"{_title(comp['arm'])[0].upper()}{_title(comp['arm'])[1:]}"
    if math.isnan(p):
        return f"{who} differs from {_title(comp['reference'])} by {numbers}, which this run cannot test."
    mde = f"effects smaller than {_fmt(d['mde'], metric, signed=False)} {unit} could not have been detected"
    primary_note = _mde_note(d, metric) if comp.get("primary") else ""
    if p < alpha:
        better = (d["mean"] < 0) if metric in LOWER_IS_BETTER else (d["mean"] > 0)
        return (
            f"{who} is significantly {'better' if better else 'worse'} than {_title(comp['reference'])}: "
            f"{numbers}; the run detects effects of {_fmt(d['mde'], metric, signed=False)} {unit} or more "
            f"with {power:.0%} power." + primary_note
        )
    return (
        f"{who} shows no significant difference from {_title(comp['reference'])} ({numbers}); "
        f"{mde} (power {power:.0%}, alpha {alpha:g})." + primary_note
    )


def _non_neural_sentence(results: dict, metric: str, alpha: float, power: float) -> str | None:
    """Whether the pretrained arms beat the best non-neural arm (simple_*, rocket_*): each comparison with
    its interval, Holm-corrected within the secondary family (the best arm is picked after the run, but
    every neural arm was compared with every non-neural arm, so picking one adds no test)."""
    arms, comps = results["arms"], results["comparisons"]
    candidates = [a for a in arms if arm_row(a).role == "non_neural"]
    if not candidates:
        return None
    lower = metric in LOWER_IS_BETTER
    best = (min if lower else max)(candidates, key=lambda a: arms[a]["summary"][metric]["mean"])
    pretrained = [a for a in arms if arm_row(a).role == "pretrained"] or [a for a in arms if a == REFERENCE]
    found = [comps[f"{a} vs {best}"] for a in pretrained if f"{a} vs {best}" in comps]
    head = (
        f"The best non-neural arm, {arm_row(best).title}, reached "
        f"{_fmt(arms[best]['summary'][metric]['mean'], metric, signed=False)}{'' if lower else '%'} "
        f"{metric.replace('_', ' ')}."
    )
    if not found:
        return head
    beats = [c["arm"] for c in found if c[metric].get("p_holm", 1) < alpha and (c[metric]["mean"] < 0) == lower]
    answer = " Do the pretrained arms beat it? " + (
        "Yes: " + ", ".join(_title(a) for a in beats) + "."
        if beats
        else "No, none does significantly (Holm-corrected)."
    )
    return head + " " + " ".join(_finding(c, metric, alpha, power, "p_holm") for c in found) + answer


def overlap_sentence(overlap: dict | None, n: int) -> str:
    """What is known about the encoder having been pretrained on the labelled windows' bars."""
    if overlap is None or not overlap.get("period_known", overlap.get("seen") is not None):
        return (
            "The encoder's pretraining period is unknown (its training_results.json was not found), so "
            "it is not known whether it was pretrained on the labelled windows' bars."
        )
    if overlap["status"] == "unknown":
        return (
            "The labelled windows carry no timestamps, so whether they lie inside the encoder's "
            "pretraining period is unknown."
        )
    unknown = overlap["without_timestamps"]
    placed = n - unknown
    tail = f" For the {unknown} windows without timestamps it is unknown." if unknown else ""
    if overlap["seen"]:
        return (
            f"Caution: {overlap['seen']} of the {placed} labelled windows with timestamps lie inside the "
            f"encoder's pretraining (train/val) period, so the encoder has seen their bars.{tail}"
        )
    return (
        f"None of the {placed} labelled windows with timestamps lies inside the encoder's pretraining "
        f"train/val period.{tail}"
    )


def _protocol_sentence(results: dict, metric: str) -> str:
    proto, n = results["protocol"], results["data"]["n_windows"]
    base = results["arms"][REFERENCE]["summary"][metric]
    return (
        f"On {n} labelled windows ({proto['folds']}-fold CV x {proto['repeats']} repeat(s), identical "
        f"folds for every arm), the randomly initialised baseline reached "
        f"{_fmt(base['mean'], metric, False)}{'' if metric in LOWER_IS_BETTER else '%'} "
        f"{metric.replace('_', ' ')} (95% CI [{_fmt(base['ci_low'], metric, False)}, "
        f"{_fmt(base['ci_high'], metric, False)}])."
    )


def _decision_sentence(decided: dict) -> str:
    """The decision's numbers: each arm's P(best) and expected loss (best first), the rule, separability."""
    metric, arms = decided["metric"], decided["arms"]
    model = decided["model"]
    ranked = sorted(arms, key=lambda a: arms[a]["expected_loss"])
    numbers = "; ".join(
        f"{a} {arms[a]['p_best']:.2f} / {_fmt(arms[a]['expected_loss'], metric, signed=False)}" for a in ranked
    )
    runner, rope = decided["runner_up"], f"{_fmt(decided['rope'], metric, signed=False)} {_unit(metric)}"
    separation = (
        f" P({decided['recommended']} ahead of the runner-up {runner} by more than {rope}) = "
        f"{decided['p_ahead_of_runner_up']:.2f}, P(within +-{rope}) = {decided['p_within_rope_of_runner_up']:.2f}."
        if runner
        else ""
    )
    return (
        f"{model['name']}, {model['n_splits']} splits, {model['draws']:,} draws (seed {model['seed']}). "
        f"P(best) / expected loss ({_unit(metric)}), per arm: {numbers}. Rule: {decided['rule']}. "
        f"Recommended: {decided['recommended']}; separable: {'yes' if decided['separable'] else 'no'}." + separation
    )


def _comparison_rows(results: dict, metric: str) -> list[tuple[str, str]]:
    """The primary comparison, then the secondary ones against neural references, one row each."""
    proto, comps = results["protocol"], list(results["comparisons"].values())
    alpha, power = proto.get("alpha", 0.05), proto.get("power", 0.8)
    rows = [
        (
            f"Primary comparison (named before the run), {c['arm']} vs {c['reference']}",
            _finding(c, metric, alpha, power, "p_value") + _posterior_note(c[metric], metric, c["arm"]),
        )
        for c in comps
        if c.get("primary")
    ]
    secondary = [c for c in comps if not c.get("primary")]
    rows += [
        (
            f"Secondary comparison (Holm-corrected over {len(secondary)}), {c['arm']} vs {c['reference']}",
            _finding(c, metric, alpha, power, "p_holm"),
        )
        for c in secondary
        if arm_row(c["reference"]).role != "non_neural"
    ]
    return rows


def _decided(results: dict) -> dict:
    """The run's decision; computed from the fold records for a results file from before it was stored."""
    return results.get("decision") or decision(results)


def verdict_table(results: dict, decided: dict | None = None) -> pd.DataFrame:
    """The statistical detail under the answer (module docstring): index "topic", column "detail".
    ``decided``: the decision, when the caller has it (default ``results["decision"]`` or computed)."""
    proto, n = results["protocol"], results["data"]["n_windows"]
    metric = proto.get("primary_metric", "balanced_accuracy")
    rows = [("Protocol", _protocol_sentence(results, metric))]
    rows.append(("Which model (one model of all arms)", _decision_sentence(decided or _decided(results))))
    rows += _comparison_rows(results, metric)
    non_neural = _non_neural_sentence(results, metric, proto.get("alpha", 0.05), proto.get("power", 0.8))
    if non_neural:
        rows.append(("Best non-neural arm", non_neural))
    if proto["folds"] * proto["repeats"] < 10:
        rows.append(
            (
                "Caution",
                f"With only {proto['folds'] * proto['repeats']} train/test splits the intervals are wide; "
                "run the full protocol (params/transfer_full.yaml) before drawing conclusions.",
            )
        )
    rows.append(("Pretraining overlap", overlap_sentence(results["encoder"].get("pretraining_overlap"), n)))
    if results["data"]["cold_start"]:
        rows.append(("Features", "Features were computed cold from each window alone, unlike in pretraining."))
    return pd.DataFrame(rows, columns=["topic", "detail"]).set_index("topic")


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` (index included) as a Markdown table, every row and cell whole ("|" escaped)."""

    def cells(values) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in values) + " |"

    header = [frame.index.name or "", *frame.columns]
    lines = [cells(header), "|" + "---|" * len(header)]
    lines += [cells([index, *row]) for index, row in zip(frame.index, frame.itertuples(index=False))]
    return "\n".join(lines)


def verdict(results: dict) -> str:
    """The answer's lines, a blank line, the detail table in Markdown (module docstring)."""
    decided = _decided(results)
    return "\n".join(answer_lines(results, decided)) + "\n\n" + markdown_table(verdict_table(results, decided))
