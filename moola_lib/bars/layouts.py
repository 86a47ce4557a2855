"""Where the timestamps and the prices are in a vendor's bar file (the layouts of README, "Your own bars").

``find_timestamps(frame, source, timestamp_column)`` returns the raw timestamp values and where they came
from, taking the first of:

1. ``timestamp_column``: the column (or index) of that name, any case; or two names joined by "+"
   (``"Date+Time"``): a date column and a time-of-day column, joined with a space;
2. a DatetimeIndex;
3. the first column named (any case) timestamp, ts_event or datetime;
4. a ``date`` column with a ``time`` column beside it (MetaTrader: ``Date,Time,Open,High,Low,Close,Volume``),
   joined;
5. a column named ``date`` or ``time`` alone, then an index of one of these names.

``find_columns(frame, source)`` maps open, high, low, close and the optional volume to the frame's columns by
name, any case, in the vendors' spellings (``COLUMN_ALIASES``: ``o,h,l,c,v``, ``Close/Last``, ``Vol``,
MetaTrader 5's ``<OPEN>``): the first spelling present wins; two columns of that spelling are ambiguous.
``csv_separator(path)`` reads a CSV's separator (comma, semicolon or tab) off its header line.
A frame neither finds raises ``DataValidationError`` listing the columns seen and the fix.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from .errors import DataValidationError

PRICE_COLUMNS = ("open", "high", "low", "close")
VOLUME_COLUMN = "volume"
COLUMN_ALIASES = {  # canonical name -> its spellings (compared stripped of "<>" and lower-cased), first wins
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c", "close/last", "last"),
    "volume": ("volume", "v", "vol", "tickvol", "tick_volume"),
}
TIMESTAMP_NAMES = ("timestamp", "ts_event", "datetime")
DATE_NAME, TIME_NAME = "date", "time"
_SEPARATORS = (",", ";", "\t")


def _key(name) -> str:
    return str(name).strip().strip("<>").strip().lower()


def csv_separator(path: Path) -> str:
    """The separator of a CSV (or .csv.gz) file: whichever of comma, semicolon and tab its header line holds
    most of (a comma when it holds none)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        header = f.readline()
    return max(_SEPARATORS, key=header.count)


def find_timestamps(frame: pd.DataFrame, source: str, column: str | None) -> tuple[object, str]:
    """The raw timestamps (a column, two joined, or the index) and where they came from, for messages."""
    by_key = {_key(c): c for c in frame.columns}
    index_key = _key(frame.index.name) if frame.index.name is not None else None
    if column is not None:
        return _named_timestamps(frame, source, column, by_key, index_key)
    if isinstance(frame.index, pd.DatetimeIndex):
        return frame.index, "the index"
    for key in TIMESTAMP_NAMES:
        if key in by_key:
            return frame[by_key[key]], f"column {by_key[key]!r}"
    if DATE_NAME in by_key and TIME_NAME in by_key:
        return _joined(frame, by_key[DATE_NAME], by_key[TIME_NAME])
    for key in (DATE_NAME, TIME_NAME):
        if key in by_key:
            return frame[by_key[key]], f"column {by_key[key]!r}"
    if index_key in (*TIMESTAMP_NAMES, DATE_NAME, TIME_NAME):
        return frame.index, "the index"
    raise DataValidationError(source, "timestamp_column", _no_timestamp_detail(frame))


def _named_timestamps(frame, source, column: str, by_key: dict, index_key) -> tuple[object, str]:
    key = _key(column)
    if key in by_key:
        return frame[by_key[key]], f"column {by_key[key]!r}"
    if key == index_key:
        return frame.index, "the index"
    parts = [_key(part) for part in column.split("+")]
    if len(parts) == 2 and all(part in by_key for part in parts):
        return _joined(frame, *(by_key[part] for part in parts))
    raise DataValidationError(
        source,
        "timestamp_column",
        f"timestamp_column={column!r} not found; columns seen: {list(frame.columns)}, index: {frame.index.name!r}"
        " (a date and a time column: 'Date+Time')",
    )


def _joined(frame: pd.DataFrame, date_column, time_column) -> tuple[pd.Series, str]:
    """A date column and a time-of-day column joined with a space ("2024.01.02" + "09:30")."""
    dates = frame[date_column]
    if pd.api.types.is_datetime64_any_dtype(dates):  # a parquet date: its text would carry "00:00:00"
        dates = dates.dt.strftime("%Y-%m-%d")
    text = dates.astype(str).str.strip() + " " + frame[time_column].astype(str).str.strip()
    return text.where(frame[date_column].notna() & frame[time_column].notna()), (
        f"columns {date_column!r} + {time_column!r}"
    )


def _no_timestamp_detail(frame: pd.DataFrame) -> str:
    names = ", ".join((*TIMESTAMP_NAMES, DATE_NAME, TIME_NAME))
    detail = (
        f"no timestamp found: the index is not a DatetimeIndex and no column is named one of {names} (any "
        f"case); columns seen: {list(frame.columns)}. Name the time column with timestamp_column=... (the "
        "timestamp_column parameter; 'Date+Time' for a date and a time column)"
    )
    first = str(frame.columns[0]) if len(frame.columns) else ""
    if any(ch.isdigit() for ch in first) and pd.notna(pd.to_datetime(first, errors="coerce", format="mixed")):
        detail += (
            f". The first line reads like data ({first!r} is a date): if the file has no header line, add "
            "one, e.g. Date,Time,Open,High,Low,Close,Volume"
        )
    return detail


def find_columns(frame: pd.DataFrame, source: str) -> dict[str, object]:
    """Map open, high, low, close (and volume, when there is one) to the frame's own column labels."""
    by_key: dict[str, list] = {}
    for c in frame.columns:
        by_key.setdefault(_key(c), []).append(c)
    found = {}
    for name, spellings in COLUMN_ALIASES.items():
        spelling = next((s for s in spellings if s in by_key), None)
        if spelling is None:
            continue
        if len(by_key[spelling]) > 1:
            raise DataValidationError(
                source,
                "ambiguous_columns",
                f"several columns match the same name (case-insensitive): {{{spelling!r}: {by_key[spelling]}}}",
            )
        found[name] = by_key[spelling][0]
    missing = [k for k in PRICE_COLUMNS if k not in found]
    if missing:
        spellings = "; ".join(f"{k}: {'/'.join(COLUMN_ALIASES[k])}" for k in missing)
        raise DataValidationError(
            source,
            "missing_columns",
            f"missing price column(s) {missing}; columns seen: {list(frame.columns)} (names read, any case: "
            f"{spellings})",
        )
    return found
