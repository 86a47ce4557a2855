"""Report tables and texts of moola_lib.features.eda_plots and moola_lib.pretraining.plots: what the features carry and
what the model learned."""

import numpy as np
import pandas as pd
import pytest

from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.features import eda_plots
from moola_lib.features.options import ORIGINAL_FEATURE_OPTIONS, feature_ranges
from moola_lib.features.relativity import FEATURE_NAMES, relativity_features, swing_points
from moola_lib.pretraining import plots as training_plots


@pytest.fixture(scope="module")
def week():
    return synthetic_ohlcv("2025-03-02", "2025-03-08", seed=1)


def test_feature_table_and_warnings_tell_the_original_from_the_defaults(week):
    tables = {}
    for name, options in (("defaults", {}), ("original", ORIGINAL_FEATURE_OPTIONS)):
        X, valid = relativity_features(week, **options)
        tables[name] = eda_plots.feature_table(X, valid, ranges=feature_ranges(**options))
    new, old = tables["defaults"], tables["original"]
    # the original's bars-since features take a handful of values near 0: nearly constant, few bits
    assert old.loc["bars_since_SH_norm", "nearly constant"] and old.loc["bars_since_SH_norm", "entropy bits"] < 2
    assert not new.loc["bars_since_SH_norm", "nearly constant"] and new.loc["bars_since_SH_norm", "entropy bits"] > 3
    assert not new["nearly constant"].any()
    warned = eda_plots.feature_warnings(old)
    assert any(w.startswith("bars_since_SL_norm is nearly constant") for w in warned)
    assert not any("nearly constant" in w for w in eda_plots.feature_warnings(new))
    # the signed log keeps the distances off the clip bounds (~0.5% over a year, a little more in one week);
    # open/close sit at the bar's high/low often
    for name in ("dist_to_prev_SH", "dist_to_prev_SL"):
        assert new.loc[name, "% at lower bound"] + new.loc[name, "% at upper bound"] < 2.0
    bound_warnings = [w for w in eda_plots.feature_warnings(new) if "bound" in w]
    assert bound_warnings and all(w.split(":")[0] in FEATURE_NAMES[:5] and "natural limit" in w for w in bound_warnings)


def test_feature_warnings_thresholds():
    table = pd.DataFrame(
        {
            "std": [0.5, 0.5],
            "entropy bits": [5.0, 5.0],
            "% at lower bound": [10.5, 9.9],
            "% at upper bound": [0.0, 0.0],
            "nearly constant": [False, False],
        },
        index=["range_z", "dist_to_prev_SH"],
    )
    assert eda_plots.feature_warnings(table) == [
        "range_z: 10.5% of values at the lower bound: values beyond it are clipped and indistinguishable"
    ]


def test_swing_frequency(week):
    _, valid = relativity_features(week)
    freq = eda_plots.swing_frequency(swing_points(week), valid)
    assert 8 < freq["bars per swing"] < 25 and 4 < freq["swings per window"] < 13
    old = eda_plots.swing_frequency(
        swing_points(week, **ORIGINAL_FEATURE_OPTIONS), relativity_features(week, **ORIGINAL_FEATURE_OPTIONS)[1]
    )
    assert old["bars per swing"] < 1.5  # the hybrid rule: a swing on nearly every bar


def fake_results(model_ratio: dict) -> dict:
    """training_results.json's per-feature part with given model / better-reference ratios."""
    per_feature, better = {}, {}
    for j, name in enumerate(FEATURE_NAMES):
        mean, interp = 0.1 + 0.01 * j, 0.05 + 0.02 * j
        better[name] = min(mean, interp)
        per_feature[name] = {
            "model": model_ratio.get(name, 1.0) * better[name],
            "train_mean": mean,
            "interpolation": interp,
            "better_reference": better[name],
        }
    model = float(np.mean([row["model"] for row in per_feature.values()]))
    refs = {
        "train_mean": {"loss": float(np.mean([r["train_mean"] for r in per_feature.values()]))},
        "interpolation": {"loss": float(np.mean([r["interpolation"] for r in per_feature.values()]))},
        "better_reference": {"loss": float(np.mean(list(better.values()))), "per_feature": better},
    }
    return {
        "per_feature_losses": {"val": per_feature},
        "reference_losses": {"val": refs},
        "best_val_loss": model,
        "best_epoch": 3,
        "epochs_completed": 4,
        "stop_reason": "completed all epochs",
        "test": None,
    }


def test_per_feature_table_verdict_and_the_features_shown():
    results = fake_results({"body_pct": 0.5, "range_z": 0.8, "close_norm": 0.99, "bars_since_SL_norm": 3.0})
    table = training_plots.per_feature_table(results)
    assert list(table.index) == list(FEATURE_NAMES)
    assert table.loc["body_pct", "model / better reference"] == pytest.approx(0.5)
    text = training_plots.per_feature_verdict(results)
    assert "2 of 10 features better than both references: body_pct (50% lower), range_z (20% lower)" in text
    assert "within 2%" in text and "close_norm (1% lower)" in text
    assert "Worse than the better reference: bars_since_SL_norm (200% higher)" in text
    assert training_plots.reconstruction_features(results) == ["body_pct", "range_z", "bars_since_SL_norm"]
    nothing = training_plots.per_feature_verdict(fake_results(dict.fromkeys(FEATURE_NAMES, 1.5)))
    assert "no feature better than both references" in nothing


def test_reference_table_and_verdict_name_the_per_feature_reference():
    results = fake_results({"body_pct": 0.5})
    table = training_plots.reference_table(results)
    refs = results["reference_losses"]["val"]
    assert table.loc["val", "per feature the better reference"] == refs["better_reference"]["loss"]
    assert table.loc["val", "model / per-feature better reference"] == pytest.approx(
        results["best_val_loss"] / refs["better_reference"]["loss"]
    )
    ratio = results["best_val_loss"] / refs["better_reference"]["loss"]
    assert (
        f"per feature the better of the two {refs['better_reference']['loss']:.4f} (the model's loss is "
        f"{100 * (1 - ratio):.1f}% below it)" in training_plots.reference_verdict(results)
    )
    # results written before the per-feature reference existed still render
    del refs["better_reference"]
    assert training_plots.reference_table(results).loc["val", "per feature the better reference"] == min(
        refs["train_mean"]["loss"], refs["interpolation"]["loss"]
    )


def test_window_browser_counts_from_one_and_long_sources_are_shown_whole(monkeypatch):
    import matplotlib.pyplot as plt

    bars = synthetic_ohlcv("2024-12-02", "2024-12-04")
    X, _ = relativity_features(bars)
    titles = []
    monkeypatch.setattr(eda_plots, "window_figure", lambda *a, title=None, **k: titles.append(title) or plt.figure())
    slider = eda_plots.window_browser(bars, X, [0, 200, 400]).children[0]
    assert (slider.min, slider.max, slider.value) == (1, 3, 1) and titles[-1].startswith("window 1 of 3 (bar 0)")
    slider.value = 3
    assert titles[-1].startswith("window 3 of 3 (bar 400)")
    path = "/data/" + "very_long_folder_name/" * 8 + "nq.parquet"
    assert path in eda_plots.data_summary(bars, path).style.to_html()
    fig = eda_plots.window_gallery(bars, X, [0, 200])
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 2 and all(t.get_fontsize() >= 8 for lg in legends for t in lg.get_texts())
