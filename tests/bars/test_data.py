"""Loading, validation and splits of OHLCV bars (moola_lib.bars.ohlcv)."""

import hashlib
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from moola_lib.bars.ohlcv import PRICE_COLUMNS, DataValidationError, DataValidationWarning, load_ohlcv, validate_ohlcv
from moola_lib.bars.sources import split_slices
from moola_lib.bars.splits import DEFAULT_SPLITS
from moola_lib.util.io import file_sha256

N = 120
START = pd.Timestamp("2024-03-04 14:30")  # naive, like the real file


def load_utc(path, **options):
    """load_ohlcv of a file of naive UTC timestamps, as the real file is read (data_timezone UTC)."""
    return load_ohlcv(path, data_timezone="UTC", **options)


def validate_utc(frame, **options):
    return validate_ohlcv(frame, data_timezone="UTC", **options)


def make_bars(n=N, start=START, volume=True):
    """A valid frame: varied prices, high/low bracketing open/close, UTC minute index."""
    rng = np.random.default_rng(1)
    close = 18_000 + np.cumsum(rng.normal(0, 4, n)).round()
    open_ = np.r_[close[0] - 1, close[:-1]]
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + rng.integers(0, 5, n),
            "low": np.minimum(open_, close) - rng.integers(0, 5, n),
            "close": close,
        },
        index=pd.date_range(start, periods=n, freq="min", name="timestamp"),
    )
    if volume:
        frame["volume"] = rng.integers(1, 500, n).astype(float)
    return frame


def write(frame, path):
    """Write ``frame`` (index included) as CSV or parquet according to the suffix."""
    if path.name.endswith((".csv", ".csv.gz")):
        frame.to_csv(path)
    else:
        frame.to_parquet(path)
    return path


FORMATS = ["bars.csv", "bars.parquet"]


def assert_names(err, path, check, first):
    msg = str(err.value)
    assert str(path) in msg
    assert f"'{check}'" in msg and err.value.check == check
    assert str(first) in msg, msg


def _set(frame, row, column, value):
    frame.iloc[row, frame.columns.get_loc(column)] = value
    return frame


