"""Splits as fractions of the data's span ("auto" = 80 / 10 / 10), cut at the 17:00 New York halt: half-open,
every bar in exactly one split, checked before any data is loaded, accepted by the config, the notebook
parameters and the command line, resolved and recorded by the pretraining data."""

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest

from moola_lib.bars.ohlcv import DataValidationError
from moola_lib.bars.sources import resolve_splits, split_slices
from moola_lib.bars.splits import (
    AUTO_SPLITS,
    NEW_YORK,
    is_fractions,
    nearest_session_cut,
    session_cut_before,
    split_problems,
)
from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.pretraining.config import PretrainConfig
from moola_lib.util.config import ConfigError, apply_overrides, read_parameters

SEVENTEEN = dt.time(17, 0)


def hourly_fx(start="2017-04-19", end="2018-02-07"):
    """EURUSD-like hourly bars: around the clock on weekdays, nothing on Saturdays."""
    index = pd.date_range(start, end, freq="h", tz="UTC")
    return index[index.dayofweek != 5]


def check_partition(index, resolved, *, complete=True):
    """Consecutive half-open splits, bounds at 17:00 New York, each bar in at most (complete: exactly) one."""
    bounds = [tuple(pd.Timestamp(x) for x in pair) for pair in resolved.values()]
    for start, end in bounds:
        assert start < end
        assert start.tz_convert(NEW_YORK).time() == SEVENTEEN and end.tz_convert(NEW_YORK).time() == SEVENTEEN
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))  # no gap, no overlap
    seen = np.zeros(len(index), dtype=int)
    for name, part in split_slices(index, resolved).items():
        seen[part] += 1
        start, end = (pd.Timestamp(x) for x in resolved[name])
        assert (index[part] >= start).all() and (index[part] < end).all()
    assert seen.max() == 1 and (not complete or seen.min() == 1)
    return bounds


def test_auto_is_80_10_10_of_the_span_cut_at_17_new_york():
    index = hourly_fx()
    resolved = resolve_splits(index, "auto")
    assert list(resolved) == ["train", "val", "test"]
    bounds = check_partition(index, resolved)
    assert bounds[0][0] <= index[0] and bounds[-1][1] > index[-1]
    span = index[-1] - index[0]
    for (name, fraction), (start, end) in zip(AUTO_SPLITS.items(), bounds):
        assert abs((end - start) - fraction * span) <= pd.Timedelta(days=1.01), name  # one cut's rounding
    # the train/val cut is the 17:00 New York nearest to 80 % of the span
    assert abs(bounds[0][1] - (index[0] + 0.8 * span)) <= pd.Timedelta(hours=12)


def test_cuts_follow_new_york_daylight_saving():
    assert session_cut_before(pd.Timestamp("2025-07-01 23:00", tz="UTC")) == pd.Timestamp("2025-07-01 21:00", tz="UTC")
    assert session_cut_before(pd.Timestamp("2025-01-02 21:59", tz="UTC")) == pd.Timestamp("2025-01-01 22:00", tz="UTC")
    assert session_cut_before("2025-01-01 22:00") == pd.Timestamp("2025-01-01 22:00", tz="UTC")  # at: itself
    # across the March change: the cut after 2025-03-08 17:00 EST is 2025-03-09 17:00 EDT, 23 hours later
    assert nearest_session_cut("2025-03-09 20:00") == pd.Timestamp("2025-03-09 21:00", tz="UTC")
    assert nearest_session_cut("2025-03-09 09:00") == pd.Timestamp("2025-03-08 22:00", tz="UTC")


def test_cuts_fall_in_the_daily_halt_of_the_embedded_market():
    bars = synthetic_ohlcv("2024-11-01", "2024-12-20", seed=0)
    resolved = resolve_splits(bars.index, {"train": 0.5, "val": 0.3, "test": 0.2})
    check_partition(bars.index, resolved)
    for start, _ in list(resolved.values())[1:]:
        cut = pd.Timestamp(start)
        before, after = bars.index[bars.index < cut][-1], bars.index[bars.index >= cut][0]
        assert after - before >= pd.Timedelta(hours=1)  # no session has bars on both sides of a cut


def test_fractions_in_the_order_given_and_a_tail_left_out():
    index = hourly_fx("2024-01-01", "2024-12-31")
    resolved = resolve_splits(index, {"val": 0.1, "train": 0.6})
    assert list(resolved) == ["val", "train"]
    bounds = check_partition(index, resolved, complete=False)
    assert bounds[1][1] < index[-1] - pd.Timedelta(days=100)  # the last 30 % belong to no split
    assert resolve_splits(index, {"train": ["2024-01-01", "2024-06-01"]}) == {"train": ("2024-01-01", "2024-06-01")}


