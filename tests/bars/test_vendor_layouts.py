"""Issue 29, bars in: the layouts of real vendor exports load (moola_lib.bars.layouts; README, "Your own bars"),
or fail in one line that names the fix. Each file is built here, in the vendor's layout, from the same bars."""

import numpy as np
import pandas as pd
import pytest
from helpers import bar_frame

from moola_lib.bars.ohlcv import PRICE_COLUMNS, DataValidationError, load_ohlcv

N = 240
MINUTES = pd.date_range("2024-01-02 14:30", periods=N, freq="min", tz="UTC", name="timestamp")  # 09:30 New York


def wall(zone: str) -> pd.DatetimeIndex:
    """The bars' times on the wall clock of ``zone``, without the zone (what an exchange-local export writes)."""
    return MINUTES.tz_convert(zone).tz_localize(None)


def _csv(frame: pd.DataFrame, path, sep=",") -> str:
    frame.to_csv(path, index=False, sep=sep)
    return path


def aapl_iso_offset(bars, tmp_path):
    # a 1-minute AAPL export: ISO times with their New York offset, capitalised names
    frame = bars.rename(columns=str.capitalize)
    frame.insert(0, "Datetime", [t.isoformat() for t in MINUTES.tz_convert("America/New_York")])
    return _csv(frame, tmp_path / "aapl.csv")


def epoch_seconds(bars, tmp_path):
    frame = bars.rename(columns=lambda c: c[0])  # o, h, l, c, v
    frame.insert(0, "time", MINUTES.as_unit("s").asi8)
    return _csv(frame, tmp_path / "epoch_s.csv")


def epoch_milliseconds_any_name(bars, tmp_path):
    # Binance-like: the open time in milliseconds under its own name, upper-case names, no volume
    frame = bars.drop(columns="volume").rename(columns=str.upper)
    frame.insert(0, "open_time", MINUTES.as_unit("ms").asi8)
    path = tmp_path / "epoch_ms.parquet"
    frame.to_parquet(path, index=False)
    return path


def mt4_date_time(bars, tmp_path):
    # MetaTrader 4: Date,Time,Open,High,Low,Close,Volume with 2024.01.02 and 09:30, in the broker's time zone
    local = wall("Europe/Athens")
    frame = bars.rename(columns=str.capitalize)
    frame.insert(0, "Time", local.strftime("%H:%M"))
    frame.insert(0, "Date", local.strftime("%Y.%m.%d"))
    return _csv(frame, tmp_path / "EURUSD1.csv")


def mt5_tabs(bars, tmp_path):
    # MetaTrader 5: tab-separated <DATE> <TIME> <OPEN> ... <TICKVOL>
    local = wall("Europe/Athens")
    frame = bars.rename(columns={c: f"<{c.upper()}>" for c in PRICE_COLUMNS} | {"volume": "<TICKVOL>"})
    frame.insert(0, "<TIME>", local.strftime("%H:%M:%S"))
    frame.insert(0, "<DATE>", local.strftime("%Y.%m.%d"))
    return _csv(frame, tmp_path / "mt5.csv", sep="\t")


def semicolons_exchange_local(bars, tmp_path):
    frame = bars.reset_index(drop=True)
    frame.insert(0, "timestamp", wall("America/New_York").astype(str))
    return _csv(frame, tmp_path / "local.csv", sep=";")


def close_last_us_dates(bars, tmp_path):
    # Nasdaq-like names (Close/Last first) with US month/day dates and exchange-local times
    frame = bars[["close", "volume", "open", "high", "low"]].rename(columns=str.capitalize)
    frame = frame.rename(columns={"Close": "Close/Last"})
    frame.insert(0, "Date", wall("America/New_York").strftime("%m/%d/%Y %H:%M"))
    return _csv(frame, tmp_path / "nasdaq.csv")


def gmt_time_named(bars, tmp_path):
    frame = bars.reset_index(drop=True)
    frame.insert(0, "Gmt time", wall("UTC").strftime("%Y-%m-%d %H:%M:%S"))
    return _csv(frame, tmp_path / "gmt.csv")


def day_and_minute_named(bars, tmp_path):
    frame = bars.reset_index(drop=True)
    frame.insert(0, "Minute", wall("UTC").strftime("%H:%M"))
    frame.insert(0, "Day", wall("UTC").strftime("%Y-%m-%d"))
    return _csv(frame, tmp_path / "day_minute.csv")


