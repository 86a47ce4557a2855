"""Scanning new bars with a fitted classifier (moola_lib.classifier.scan): the windows scored, the dates, what
stays equal when the bars are cut, the detections' non-maximum suppression and the output files.

The model is a deterministic stand-in with the fitted classifier's interface: a softmax of fixed weights on
the window's mean features over its valid bars, so every window's scores depend on that window alone."""

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moola_lib.bars.ohlcv import DataValidationError
from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.classifier.scan import (
    WARMUP_BARS,
    ScanError,
    detections,
    scan,
    scan_to_files,
    suppress,
)
from moola_lib.features.options import resolve_feature_options
from moola_lib.features.relativity import relativity_features
from moola_lib.util.cli import error_line
from moola_lib.util.io import read_table

L = 105


class FakeModel:
    """``predict_proba``: a softmax of ``s * linspace(-1, 1, C)``, s a fixed weighting of the window's mean
    close_norm, range_z and dist_to_prev_SH over its valid bars (each centred near its typical value)."""

    def __init__(self, classes=("consolidation", "retracement"), meta=None, **feature_options):
        self.classes_ = list(classes)
        self.feature_options = resolve_feature_options(feature_options)
        self.window_length = L
        self.meta = dict(meta or {})
        self.batches = []

    def predict_proba(self, X, valid, expansion=None):
        assert X.dtype == np.float32 and X.shape[1:] == (L, 10) and valid.shape == X.shape[:2]
        self.batches.append(len(X))
        w = valid[..., None].astype(np.float64)
        mean = (X * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1.0)
        s = 10 * (mean[:, 1] - 0.5) + 3 * (mean[:, 5] - 1) + (mean[:, 6] - 1)
        z = s[:, None] * np.linspace(-1, 1, len(self.classes_))[None]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def bars():
    return synthetic_ohlcv("2024-03-04", "2024-03-08", seed=4)  # Monday .. Friday: five sessions


