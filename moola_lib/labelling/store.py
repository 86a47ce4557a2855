"""The labels file the labelling tool writes: one row per click, saved at once and atomically.

New rows are in the timestamp format ``labels.load_labels`` reads (format (a)): ``window_id``, ``start``,
``end`` (ISO UTC), ``label``, ``expansion_start``, ``expansion_end``, plus ``labelled_by`` and
``labelled_at``. An existing file is read first and every one of its rows and columns is kept: a file
of self-contained windows (format (b), a ``features`` column) gets the new windows' OHLC bars in
``features`` as well (plus their timestamps), so it still loads as format (b). The file keeps its own
format (CSV, parquet, JSON records or JSON lines, by suffix); every write replaces it atomically
(``io.atomic_write_bytes``), so a crash or a closed browser leaves the previous complete file.

``undo`` removes the newest row this tool wrote (a row with ``labelled_at``); rows from elsewhere are
never removed. Reopening the file continues where the labeller stopped: its rows are the labelled set.
"""
from __future__ import annotations

import datetime as dt
import getpass
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..constants import WINDOW_LENGTH
from ..data import to_utc
from ..util.io import atomic_write_bytes
from ..labels import read_label_table

SUFFIXES = (".csv", ".parquet", ".pq", ".json", ".jsonl")
COLUMNS = ("window_id", "start", "end", "label", "expansion_start", "expansion_end", "labelled_by", "labelled_at")


class LabelsFileError(ValueError):
    """A labels file the tool cannot append to (unknown suffix, unreadable, no label column)."""


class LabelStore:
    """The rows of one labels file; ``add`` and ``undo`` rewrite it atomically at once."""

    def __init__(self, path: str | os.PathLike, *, user: str | None = None):
        self.path = Path(path)
        if self.path.suffix.lower() not in SUFFIXES:
            raise LabelsFileError(f"{self.path}: labels file must end in {', '.join(SUFFIXES)}")
        self.user = user or _user_name()
        if self.path.exists():
            try:
                self.frame, _ = read_label_table(self.path)
            except ValueError as e:
                raise LabelsFileError(f"{self.path}: cannot read the existing labels file ({e})") from e
            if "label" not in self.frame.columns:
                raise LabelsFileError(f"{self.path}: existing file has no 'label' column (columns: "
                                      f"{list(self.frame.columns)}); choose another labels_path")
        else:
            self.frame = pd.DataFrame(columns=list(COLUMNS))

    @property
    def windows_format(self) -> bool:
        """True for a file of self-contained windows (format (b)): new rows carry their OHLC bars too."""
        return "features" in self.frame.columns

    def __len__(self) -> int:
        return len(self.frame)

    def counts(self, classes=()) -> dict[str, int]:
        """Rows per label (stripped, lower-cased), ``classes`` first (with zeros), then any others."""
        found = self.frame["label"].astype(str).str.strip().str.lower().value_counts()
        out = {c: int(found.get(c, 0)) for c in classes}
        out.update({c: int(v) for c, v in found.items() if c not in out})
        return out

    def window_starts(self, index: pd.DatetimeIndex, length: int = WINDOW_LENGTH) -> tuple[np.ndarray, np.ndarray]:
        """(row numbers, window start positions into ``index``) of the rows whose window lies in these bars,
        found by ``start`` or else ``end``; rows without timestamps or outside the bars are left out."""
        pos = np.full(len(self.frame), -1, dtype=np.int64)
        for col, shift in (("end", length - 1), ("start", 0)):   # start wins where both are given
            if col in self.frame.columns:
                p = index.get_indexer(pd.to_datetime(self.frame[col], utc=True, errors="coerce"))
                pos = np.where(p >= 0, p - shift, pos)
        ok = (pos >= 0) & (pos + length <= len(index))
        return np.flatnonzero(ok), pos[ok]

    def add(self, *, start, end, label: str, expansion_start: int, expansion_end: int, ohlc=None) -> dict:
        """Append one labelled window and write the file; returns the row."""
        start, end = to_utc(start), to_utc(end)
        row = {"window_id": f"lab-{start:%Y%m%dT%H%M}", "start": start.isoformat(), "end": end.isoformat(),
               "label": label, "expansion_start": int(expansion_start), "expansion_end": int(expansion_end),
               "labelled_by": self.user,
               "labelled_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        if self.windows_format:
            if ohlc is None:
                raise LabelsFileError(f"{self.path} holds self-contained windows: new rows need their OHLC bars")
            row["features"] = np.asarray(ohlc, dtype=float).tolist()
        new = pd.DataFrame([row])
        for col in ("start", "end"):   # keep a datetime column datetime (parquet cannot mix types)
            if col in self.frame.columns and pd.api.types.is_datetime64_any_dtype(self.frame[col]):
                new[col] = pd.to_datetime(new[col], utc=True)
        frame = new if self.frame.empty and list(self.frame.columns) == list(COLUMNS) else \
            pd.concat([self.frame, new], ignore_index=True)
        self._write(frame)
        return row

    def undo(self) -> dict | None:
        """Remove the newest row this tool wrote (None when there is none) and write the file."""
        if "labelled_at" not in self.frame.columns:
            return None
        ours = np.flatnonzero(self.frame["labelled_at"].notna().to_numpy())
        if not len(ours):
            return None
        removed = self.frame.iloc[ours[-1]].to_dict()
        self._write(self.frame.drop(index=self.frame.index[ours[-1]]).reset_index(drop=True))
        return removed

    def _write(self, frame: pd.DataFrame) -> None:
        atomic_write_bytes(self.path, _serialise(frame, self.path.suffix.lower()))
        self.frame = frame   # only once the file holds it


def _serialise(frame: pd.DataFrame, suffix: str) -> bytes:
    if suffix == ".csv":
        return frame.to_csv(index=False).encode("utf-8")
    if suffix in (".parquet", ".pq"):
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return buf.getvalue()
    return frame.to_json(orient="records", lines=suffix == ".jsonl", date_format="iso").encode("utf-8")


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):   # no passwd entry (containers)
        return os.environ.get("USER", "unknown")
