"""Timestamps of bar and label files, to UTC: the ``data_timezone`` rule and daylight saving time.

Contract of ``parse_times(values, data_timezone)`` (bar files: ``moola_lib.bars.ohlcv``; labels files:
``moola_lib.labels.rows``):

- epoch numbers (s, ms, us or ns since 1970-01-01 UTC, told apart by magnitude) are instants, in UTC;
- a value with a time zone or UTC offset (``2024-01-02T09:30:00-05:00``, ``...Z``, a tz-aware datetime) is
  used as it is, converted to UTC; ``data_timezone`` does not change it;
- a value without one (``2024-01-02 09:30``, a naive datetime, a date) is a wall-clock time in
  ``data_timezone`` (an IANA name: ``"UTC"``, ``"America/New_York"``, ...), placed by that zone's rules on
  its date, daylight saving time included. Without ``data_timezone`` moola does not guess: such values are
  marked ``naive``, and the callers refuse them with ``NAIVE_FIX`` (exchange-local times read as UTC would
  shift every window, split and 17:00 New York session cut by hours).

Daylight saving time, deliberately: when the clocks go back, one hour of wall-clock times occurs twice. A
file that holds both passes of it in order is placed by that order (the first pass is daylight time, the
second standard time: pandas' ``ambiguous="infer"``); any time in a repeated hour that the order cannot
place (the hour occurs once, or out of order) is marked ``ambiguous``. A time in the hour skipped when the
clocks go forward never existed there and is marked ``nonexistent``. The callers refuse both (a bar file's
rows may be dropped instead: ``on_invalid="drop"``): writing the UTC offset resolves them. Futures, stocks and
FX do not trade then (Sunday, 01:00-03:00 in New York), so real files seldom hold any.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import numpy as np
import pandas as pd

# the fix for times without a time zone: the messages of bar files and labels files end with it
NAIVE_FIX = (
    "pass data_timezone='UTC' if they are UTC, or the zone they were written in, e.g. "
    "data_timezone='America/New_York' (the data_timezone parameter), or write each time with its UTC offset "
    "(2024-03-01T09:30:00-05:00, or Z for UTC)"
)


def time_zone_problem(name) -> str | None:
    """What is wrong with a ``data_timezone`` value; None when nothing (None, or an IANA time zone name)."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
        return None
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        close = difflib.get_close_matches(str(name), sorted(available_timezones()), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return (
            f"data_timezone {name!r} is not a time zone name; give an IANA name such as 'UTC', "
            f"'America/New_York' or 'Europe/London'.{hint}"
        )


@dataclass(frozen=True)
class ParsedTimes:
    """The values of a timestamp column in UTC (``utc``, nanoseconds; NaT where a value is missing or marked)
    and the marks, one bool per value."""

    utc: pd.DatetimeIndex
    unparseable: np.ndarray  # present, but no timestamp
    naive: np.ndarray  # without a time zone, and no data_timezone to place it in
    ambiguous: np.ndarray  # in an hour data_timezone repeats, not placed by the order
    nonexistent: np.ndarray  # in an hour data_timezone skips
    # repeats an earlier value, all of them dates without a time of day: is the time in another column?
    repeated_dates: np.ndarray


def parse_times(values, data_timezone: str | None = None) -> ParsedTimes:
    """Parse ``values`` (a Series, an Index or an array) by the module's contract."""
    values = values if isinstance(values, (pd.Series, pd.Index)) else pd.Series(values)
    present = np.asarray(pd.notna(values))
    aware, wall = _parse(values)
    naive = np.asarray(wall.notna())
    ambiguous = nonexistent = np.zeros(len(values), dtype=bool)
    walls = wall[naive]
    dates_only = len(walls) > 1 and bool((walls == walls.normalize()).all())
    repeated_dates = naive & np.asarray(wall.duplicated()) & dates_only
    utc = aware
    if data_timezone is not None and naive.any():
        placed, ambiguous, nonexistent = _localize(wall, data_timezone)
        utc, naive = aware.where(~naive, placed), np.zeros(len(values), dtype=bool)
    unparseable = present & np.asarray(utc.isna()) & ~naive & ~ambiguous & ~nonexistent
    return ParsedTimes(utc, unparseable, naive, ambiguous, nonexistent, repeated_dates)


def _parse(values) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """(the values with a zone, in UTC; the values without one, as wall-clock times), each NaT elsewhere."""
    none = pd.DatetimeIndex(np.full(len(values), np.datetime64("NaT", "ns")))
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return _from_epoch(values), none
    try:
        parsed = pd.DatetimeIndex(pd.to_datetime(values)).as_unit("ns")  # one format, one zone: the fast path
    except (ValueError, TypeError, OverflowError):
        return _parse_each(values)
    if parsed.tz is None:
        return none.tz_localize("UTC"), parsed
    return parsed.tz_convert("UTC"), none


def _parse_each(values) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """The slow path, value by value: several formats, offsets or zones, or values that are no timestamp."""
    text = pd.Series(np.asarray(values, dtype=object))
    kind = np.fromiter((_zone_kind(v) for v in text), dtype=np.int8, count=len(text))
    aware = pd.to_datetime(text.where(kind == 1), utc=True, errors="coerce", format="mixed")
    wall = pd.to_datetime(text.where(kind == 0), errors="coerce", format="mixed")
    return pd.DatetimeIndex(aware).as_unit("ns"), pd.DatetimeIndex(wall).as_unit("ns")


def _zone_kind(value) -> int:
    """1: a timestamp with a time zone, 0: one without, -1: missing or no timestamp."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return -1
    return -1 if ts is pd.NaT else int(ts.tzinfo is not None)


def _from_epoch(values) -> pd.DatetimeIndex:
    numbers = np.asarray(values, dtype=np.float64)
    finite = np.abs(numbers[np.isfinite(numbers)])
    magnitude = float(np.median(finite)) if finite.size else 0.0
    unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
    return pd.DatetimeIndex(pd.to_datetime(numbers, unit=unit, utc=True, errors="coerce")).as_unit("ns")


def _localize(wall: pd.DatetimeIndex, zone: str) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Wall-clock times in ``zone`` -> UTC (module docstring), and which are ambiguous or nonexistent (NaT)."""
    tz, present = ZoneInfo(zone), np.asarray(wall.notna())
    standard = wall.tz_localize(tz, ambiguous=np.zeros(len(wall), dtype=bool), nonexistent="NaT")
    nonexistent = present & np.asarray(standard.isna())
    try:
        local = wall.tz_localize(tz, ambiguous="infer", nonexistent="NaT")
    except ValueError:  # a repeated hour that occurs once or out of order: the order places none of its times
        local = wall.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    ambiguous = present & np.asarray(local.isna()) & ~nonexistent
    return local.tz_convert("UTC"), ambiguous, nonexistent
