"""Row checks of a labels table, shared by both formats (``labels``) and the time spans (``label_spans``).

Contract: every function takes the table (or one column of it), the window ids (for messages) and the
source name, and either returns the checked values or raises ``DataValidationError`` naming the failing
rows (``rows_text``: at most five shown). ``window_ids`` (given or ``row<i>``), ``encode_labels`` (stripped,
lower-cased labels -> class indices), ``expansion_offsets`` (bar offsets, -1 when absent),
``deduplicate`` / ``check_unique_ids`` (one row per window; conflicting labels raise, identical
duplicates are dropped with a warning), ``parse_times`` (UTC times by the rule of bar files: a value without a
time zone raises unless ``data_timezone`` names its zone).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..bars.constants import WINDOW_LENGTH
from ..bars.ohlcv import DataValidationError
from ..bars.timestamps import NAIVE_FIX
from ..bars.timestamps import parse_times as parse_bar_times


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


def parse_times(frame: pd.DataFrame, col: str, ids, name, data_timezone: str | None = None) -> pd.DatetimeIndex:
    """UTC times of ``frame[col]`` by the rule of bar files (``bars.timestamps``): a time with a zone or offset
    as it is, one without in ``data_timezone``. A value that is no timestamp, one without a time zone when
    ``data_timezone`` is None, or one that zone's clock change makes ambiguous or nonexistent raises."""
    times = parse_bar_times(frame[col], data_timezone)
    if times.naive.any():
        raise DataValidationError(
            name,
            "time_zone",
            f"{col!r} has no time zone in {rows_text(times.naive, ids)}: moola does not guess one (local exchange "
            f"times read as UTC shift every window by hours); {NAIVE_FIX}",
        )
    for mask, what in (
        (times.ambiguous, f"lies in an hour {data_timezone} repeats when its clocks go back, not placed by the order"),
        (times.nonexistent, f"lies in the hour {data_timezone} skips when its clocks go forward (no such time)"),
    ):
        if mask.any():
            raise DataValidationError(
                name, "time_zone", f"{col!r} {what} in {rows_text(mask, ids)}; write those times with their UTC offset"
            )
    if times.unparseable.any():
        raise DataValidationError(
            name, "timestamp", f"cannot parse {col!r} as a timestamp in {rows_text(times.unparseable, ids)}"
        )
    return times.utc
