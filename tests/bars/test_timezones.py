"""Issue 29, bars in: timestamps without a time zone are refused unless ``data_timezone`` says what they are;
then they are placed with the zone's daylight saving time (moola_lib.bars.timestamps)."""

import warnings

import pandas as pd
import pytest
from helpers import bar_frame

from moola_lib.bars.ohlcv import DataValidationError, DataValidationWarning, load_ohlcv, validate_ohlcv
from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.notebook.params import EdaParams, LabelParams, PretrainParams, SweepParams, TransferParams
from moola_lib.pretraining.config import PretrainConfig
from moola_lib.util.config import ConfigError, read_parameters
from moola_lib.util.paths import ROOT

NEW_YORK = "America/New_York"


def naive_csv(wall: pd.DatetimeIndex, path):
    """Bars at the wall-clock times ``wall`` written without a zone, as an exchange-local export does."""
    bar_frame(wall.rename("timestamp")).to_csv(path)
    return path


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


def test_naive_timestamps_are_refused_with_the_fix(tmp_path):
    path = naive_csv(pd.date_range("2024-01-02 09:30", periods=200, freq="min"), tmp_path / "naive.csv")
    for on_invalid in ("raise", "drop"):  # not a bad row: the whole column lacks a zone
        with pytest.raises(DataValidationError) as err:
            load_ohlcv(path, on_invalid=on_invalid)
        message = one_line(err)
        assert err.value.check == "time_zone" and err.value.n_rows == 200
        assert message.startswith(f"{path}: check 'time_zone' failed: 200 of 200 timestamps (column 'timestamp')")
        assert "'2024-01-02 09:30:00'" in message  # the value as the file holds it
        assert "data_timezone='UTC'" in message and "data_timezone='America/New_York'" in message
    frame = bar_frame(pd.date_range("2024-01-02 09:30", periods=200, freq="min"))
    with pytest.raises(DataValidationError, match="^<DataFrame>: check 'time_zone'.*have no time zone"):
        validate_ohlcv(frame)  # a naive index in memory: the same rule


def test_new_york_times_map_to_the_right_utc_hour_in_winter_and_summer(tmp_path):
    sessions = [pd.date_range(day, periods=150, freq="min") for day in ("2024-01-02 09:30", "2024-07-01 09:30")]
    path = naive_csv(sessions[0].append(sessions[1]), tmp_path / "ny.csv")
    bars = load_ohlcv(path, data_timezone=NEW_YORK)
    assert bars.index[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")  # EST: UTC-5
    assert bars.index[150] == pd.Timestamp("2024-07-01 13:30", tz="UTC")  # EDT: UTC-4
    assert str(bars.index.tz) == "UTC" and bars.index.unit == "ns"
    utc = load_ohlcv(path, data_timezone="UTC")  # what the file's times mean is the user's to say
    assert utc.index[0] == pd.Timestamp("2024-01-02 09:30", tz="UTC")


def test_aware_timestamps_are_used_as_they_are(tmp_path):
    minutes = pd.date_range("2024-07-01 13:30", periods=200, freq="min", tz="UTC")
    frame = bar_frame(minutes.tz_convert(NEW_YORK).rename("timestamp"))
    frame.to_csv(tmp_path / "aware.csv")
    for zone in (None, "Asia/Tokyo"):  # data_timezone only places times that have no zone
        assert load_ohlcv(tmp_path / "aware.csv", data_timezone=zone).index.equals(minutes.as_unit("ns"))


def test_the_repeated_hour_is_placed_by_its_order(tmp_path):
    # a 24/7 market through the night the New York clocks go back: 01:00-01:59 occurs twice on the wall clock
    minutes = pd.date_range("2024-11-03 04:00", "2024-11-03 07:59", freq="min", tz="UTC")
    wall = minutes.tz_convert(NEW_YORK).tz_localize(None)
    assert wall.duplicated().sum() == 60
    bars = load_ohlcv(naive_csv(wall, tmp_path / "crypto.csv"), data_timezone=NEW_YORK)
    assert bars.index.equals(minutes.as_unit("ns"))


def test_clock_change_hours_that_cannot_be_placed_are_rows_to_fix_or_drop(tmp_path):
    once = pd.date_range("2024-11-03 00:00", "2024-11-03 02:59", freq="min")  # the repeated hour, only once
    skipped = pd.date_range("2024-03-10 00:00", "2024-03-10 03:59", freq="min")  # 02:00-02:59 never existed
    for wall, check, first in ((once, "ambiguous_time", "01:00"), (skipped, "nonexistent_time", "02:00")):
        path = naive_csv(wall, tmp_path / f"{check}.csv")
        with pytest.raises(DataValidationError) as err:
            load_ohlcv(path, data_timezone=NEW_YORK)
        message, row = one_line(err), wall.get_loc(pd.Timestamp(f"{wall[0].date()} {first}"))
        assert err.value.check == check and err.value.n_rows == 60
        assert f"first at rows {row}, {row + 1}, " in message and f"{first}:00'" in message, message
        assert "America/New_York" in message and "on_invalid='drop'" in message
        with pytest.warns(DataValidationWarning, match=f"{check}=60"):
            assert len(load_ohlcv(path, data_timezone=NEW_YORK, on_invalid="drop")) == len(wall) - 60


def test_a_time_zone_name_is_checked_before_any_data_is_read(tmp_path):
    with pytest.raises(ConfigError, match="'America/NewYork' is not a time zone name.*'America/New_York'"):
        load_ohlcv(tmp_path / "not_read.csv", data_timezone="America/NewYork")
    with pytest.raises(ConfigError, match="PretrainConfig: data_timezone 'EST-5' is not a time zone name"):
        PretrainConfig(data_timezone="EST-5")
    for params in (EdaParams, PretrainParams, TransferParams, SweepParams, LabelParams):
        with pytest.raises(ConfigError, match=f"{params.__name__}: data_timezone 'Mars' is not a time zone name"):
            params(data_timezone="Mars")
        assert params(data_timezone=NEW_YORK).data_timezone == NEW_YORK


def test_the_real_jobs_files_say_their_naive_times_are_utc():
    # DESIGN.md section 2: the NQ file holds tz-naive UTC timestamps; every params file that reads it says so
    files = sorted((ROOT / "params").glob("*.yaml"))
    with_data = [path for path in files if read_parameters([path]).get("data_path")]
    assert len(with_data) >= 3
    for path in with_data:
        assert read_parameters([path])["data_timezone"] == "UTC", path.name


def test_the_embedded_market_is_aware_utc():
    bars = synthetic_ohlcv("2024-12-02", "2024-12-03", seed=0)
    assert str(bars.index.tz) == "UTC"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_ohlcv(bars.reset_index())  # loads as it is: no data_timezone needed
