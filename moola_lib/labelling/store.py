"""The labels file the labelling tool writes: one row per click, saved at once, safe for several writers.

New rows are in the timestamp format ``labels.load_labels`` reads (format (a)): ``window_id``, ``start``,
``end`` (ISO UTC), ``label``, ``expansion_start``, ``expansion_end``, plus ``labelled_by`` and
``labelled_at`` (UTC, to the microsecond). A file of self-contained windows (format (b), a ``features``
column) gets the new windows' OHLC bars in ``features`` as well (plus their timestamps), so it still
loads as format (b). The file keeps its own format (CSV, parquet, JSON records or JSON lines, by suffix).

Several writers (two browser tabs, two people on one box, a script) may share one file. Every write
holds an exclusive ``flock`` on the sidecar lock file ``.NAME.lock`` beside it, re-reads the file under
that lock, changes only its own row (``row_edits``: the bytes of every other row stay exactly as they
were) and replaces the file atomically (``io.atomic_write_bytes``): no writer's row is lost, and a crash
or a closed browser leaves the previous complete file. Temp files a killed writer left (``.NAME.*.tmp``)
are removed under the lock. The lock file stays (removing it would race with a writer waiting on it).

``undo`` removes the newest row that this store wrote and that is still in the file: never a row from
elsewhere, another labeller's or one written before this store was opened. Reopening the file continues
where the labeller stopped: its rows are the labelled set (``frame``, re-read after every write and by
``refresh``). A file that cannot be written (read-only, a folder, a folder that takes no files) is
refused when the store opens, not at the first click.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd

from ..bars.constants import WINDOW_LENGTH
from ..bars.splits import to_utc
from ..labels.sets import read_label_table
from ..util.config import ConfigError
from ..util.io import atomic_write_bytes
from . import row_edits

SUFFIXES = (".csv", ".parquet", ".pq", ".json", ".jsonl")
COLUMNS = ("window_id", "start", "end", "label", "expansion_start", "expansion_end", "labelled_by", "labelled_at")


class LabelsFileError(ConfigError):
    """A labels file the tool cannot append to (unknown suffix, unreadable, read-only, no label column):
    the labels_path parameter's to fix, so an expected error of the command lines (a ValueError too)."""


class LabelStore:
    """The rows of one labels file; ``add`` and ``undo`` change it at once (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, *, user: str | None = None):
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in SUFFIXES:
            raise LabelsFileError(f"{self.path}: labels file must end in {', '.join(SUFFIXES)}")
        self.user = user or _user_name()
        self._mine: list = []  # keys (row_edits) of the rows this store wrote, oldest first
        self._seen = None
        _check_writable(self.path)
        with self._locked():  # also proves the folder takes files, before the first click
            self._reload()

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
        for col, shift in (("end", length - 1), ("start", 0)):  # start wins where both are given
            if col in self.frame.columns:
                p = index.get_indexer(pd.to_datetime(self.frame[col], utc=True, errors="coerce"))
                pos = np.where(p >= 0, p - shift, pos)
        ok = (pos >= 0) & (pos + length <= len(index))
        return np.flatnonzero(ok), pos[ok]

    def refresh(self) -> None:
        """Re-read the file if another writer changed it since this store last looked."""
        if self._stamp() != self._seen:
            self._reload()

    def add(self, *, start, end, label: str, expansion_start: int, expansion_end: int, ohlc=None) -> dict:
        """Append one labelled window to the file (under its lock, re-read first); returns the row."""
        start, end = to_utc(start), to_utc(end)
        row = {
            "window_id": f"lab-{start:%Y%m%dT%H%M}",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "label": label,
            "expansion_start": int(expansion_start),
            "expansion_end": int(expansion_end),
            "labelled_by": self.user,
            "labelled_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
        }
        with self._locked():
            self._reload()  # another writer's rows are part of the file this one extends
            if self.windows_format:
                if ohlc is None:
                    raise LabelsFileError(f"{self.path} holds self-contained windows: new rows need their OHLC bars")
                row["features"] = np.asarray(ohlc, dtype=float).tolist()
            raw = self.path.read_bytes() if self.path.exists() else None
            try:
                data, key = row_edits.append(raw, row, self.suffix)
            except row_edits.RowEditError as e:
                raise LabelsFileError(f"{self.path}: cannot add a row: {e}") from None
            atomic_write_bytes(self.path, data)
            self._mine.append(key)
            self._reload()
        return row

    def undo(self) -> dict | None:
        """Remove the newest row this store wrote that is still in the file; returns it (None: none)."""
        with self._locked():
            while self._mine:
                raw = self.path.read_bytes() if self.path.exists() else b""
                before = self._reload()
                data = row_edits.remove(raw, self._mine[-1], self.suffix)
                if data is None:  # removed elsewhere already (another tab's undo, a hand edit)
                    self._mine.pop()
                    continue
                atomic_write_bytes(self.path, data)
                self._mine.pop()
                return _removed_row(before, self._reload())
        return None

    def _reload(self) -> pd.DataFrame:
        """Read the file (every writer's rows) into ``frame``; a missing or empty file has no rows."""
        stamp = self._stamp()
        if stamp is None or stamp[2] == 0:
            self.frame = pd.DataFrame(columns=list(COLUMNS))
        else:
            try:
                self.frame, _ = read_label_table(self.path)
            except (ValueError, OSError) as e:
                raise LabelsFileError(f"{self.path}: cannot read the existing labels file ({e})") from e
            if "label" not in self.frame.columns:
                raise LabelsFileError(
                    f"{self.path}: existing file has no 'label' column (columns: "
                    f"{list(self.frame.columns)}); choose another labels_path"
                )
        self._seen = stamp
        return self.frame

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except (OSError, ValueError):  # no file (yet), or a path no file can have: no rows to show
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    @contextlib.contextmanager
    def _locked(self):
        """Hold the file's lock (``.NAME.lock`` beside it); remove temp files a killed writer left."""
        lock = self.path.parent / f".{self.path.name}.lock"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except (OSError, ValueError) as e:
            raise LabelsFileError(
                f"{self.path}: cannot write in its folder ({getattr(e, 'strerror', None) or e}); "
                "choose another labels_path"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a write takes milliseconds: wait for the other writer
            for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
                stale.unlink(missing_ok=True)  # under the lock no writer is between mkstemp and replace
            yield
        finally:
            os.close(fd)


def _removed_row(before: pd.DataFrame, after: pd.DataFrame) -> dict:
    """The row of ``before`` that ``after`` lacks (by ``labelled_at``, unique to the microsecond)."""
    gone = ~before["labelled_at"].astype(str).isin(set(after["labelled_at"].astype(str)))
    return before[gone.to_numpy()].iloc[-1].to_dict()


def _check_writable(path: Path) -> None:
    """Refuse a labels file that cannot be written: a folder, or a read-only file (no write permission
    bit, or no access for this user)."""
    if path.is_dir():
        raise LabelsFileError(
            f"{path}: is a folder, not a labels file; give a file name ending in {', '.join(SUFFIXES)}"
        )
    if path.exists() and (
        not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK)
    ):
        raise LabelsFileError(
            f"{path}: the labels file is read-only; make it writable (chmod u+w) or choose another labels_path"
        )


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return os.environ.get("USER", "unknown")