# Each case: check name, how to break a valid frame, the row whose timestamp the error must name first,
# and how many rows fail.
ROW_CASES = {
    "non_finite": (lambda f: _set(_set(f, 12, "high", np.inf), 9, "close", np.nan), 9, 2),
    "non_positive_price": (lambda f: _set(f, 3, "low", 0.0), 3, 1),
    "high_below_open_close": (
        lambda f: _set(
            _set(f, 40, "high", f["open"].iloc[40] - 1), 20, "high", min(f["open"].iloc[20], f["close"].iloc[20]) - 1
        ),
        20,
        2,
    ),
    "low_above_open_close": (lambda f: _set(f, 21, "low", max(f["open"].iloc[21], f["close"].iloc[21]) + 1), 21, 1),
    "negative_volume": (lambda f: _set(f, 33, "volume", -5.0), 33, 1),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("check", sorted(ROW_CASES))
def test_row_checks_name_file_check_and_first_timestamp(tmp_path, fmt, check):
    breaker, row, n_bad = ROW_CASES[check]
    frame = make_bars()
    path = write(breaker(frame), tmp_path / fmt)
    with pytest.raises(DataValidationError) as err:
        load_utc(path)
    assert_names(err, path, check, frame.index[row])
    assert err.value.n_rows == n_bad and f"{n_bad} of {N} rows" in str(err.value)


def test_high_below_low_is_caught(tmp_path):
    frame = make_bars()
    frame.iloc[7, :4] = [100.0, 99.0, 101.0, 100.0]  # high < low (and < open/close)
    with pytest.raises(DataValidationError, match="high_below_open_close") as err:
        load_utc(write(frame, tmp_path / "bars.csv"))
    assert str(frame.index[7]) in str(err.value)


def _text_with_bad_close(f):
    f["close"] = f["close"].astype(str)
    return _set(f, 11, "close", "abc")


def _repeat_stamp(f):
    stamps = f.index.to_numpy().copy()
    stamps[30] = stamps[29]
    f.index = pd.DatetimeIndex(stamps, name="timestamp")
    return f


def _swap_rows(f):
    order = np.arange(N)
    order[[40, 41]] = [41, 40]
    return f.iloc[order]


# Each case: how to break a valid frame, and the position (in the broken frame) of the timestamp the
# error must name first.
ORDER_CASES = {
    "non_numeric": (_text_with_bad_close, 11),
    "duplicate_timestamp": (_repeat_stamp, 29),
    "unsorted_timestamp": (_swap_rows, 41),  # the row earlier than the one before
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("check", sorted(ORDER_CASES))
def test_value_and_order_checks_name_the_first_offending_row(tmp_path, fmt, check):
    breaker, row = ORDER_CASES[check]
    frame = breaker(make_bars())
    path = write(frame, tmp_path / fmt)
    with pytest.raises(DataValidationError) as err:
        load_utc(path)
    assert_names(err, path, check, frame.index[row])


@pytest.mark.parametrize("fmt", FORMATS)
def test_unparseable_timestamp_names_row(tmp_path, fmt):
    frame = make_bars().reset_index()
    frame["timestamp"] = frame["timestamp"].astype(str)
    frame.loc[5, "timestamp"] = "not a time"
    frame.loc[9, "timestamp"] = None
    path = write(frame, tmp_path / fmt)
    with pytest.raises(DataValidationError) as err:
        load_utc(path)
    assert_names(err, path, "bad_timestamp", "rows 5, 9")
    with pytest.warns(DataValidationWarning):
        assert load_utc(path, on_invalid="drop").attrs["dropped"] == {"bad_timestamp": 2}


def test_ambiguous_columns(tmp_path):
    frame = make_bars()
    frame["Close"] = frame["close"]
    path = write(frame, tmp_path / "bars.csv")
    with pytest.raises(DataValidationError) as err:
        load_utc(path)
    assert_names(err, path, "ambiguous_columns", "['close', 'Close']")


@pytest.mark.parametrize("fmt", FORMATS)
def test_too_few_bars(tmp_path, fmt):
    path = write(make_bars(50), tmp_path / fmt)
    with pytest.raises(DataValidationError) as err:
        load_utc(path)
    assert_names(err, path, "too_few_bars", "min_bars=105")
    assert len(load_utc(path, min_bars=50)) == 50


def test_missing_file(tmp_path):
    path = tmp_path / "nope.parquet"
    with pytest.raises(DataValidationError) as err:
        load_ohlcv(path)
    assert_names(err, path, "missing_file", "no such file")


@pytest.mark.parametrize(
    "name, content",
    [
        ("bars.parquet", b"not parquet at all"),
        ("bars.csv.gz", b"not gzip"),
        ("bars.csv", b"timestamp,open\n1,2\n3,4,5,6\n"),
        ("bars.txt", b"open,high\n"),
    ],
)
def test_unreadable_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataValidationError) as err:
        load_ohlcv(path)
    assert_names(err, path, "unreadable_file", "")


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_timestamp_lists_columns(tmp_path, fmt):
    path = write(make_bars().reset_index(drop=True), tmp_path / fmt)
    with pytest.raises(DataValidationError) as err:
        load_ohlcv(path)
    assert_names(err, path, "timestamp_column", "'close'")
    with pytest.raises(DataValidationError, match="'when' not found"):
        load_ohlcv(path, timestamp_column="when")


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_price_column(tmp_path, fmt):
    path = write(make_bars().drop(columns="low"), tmp_path / fmt)
    with pytest.raises(DataValidationError) as err:
        load_utc(path)
    assert_names(err, path, "missing_columns", "['low']")


@pytest.mark.parametrize("name", ["bars.csv", "bars.csv.gz", "bars.parquet", "bars.pq"])
def test_round_trip_all_formats(tmp_path, name):
    frame = make_bars()
    bars = load_utc(write(frame, tmp_path / name))
    assert list(bars.columns) == [*PRICE_COLUMNS, "volume"]
    assert (bars.dtypes == np.float64).all()
    assert bars.index.name == "timestamp" and str(bars.index.tz) == "UTC" and bars.index.unit == "ns"
    assert bars.index.equals(frame.index.tz_localize("UTC").as_unit("ns"))
    np.testing.assert_array_equal(bars.to_numpy(), frame.to_numpy())
    assert bars.attrs["dropped"] == {}


def test_volume_optional_and_names_case_insensitive(tmp_path):
    frame = make_bars(volume=False).reset_index()
    frame.columns = ["Ts_Event", "Open", "HIGH", "low", "Close"]
    bars = load_utc(write(frame.set_index("Ts_Event"), tmp_path / "bars.csv"))
    assert list(bars.columns) == list(PRICE_COLUMNS)
    bars2 = load_utc(write(frame, tmp_path / "bars.parquet"))  # timestamp as a column, RangeIndex
    assert bars2.index.equals(bars.index)


def test_timestamp_column_override(tmp_path):
    frame = make_bars().reset_index().rename(columns={"timestamp": "bar_time"})
    frame["date"] = "garbage"  # a common name that must be ignored when the override is given
    bars = load_utc(write(frame, tmp_path / "bars.parquet"), timestamp_column="BAR_TIME")
    assert bars.index[0] == START.tz_localize("UTC") and "date" not in bars.columns


def test_timezones_converted_to_utc(tmp_path):
    frame = make_bars()
    local = frame.copy()
    local.index = frame.index.tz_localize("UTC").tz_convert("America/New_York").rename("timestamp")
    expected = frame.index.tz_localize("UTC").as_unit("ns")
    for name in ("aware.csv", "aware.parquet"):
        assert load_ohlcv(write(local, tmp_path / name)).index.equals(expected)
    with pytest.raises(DataValidationError, match="have no time zone"):  # moola does not guess a zone
        load_ohlcv(write(frame, tmp_path / "naive.csv"))
    assert load_utc(tmp_path / "naive.csv").index.equals(expected)  # unless told: UTC
    mixed = frame.reset_index()  # strings with different offsets denoting UTC instants
    zones = ["Asia/Tokyo", "Europe/London"]
    mixed["timestamp"] = [t.tz_localize("UTC").tz_convert(zones[i % 2]).isoformat() for i, t in enumerate(frame.index)]
    assert load_ohlcv(write(mixed, tmp_path / "mixed.csv")).index.equals(expected)


@pytest.mark.parametrize("unit, scale", [("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1)])
def test_epoch_integers(tmp_path, unit, scale):
    frame = make_bars().reset_index()
    frame["timestamp"] = frame["timestamp"].dt.as_unit("ns").astype("int64") // scale
    bars = load_ohlcv(write(frame, tmp_path / "bars.parquet"))
    assert bars.index.equals(make_bars().index.tz_localize("UTC").as_unit("ns"))


def messy_frame():
    """Valid bars plus one NaN row, one high-below row, one duplicate and one swapped pair."""
    frame = make_bars()
    frame.iloc[5, frame.columns.get_loc("close")] = np.nan
    frame.iloc[8, frame.columns.get_loc("high")] = frame["low"].iloc[8] - 1
    stamps = frame.index.to_numpy().copy()
    stamps[30] = stamps[29]
    frame.index = pd.DatetimeIndex(stamps, name="timestamp")
    order = np.arange(N)
    order[[60, 61]] = [61, 60]
    return frame.iloc[order]


def test_drop_policy_reports_counts(tmp_path):
    frame = messy_frame()
    path = write(frame, tmp_path / "bars.parquet")
    with pytest.warns(DataValidationWarning, match=r"dropped 3 of 120 rows.*sorted 1"):
        bars = load_utc(path, on_invalid="drop")
    assert bars.attrs["dropped"] == {"non_finite": 1, "high_below_open_close": 1, "duplicate_timestamp": 1}
    assert len(bars) == N - 3
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    kept_dup = bars.loc[frame.index[29].tz_localize("UTC")]
    assert kept_dup["close"] == frame["close"].iloc[29]  # the first of the duplicates is kept


def test_drop_still_requires_min_bars():
    frame = make_bars()
    frame.iloc[:20, frame.columns.get_loc("open")] = -1.0
    with pytest.raises(DataValidationError, match="too_few_bars.*non_positive_price"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        validate_utc(frame, on_invalid="drop")


def test_caller_frame_unchanged():
    frame = messy_frame().reset_index()
    frame.columns = ["TIMESTAMP", "Open", "High", "Low", "Close", "Volume"]
    snapshot = frame.copy(deep=True)
    with pytest.warns(DataValidationWarning):
        bars = validate_utc(frame, on_invalid="drop")
    pd.testing.assert_frame_equal(frame, snapshot)
    bars.iloc[0, 0] = -1.0
    pd.testing.assert_frame_equal(frame, snapshot)
    assert not np.shares_memory(bars["open"].to_numpy(), frame["Open"].to_numpy())


def test_validate_in_memory_names_dataframe():
    frame = make_bars()
    frame.iloc[4, frame.columns.get_loc("open")] = -2.0
    with pytest.raises(DataValidationError, match=r"^<DataFrame>: check 'non_positive_price'"):
        validate_utc(frame)
    with pytest.raises(ValueError, match="on_invalid"):
        validate_ohlcv(frame, on_invalid="ignore")


def test_splits_half_open_and_exhaustive():
    stamps = []
    for start, end in DEFAULT_SPLITS.values():
        for edge in (start, end):
            stamps.extend(pd.Timestamp(edge, tz="UTC") + pd.to_timedelta(np.arange(-3, 3), unit="min"))
    index = pd.DatetimeIndex(sorted(set(stamps)))
    slices = split_slices(index)
    assert list(slices) == list(DEFAULT_SPLITS)
    assert index[slices["val"]][0] == pd.Timestamp("2025-01-01", tz="UTC")  # boundary bar is val
    assert index[slices["train"]][-1] == pd.Timestamp("2024-12-31 23:59", tz="UTC")
    seen = np.zeros(len(index), dtype=int)
    for name, sl in slices.items():
        start, end = (pd.Timestamp(x, tz="UTC") for x in DEFAULT_SPLITS[name])
        seen[sl] += 1
        expected = np.flatnonzero((index >= start) & (index < end))
        np.testing.assert_array_equal(np.arange(len(index))[sl], expected)
    inside = (index >= pd.Timestamp("2020-09-01", tz="UTC")) & (index < pd.Timestamp("2025-07-01", tz="UTC"))
    np.testing.assert_array_equal(seen, inside.astype(int))  # each bar in exactly one split, or none


def test_splits_naive_index_and_custom_order():
    index = pd.date_range("2025-03-31 23:58", periods=4, freq="min")
    slices = split_slices(index, {"b": ["2025-04-01", "2025-04-02"], "a": ("2025-03-31", "2025-04-01")})
    assert list(slices) == ["b", "a"] and slices == {"b": slice(2, 4), "a": slice(0, 2)}


def test_split_errors():
    index = pd.date_range("2025-01-01", periods=10, freq="D", tz="UTC")
    with pytest.raises(
        DataValidationError,
        match=r"'train' \[2020-09-01.*2025-01-01 00:00:00\+00:00 \.\. "
        r"2025-01-10",
    ) as err:
        split_slices(index)
    assert err.value.check == "empty_split"
    with pytest.raises(ValueError, match="overlap"):
        split_slices(index, {"a": ("2025-01-01", "2025-01-05"), "b": ("2025-01-04", "2025-01-09")})
    with pytest.raises(ValueError, match="before end"):
        split_slices(index, {"a": ("2025-01-05", "2025-01-01")})
    with pytest.raises(DataValidationError, match="sorted"):
        split_slices(index[::-1])


def test_file_sha256_streams(tmp_path):
    path = tmp_path / "blob.bin"
    data = np.random.default_rng(0).bytes(3 * 1000 + 7)
    path.write_bytes(data)
    assert file_sha256(path, chunk_size=1000) == hashlib.sha256(data).hexdigest() == file_sha256(path)


CORRUPTIONS = {
    "non_finite": lambda f, i: _set(f, i, "open", np.nan),
    "non_positive_price": lambda f, i: _set(f, i, "low", -1.0),
    "high_below_open_close": lambda f, i: _set(f, i, "high", f["low"].iloc[i] - 0.25),
    "low_above_open_close": lambda f, i: _set(f, i, "low", f["high"].iloc[i] + 0.25),
    "duplicate_timestamp": lambda f, i: f.set_axis(f.index.where(np.arange(len(f)) != i, f.index[i - 1])),
    "shuffle": lambda f, i: f.iloc[np.r_[0 : i - 1, i, i - 1, i + 1 : len(f)]],
}


@given(st.lists(st.tuples(st.sampled_from(sorted(CORRUPTIONS)), st.integers(1, N - 2)), max_size=8))
def test_drop_always_yields_valid_bars(corruptions):
    frame = make_bars()
    for kind, row in corruptions:
        frame = CORRUPTIONS[kind](frame, row)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataValidationWarning)
        bars = validate_utc(frame, on_invalid="drop", min_bars=1)
    pd.testing.assert_frame_equal(validate_ohlcv(bars, min_bars=1), bars)  # passes the strict checks
    assert len(bars) + sum(bars.attrs["dropped"].values()) == len(frame)
    original = frame.set_axis(frame.index.tz_localize("UTC").as_unit("ns"))
    kept = bars.reset_index().merge(original.reset_index(), how="left", indicator=True)
    assert (kept["_merge"] == "both").all()  # every kept bar is a bar of the input, unchanged


def test_error_attributes_and_pickling():
    err = DataValidationError("bars.csv", "non_finite", "2 of 9 rows hold NaN or inf", n_rows=2)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) == "bars.csv: check 'non_finite' failed: 2 of 9 rows hold NaN or inf"
    assert (again.source, again.check, again.n_rows) == ("bars.csv", "non_finite", 2)
    assert isinstance(again, ValueError)
