"""The labels file the labelling tool writes: one row per click, saved at once, safe for several writers.

New rows are in the timestamp format ``labels.load_labels`` reads (format (a)): ``window_id``, ``start``,
``end`` (ISO UTC), ``label``, ``expansion_start``, ``expansion_end``, plus ``labelled_by`` and
``labelled_at`` (UTC, to the microsecond). A file of self-contained windows (format (b), a ``features``
column) gets the new windows' OHLC bars in ``features`` as well (plus their timestamps), so it still
loads as format (b). The file keeps its own format (CSV, parquet, JSON records or JSON lines, by suffix).

Several writers (two browser tabs, two people on one box, a script) may share one file. Every write
holds an exclusive ``flock`` on the sidecar lock file ``.NAME.lock`` beside it, re-reads the file under
that lock if another writer changed it, and changes only its own row (``row_edits``: the bytes of every
other row stay exactly as they were): no writer's row is lost. Reading the file to show others' rows holds
the lock shared. A labels path that is a symlink (one shared file linked into each person's folder) is
written through to its target, and the lock is the target's (``.TARGET.lock`` beside it): every link
shares one file and one lock. A rewritten file keeps its mode and group, and a new lock file takes the
labels file's (``io.atomic_write_bytes``), so a private file stays private and a group-shared one
writable by the group.

What a click costs: a CSV or JSON lines file gets the new row appended (``O_APPEND``, fsync) and an undo
of the file's last row cuts it off (truncate), so neither depends on the file's size; a crash in the
middle of that one write can leave the row being written cut short at the end of the file (every other
row is untouched), and a write that fails (disk full) is taken back. Anything else -- a CSV header that
gains the tool's columns, an undo of a row others appended after, JSON records, parquet (which has no
append: its footer describes the whole file) -- rewrites the whole file atomically
(``io.atomic_write_bytes``) and re-reads it: seconds on a file of 100 MB, during which other writers
wait; a crash leaves the previous complete file. Temp files a killed writer left (``.NAME.<random>.tmp``,
``io.temp_files``) are removed under the lock. The lock file stays (removing it would race with a writer
waiting on it).

``undo`` removes the newest row that this store wrote and that is still in the file: never a row from
elsewhere, another labeller's or one written before this store was opened. Reopening the file continues
where the labeller stopped: its rows are the labelled set (``frame``, kept current after every write and
by ``refresh``). A file that cannot be written (read-only, a folder, a folder that takes no files) is
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
from ..util.io import append_bytes, atomic_write_bytes, keep_group_and_mode, temp_files, truncate_file
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
        self._mine: list = []  # (key (row_edits), row) of the rows this store wrote, oldest first
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

    @property
    def target(self) -> Path:
        """The file written: ``path``, or the file it links to (resolved at every write)."""
        return Path(os.path.realpath(self.path))

    def refresh(self) -> None:
        """Re-read the file if another writer changed it since this store last looked."""
        if self._stamp() != self._seen:
            with self._locked(shared=True):  # never a row half-appended
                self._reload_if_changed()

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
            self._reload_if_changed()  # another writer's rows are part of the file this one extends
            if self.windows_format:
                if ohlc is None:
                    raise LabelsFileError(f"{self.path} holds self-contained windows: new rows need their OHLC bars")
                row["features"] = np.asarray(ohlc, dtype=float).tolist()
            raw = self._read_bytes()
            try:
                data, key = row_edits.append(raw, row, self.suffix)
            except row_edits.RowEditError as e:
                raise LabelsFileError(f"{self.path}: cannot add a row: {e}") from None
            self._save(raw, data, lambda: pd.concat([self.frame, pd.DataFrame([row])], ignore_index=True))
            self._mine.append((key, row))
        return row

    def undo(self) -> dict | None:
        """Remove the newest row this store wrote that is still in the file; returns it (None: none)."""
        with self._locked():
            self._reload_if_changed()
            while self._mine:
                key, row = self._mine.pop()
                raw = self._read_bytes()
                data = row_edits.remove(raw, key, self.suffix)
                if data is not None:  # else removed elsewhere already (another tab's undo, a hand edit)
                    self._save(raw, data, lambda: self.frame.iloc[:-1])
                    return row
        return None

    def _read_bytes(self) -> bytes:
        return self.target.read_bytes() if self.target.exists() else b""

    def _save(self, raw: bytes, data: bytes, rows_after) -> None:
        """Turn the file's bytes ``raw`` into ``data`` (under the lock) the cheapest safe way (see the module
        docstring): bytes added at the end are appended, bytes cut from the end truncated, anything else
        replaces the file atomically and is read back. ``rows_after()``: the rows then, when only the end
        of the file changed (one row added or removed there: no need to read it all again)."""
        if raw and len(data) > len(raw) and data.startswith(raw):
            append_bytes(self.target, data[len(raw) :])
        elif len(data) < len(raw) and raw.startswith(data):
            truncate_file(self.target, len(data))
        else:
            atomic_write_bytes(self.target, data)
            self._reload()
            return
        self.frame, self._seen = rows_after(), self._stamp()

    def _reload_if_changed(self) -> None:
        if self._stamp() != self._seen:
            self._reload()

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
    def _locked(self, *, shared: bool = False):
        """Hold the file's lock (``.NAME.lock`` beside the target), shared to read or exclusive to write; the
        exclusive holder removes the temp files a killed writer left."""
        fd = self._open_lock()
        try:
            # a write takes milliseconds (a rewrite of a large file seconds): wait for the other writer
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            if not shared:
                for stale in temp_files(self.target):
                    stale.unlink(missing_ok=True)  # under the lock no writer is between creating and replacing
            yield
        finally:
            os.close(fd)

    def _open_lock(self) -> int:
        """The lock file, opened read-only (``flock`` needs no write access, so a lock file another labeller
        created serves this one too); a new one gets the labels file's mode and group, so that whoever may
        write the labels may take their lock."""
        target = self.target
        lock = target.parent / f".{target.name}.lock"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                return os.open(lock, os.O_RDONLY)
        except (OSError, ValueError) as e:
            raise LabelsFileError(
                f"{self.path}: cannot write in its folder ({getattr(e, 'strerror', None) or e}); "
                "choose another labels_path"
            ) from None
        keep_group_and_mode(fd, target)
        return fd


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
