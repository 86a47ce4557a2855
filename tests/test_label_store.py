"""The labels file of the labelling tool: every click written atomically, existing rows never lost."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from moola_lib.labelling.store import LabelsFileError, LabelStore
from moola_lib.labels import load_labels
from moola_lib.synthetic import synthetic_ohlcv

L = 105


@pytest.fixture(scope="module")
def bars():
    return synthetic_ohlcv("2025-05-01", "2025-05-07", seed=0)


def _add(store, bars, s, label):
    return store.add(start=bars.index[s], end=bars.index[s + L - 1], label=label, expansion_start=20,
                     expansion_end=40, ohlc=bars.iloc[s:s + L][["open", "high", "low", "close"]].to_numpy())


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_each_click_is_on_disk_in_the_format_transfer_reads(bars, tmp_path, suffix):
    path = tmp_path / f"labels{suffix}"
    store = LabelStore(path, user="ann")
    _add(store, bars, 1000, "consolidation")
    _add(store, bars, 3000, "retracement")
    loaded = load_labels(path, bars)   # what transfer.ipynb does with labels_path
    assert list(loaded.labels) == ["consolidation", "retracement"]
    assert list(loaded.start) == [bars.index[1000], bars.index[3000]]
    assert (loaded.expansion == [[20, 40], [20, 40]]).all() and loaded.source["format"] == "timestamps"
    again = LabelStore(path)
    assert len(again) == 2 and list(again.frame["labelled_by"]) == ["ann", "ann"]
    assert pd.to_datetime(again.frame["labelled_at"], utc=True).notna().all()
    assert list(again.window_starts(bars.index)[1]) == [1000, 3000]


def test_an_existing_file_keeps_every_row_and_column_and_undo_spares_foreign_rows(bars, tmp_path):
    path = tmp_path / "labels.csv"
    pd.DataFrame({"end": [str(bars.index[600 + L - 1])], "label": ["Retracement"], "window_id": ["w7"],
                  "note": ["from the old tool"]}).to_csv(path, index=False)
    store = LabelStore(path)
    _add(store, bars, 2000, "consolidation")
    frame = pd.read_csv(path)
    assert len(frame) == 2 and frame.loc[0, "note"] == "from the old tool" and frame.loc[0, "window_id"] == "w7"
    assert list(store.window_starts(bars.index)[1]) == [600, 2000]
    assert store.counts(("consolidation", "retracement")) == {"consolidation": 1, "retracement": 1}
    assert store.undo()["label"] == "consolidation"
    assert store.undo() is None   # the old tool's row stays
    assert len(pd.read_csv(path)) == 1


def test_a_file_of_self_contained_windows_stays_in_its_format(bars, tmp_path):
    path = tmp_path / "windows.json"
    old = bars.iloc[:L][["open", "high", "low", "close"]].to_numpy().tolist()
    path.write_text(json.dumps([{"window_id": "old1", "label": "retracement", "features": old}]))
    store = LabelStore(path)
    assert store.windows_format
    _add(store, bars, 2500, "consolidation")
    with pytest.warns(UserWarning, match="cold start"):
        loaded = load_labels(path)
    assert list(loaded.window_id) == ["old1", "lab-" + f"{bars.index[2500]:%Y%m%dT%H%M}"]
    assert loaded.start[1] == bars.index[2500] and pd.isna(loaded.start[0])


def test_a_failed_write_leaves_the_previous_file_and_state(bars, tmp_path, monkeypatch):
    path = tmp_path / "labels.csv"
    store = LabelStore(path)
    _add(store, bars, 1000, "consolidation")
    before = path.read_bytes()

    def broken(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        _add(store, bars, 3000, "retracement")
    assert path.read_bytes() == before and len(store) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["labels.csv"]   # no temp file left behind


def test_unusable_files_fail_with_the_path_and_the_problem(tmp_path):
    with pytest.raises(LabelsFileError, match=r"labels\.txt: labels file must end in \.csv"):
        LabelStore(tmp_path / "labels.txt")
    bad = tmp_path / "other.csv"
    pd.DataFrame({"start": ["2025-05-01"], "class": ["x"]}).to_csv(bad, index=False)
    with pytest.raises(LabelsFileError, match=r"other\.csv: existing file has no 'label' column"):
        LabelStore(bad)
    assert np.isin(["start", "class"], pd.read_csv(bad).columns).all()   # and it is left untouched