@pytest.fixture(scope="module")
def data_file(bars, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "bars.parquet"
    bars.to_parquet(path)
    return path


def brute_force_starts(bars, lo, hi):
    """Every window start whose 105 bars are valid and 60 minutes or less apart, first bar in [lo, hi)."""
    _, valid = relativity_features(bars)
    gap_ok = np.r_[np.diff(bars.index.asi8) <= 60 * 60 * 10**9, True]
    return np.array(
        [
            s
            for s in range(len(bars) - L + 1)
            if lo <= bars.index[s] < hi and valid[s : s + L].all() and gap_ok[s : s + L - 1].all()
        ]
    )


def test_every_window_of_every_run_is_scored_once(bars):
    model = FakeModel()
    scores = scan(model, bars, batch_size=500)
    assert list(scores.columns) == ["start", "end", "predicted", "p_consolidation", "p_retracement"]
    expected = brute_force_starts(bars, bars.index[0], bars.index[-1] + pd.Timedelta(1, "min"))
    pd.testing.assert_index_equal(pd.DatetimeIndex(scores["start"]), bars.index[expected], check_names=False)
    pd.testing.assert_index_equal(pd.DatetimeIndex(scores["end"]), bars.index[expected + L - 1], check_names=False)
    assert str(scores["start"].dt.tz) == "UTC"
    p = scores[["p_consolidation", "p_retracement"]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert (scores["predicted"] == np.array(model.classes_)[p.argmax(axis=1)]).all()
    assert 0.2 < (scores["predicted"] == "retracement").mean() < 0.8  # the stand-in is not constant
    assert max(model.batches) == 500 and len(model.batches) == -(-len(scores) // 500)  # memory-bounded batches
    # no window spans the daily halt: each lies inside one session
    assert ((scores["end"] - scores["start"]) == pd.Timedelta(minutes=L - 1)).all()


def test_a_stride_steps_from_the_first_bar_of_every_run(bars):
    every = scan(FakeModel(), bars)
    strided = scan(FakeModel(), bars, stride=10)
    session_start = every["start"].diff() != pd.Timedelta(minutes=1)
    first_bars = every["start"][session_start]
    assert set(first_bars) <= set(strided["start"]) and len(first_bars) == 5
    steps = strided["start"].diff().dropna()
    assert set(steps[steps < pd.Timedelta(hours=1)]) == {pd.Timedelta(minutes=10)}
    merged = strided.merge(every, on=["start", "end"], suffixes=("", "_all"))
    assert len(merged) == len(strided) and (merged["p_retracement"] == merged["p_retracement_all"]).all()


def test_start_and_end_are_inclusive_utc_dates(bars):
    every = scan(FakeModel(), bars)
    part = scan(FakeModel(), bars, start="2024-03-05", end="2024-03-06")
    inside = every[(every["start"] >= "2024-03-05") & (every["start"] < "2024-03-07")].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, inside)
    assert part["start"].iloc[0] == pd.Timestamp("2024-03-05 00:00", tz="UTC")  # in mid-session: all its windows
    assert part["start"].iloc[-1].date() == pd.Timestamp("2024-03-06").date() < part["end"].iloc[-1].date()
    with pytest.raises(ScanError, match="time of day"):
        scan(FakeModel(), bars, start="2024-03-05 10:00")
    with pytest.raises(ScanError, match="before start"):
        scan(FakeModel(), bars, start="2024-03-06", end="2024-03-05")


def test_an_empty_range_names_the_range_and_the_data_span(bars):
    with pytest.raises(ScanError) as caught:
        scan(FakeModel(), bars, start="2024-04-01", end="2024-04-02")
    line = error_line(caught.value)
    assert "2024-04-01 .. 2024-04-02" in line and "2024-03-04 00:00 .. 2024-03-08 21:59 UTC" in line, line
    with pytest.raises(ScanError, match="start no window"):  # bars there, but only the features' warm-up
        scan(FakeModel(), bars.iloc[:120])


def test_the_same_bars_give_the_same_scores_however_the_dates_are_cut(bars):
    whole = scan(FakeModel(), bars)
    before = scan(FakeModel(), bars, end="2024-03-05")
    after = scan(FakeModel(), bars, start="2024-03-06")
    pd.testing.assert_frame_equal(pd.concat([before, after], ignore_index=True), whole, check_exact=True)


def test_a_later_file_with_a_day_of_history_scores_as_the_whole_file(bars):
    """The honest claim: exactly equal with WARMUP_BARS of history (on this market); with one window of
    history the warm-up state (EMA of the range, the zigzag) still shows in the first windows."""
    whole = scan(FakeModel(), bars, start="2024-03-06")
    split = int(bars.index.searchsorted(pd.Timestamp("2024-03-06", tz="UTC")))
    later = scan(FakeModel(), bars.iloc[split - WARMUP_BARS :], start="2024-03-06")
    pd.testing.assert_frame_equal(later, whole, check_exact=True)
    short = scan(FakeModel(), bars.iloc[split - L :], start="2024-03-06")
    assert short["start"].iloc[0] == whole["start"].iloc[0]
    assert short["p_retracement"].iloc[0] != whole["p_retracement"].iloc[0]


def episode_scores(p_pattern: np.ndarray) -> pd.DataFrame:
    """A scan's frame over one session of 1-minute bars: window i starts at minute i, p_pattern[i] given."""
    start = pd.date_range("2024-03-04", periods=len(p_pattern), freq="1min", tz="UTC")
    return pd.DataFrame(
        {
            "start": start,
            "end": start + pd.Timedelta(minutes=L - 1),
            "p_none": 1 - p_pattern,
            "p_pattern": p_pattern,
        }
    )


def bump(n, centre, width, height):
    return height * np.exp(-0.5 * ((np.arange(n) - centre) / width) ** 2)


def test_detections_merge_overlapping_windows_and_keep_episodes_apart():
    p = 0.1 + bump(1000, 200, 20, 0.8) + bump(1000, 600, 15, 0.75)
    found = detections(episode_scores(p), 0.5, background="none")
    assert list(found.columns) == ["start", "end", "class", "p", "n_windows"]
    assert list(found["class"]) == ["pattern", "pattern"]
    assert list(found["start"].dt.minute + 60 * found["start"].dt.hour) == [200, 600]
    np.testing.assert_allclose(found["p"], [p[200], p[600]])
    assert list(found["n_windows"]) == [int((p[:400] >= 0.5).sum()), int((p[400:] >= 0.5).sum())]


def test_a_long_episode_gives_adjacent_detections_that_never_overlap():
    p = np.full(1000, 0.1)
    p[100:500] = 0.6 + 0.001 * np.sin(np.arange(400))  # 400 windows above the threshold
    found = detections(episode_scores(p), 0.5, background="none")
    assert len(found) >= 2 and found["n_windows"].sum() == 400
    assert (found["start"].iloc[1:].to_numpy() > found["end"].iloc[:-1].to_numpy()).all()


def test_every_class_is_detected_unless_it_is_the_background():
    p = 0.1 + bump(1000, 200, 20, 0.8)
    both = detections(episode_scores(p), 0.5)
    assert set(both["class"]) == {"none", "pattern"}  # two classes at 0.5: every window is one of them
    assert both.groupby("class")["n_windows"].sum().sum() == 1000
    with pytest.raises(ValueError, match="background class 'noise'"):
        detections(episode_scores(p), 0.5, background="noise")
    with pytest.raises(ScanError, match="threshold"):
        detections(episode_scores(p), 1.5)


def test_suppress_matches_a_naive_version():
    rng = np.random.default_rng(3)
    start = pd.DatetimeIndex(np.sort(rng.choice(3000, 300, replace=False)) * 60 * 10**9).tz_localize("UTC")
    end, p = start + pd.Timedelta(minutes=L - 1), rng.random(300)
    kept, merged = suppress(start, end, p)
    alive, naive = np.ones(300, dtype=bool), []
    for i in np.argsort(-p, kind="stable"):
        if alive[i]:
            hit = alive & (start <= end[i]) & (end >= start[i])
            naive.append((i, int(hit.sum())))
            alive &= ~hit
    assert list(zip(kept, merged)) == naive and merged.sum() == 300


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scan_to_files_writes_scores_and_detections_in_the_extensions_format(bars, data_file, tmp_path, suffix):
    model = FakeModel(meta={"background": "consolidation"})
    summary = scan_to_files(model, data_file, tmp_path / f"march{suffix}", start="2024-03-05", threshold=0.9)
    assert Path(summary["scores_path"]) == tmp_path / f"march{suffix}"
    assert Path(summary["detections_path"]) == tmp_path / f"march.detections{suffix}"
    assert summary["detected_classes"] == ["retracement"] and summary["seconds"] > 0
    expected = scan(model, bars, start="2024-03-05")
    written = read_table(summary["scores_path"])
    for column in ("start", "end"):
        written[column] = pd.to_datetime(written[column], utc=True).astype(expected[column].dtype)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, check_exact=True)
    found = read_table(summary["detections_path"])
    from_text = detections(written.astype({"start": str, "end": str}), 0.9, "consolidation")  # a CSV's times
    pd.testing.assert_frame_equal(from_text, detections(expected, 0.9, "consolidation"), check_dtype=False)
    assert summary["n_windows"] == len(expected) and summary["n_detections"] == len(found) > 0
    assert set(found["class"]) == {"retracement"} and (found["p"] >= 0.9).all()
    assert found["n_windows"].sum() == (expected["p_retracement"] >= 0.9).sum()


def takes_files(folder: Path) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def read_only_folder(tmp_path) -> Path:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    if takes_files(folder):  # root ignores permission bits: a file system that takes no files
        folder = Path("/sys")
        if not folder.is_dir() or takes_files(folder):
            pytest.skip("no folder this user cannot write")
    return folder


@pytest.mark.parametrize(
    "name, message",
    [
        ("scores.txt", "name it .parquet or .csv"),
        ("scores", "name it .parquet or .csv"),
        ("missing/scores.csv", "does not exist"),
        ("a-file/scores.csv", "is a file, not a folder"),
        ("READ_ONLY/scores.csv", "cannot write in"),
    ],
)
def test_a_bad_output_path_is_refused_before_any_work(tmp_path, name, message):
    (tmp_path / "a-file").write_text("")
    out = read_only_folder(tmp_path) / "scores.csv" if name.startswith("READ_ONLY") else tmp_path / name
    model = FakeModel()
    with pytest.raises(ScanError, match=message):  # the data file does not exist: it was never opened
        scan_to_files(model, tmp_path / "no-such-bars.parquet", out)
    assert model.batches == [] and [p.name for p in tmp_path.iterdir() if p.name != "read-only"] == ["a-file"]


def test_bad_settings_and_bad_data_are_one_line_errors(data_file, tmp_path):
    for kwargs, message in (({"threshold": 0}, "threshold"), ({"stride": 0}, "stride"), ({"end": "x"}, "date")):
        with pytest.raises(ScanError, match=message):
            scan_to_files(FakeModel(), tmp_path / "no-such-bars.parquet", tmp_path / "s.csv", **kwargs)
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close\n2024-03-04T00:00Z,1,0.5,1,1\n")
    with pytest.raises(DataValidationError) as caught:
        scan_to_files(FakeModel(), bad, tmp_path / "s.csv")
    assert "\n" not in error_line(caught.value) and not (tmp_path / "s.csv").exists()


def test_the_report_draws_the_top_detections_the_days_and_the_scores(bars):
    import matplotlib.pyplot as plt

    from moola_lib.classifier.scan_report import (
        detections_per_day_figure,
        score_histograms_figure,
        top_detections_figure,
    )

    scores = scan(FakeModel(), bars, stride=5)
    found = detections(scores, 0.8)
    assert len(found) >= 3
    fig = top_detections_figure(bars, found, n=3)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 3 and f"p={found['p'].max():.2f}" in titles[0]
    per_day = detections_per_day_figure(found, scores).axes[0]
    assert sum(p.get_height() for p in per_day.patches) == len(found)
    assert len(per_day.get_xticklabels()) == scores["start"].dt.normalize().nunique()
    histograms = score_histograms_figure(scores, 0.8)
    assert [ax.get_xlabel() for ax in histograms.axes] == ["p(consolidation)", "p(retracement)"]
    with pytest.raises(ValueError, match="bars that were scanned"):
        top_detections_figure(bars.iloc[3000:], found)
    plt.close("all")
