"""Issue 29, bars in: what a pretraining job refuses about its bars, in one line naming the fix: a split that holds
no window (pretraining/data.py), and through the command line (exit 2) bar files that are not what moola reads."""

import pandas as pd
import pytest
from helpers import assert_one_line_error, bar_frame, run_command

from moola_lib.bars.ohlcv import DataValidationError
from moola_lib.pretraining.data import load_pretrain_data
from moola_lib.util.config import ConfigError

WEEK = {"synthetic_start": "2024-12-02", "synthetic_end": "2024-12-13"}


def test_a_dated_split_without_a_window_names_the_split_its_bars_and_the_fix():
    splits = {"train": ["2024-12-02", "2024-12-11"], "val": ["2024-12-11", "2024-12-13"]}
    test = ["2024-12-13T00:00:00+00:00", "2024-12-13T01:00:00+00:00"]  # one hour: 60 bars, no 105-bar window
    with pytest.raises(ConfigError) as err:
        load_pretrain_data({**WEEK, "splits": {**splits, "test": test}})
    message = str(err.value)
    assert "\n" not in message
    assert f"split 'test' {test} of embedded synthetic bars" in message
    assert "its 60 bars (2024-12-13 00:00:00+00:00 .. 2024-12-13 00:59:00+00:00)" in message
    assert "no window of 105 consecutive valid bars (stride 52)" in message
    assert (
        "more data, other split dates, or larger fractions" in message and "smaller window_length / stride" in message
    )


def test_windows_dropped_by_max_gap_are_named_as_the_reason():
    splits = {"train": ["2024-12-02", "2024-12-11"], "val": ["2024-12-11", "2024-12-14"]}
    with pytest.raises(ConfigError, match="split 'train'.*that max_gap_minutes=0.5 keep.*or loosen max_gap_minutes"):
        load_pretrain_data({**WEEK, "splits": splits, "max_gap_minutes": 0.5})


def test_auto_splits_that_fall_on_a_weekend_say_so():
    # 2024-12-02 .. 2024-12-09: the val tenth of the span is the weekend
    with pytest.raises(
        DataValidationError, match=r"split 'val', 0.1 of the data's span, \[.*\) holds no bars \(a weekend"
    ):
        load_pretrain_data({"synthetic_start": "2024-12-02", "synthetic_end": "2024-12-09", "splits": "auto"})


@pytest.mark.parametrize(
    "freq, naive, extra, expected",
    [
        ("min", True, [], ("check 'time_zone' failed", "have no time zone", "data_timezone='UTC'")),
        ("h", False, [], ("check 'bar_interval' failed", "60 minutes apart", "1-minute bars")),
        ("min", True, ["-p", "data_timezone", "New_York"], ("'New_York' is not a time zone name",)),
    ],
    ids=["naive", "hourly", "bad-zone"],
)
def test_the_command_line_refuses_such_bars_in_one_line(tmp_path, freq, naive, extra, expected):
    index = pd.date_range("2024-12-02", periods=500, freq=freq, tz=None if naive else "UTC", name="timestamp")
    bar_frame(index).to_csv(tmp_path / "bars.csv")
    proc = run_command("moola_lib.pretrain", tmp_path / "run", "-p", "data_path", tmp_path / "bars.csv", *extra)
    assert_one_line_error(proc, *expected)
    assert not (tmp_path / "run" / "checkpoint_last.pt").exists()
