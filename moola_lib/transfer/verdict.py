"""The verdict paragraph of a transfer run, generated from the numbers of transfer_results.json."""
from __future__ import annotations

import math

from .config import ARM_TITLES


def _pp(x: float) -> str:
    return f"{100 * x:+.1f}"


def verdict(results: dict, metric: str = "balanced_accuracy", alpha: float = 0.05) -> str:
    """One paragraph, generated from the numbers: each arm against the baseline, and the frozen
    pretrained encoder against frozen random features (same probe) when both ran."""
    name = metric.replace("_", " ")
    arms, n = results["arms"], results["data"]["n_windows"]
    proto = results["protocol"]
    base = arms["baseline"]["summary"][metric]
    parts = [f"On {n} labelled windows ({proto['folds']}-fold CV x {proto['repeats']} repeat(s), identical "
             f"folds for every arm), the randomly initialised baseline reached {100 * base['mean']:.1f}% "
             f"{name} (95% CI [{100 * base['ci_low']:.1f}, {100 * base['ci_high']:.1f}])."]
    for comp in results["comparisons"].values():
        arm = comp["arm"]
        ref = "the baseline" if comp["reference"] == "baseline" else f"the {ARM_TITLES[comp['reference']]}"
        d, own = comp[metric], arms[arm]["summary"][metric]
        numbers = (f"{_pp(d['mean'])} pp {name}, 95% CI [{_pp(d['ci_low'])}, {_pp(d['ci_high'])}], "
                   f"p = {d['p_value']:.2g} (corrected resampled t-test")
        if "bootstrap_ci" in d:
            lo, hi = d["bootstrap_ci"]
            numbers += f"; bootstrap CI [{_pp(lo)}, {_pp(hi)}]"
        numbers += ")"
        if math.isnan(d["p_value"]):
            parts.append(f"The {ARM_TITLES[arm]} ({100 * own['mean']:.1f}%) differs by {_pp(d['mean'])} pp "
                         f"{name}, which one train/test split cannot test.")
        elif d["p_value"] < alpha:
            finding = "better than" if d["mean"] > 0 else "worse than"
            parts.append(f"The {ARM_TITLES[arm]} ({100 * own['mean']:.1f}%) is significantly {finding} "
                         f"{ref}: {numbers}.")
        else:
            parts.append(f"The {ARM_TITLES[arm]} ({100 * own['mean']:.1f}%) shows no significant difference "
                         f"from {ref}: {numbers}; the interval includes zero.")
    if proto["folds"] * proto["repeats"] < 10:
        parts.append(f"With only {proto['folds'] * proto['repeats']} train/test splits the intervals are wide; "
                     "run the full protocol (params/transfer_full.yaml) before drawing conclusions.")
    overlap = results["encoder"].get("pretraining_overlap")
    if overlap is None:
        parts.append("The encoder's pretraining period is unknown (its training_results.json was not found), "
                     "so it is not known how many labelled windows it was pretrained on.")
    elif overlap["seen"]:
        parts.append(f"Caution: {overlap['seen']} of the {n} labelled windows lie inside the encoder's "
                     "pretraining (train/val) period, so the encoder has seen their bars.")
    else:
        parts.append("None of the labelled windows lies inside the encoder's pretraining train/val period.")
    if results["data"]["cold_start"]:
        parts.append("Features were computed cold from each window alone, unlike in pretraining.")
    return " ".join(parts)