@pytest.mark.parametrize(
    "splits, message",
    [
        ({"train": 0.9, "val": 0.2}, "sum to 1.1"),
        ({"train": 0.8, "val": 0.0}, "must be in (0, 1]"),
        ({"train": 1.5, "val": 0.1}, "must be in (0, 1]"),
        ({"train": 0.8, "val": float("nan")}, "must be in (0, 1]"),
        ({"train": 0.8, "val": ["2025-01-01", "2025-02-01"]}, "not a mix"),
        ({"train": 0.8}, "must define 'train' and 'val'"),
        ("half", "must be one of 'auto'"),
    ],
)
def test_bad_splits_are_refused_before_any_data_is_loaded(splits, message):
    with pytest.raises(ConfigError, match="splits") as err:
        PretrainConfig.from_dict({"splits": splits})
    assert message in str(err.value)


def test_bad_fractions_are_refused_by_resolve_splits_too():
    with pytest.raises(ValueError, match="sum to 1.1"):
        resolve_splits(hourly_fx(), {"train": 0.9, "val": 0.2})
    assert split_problems({"train": 0.7, "val": 0.3}) == [] and split_problems("auto") == []
    assert is_fractions("auto") and is_fractions({"a": 1}) and not is_fractions({"a": ["2020-01-01", "2020-02-01"]})


def test_data_too_short_for_a_split_says_which():
    index = pd.date_range("2025-01-06 15:00", "2025-01-08 12:00", freq="min", tz="UTC")  # two days
    with pytest.raises(DataValidationError, match=r"split 'val', 0.1 of the data's span, holds no whole session") as e:
        resolve_splits(index, "auto")
    assert e.value.check == "short_split"


def test_auto_in_the_config_the_notebook_and_the_command_line():
    from moola_lib.notebook.params import PretrainParams, pretrain_config

    assert PretrainConfig.from_dict({"splits": "auto"}).to_dict()["splits"] == "auto"
    assert PretrainConfig.from_dict({"splits": {"train": 0.9, "val": 0.1}}).splits == {"train": 0.9, "val": 0.1}
    params = apply_overrides(PretrainParams(), {"splits": "auto"}, what="pretrain.ipynb")  # as start_run checks
    assert pretrain_config(params).splits == "auto"
    with pytest.raises(ConfigError, match="pretrain.ipynb.splits: must be one of 'auto', got 'half'"):
        apply_overrides(PretrainParams(), {"splits": "half"}, what="pretrain.ipynb")
    given = read_parameters(pairs=[("splits", "auto")])
    assert PretrainConfig.from_dict(given).splits == "auto"
    given = read_parameters(yamls=["splits: {train: 0.8, val: 0.2}"])
    assert PretrainConfig.from_dict(given).splits == {"train": 0.8, "val": 0.2}
    assert PretrainConfig().splits["train"] == ["2020-09-01", "2025-01-01"]  # the seed guide's dates stay


def test_dates_outside_the_data_offer_auto():
    with pytest.raises(DataValidationError, match="the data spans 2017-04-19.*splits: auto") as err:
        split_slices(hourly_fx(), {"train": ["2020-09-01", "2025-01-01"]})
    assert '{"train": 0.8, "val": 0.1, "test": 0.1}' in str(err.value)


def test_pretraining_data_resolves_auto_and_records_the_dates(capsys):
    from moola_lib.pretraining.job import load_pretrain_data

    config = {"synthetic_start": "2024-11-01", "synthetic_end": "2025-01-20", "stride": 210, "splits": "auto"}
    summary = load_pretrain_data(config).summary
    line = capsys.readouterr().out
    assert line.startswith("splits 'auto' -> train [") and line.count("[") == 3
    splits = summary["splits"]
    assert list(splits) == ["train", "val", "test"] and all(s["windows"] > 0 for s in splits.values())
    assert splits["train"]["end"] == splits["val"]["start"] and splits["val"]["end"] == splits["test"]["start"]
    assert pd.Timestamp(splits["val"]["start"]).tz_convert(NEW_YORK).time() == SEVENTEEN
    assert f"[{splits['val']['start']}, {splits['val']['end']})" in line


def test_labelled_windows_are_placed_against_the_resolved_dates():
    from moola_lib.labels.provenance import pretraining_overlap

    class Windows:  # what pretraining_overlap reads of a LabelledSet
        start = pd.DatetimeIndex(pd.to_datetime(["2024-12-10 14:00", "2025-02-10 14:00"], utc=True))
        end = start + pd.Timedelta(hours=2)

        def __len__(self):
            return 2

    results = {
        "config": {"splits": "auto", "exclude": []},
        "data": {
            "splits": {
                "train": {"start": "2024-11-01T21:00:00+00:00", "end": "2025-01-01T22:00:00+00:00"},
                "val": {"start": "2025-01-01T22:00:00+00:00", "end": "2025-01-10T22:00:00+00:00"},
            }
        },
    }
    overlap = pretraining_overlap(Windows(), results)
    assert overlap["inside_split"] == {"train": 1, "val": 0} and overlap["seen"] == 1
