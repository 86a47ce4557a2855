"""The labels file of the labelling tool: every click written atomically, existing rows never lost, several
writers at once."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.labelling.store import LabelsFileError, LabelStore
from moola_lib.labels.sets import load_labels, read_label_table
from moola_lib.util.io import FileWriteError

L = 105


@pytest.fixture(scope="module")
def bars():
    return synthetic_ohlcv("2025-05-01", "2025-05-07", seed=0)


def _add(store, bars, s, label):
    return store.add(
        start=bars.index[s],
        end=bars.index[s + L - 1],
        label=label,
        expansion_start=20,
        expansion_end=40,
        ohlc=bars.iloc[s : s + L][["open", "high", "low", "close"]].to_numpy(),
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_each_click_is_on_disk_in_the_format_transfer_reads(bars, tmp_path, suffix):
    path = tmp_path / f"labels{suffix}"
    store = LabelStore(path, user="ann")
    _add(store, bars, 1000, "consolidation")
    _add(store, bars, 3000, "retracement")
    loaded = load_labels(path, bars)  # what transfer.ipynb does with labels_path
    assert list(loaded.labels) == ["consolidation", "retracement"]
    assert list(loaded.start) == [bars.index[1000], bars.index[3000]]
    assert (loaded.expansion == [[20, 40], [20, 40]]).all() and loaded.source["format"] == "timestamps"
    again = LabelStore(path)
    assert len(again) == 2 and list(again.frame["labelled_by"]) == ["ann", "ann"]
    assert pd.to_datetime(again.frame["labelled_at"], utc=True).notna().all()
    assert list(again.window_starts(bars.index)[1]) == [1000, 3000]


def test_an_existing_file_keeps_every_row_and_column_and_undo_spares_foreign_rows(bars, tmp_path):
    path = tmp_path / "labels.csv"
    pd.DataFrame(
        {
            "end": [str(bars.index[600 + L - 1])],
            "label": ["Retracement"],
            "window_id": ["w7"],
            "note": ["from the old tool"],
        }
    ).to_csv(path, index=False)
    store = LabelStore(path)
    _add(store, bars, 2000, "consolidation")
    frame = pd.read_csv(path)
    assert len(frame) == 2 and frame.loc[0, "note"] == "from the old tool" and frame.loc[0, "window_id"] == "w7"
    assert list(store.window_starts(bars.index)[1]) == [600, 2000]
    assert store.counts(("consolidation", "retracement")) == {"consolidation": 1, "retracement": 1}
    assert store.undo()["label"] == "consolidation"
    assert store.undo() is None  # the old tool's row stays
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

    def broken(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken)  # the row appended, not yet on disk: taken back
    with pytest.raises(FileWriteError, match=r"cannot write .*labels\.csv: disk full; its previous content"):
        _add(store, bars, 3000, "retracement")
    assert path.read_bytes() == before and len(store) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".labels.csv.lock", "labels.csv"]  # no temp file


def test_unusable_files_fail_with_the_path_and_the_problem(tmp_path):
    with pytest.raises(LabelsFileError, match=r"labels\.txt: labels file must end in \.csv"):
        LabelStore(tmp_path / "labels.txt")
    bad = tmp_path / "other.csv"
    pd.DataFrame({"start": ["2025-05-01"], "class": ["x"]}).to_csv(bad, index=False)
    with pytest.raises(LabelsFileError, match=r"other\.csv: existing file has no 'label' column"):
        LabelStore(bad)
    assert np.isin(["start", "class"], pd.read_csv(bad).columns).all()  # and it is left untouched


FORMATS = [".csv", ".parquet", ".json", ".jsonl"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_two_stores_on_a_users_file_keep_its_rows_exactly_and_undo_only_their_own(
    bars, tmp_path, suffix, foreign_labels
):
    path = tmp_path / f"labels{suffix}"
    original = foreign_labels(path)
    ann, bob = LabelStore(path, user="ann"), LabelStore(path, user="bob")
    assert ann.undo() is None and path.read_bytes() == original.raw  # the user's rows are not ann's to undo
    _add(ann, bars, 1000, "consolidation")
    _add(bob, bars, 2000, "retracement")  # bob opened the file before ann's row: it must survive bob's write
    _add(ann, bars, 3000, "retracement")
    rows, _ = read_label_table(path)
    assert list(rows["labelled_by"]) == ["bob", "eve", "ann", "bob", "ann"]
    assert list(rows["window_id"][:2]) == ["007", "0008"]
    original.assert_kept()
    bob.refresh()
    assert len(bob) == 5
    assert bob.undo()["labelled_by"] == "bob" and bob.undo() is None  # never ann's row, nor the user's
    assert pd.Timestamp(ann.undo()["start"]) == bars.index[3000]
    assert list(read_label_table(path)[0]["labelled_by"]) == ["bob", "eve", "ann"]
    assert pd.Timestamp(ann.undo()["start"]) == bars.index[1000] and ann.undo() is None
    original.assert_unchanged()
    assert LabelStore(path, user="ann").undo() is None  # reopened: the old rows are nobody's to undo


def test_a_csv_without_the_tools_columns_keeps_its_rows_byte_for_byte(bars, tmp_path):
    path = tmp_path / "labels.csv"
    head, rows = b"window_id,end,label\r\n", b"007,2020-01-02T16:14:00Z,NA\r\n00123,2020-01-03T16:14:00Z,x\r\n"
    path.write_bytes(head + rows)
    store = LabelStore(path)
    _add(store, bars, 1000, "consolidation")
    lines = path.read_bytes().split(b"\r\n")
    assert lines[0].startswith(b"window_id,end,label,") and b"labelled_at" in lines[0]
    assert b"\r\n".join(lines[1:3]) + b"\r\n" == rows
    frame = read_label_table(path)[0]
    assert list(frame["window_id"]) == ["007", "00123", f"lab-{bars.index[1000]:%Y%m%dT%H%M}"]
    store.undo()
    assert path.read_bytes().split(b"\r\n", 1)[1] == rows


def test_two_processes_writing_at_once_lose_no_row(tmp_path, foreign_labels):
    originals = [foreign_labels(tmp_path / f"labels{s}") for s in FORMATS]
    writer = textwrap.dedent(f"""
        import sys, time
        import pandas as pd
        from moola_lib.labelling.store import LabelStore
        name, go = sys.argv[1], float(sys.argv[2])
        stores = [LabelStore(p, user=name) for p in {[str(o.path) for o in originals]!r}]
        while time.time() < go:
            pass
        for k in range(12):
            for store in stores:
                t = pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(minutes=k + (1000 if name == "b" else 0))
                store.add(start=t, end=t + pd.Timedelta(minutes=104), label="retracement", expansion_start=1,
                          expansion_end=2)
        stores[0].undo()   # its own newest row only
    """)
    go = f"{__import__('time').time() + 8:.3f}"
    procs = [
        subprocess.Popen([sys.executable, "-c", writer, name, go], env={**os.environ, "PYTHONPATH": os.getcwd()})
        for name in ("a", "b")
    ]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    for original in originals:
        frame = read_label_table(original.path)[0]
        expected = 12 * 2 - 2 * (original.suffix == ".csv")
        assert len(frame) == 2 + expected, original.suffix
        assert sorted(frame["labelled_by"][2:].value_counts().to_dict().items()) == [
            ("a", expected // 2),
            ("b", expected // 2),
        ]
        original.assert_kept()


def test_a_killed_writers_temp_files_go_and_a_read_only_file_is_refused_at_open(bars, tmp_path):
    path = tmp_path / "labels.csv"
    _add(LabelStore(path), bars, 1000, "consolidation")
    (tmp_path / ".labels.csv.x1y2.tmp").write_bytes(b"half a file")  # what a SIGKILL mid-write leaves
    LabelStore(path)
    assert not list(tmp_path.glob("*.tmp"))
    path.chmod(0o444)
    with pytest.raises(LabelsFileError, match=r"labels\.csv: the labels file is read-only"):
        LabelStore(path)
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(LabelsFileError, match="is a folder"):
        LabelStore(tmp_path / "dir.csv")
