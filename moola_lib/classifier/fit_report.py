"""Figures of a fitted classifier (``ArmClassifier.meta``), for a notebook or a report; each draws what it is
given.

- ``reliability_figure``: the reliability diagram of ``meta["calibration"]`` (written by ``ArmClassifier.fit``;
  DESIGN.md section 5.11) before and after the temperature: per confidence bin the observed frequency of a correct
  top label against the mean confidence, the diagonal where the two agree, the expected calibration error
  (ECE) and the temperature in the title, and the windows per bin below. Bins without a window are left
  out; the windows are the inner validation windows, so "after" is in-sample for its one parameter.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

BEFORE, AFTER = "#9e9e9e", "#1565c0"  # the arm's own probabilities, the calibrated ones


def reliability_figure(calibration: dict) -> plt.Figure:
    """The reliability diagram of a classifier's ``meta["calibration"]`` (see the module docstring)."""
    edges = np.asarray(calibration["bins"], dtype=float)
    centres, width = edges.mean(axis=1), np.diff(edges, axis=1)[:, 0]
    fig, (ax, counts) = plt.subplots(
        2, 1, figsize=(5.2, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True
    )
    ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls="--", label="calibrated: frequency = confidence")
    curves = (
        ("before", "the arm's probabilities", BEFORE, calibration["ece_before"], -0.2),
        ("after", f"x temperature {calibration['temperature']:.3g}", AFTER, calibration["ece_after"], 0.2),
    )
    for key, what, colour, ece, shift in curves:
        data = calibration[key]
        held = [k for k, n in enumerate(data["counts"]) if n]  # empty bins have no frequency
        confidence = [data["mean_predicted"][k] for k in held]
        observed = [data["observed_frequency"][k] for k in held]
        ax.plot(confidence, observed, "o-", color=colour, label=f"{key}: {what}, ECE {ece:.3f}")
        counts.bar(centres + shift * width, data["counts"], width * 0.4, color=colour)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="observed frequency of the top label")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(
        f"Reliability on {calibration['n']} {calibration['windows']} windows: ECE {calibration['ece_before']:.3f}"
        f" -> {calibration['ece_after']:.3f}",
        fontsize=9,
    )
    counts.set(xlabel="confidence (the top label's probability)", ylabel="windows")
    return fig
