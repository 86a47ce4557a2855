import numpy as np
import pandas as pd
import pytest

from moola_lib.bars.windows import (
    contiguous_runs,
    gather_windows,
    long_gaps,
    run_window_starts,
    split_windows,
    window_starts,
)

SPLITS = {
    "train": ("2024-01-01", "2024-01-03"),
    "val": ("2024-01-03", "2024-01-04"),
    "test": ("2024-01-04", "2024-01-05"),
}


def minute_index(start="2024-01-01", end="2024-01-05"):
    return pd.date_range(start, end, freq="1min", inclusive="left", tz="UTC", name="timestamp")


def test_window_starts_full_history_count():
    starts = window_starts(1_797_854)
    assert len(starts) == 34_573 == (1_797_854 - 105) // 52 + 1
    assert starts.dtype == np.int64
    assert starts[0] == 0 and np.all(np.diff(starts) == 52)
    assert starts[-1] + 105 <= 1_797_854 < starts[-1] + 52 + 105


@pytest.mark.parametrize("n, expected", [(0, 0), (104, 0), (105, 1), (156, 1), (157, 2)])
def test_window_starts_small(n, expected):
    assert len(window_starts(n)) == expected


@pytest.mark.parametrize("kwargs", [dict(length=0), dict(stride=0), dict(stride=2.5), dict(n_bars=-1)])
def test_window_starts_rejects_bad_arguments(kwargs):
    args = {"n_bars": 1000, **kwargs}
    with pytest.raises(ValueError):
        window_starts(**args)


def test_split_windows_stay_inside_their_split():
    index = minute_index()
    out = split_windows(index, splits=SPLITS)
    assert list(out) == ["train", "val", "test"]
    for name, (start, end) in SPLITS.items():
        lo, hi = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
        starts = out[name]
        part = (index >= lo) & (index < hi)
        first = int(np.argmax(part))
        assert starts[0] == first
        assert len(starts) == len(window_starts(int(part.sum())))
        assert np.all(index[starts] >= lo) and np.all(index[starts + 104] < hi)


def test_split_windows_default_splits_are_the_data_defaults():
    from moola_lib.bars.splits import DEFAULT_SPLITS

    index = pd.date_range("2024-12-31 20:00", "2025-07-01 04:00", freq="1h", tz="UTC")
    out = split_windows(index, length=10, stride=5)
    assert list(out) == list(DEFAULT_SPLITS)
    for name, (_, end) in DEFAULT_SPLITS.items():
        assert np.all(index[out[name] + 9] < pd.Timestamp(end, tz="UTC"))


def test_invalid_filter_drops_windows_with_an_invalid_bar():
    index = minute_index()
    valid = np.ones(len(index), dtype=bool)
    valid[:300] = False  # warm-up
    valid[2000] = False  # one bad bar in the middle of train
    everything = split_windows(index, valid, splits=SPLITS, require_valid=False)
    kept = split_windows(index, valid, splits=SPLITS)
    train = everything["train"]
    hit = np.array([not valid[s : s + 105].all() for s in train])
    assert hit.sum() > 0
    np.testing.assert_array_equal(kept["train"], train[~hit])
    np.testing.assert_array_equal(kept["val"], everything["val"])
    with pytest.raises(ValueError, match="shape"):
        split_windows(index, valid[:-1], splits=SPLITS)


def test_gap_filter():
    index = minute_index()
    gap_at = 1500  # bars >= gap_at are shifted by one hour: a 61-minute gap
    index = index[:gap_at].append(index[gap_at:] + pd.Timedelta("1h"))
    everything = split_windows(index, splits=SPLITS)["train"]
    spans_gap = (everything < gap_at) & (everything + 104 >= gap_at)
    assert spans_gap.sum() >= 2
    for max_gap in (60, 60.5, pd.Timedelta("1h")):
        kept = split_windows(index, splits=SPLITS, max_gap=max_gap)["train"]
        np.testing.assert_array_equal(kept, everything[~spans_gap])
    np.testing.assert_array_equal(split_windows(index, splits=SPLITS, max_gap=61)["train"], everything)
    with pytest.raises(ValueError, match="positive"):
        split_windows(index, splits=SPLITS, max_gap=0)


