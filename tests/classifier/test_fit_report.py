"""The reliability diagram of a fitted classifier (moola_lib.classifier.fit_report): it draws the calibration the
fit recorded, before and after the temperature, non-empty bins only, with the ECE and the temperature named."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import tiny_set

from moola_lib.classifier.fit_report import reliability_figure
from moola_lib.classifier.model import ArmClassifier


@pytest.fixture(scope="module")
def calibration():
    """A real fit's ``meta["calibration"]`` (logistic regression on window summaries: no torch, a second)."""
    config = {"device": "cpu", "group_by_session": False, "progress": False}
    return ArmClassifier("simple_logistic", config=config).fit(tiny_set(60)).meta["calibration"]


def test_the_diagram_draws_each_non_empty_bin_before_and_after_the_temperature(calibration):
    fig = reliability_figure(calibration)
    diagram, counts = fig.axes
    diagonal, before, after = diagram.get_lines()
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata()) == [0, 1]
    for line, key in ((before, "before"), (after, "after")):
        data = calibration[key]
        held = [k for k, n in enumerate(data["counts"]) if n]
        assert 0 < len(held) < len(data["counts"])  # two classes: no window is below 0.5 confident
        assert list(line.get_xdata()) == [data["mean_predicted"][k] for k in held]
        assert list(line.get_ydata()) == [data["observed_frequency"][k] for k in held]
    heights = np.array([bar.get_height() for bar in counts.patches]).reshape(2, -1)
    assert heights.sum(axis=1).tolist() == [calibration["n"]] * 2  # every inner validation window, twice
    assert heights[0].tolist() == calibration["before"]["counts"]
    plt.close(fig)


def test_the_diagram_names_the_ece_and_the_temperature(calibration):
    fig = reliability_figure(calibration)
    diagram = fig.axes[0]
    title = diagram.get_title()
    assert f"{calibration['ece_before']:.3f} -> {calibration['ece_after']:.3f}" in title
    assert f"{calibration['n']} inner validation windows" in title
    legend = [t.get_text() for t in diagram.get_legend().get_texts()]
    assert f"temperature {calibration['temperature']:.3g}" in legend[2]
    assert legend[1].endswith(f"ECE {calibration['ece_before']:.3f}")
    plt.close(fig)