def parquet_date_and_time(bars, tmp_path):
    # a parquet date column (datetime64 at midnight) beside a time-of-day text column
    frame = bars.reset_index(drop=True)
    frame.insert(0, "time", wall("UTC").strftime("%H:%M"))
    frame.insert(0, "date", wall("UTC").normalize())
    path = tmp_path / "date_time.parquet"
    frame.to_parquet(path, index=False)
    return path


LAYOUTS = {
    "aapl_iso_offset": (aapl_iso_offset, {}),
    "epoch_seconds_o_h_l_c_v": (epoch_seconds, {}),
    "epoch_ms_any_name_no_volume": (epoch_milliseconds_any_name, {"timestamp_column": "open_time"}),
    "mt4_date_time": (mt4_date_time, {"data_timezone": "Europe/Athens"}),
    "mt5_tabs": (mt5_tabs, {"data_timezone": "Europe/Athens"}),
    "semicolons_exchange_local": (semicolons_exchange_local, {"data_timezone": "America/New_York"}),
    "close_last_us_dates": (close_last_us_dates, {"data_timezone": "America/New_York"}),
    "gmt_time_named": (gmt_time_named, {"timestamp_column": "GMT TIME", "data_timezone": "UTC"}),
    "day_plus_minute": (day_and_minute_named, {"timestamp_column": "Day+Minute", "data_timezone": "UTC"}),
    "parquet_date_and_time": (parquet_date_and_time, {"data_timezone": "UTC"}),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_vendor_layout_loads_the_same_bars(tmp_path, layout):
    build, options = LAYOUTS[layout]
    bars = bar_frame(MINUTES)
    loaded = load_ohlcv(build(bars, tmp_path), **options)
    assert loaded.index.equals(MINUTES.as_unit("ns"))
    expected = bars if "volume" in loaded else bars.drop(columns="volume")
    assert list(loaded.columns) == list(expected.columns)
    np.testing.assert_allclose(loaded.to_numpy(), expected.to_numpy(), rtol=1e-12)


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


def test_only_the_date_column_is_diagnosed_as_a_layout_mistake(tmp_path):
    path = mt4_date_time(bar_frame(MINUTES), tmp_path)
    for options in ({"timestamp_column": "Date"}, {"timestamp_column": "Date", "on_invalid": "drop"}):
        with pytest.raises(DataValidationError) as err:
            load_ohlcv(path, data_timezone="Europe/Athens", **options)  # dropping the duplicates is no fix
        message = one_line(err)
        assert err.value.check == "duplicate_timestamp" and err.value.n_rows == N - 1
        assert f"{N - 1} duplicate timestamps: the timestamps (column 'Date') look like dates without times" in message
        assert "timestamp_column='Date+Time'" in message and "on_invalid" not in message
    with pytest.raises(DataValidationError, match="look like dates without times"):  # before the time zone
        load_ohlcv(path, timestamp_column="Date")


def test_a_file_without_a_header_line_is_told_to_add_one(tmp_path):
    path = mt4_date_time(bar_frame(MINUTES), tmp_path)
    path.write_text(path.read_text().split("\n", 1)[1])
    with pytest.raises(DataValidationError) as err:
        load_ohlcv(path, data_timezone="UTC")
    assert "no header line, add one, e.g. Date,Time,Open,High,Low,Close,Volume" in one_line(err)


def test_missing_and_unknown_columns_name_the_accepted_spellings(tmp_path):
    frame = bar_frame(MINUTES).rename(columns={"close": "settle"})
    with pytest.raises(DataValidationError) as err:
        load_ohlcv(_csv(frame.reset_index(), tmp_path / "settle.csv"))
    assert "missing price column(s) ['close']" in one_line(err) and "close: close/c/close/last/last" in str(err.value)
    with pytest.raises(DataValidationError) as err:
        load_ohlcv(_csv(frame.reset_index(), tmp_path / "settle.csv"), timestamp_column="Date+Hour")
    assert "timestamp_column='Date+Hour' not found" in one_line(err)


def test_the_canonical_spelling_wins_over_an_abbreviation(tmp_path):
    bars = bar_frame(MINUTES)
    frame = bars.assign(c=bars["close"] * 2, last=0.0)  # "close" first: "c" and "last" are other columns here
    loaded = load_ohlcv(_csv(frame.reset_index(), tmp_path / "both.csv"))
    np.testing.assert_allclose(loaded["close"], bars["close"])