def test_exclude_filter():
    index = minute_index()
    everything = split_windows(index, splits=SPLITS)
    lo, hi = pd.Timestamp("2024-01-03 10:00", tz="UTC"), pd.Timestamp("2024-01-03 12:00", tz="UTC")
    kept = split_windows(index, splits=SPLITS, exclude=[(lo, hi)])
    val = everything["val"]
    overlap = (index[val] <= hi) & (index[val + 104] >= lo)
    assert overlap.sum() >= 3
    np.testing.assert_array_equal(kept["val"], val[~overlap])
    np.testing.assert_array_equal(kept["train"], everything["train"])
    # naive timestamps and strings mean UTC
    again = split_windows(index, splits=SPLITS, exclude=[("2024-01-03 10:00", "2024-01-03 12:00")])
    np.testing.assert_array_equal(again["val"], kept["val"])
    with pytest.raises(ValueError, match="ends before"):
        split_windows(index, splits=SPLITS, exclude=[(hi, lo)])


def test_gather_windows_numpy_and_torch_agree():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 10)).astype(np.float32)
    starts = np.array([0, 52, 400, 895])
    batch = gather_windows(X, starts)
    assert batch.shape == (4, 105, 10)
    for i, s in enumerate(starts):
        np.testing.assert_array_equal(batch[i], X[s : s + 105])
    from_torch = gather_windows(torch.from_numpy(X), torch.from_numpy(starts))
    assert isinstance(from_torch, torch.Tensor) and from_torch.shape == (4, 105, 10)
    np.testing.assert_array_equal(from_torch.numpy(), batch)
    np.testing.assert_array_equal(gather_windows(torch.from_numpy(X), starts).numpy(), batch)
    with pytest.raises(IndexError):
        gather_windows(X, [896])
    with pytest.raises(IndexError):
        gather_windows(torch.from_numpy(X), [-1])


def test_gather_windows_feature_array_of_split_windows():
    index = minute_index()
    X = np.arange(len(index), dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    starts = split_windows(index, splits=SPLITS, length=20, stride=7)["val"]
    batch = gather_windows(X, starts, length=20)
    np.testing.assert_array_equal(batch[:, :, 0], starts[:, None] + np.arange(20))


def test_contiguous_runs_cut_at_long_gaps_and_invalid_bars():
    index = minute_index("2024-01-01 00:00", "2024-01-01 05:00")  # 300 bars
    index = index[:100].append(index[100:] + pd.Timedelta("61min"))  # 62 minutes between bars 99 and 100
    valid = np.ones(len(index), dtype=bool)
    valid[:10] = valid[200:203] = False  # a warm-up, and a hole
    np.testing.assert_array_equal(contiguous_runs(index), [[0, 300]])
    np.testing.assert_array_equal(contiguous_runs(index, 60), [[0, 100], [100, 300]])
    np.testing.assert_array_equal(contiguous_runs(index, 62, valid), [[10, 200], [203, 300]])
    np.testing.assert_array_equal(contiguous_runs(index, 60, valid), [[10, 100], [100, 200], [203, 300]])
    assert contiguous_runs(index[:0]).shape == (0, 2)
    assert long_gaps(index, pd.Timedelta("1h")).sum() == 1 and long_gaps(index, 62).sum() == 0


def test_run_window_starts_start_every_run_at_its_first_bar():
    runs = np.array([[3, 120], [130, 130 + 104], [300, 420]])  # the middle run is too short for a window
    starts = run_window_starts(runs, 105, 5)
    np.testing.assert_array_equal(starts, np.r_[3 + window_starts(117, 105, 5), 300 + window_starts(120, 105, 5)])
    assert len(run_window_starts(runs, 105, 1)) == (117 - 104) + (120 - 104)
    assert run_window_starts(np.empty((0, 2), dtype=np.int64)).dtype == np.int64
    with pytest.raises(ValueError, match="stride"):
        run_window_starts(runs, 105, 0)
