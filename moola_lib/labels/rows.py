"""Row checks of a labels table, shared by both formats (``labels``) and the time spans (``label_spans``).

Contract: every function takes the table (or one column of it), the window ids (for messages) and the
source name, and either returns the checked values or raises ``DataValidationError`` naming the failing
rows (``rows_text``: at most five shown). ``window_ids`` (given or ``row<i>``), ``encode_labels`` (stripped,
lower-cased labels -> class indices), ``expansion_offsets`` (bar offsets, -1 when absent),
``deduplicate`` / ``check_unique_ids`` (one row per window; conflicting labels raise, identical
duplicates are dropped with a warning), ``parse_times`` (UTC times; a value without a time zone raises).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..bars.constants import WINDOW_LENGTH
from ..bars.ohlcv import DataValidationError


def rows_text(mask: np.ndarray, ids: np.ndarray, limit: int = 5) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(f"row {r} (window_id {ids[r]!r})" for r in rows[:limit])
    return f"{len(rows)} row(s): {shown}" + (" ..." if len(rows) > limit else "")


def window_ids(frame: pd.DataFrame, name: str) -> np.ndarray:
    if "window_id" not in frame.columns:
        return np.array([f"row{i}" for i in range(len(frame))], dtype=object)
    ids = frame["window_id"]
    if ids.isna().any():
        raise DataValidationError(
            name,
            "window_id",
            f"missing window_id in {rows_text(ids.isna().to_numpy(), np.arange(len(frame)).astype(object))}",
        )
    return ids.astype(str).to_numpy(dtype=object)


def encode_labels(labels: pd.Series, ids, classes, name) -> tuple[np.ndarray, tuple[str, ...]]:
    missing = labels.isna().to_numpy()
    if missing.any():
        raise DataValidationError(name, "missing_label", f"missing label in {rows_text(missing, ids)}")
    norm = labels.astype(str).str.strip().str.lower()
    classes = tuple(sorted(norm.unique())) if classes is None else tuple(c.lower() for c in classes)
    if len(classes) < 2:
        raise DataValidationError(name, "classes", f"need at least two classes, found {list(classes)}")
    unknown = ~norm.isin(classes).to_numpy()
    if unknown.any():
        bad = sorted(norm[unknown].unique())
        raise DataValidationError(
            name, "unknown_label", f"unknown label(s) {bad} (allowed: {list(classes)}) in {rows_text(unknown, ids)}"
        )
    lookup = {c: i for i, c in enumerate(classes)}
    return norm.map(lookup).to_numpy(dtype=np.int64), classes


def expansion_offsets(frame: pd.DataFrame, ids, name) -> np.ndarray:
    out = np.full((len(frame), 2), -1, dtype=np.int64)
    for j, col in enumerate(("expansion_start", "expansion_end")):
        if col not in frame.columns:
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        present = frame[col].notna().to_numpy()
        v = values.to_numpy(dtype=float)
        bad = present & ~(np.isfinite(v) & (v == np.round(v)) & (v >= 0) & (v < WINDOW_LENGTH))
        if bad.any():
            raise DataValidationError(
                name, "expansion_offsets", f"{col} must be a bar offset 0..{WINDOW_LENGTH - 1} in {rows_text(bad, ids)}"
            )
        out[present, j] = v[present].astype(np.int64)
    both = (out >= 0).all(axis=1)
    bad = both & (out[:, 0] > out[:, 1])
    if bad.any():
        raise DataValidationError(
            name, "expansion_offsets", f"expansion_start > expansion_end in {rows_text(bad, ids)}"
        )
    return out


def deduplicate(keys: list, y: np.ndarray, ids: np.ndarray, name: str, what: str):
    """Indices to keep (first of each key) and a note on dropped duplicates; conflicting labels raise."""
    first: dict = {}
    keep, dropped = [], []
    for i, key in enumerate(keys):
        j = first.setdefault(key, i)
        if j == i:
            keep.append(i)
        elif y[j] != y[i]:
            raise DataValidationError(
                name,
                "conflicting_labels",
                f"the same window ({what}) has conflicting "
                f"labels: row {j} (window_id {ids[j]!r}) and row {i} "
                f"(window_id {ids[i]!r})",
            )
        else:
            dropped.append(f"{ids[i]} (= {ids[j]})")
    note = None
    if dropped:
        note = f"{name}: dropped {len(dropped)} duplicate window(s) with the same label: {', '.join(dropped[:10])}"
        warnings.warn(note, stacklevel=3)
    return np.asarray(keep, dtype=np.int64), note


def check_unique_ids(ids: np.ndarray, keys: list, name: str) -> None:
    seen: dict = {}
    for i, (wid, key) in enumerate(zip(ids, keys)):
        j = seen.setdefault(wid, i)
        if keys[j] != key:
            raise DataValidationError(
                name, "window_id", f"window_id {wid!r} names two different windows (rows {j} and {i})"
            )


def parse_times(frame: pd.DataFrame, col: str, ids, name) -> pd.DatetimeIndex:
    """UTC times of ``frame[col]``; a value that is no timestamp, or one without a time zone, raises."""
    raw = frame[col]
    naive = _without_zone(raw)
    if naive.any():
        raise DataValidationError(
            name,
            "time_zone",
            f"{col!r} has no time zone in {rows_text(naive, ids)}: moola "
            "does not guess one (local exchange times read as UTC shift every window by "
            "hours). Write each time with its UTC offset, e.g. 2024-03-01T09:30:00-05:00, "
            "or with Z for UTC",
        )
    times = pd.to_datetime(raw, utc=True, errors="coerce")
    bad = (times.isna() & raw.notna()).to_numpy()
    if bad.any():
        raise DataValidationError(name, "timestamp", f"cannot parse {col!r} as a timestamp in {rows_text(bad, ids)}")
    return pd.DatetimeIndex(times)


def _without_zone(raw: pd.Series) -> np.ndarray:
    """Which values are timestamps without a time zone (text like "2024-03-01 09:30", naive datetimes)."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return np.zeros(len(raw), dtype=bool)
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return raw.notna().to_numpy()

    def naive(value) -> bool:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return False
        try:
            return pd.Timestamp(value).tzinfo is None
        except (ValueError, TypeError, OverflowError):
            return False  # not a timestamp at all: the parse check names it

    return np.fromiter((naive(v) for v in raw), dtype=bool, count=len(raw))
