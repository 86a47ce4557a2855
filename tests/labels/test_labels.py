"""Labelled windows: both file formats, every error, cold-start warning, the synthetic set."""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from moola_lib.bars.ohlcv import DataValidationError
from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.bars.windows import gather_windows
from moola_lib.features.relativity import relativity_features
from moola_lib.labels.sets import load_labels, overlap_groups
from moola_lib.labels.testbed import synthetic_labelled_set
from moola_lib.labels.windows import COLD_START_WARNING, shared_bar_groups

L = 105
STARTS = [400, 460, 1500, 2600, 3700, 4800]  # 400 and 460 overlap
LABELS = ["consolidation", "retracement", "retracement", "consolidation", "Retracement ", "consolidation"]


@pytest.fixture(scope="module")
def bars():
    return synthetic_ohlcv("2025-06-02", "2025-06-06", seed=3)


@pytest.fixture(scope="module")
def full_features(bars):
    return relativity_features(bars)


def timestamp_frame(bars, starts=STARTS, labels=LABELS, column="start"):
    offset = 0 if column == "start" else L - 1
    return pd.DataFrame(
        {
            "window_id": [f"w{i}" for i in range(len(starts))],
            column: [bars.index[s + offset] for s in starts],
            "label": labels,
            "expansion_start": [3, 10, None, 0, 50, 7],
            "expansion_end": [40, 60, None, 104, 90, 7],
        }
    )


def window_frame(bars, starts=STARTS, labels=LABELS):
    ohlc = bars[["open", "high", "low", "close"]].to_numpy()
    return pd.DataFrame(
        {
            "window_id": [f"w{i}" for i in range(len(starts))],
            "features": [ohlc[s : s + L].tolist() for s in starts],
            "label": labels,
        }
    )


# ----------------------------------------------------------------------------------- format (a)


@pytest.mark.parametrize("column", ["start", "end"])
def test_timestamps_gather_full_history_features(bars, full_features, column):
    ls = load_labels(timestamp_frame(bars, column=column), bars, features=full_features)
    X, valid = full_features
    np.testing.assert_array_equal(ls.X, gather_windows(X, np.array(STARTS)))
    np.testing.assert_array_equal(ls.valid, gather_windows(valid[:, None], np.array(STARTS))[..., 0])
    assert ls.X.dtype == np.float32 and ls.X.shape == (6, L, 10)
    assert list(ls.labels) == [
        "consolidation",
        "retracement",
        "retracement",
        "consolidation",
        "retracement",
        "consolidation",
    ]
    assert list(ls.start) == list(bars.index[STARTS])
    assert list(ls.end) == list(bars.index[np.add(STARTS, L - 1)])
    assert ls.expansion.tolist() == [[3, 40], [10, 60], [-1, -1], [0, 104], [50, 90], [7, 7]]
    assert ls.groups[0] == ls.groups[1] and len(set(ls.groups)) == 5
    assert not ls.cold_start and ls.source["format"] == "timestamps"


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_timestamp_files(bars, full_features, tmp_path, suffix):
    frame = timestamp_frame(bars)
    path = tmp_path / f"labels{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.assign(start=frame["start"].astype(str)).to_json(path, orient="records", lines=suffix == ".jsonl")
    ls = load_labels(path, bars, features=full_features)
    assert list(ls.start) == list(bars.index[STARTS])
    assert ls.source["path"] == str(path) and len(ls.source["sha256"]) == 64


def test_features_computed_when_not_given(bars, full_features):
    ls = load_labels(timestamp_frame(bars), bars)
    np.testing.assert_array_equal(ls.X, load_labels(timestamp_frame(bars), bars, features=full_features).X)


