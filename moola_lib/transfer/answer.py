"""The answer first: at most three plain lines, read in ten seconds, that open the verdict.

``answer_lines(results, decided)`` (``decided``: ``decision.decision(results)``) returns them, numbered:

1. which model to use (the decision's recommended arm), its estimated score on the primary metric and how
   sure: its chance of being the best of the arms run, and when the data cannot separate it from the
   runner-up (``decision`` states that rule), that;
2. how far it is ahead of the randomly initialised baseline (the arm table's reference) and of the best
   non-neural arm (other than itself), each with its 95% range in words; where another arm is recommended and
   its range over the baseline, lowered by ``TESTBED_OPTIMISM``, reaches 0 or below (balanced accuracy, the
   metric it was measured on), what the truth study found about such leads: on the testbed, cross-validation
   put the baseline's rivals 2-3 points higher against it than a fresh test set did (VALIDATION.md: +2.4
   [+0.5, +4.3] pp over 27 sets of 174, about +3.0 on ten verdicts at 700), so such a lead does not show that
   the arm beats a baseline trained on all the labels (of the truth study's 30 verdicts, 24 recommended another
   arm, each with such a range, and every arm they recommended is truly below the baseline at its size);
3. what more labels would buy (``results["labels_needed"]``; left out when the results lack it).

No statistics jargon: tests, corrections and interval methods are named in the verdict's table below the
lines. The 95% ranges are the decision model's posterior intervals (``decision`` ``lead``), so "95% likely
between" may be read literally; they equal the corrected t intervals of the same pairs.
"""

from __future__ import annotations

from .arms import REFERENCE
from .arms import arm as arm_row
from .config import LOWER_IS_BETTER
from .extrapolation import labels_count

# the verdicts' measured optimism for the baseline's rivals (module docstring: 2.4 pp at 174, 3.0 at 700), as a
# fraction like the leads
TESTBED_OPTIMISM = 0.03


def _name(arm: str) -> str:
    return f"{arm_row(arm).title} (`{arm}`)"


def _score(value: float, metric: str) -> str:
    name = metric.replace("_", " ")
    return f"{value:.3f} nats {name}" if metric in LOWER_IS_BETTER else f"{100 * value:.1f}% {name}"


def _gain(lead: dict, metric: str) -> str:
    """A lead (positive: the recommended arm is better) with its 95% range, in points or nats."""
    lo, mid, hi = lead["ci_low"], lead["mean"], lead["ci_high"]
    if metric in LOWER_IS_BETTER:
        return f"{mid:+.3f} nats less {metric.replace('_', ' ')} (95% likely between {lo:+.3f} and {hi:+.3f})"
    return f"{100 * mid:+.1f} points (95% likely between {100 * lo:+.1f} and {100 * hi:+.1f})"


def which_line(decided: dict) -> str:
    """Line 1: the recommended arm, its score, its chance of being the best."""
    best, arms = decided["recommended"], decided["arms"]
    sure = f"{100 * arms[best]['p_best']:.0f}% likely the best of the {len(arms)} models run"
    runner = decided["runner_up"]
    if not decided["separable"] and runner:
        sure += (
            f", but the data cannot separate it from {_name(runner)} "
            f"({100 * arms[runner]['p_best']:.0f}% likely the best)"
        )
    return f"1. Use {_name(best)}: {_score(arms[best]['mean'], decided['metric'])}; {sure}."


def _best_non_neural(decided: dict) -> str | None:
    """The non-neural arm with the best mean, the recommended arm left out."""
    sign = 1.0 if decided["higher_is_better"] else -1.0
    others = [a for a in decided["lead"] if arm_row(a).role == "non_neural"]
    return max(others, key=lambda a: sign * decided["arms"][a]["mean"], default=None)


def margin_line(decided: dict) -> str:
    """Line 2: the lead over the baseline and over the best non-neural arm."""
    best, metric, lead = decided["recommended"], decided["metric"], decided["lead"]
    ref, rival = REFERENCE, _best_non_neural(decided)
    parts = [f"Against the randomly initialised baseline {_gain(lead[ref], metric)}"] if ref in lead else []
    if rival:
        other = "other " if arm_row(best).role == "non_neural" else ""
        parts.append(f"against the best {other}non-neural model, {_name(rival)}, {_gain(lead[rival], metric)}")
    if ref == best:
        parts.insert(0, "It is the randomly initialised baseline itself")
    elif ref in lead and metric == "balanced_accuracy" and lead[ref]["ci_low"] < TESTBED_OPTIMISM:
        parts.append(
            "but on the testbed cross-validation put the baseline's rivals 2-3 points higher against it than "
            "fresh bars did (VALIDATION.md, the truth study); lowered by that much, this range includes zero gain, "
            "so it does not show that the recommended model beats the baseline trained on all your labels"
        )
    return "2. " + ("; ".join(parts) or "No other model to compare with") + "."


def labels_line(needed: dict) -> str:
    """Line 3: the smallest difference this many labels can see, and the labels each target would take."""
    n, unit = needed["n_labelled"], needed["unit"]
    words = "nats" if unit == "nats" else "points"
    scale, digits = (1.0, 3) if unit == "nats" else (100.0, 0)
    arm, ref = needed["comparison"].split(" vs ")
    costs = ", ".join(
        f"{scale * p['effect']:.{digits}f} {words}: {labels_count(p['labels'], n)}" for p in needed["power_curve"]
    )
    return (
        f"3. More labels: with {n:,} labelled windows a true difference between `{arm}` and `{ref}` smaller "
        f"than about {scale * needed['mde']:.{max(digits, 1)}f} {words} can go unnoticed; labelled windows "
        f"needed to see one reliably: {costs}."
    )


def answer_lines(results: dict, decided: dict) -> list[str]:
    """The module docstring's lines, in order."""
    lines = [which_line(decided), margin_line(decided)]
    if results.get("labels_needed"):
        lines.append(labels_line(results["labels_needed"]))
    return lines
