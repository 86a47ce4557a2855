"""Issue 29, bars in: labels files follow the time-zone rule of bar files (moola_lib.labels.rows.parse_times): a
time without a zone is refused unless ``data_timezone`` names it, and is then placed as the bars' times are."""

import numpy as np
import pandas as pd
import pytest

from moola_lib.bars.ohlcv import DataValidationError
from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.labels.sets import load_labels
from moola_lib.labels.spans import exclude_intervals, label_time_spans
from moola_lib.notebook.params import TransferParams
from moola_lib.notebook.steps import labelled_from_params

NEW_YORK = "America/New_York"
STARTS = [400, 1500, 2600, 3700]


@pytest.fixture(scope="module")
def bars():
    return synthetic_ohlcv("2025-06-02", "2025-06-06", seed=3)


def new_york_labels(bars, path=None):
    """Labels whose start times are New York wall-clock times without a zone (a labels file made against an
    exchange-local bar file); written to ``path`` as CSV when given."""
    local = bars.index[STARTS].tz_convert(NEW_YORK).tz_localize(None)
    frame = pd.DataFrame({"start": local.astype(str), "label": ["consolidation", "retracement"] * 2})
    if path is not None:
        frame.to_csv(path, index=False)
    return frame


def test_naive_label_times_are_refused_with_the_data_timezone_fix(bars):
    with pytest.raises(DataValidationError) as err:
        load_labels(new_york_labels(bars), bars)
    message = str(err.value)
    assert err.value.check == "time_zone" and "\n" not in message
    assert "'start' has no time zone in 4 row(s)" in message
    assert "data_timezone='UTC'" in message and "data_timezone='America/New_York'" in message


def test_naive_label_times_in_the_given_zone_meet_their_bars(bars, tmp_path):
    labelled = load_labels(new_york_labels(bars), bars, data_timezone=NEW_YORK)
    assert list(labelled.start) == list(bars.index[STARTS])
    misread = load_labels(new_york_labels(bars), bars, data_timezone="UTC")  # June: New York is UTC-4
    assert (misread.start - bars.index[STARTS] == pd.Timedelta(hours=-4)).all()  # every window 4 hours off
    path = new_york_labels(bars, tmp_path / "labels.csv")
    start, _, _ = label_time_spans(path, data_timezone=NEW_YORK)
    assert list(start) == list(bars.index[STARTS])
    spans = exclude_intervals(path, data_timezone=NEW_YORK)
    assert spans[0][0] == bars.index[STARTS[0]].isoformat()


def test_aware_label_times_ignore_data_timezone(bars):
    aware = new_york_labels(bars).assign(start=bars.index[STARTS].tz_convert(NEW_YORK).astype(str))
    labelled = load_labels(aware, bars, data_timezone="Asia/Tokyo")
    assert list(labelled.start) == list(bars.index[STARTS])


def test_the_transfer_notebook_reads_naive_bars_and_labels_in_one_zone(bars, tmp_path):
    wall = bars.index.tz_convert(NEW_YORK).tz_localize(None)  # a bar file of New York wall-clock times
    bars.set_axis(wall.rename("timestamp")).to_parquet(tmp_path / "bars.parquet")
    labels = new_york_labels(bars, tmp_path / "labels.csv")
    params = dict(data_path=str(tmp_path / "bars.parquet"), labels_path=str(tmp_path / "labels.csv"))
    with pytest.raises(DataValidationError, match="bars.parquet: check 'time_zone'"):
        labelled_from_params(TransferParams(**params))
    labelled = labelled_from_params(TransferParams(**params, data_timezone=NEW_YORK))
    assert list(labelled.start) == list(bars.index[STARTS]) and len(labelled) == len(labels)
    np.testing.assert_array_equal(labelled.y, [0, 1, 0, 1])