def test_duplicates_with_same_label_are_dropped_and_reported(bars, full_features):
    frame = timestamp_frame(bars)
    frame = pd.concat([frame, frame.iloc[[2]].assign(window_id="copy")], ignore_index=True)
    with pytest.warns(UserWarning, match="dropped 1 duplicate"):
        ls = load_labels(frame, bars, features=full_features)
    assert len(ls) == 6 and ls.source["duplicates_dropped"] == 1
    assert any("copy" in w for w in ls.warnings)


@pytest.mark.parametrize(
    "mutate, check, text",
    [
        (lambda f, b: f.drop(columns="label"), "label_column", "no label column 'label'"),
        (lambda f, b: f.assign(label=["consolidation"] * 5 + ["breakout"]), "unknown_label", "breakout"),
        (lambda f, b: f.assign(label=[None] + LABELS[1:]), "missing_label", "window_id 'w0'"),
        (
            lambda f, b: f.assign(start=[b.index[0] - pd.Timedelta("1D")] + list(f["start"][1:])),
            "window_outside_data",
            "window_id 'w0'",
        ),
        (lambda f, b: f.assign(start=list(f["start"][:5]) + [b.index[-50]]), "window_outside_data", "window_id 'w5'"),
        (lambda f, b: f.assign(end=[b.index[s + L] for s in STARTS]), "window_length", "span 105 bars"),
        (
            lambda f, b: f.assign(start=[f["start"][0]] * 2 + list(f["start"][2:])),
            "conflicting_labels",
            "row 0 (window_id 'w0') and row 1 (window_id 'w1')",
        ),
        (lambda f, b: f.assign(window_id=["w0", "w0", "w2", "w3", "w4", "w5"]), "window_id", "'w0' names two"),
        (lambda f, b: f.assign(expansion_end=[40, 60, None, 105, 90, 7]), "expansion_offsets", "window_id 'w3'"),
        (lambda f, b: f.rename(columns={"start": "begin"}), "format", "cannot tell the format"),
    ],
)
def test_timestamp_errors(bars, full_features, mutate, check, text):
    with pytest.raises(DataValidationError, match=check) as err:
        load_labels(mutate(timestamp_frame(bars), bars), bars, features=full_features)
    assert "<DataFrame>" in str(err.value) and text in str(err.value)


def test_error_names_the_file(bars, full_features, tmp_path):
    path = tmp_path / "labels.csv"
    timestamp_frame(bars).rename(columns={"label": "class"}).to_csv(path, index=False)
    with pytest.raises(DataValidationError, match="labels.csv.*no label column"):
        load_labels(path, bars, features=full_features)
    ls = load_labels(path, bars, features=full_features, label_column="class")
    assert len(ls) == 6


def test_class_with_fewer_windows_than_folds(bars, full_features):
    ls = load_labels(timestamp_frame(bars), bars, features=full_features)
    ls.check_folds(2)
    with pytest.raises(DataValidationError, match="fewer windows than folds=4"):
        ls.check_folds(4)


def test_overlap_groups_are_transitive():
    # [s, s + 105): 500 and 604 share bar 604; 904 ends at bar 1008, so 1009 overlaps nothing
    groups = overlap_groups(np.array([0, 300, 100, 200, 500, 604, 800, 904, 1009]))
    assert groups.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 3]


# ----------------------------------------------------------------------------------- format (b)


def test_windows_get_cold_start_features_and_a_warning(bars, full_features):
    with pytest.warns(UserWarning, match="cold start"):
        ls = load_labels(window_frame(bars), bars=None)
    assert ls.cold_start and ls.source["format"] == "windows"
    assert any(COLD_START_WARNING in w for w in ls.warnings)
    window = bars.iloc[STARTS[2] : STARTS[2] + L]
    X, valid = relativity_features(window)
    np.testing.assert_array_equal(ls.X[2], X)
    np.testing.assert_array_equal(ls.valid[2], valid)
    assert not ls.valid[:, 0].any()  # warm-up bars are invalid
    full = gather_windows(full_features[0], np.array(STARTS))
    assert not np.allclose(ls.X[:, -20:], full[:, -20:])  # and the values differ from the full history
    assert ls.start.isna().all()
    assert ls.groups[0] == ls.groups[1] and len(set(ls.groups)) == 5  # shared bars = overlap


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_window_files(bars, tmp_path, suffix):
    frame = window_frame(bars)
    path = tmp_path / f"windows{suffix}"
    if suffix == ".csv":
        frame.assign(features=frame["features"].map(json.dumps)).to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records")
    with pytest.warns(UserWarning, match="cold start"):
        ls = load_labels(path)
    assert len(ls) == 6 and ls.X.shape == (6, L, 10)


