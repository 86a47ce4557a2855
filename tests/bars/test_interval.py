"""Issue 29, bars in: the bar interval is measured; bars that are not 1-minute are refused naming it, and finer
bars are aggregated to 1 minute when asked (moola_lib.bars.interval)."""

import numpy as np
import pandas as pd
import pytest
from helpers import bar_frame

from moola_lib.bars.interval import bar_interval, interval_line
from moola_lib.bars.ohlcv import DataValidationError, load_ohlcv
from moola_lib.bars.synthetic import synthetic_ohlcv


def bars_csv(freq: str, path, periods=600):
    bar_frame(pd.date_range("2024-01-02", periods=periods, freq=freq, tz="UTC", name="timestamp")).to_csv(path)
    return path


@pytest.mark.parametrize("freq, named", [("h", "60 minutes"), ("5min", "5 minutes"), ("D", "1440 minutes")])
def test_coarser_bars_are_refused_naming_the_measured_interval(tmp_path, freq, named):
    path = bars_csv(freq, tmp_path / f"{freq}.csv")
    for resample in (False, True):  # nothing makes minutes out of hours
        with pytest.raises(DataValidationError) as err:
            load_ohlcv(path, resample_to_1min=resample)
        message = str(err.value)
        assert err.value.check == "bar_interval" and "\n" not in message
        assert f"the bars are {named} apart" in message
        assert "moola's features and windows assume 1-minute bars" in message and "resample_to_1min" not in message


def test_finer_bars_are_refused_unless_resampled(tmp_path):
    path = bars_csv("30s", tmp_path / "30s.csv", periods=1200)
    with pytest.raises(DataValidationError) as err:
        load_ohlcv(path)
    assert "the bars are 30 seconds apart" in str(err.value) and "resample_to_1min=True" in str(err.value)
    bars = load_ohlcv(path, resample_to_1min=True)
    fine = bar_frame(pd.date_range("2024-01-02", periods=1200, freq="30s", tz="UTC"))
    minute = fine.resample("1min")  # the reference: OHLCV aggregation per minute, labelled by its start
    expected = pd.concat(
        [minute["open"].first(), minute["high"].max(), minute["low"].min(), minute["close"].last()], axis=1
    ).assign(volume=minute["volume"].sum())
    assert len(bars) == 600 and bars.index.equals(expected.index.as_unit("ns").rename("timestamp"))
    np.testing.assert_allclose(bars.to_numpy(), expected.to_numpy())
    assert interval_line(bars).startswith("bar interval: 30 seconds") and "1,200 bars -> 600" in interval_line(bars)


def test_one_minute_bars_with_gaps_and_missing_minutes_pass(tmp_path):
    minutes = pd.date_range("2024-01-02", periods=3000, freq="min", tz="UTC", name="timestamp")
    sparse = minutes[np.random.default_rng(0).random(len(minutes)) < 0.5]  # half the minutes without trades
    assert np.median(np.diff(sparse.as_unit("s").asi8)) > 60  # a median would call these 2-minute bars
    assert bar_interval(sparse)[0] == 60.0
    bar_frame(sparse).to_csv(tmp_path / "sparse.csv")
    bars = load_ohlcv(tmp_path / "sparse.csv", resample_to_1min=True)  # no-op for 1-minute bars
    assert bars.index.equals(sparse.as_unit("ns"))
    assert interval_line(bars).startswith("bar interval: 1 minute (") and "resampled" not in interval_line(bars)


def test_the_embedded_market_is_one_minute():
    bars = synthetic_ohlcv("2024-12-02", "2024-12-09", seed=0)  # with its daily halts and a weekend
    seconds, share = bar_interval(bars.index)
    assert seconds == 60.0 and share > 0.99
    assert interval_line(bars).startswith("bar interval: 1 minute")
