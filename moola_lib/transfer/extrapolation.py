"""How many labels would the primary comparison need? An extrapolation of the learning curve.

The protocol runs every arm at several fractions of each training fold (``TransferConfig.fractions``).
At each fraction the primary comparison has a paired difference and a corrected standard error. The
standard error of such a difference shrinks about as n^-1/2 with n training windows, so

    mde(n) = mde(n_now) * (n / n_now)^-1/2   and   labels needed = n_labelled * (mde(n_now) / |effect|)^2

is the labelled-set size at which the observed effect (held at its full-data value) would be detected
with the run's power. The exponent is also fitted (least squares of log se on log n over the fractions)
and reported with the answer it gives: an exponent near -0.5 supports the extrapolation.

It is not trustworthy, and ``caveats`` says so, when: fewer than three fractions ran; the fitted exponent
lies outside [-1, -0.25]; the effect changes sign across fractions or is smaller than its own standard
error (then the "effect" may be noise and any answer is possible); or more than ten times today's labels
are needed (far outside the range the curve saw). The effect itself may also grow or shrink with more
labels -- pretraining usually matters most with few -- which no extrapolation of the variance can know.
"""
from __future__ import annotations

import math

import numpy as np

from .config import LOWER_IS_BETTER, TransferConfig
from .stats import compare

MAX_TRUSTED_FACTOR = 10.0
EXPONENT_RANGE = (-1.0, -0.25)


def labels_needed(runs: dict, cfg: TransferConfig, n_labelled: int) -> dict:
    """The extrapolation for the primary comparison (see the module docstring); ``runs``: fraction ->
    arm -> {"folds": [...]} as the protocol produces them."""
    arm, ref = cfg.primary_pair()
    metric = cfg.primary_metric
    points = []
    for f in sorted(runs):
        d = compare(runs[f][arm]["folds"], runs[f][ref]["folds"], cfg.alpha, cfg.power)[metric]
        n = float(np.mean([x["n_train"] for x in runs[f][ref]["folds"]]))
        points.append({"fraction": f, "n_train": n, "effect": d["mean"], "se": d["se"], "mde": d["mde"]})
    full = points[-1]
    exponent = _fitted_exponent(points)
    out = {"comparison": f"{arm} vs {ref}", "metric": metric, "n_labelled": n_labelled, "points": points,
           "effect": full["effect"], "mde": full["mde"], "fitted_exponent": exponent,
           "detectable_now": _finite(full["mde"]) and abs(full["effect"]) >= full["mde"],
           "labels_needed": _needed(full, n_labelled, -0.5),
           "labels_needed_fitted_exponent": _needed(full, n_labelled, exponent) if exponent is not None else None,
           "method": "mde(n) = mde(now) x (n / n_now)^-1/2 (and with the fitted exponent), effect held at "
                     "its full-data value"}
    out["caveats"] = _caveats(points, exponent, out["labels_needed"], n_labelled)
    return out


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def _fitted_exponent(points: list[dict]) -> float | None:
    ok = [(p["n_train"], p["se"]) for p in points if _finite(p["se"]) and p["se"] > 0 and p["n_train"] > 0]
    if len(ok) < 2 or len({n for n, _ in ok}) < 2:
        return None
    n, se = np.log(np.array(ok)).T
    return float(np.polyfit(n, se, 1)[0])


def _needed(full: dict, n_labelled: int, exponent: float) -> int | None:
    """Labelled windows at which mde(n) = |effect| (None: no effect to detect, or no usable exponent)."""
    effect, mde = abs(full["effect"]), full["mde"]
    if not (_finite(mde) and _finite(effect) and effect > 1e-12 and exponent < 0):   # 1e-12: rounding
        return None
    return int(math.ceil(n_labelled * (mde / effect) ** (-1.0 / exponent)))


def _caveats(points: list[dict], exponent: float | None, needed: int | None, n_labelled: int) -> list[str]:
    full, notes = points[-1], []
    if len(points) < 3:
        notes.append(f"only {len(points)} fraction(s) ran: the curve cannot check the n^-1/2 law "
                     "(run fractions such as [0.25, 0.5, 1.0])")
    if exponent is not None and not EXPONENT_RANGE[0] <= exponent <= EXPONENT_RANGE[1]:
        notes.append(f"the standard error went as n^{exponent:.2f} across the fractions, far from n^-0.5")
    signs = {math.copysign(1, p["effect"]) for p in points if _finite(p["effect"]) and p["effect"] != 0}
    if len(signs) > 1:
        notes.append("the effect changes sign across fractions")
    if not (_finite(full["se"]) and abs(full["effect"]) > full["se"]):
        notes.append("the observed effect is smaller than its standard error: it may be noise, and the true "
                     "effect (and so the labels needed) could be anything")
    if needed is not None and needed > MAX_TRUSTED_FACTOR * n_labelled:
        notes.append(f"more than {MAX_TRUSTED_FACTOR:.0f}x today's labels: far outside what the curve saw")
    return notes


def labels_needed_sentence(x: dict) -> str:
    """The answer in words, with how it was made and its caveats."""
    metric = x["metric"]
    scale, unit = (1.0, "nats") if metric in LOWER_IS_BETTER else (100.0, "pp")
    effect, mde = scale * x["effect"], scale * x["mde"]
    head = (f"{x['comparison']} ({metric.replace('_', ' ')}): observed {effect:+.1f} {unit}; with "
            f"{x['n_labelled']} labelled windows the smallest detectable effect is {mde:.1f} {unit}.")
    if x["labels_needed"] is None:
        body = " No effect was observed, so no number of labels can be extrapolated."
    elif x["detectable_now"]:
        body = " The effect is already within what this set can detect."
    else:
        body = (f" Detecting an effect of this size would need about {x['labels_needed']:,} labelled windows "
                f"(standard error shrinking as n^-1/2)")
        if x["labels_needed_fitted_exponent"] is not None:
            body += (f"; {x['labels_needed_fitted_exponent']:,} with the exponent fitted to the learning curve "
                     f"({x['fitted_exponent']:.2f})")
        body += "."
    trust = (" Not trustworthy: " + "; ".join(x["caveats"]) + ".") if x["caveats"] else \
        " The learning curve supports the extrapolation, which still assumes the effect stays the same size."
    return head + body + trust