@pytest.mark.parametrize(
    "mutate, check, text",
    [
        (
            lambda f: f.assign(features=[f["features"][0][:104]] + list(f["features"][1:])),
            "window_length",
            "window_id 'w0'.*got shape \\(104, 4\\)",
        ),
        (
            lambda f: f.assign(features=list(f["features"][:5]) + [[[1, 0, 2, 1]] * L]),
            "non_positive_price",
            "window_id 'w5'",
        ),
        (
            lambda f: f.assign(features=[f["features"][1]] + list(f["features"][1:])),
            "conflicting_labels",
            "row 0 .* and row 1",
        ),
    ],
)
def test_window_errors(bars, mutate, check, text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataValidationError, match=check) as err:
            load_labels(mutate(window_frame(bars)))
    assert re.search(text, str(err.value))


def test_shared_bar_groups_ignore_unrelated_windows():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 4))
    groups = shared_bar_groups(np.stack([a[0:105], a[100:205], a[195:300], rng.normal(size=(105, 4))]))
    assert groups.tolist() == [0, 0, 0, 1]


# ----------------------------------------------------------------------------------- synthetic set

SMALL = dict(start="2025-07-01", end="2025-07-31", history_start="2025-06-24")


def test_synthetic_set_is_deterministic_balanced_and_documented():
    a = synthetic_labelled_set(40, class_balance=0.25, label_noise=0.1, seed=5, **SMALL)
    b = synthetic_labelled_set(40, class_balance=0.25, label_noise=0.1, seed=5, **SMALL)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    truth = a.truth
    assert (truth["true_kind"] == "consolidation").sum() == 10 and len(a) == 40
    assert truth["flipped"].sum() == 4
    assert ((truth["label"] != truth["true_kind"]) == truth["flipped"]).all()
    assert (a.labels == truth["label"]).all()
    assert a.valid.all() and a.X.shape == (40, L, 10)
    assert (a.start >= pd.Timestamp("2025-07-01", tz="UTC")).all()
    assert (a.end < pd.Timestamp("2025-08-01", tz="UTC")).all()
    # the episode lies inside its window
    assert (pd.DatetimeIndex(truth["expansion_start"]) >= a.start).all()
    assert (pd.DatetimeIndex(truth["pattern_end"]) <= a.end).all()
    assert ((a.expansion >= 0) & (a.expansion < L)).all()
    c = synthetic_labelled_set(40, class_balance=0.25, label_noise=0.1, seed=6, **SMALL)
    assert not np.array_equal(a.X, c.X)


def test_synthetic_set_without_noise_uses_episode_kinds():
    ls = synthetic_labelled_set(30, class_balance=0.5, seed=1, **SMALL)
    assert ls.class_counts() == {"consolidation": 15, "retracement": 15}
    assert (ls.truth["true_kind"] == ls.labels).all() and not ls.truth["flipped"].any()
    assert (ls.truth.loc[ls.truth["true_kind"] == "consolidation", "depth"] == 0).all()
    assert (ls.truth.loc[ls.truth["true_kind"] == "retracement", "depth"] > 0).all()
    with pytest.raises(ValueError, match="widen the period or lower n"):
        synthetic_labelled_set(10_000, **SMALL)
    with pytest.raises(ValueError, match="difficulty"):
        synthetic_labelled_set(30, difficulty=1.5, **SMALL)
