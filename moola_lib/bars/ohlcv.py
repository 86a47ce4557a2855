"""Load and validate 1-minute OHLCV bars (the bars of a run and their splits: ``moola_lib.bars.sources``).

Every loader returns the same frame shape: a ``DatetimeIndex`` named "timestamp" (tz-aware UTC,
nanosecond unit) and float64 columns open, high, low, close (+ volume when the source has one), one bar per
minute at most. Where the timestamps and prices are in a vendor's layout: ``moola_lib.bars.layouts``; how
timestamps become UTC (times without a zone are refused unless ``data_timezone`` names it):
``moola_lib.bars.timestamps``; the 1-minute interval (finer bars aggregated on request, coarser refused):
``moola_lib.bars.interval``. Bad input raises ``DataValidationError`` naming the source, the check, how many
rows fail and the first offending timestamps; ``on_invalid="drop"`` drops such rows instead and records what it
dropped in ``frame.attrs["dropped"]``. A price far from its neighbours (a bad tick: 1e300 among prices near
2e4) passes the checks but is reported as a suspect outlier (``SuspectOutlierWarning``, with its timestamps).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..util.config import ConfigError
from .constants import WINDOW_LENGTH
from .errors import DataValidationError
from .interval import one_minute_bars
from .layouts import PRICE_COLUMNS, VOLUME_COLUMN, csv_separator, find_columns, find_timestamps
from .timestamps import NAIVE_FIX, ParsedTimes, parse_times, time_zone_problem

_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_N_EXAMPLES = 5
# the remedy the messages offer: a parameter of load_ohlcv, of the pretrain and transfer jobs (command line and
# notebooks) and of the sweep's base; the EDA notebook drops bad rows itself
DROP_OPTION = "on_invalid='drop' (the on_invalid parameter)"
OUTLIER_FACTOR = 10.0  # a price this many times above or below the median close around it is suspect
OUTLIER_NEIGHBOURS = 11  # bars in that centred median: robust to a run of up to 5 bad bars
_TIME_CHECKS = ("bad_timestamp", "ambiguous_time", "nonexistent_time")  # rows named by position and value


class DataValidationWarning(UserWarning):
    """Emitted when ``on_invalid="drop"`` dropped or reordered rows."""


class SuspectOutlierWarning(DataValidationWarning):
    """Emitted for bars whose prices are OUTLIER_FACTOR times away from the bars around them."""


def load_ohlcv(
    path: str | os.PathLike,
    *,
    timestamp_column: str | None = None,
    data_timezone: str | None = None,
    resample_to_1min: bool = False,
    on_invalid: str = "raise",
    min_bars: int = WINDOW_LENGTH,
) -> pd.DataFrame:
    """Read bars from ``.parquet``/``.pq`` or ``.csv``/``.csv.gz`` (comma, semicolon or tab separated) and
    validate them (``validate_ohlcv``: the layouts found, ``data_timezone``, ``resample_to_1min``)."""
    _check_time_zone(data_timezone)  # a typo is found before a large file is read
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DataValidationError(source, "missing_file", "not a file" if path.exists() else "no such file")
    name = path.name.lower()
    if not name.endswith(_CSV_SUFFIXES + _PARQUET_SUFFIXES):
        raise DataValidationError(
            source,
            "unreadable_file",
            "unknown file type; expected one of " + ", ".join(_CSV_SUFFIXES + _PARQUET_SUFFIXES),
        )
    try:
        parquet = name.endswith(_PARQUET_SUFFIXES)
        raw = pd.read_parquet(path) if parquet else pd.read_csv(path, sep=csv_separator(path))
    except Exception as exc:  # any parser failure means the file itself is unreadable
        raise DataValidationError(source, "unreadable_file", f"{type(exc).__name__}: {exc}") from exc
    return validate_ohlcv(
        raw,
        source=source,
        on_invalid=on_invalid,
        min_bars=min_bars,
        timestamp_column=timestamp_column,
        data_timezone=data_timezone,
        resample_to_1min=resample_to_1min,
    )


def validate_ohlcv(
    frame: pd.DataFrame,
    *,
    source: str = "<DataFrame>",
    on_invalid: str = "raise",
    min_bars: int = WINDOW_LENGTH,
    timestamp_column: str | None = None,
    data_timezone: str | None = None,
    resample_to_1min: bool = False,
) -> pd.DataFrame:
    """Return a new, validated bar frame built from ``frame`` (which is never modified).

    The timestamps and columns are found as ``layouts`` says (``timestamp_column``: a column, or "Date+Time");
    times without a time zone are refused unless ``data_timezone`` says what they are (``timestamps``).
    Checks, in order: time_zone and dates without times among duplicates (the file's layout: always raise),
    bad_timestamp, ambiguous_time, nonexistent_time (a data_timezone's clock changes), non_numeric,
    non_finite, non_positive_price, high_below_open_close, low_above_open_close (together these imply
    high >= low), negative_volume, duplicate_timestamp, unsorted_timestamp, bar_interval (``interval``:
    1 minute, or finer with ``resample_to_1min``), too_few_bars. ``on_invalid="raise"`` raises on the first
    failing row check; ``"drop"`` drops the failing rows, sorts by time, keeps the first of duplicate
    timestamps, warns, and records ``attrs["dropped"] = {check: n_rows}``. Fewer than ``min_bars`` bars
    always raises.
    """
    if on_invalid not in ("raise", "drop"):
        raise ValueError(f"on_invalid must be 'raise' or 'drop', got {on_invalid!r}")
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    _check_time_zone(data_timezone)
    source = str(source)
    raw_times, where = find_timestamps(frame, source, timestamp_column)
    columns = find_columns(frame, source)
    times = parse_times(raw_times, data_timezone)
    _check_time_layout(times, raw_times, source, where)
    rows = _RowChecks(source, times.utc, raw_times, drop=on_invalid == "drop")
    values = _check_rows(rows, frame, columns, times, data_timezone)
    positions, stamps, n_unsorted = _check_order(rows, times.utc.rename("timestamp"))
    if len(positions) < len(frame) or n_unsorted:  # the value arrays are fresh copies: no need to copy again
        values = {name: v[positions] for name, v in values.items()}
    out = one_minute_bars(pd.DataFrame(values, index=stamps, copy=False), source, resample_to_1min)
    if len(out) < min_bars:
        raise DataValidationError(
            source,
            "too_few_bars",
            f"{len(out)} valid bars, fewer than min_bars={min_bars} (one window)"
            + (f" after dropping {rows.dropped}" if rows.dropped else ""),
        )
    out.attrs["dropped"] = rows.dropped
    _warn_dropped(source, rows.dropped, n_unsorted, len(frame))
    out.attrs["suspect_outliers"] = _warn_outliers(source, out)
    return out


def _check_time_zone(data_timezone) -> None:
    if problem := time_zone_problem(data_timezone):
        raise ConfigError(problem)


def _check_time_layout(times: ParsedTimes, raw, source: str, where: str) -> None:
    """Problems of the whole timestamp column, which dropping rows cannot fix: dates without a time of day
    that repeat (the time is in another column), and times without a time zone (none given)."""
    repeated = np.flatnonzero(times.repeated_dates)
    if len(repeated):
        raise DataValidationError(
            source,
            "duplicate_timestamp",
            f"{len(repeated)} duplicate timestamps: the timestamps ({where}) look like dates without times, e.g. "
            f"{_values(raw, repeated[:1])}; is the time of day in another column (Date + Time)? Name both with "
            "timestamp_column='Date+Time' (the timestamp_column parameter)",
            n_rows=len(repeated),
        )
    if times.naive.any():
        first = np.flatnonzero(times.naive)[:_N_EXAMPLES]
        raise DataValidationError(
            source,
            "time_zone",
            f"{int(times.naive.sum())} of {len(times.naive)} timestamps ({where}) have no time zone, first "
            f"rows {', '.join(map(str, first))} (0-based): {_values(raw, first)}; moola does not guess one "
            f"(exchange-local times read as UTC shift every window by hours): {NAIVE_FIX}",
            n_rows=int(times.naive.sum()),
        )


class _RowChecks:
    """The failing rows so far: ``fail`` raises on the first failing check, or (``drop``) marks its rows."""

    def __init__(self, source: str, ts: pd.DatetimeIndex, raw, drop: bool):
        self.source, self.ts, self.raw, self.drop = source, ts, raw, drop
        self.bad = np.zeros(len(ts), dtype=bool)
        self.dropped: dict[str, int] = {}

    def fail(self, name: str, mask: np.ndarray, what: str) -> None:
        mask = mask & ~self.bad
        n = int(mask.sum())
        if n == 0:
            return
        if not self.drop:
            rows = np.flatnonzero(mask)[:_N_EXAMPLES]
            where = (
                f"rows {', '.join(map(str, rows))} (0-based): {_values(self.raw, rows)}"
                if name in _TIME_CHECKS
                else _fmt(self.ts[rows])
            )
            raise DataValidationError(
                self.source,
                name,
                f"{n} of {len(self.ts)} rows {what}; first at {where}. "
                f"Fix the file, or pass {DROP_OPTION} to drop such rows.",
                n_rows=n,
            )
        self.dropped[name] = n
        self.bad |= mask


def _check_rows(rows: _RowChecks, frame: pd.DataFrame, columns: dict, times: ParsedTimes, zone) -> dict:
    """The per-row checks, in order; returns the float64 column values (all rows)."""
    missing = np.asarray(times.utc.isna()) & ~times.ambiguous & ~times.nonexistent  # or unparseable
    rows.fail("bad_timestamp", missing, "have a missing or unparseable timestamp")
    rows.fail(
        "ambiguous_time",
        times.ambiguous,
        f"are wall-clock times in an hour {zone} repeats when its clocks go back, which their order "
        "does not place (the first pass is daylight time, the second standard time; an offset would)",
    )
    rows.fail(
        "nonexistent_time",
        times.nonexistent,
        f"are wall-clock times in the hour {zone} skips when its clocks go forward: no such time existed",
    )
    values, non_numeric = {}, np.zeros(len(frame), dtype=bool)
    for name, original in columns.items():
        values[name], col_bad = _to_float(frame[original])
        non_numeric |= col_bad
    rows.fail("non_numeric", non_numeric, "hold non-numeric values")
    rows.fail("non_finite", ~np.logical_and.reduce([np.isfinite(v) for v in values.values()]), "hold NaN or inf")
    for check in price_checks(*(values[k] for k in PRICE_COLUMNS)):
        rows.fail(*check)
    if VOLUME_COLUMN in values:
        with np.errstate(invalid="ignore"):
            rows.fail("negative_volume", values[VOLUME_COLUMN] < 0, "have volume < 0")
    return values


def price_checks(o: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray) -> list[tuple[str, np.ndarray, str]]:
    """The checks every finite OHLC bar must pass, in order, as (check name, failing rows, what they
    have): the one definition for bar files and self-contained labelled windows."""
    with np.errstate(invalid="ignore"):
        return [
            ("non_positive_price", (o <= 0) | (h <= 0) | (l <= 0) | (c <= 0), "have a price <= 0"),
            ("high_below_open_close", h < np.maximum(o, c), "have high < max(open, close)"),
            ("low_above_open_close", l > np.minimum(o, c), "have low > min(open, close)"),
        ]


def _check_order(rows: _RowChecks, ts: pd.DatetimeIndex) -> tuple[np.ndarray, pd.DatetimeIndex, int]:
    """Duplicate and unsorted timestamps among the rows kept so far: raise, or (drop) sort and keep the
    first of each duplicate. Returns the kept row positions, their timestamps and the unsorted count."""
    n_total = len(ts)
    positions = np.flatnonzero(~rows.bad)
    stamps = ts[positions]
    earlier = stamps.asi8[1:] < stamps.asi8[:-1]
    n_unsorted = int(earlier.sum())
    if n_unsorted and rows.drop:
        order = np.argsort(stamps.asi8, kind="stable")
        positions, stamps = positions[order], stamps[order]
    duplicated = stamps.duplicated(keep="first")
    n_dup = int(duplicated.sum())
    if n_dup and not rows.drop:
        raise DataValidationError(
            rows.source,
            "duplicate_timestamp",
            f"{n_dup} of {n_total} rows repeat an earlier timestamp; first at "
            f"{_fmt(stamps[duplicated][:_N_EXAMPLES])}. "
            f"Fix the file, or pass {DROP_OPTION} to keep the first of each.",
            n_rows=n_dup,
        )
    if n_unsorted and not rows.drop:
        first = np.flatnonzero(earlier)[:_N_EXAMPLES] + 1
        raise DataValidationError(
            rows.source,
            "unsorted_timestamp",
            f"{n_unsorted} of {n_total} rows have a timestamp earlier than the row "
            f"before; first at {_fmt(stamps[first])}. "
            f"Sort the data or pass {DROP_OPTION} to sort it.",
            n_rows=n_unsorted,
        )
    if n_dup:
        rows.dropped["duplicate_timestamp"] = n_dup
        positions, stamps = positions[~duplicated], stamps[~duplicated]
    return positions, stamps, n_unsorted


def _warn_dropped(source: str, dropped: dict, n_unsorted: int, n_total: int) -> None:
    if not (dropped or n_unsorted):
        return
    notes = (
        [
            f"dropped {sum(dropped.values())} of {n_total} rows ("
            + ", ".join(f"{k}={n}" for k, n in dropped.items())
            + ")"
        ]
        if dropped
        else []
    )
    notes += [f"sorted {n_unsorted} out-of-order rows"] if n_unsorted else []
    warnings.warn(f"{source}: {'; '.join(notes)}", DataValidationWarning, stacklevel=3)


def suspect_outliers(ohlc: np.ndarray) -> np.ndarray:
    """Which bars of ``ohlc`` [N, 4] (open, high, low, close) hold a price OUTLIER_FACTOR times above or
    below the median close of the OUTLIER_NEIGHBOURS bars around them (files and label windows alike)."""
    if ohlc.max() <= OUTLIER_FACTOR * ohlc.min():
        # each median lies in [min, max], so no price is that far from one (1.8M bars: 20 ms, not 0.7 s)
        return np.zeros(len(ohlc), dtype=bool)
    median = pd.Series(ohlc[:, 3]).rolling(OUTLIER_NEIGHBOURS, center=True, min_periods=1).median().to_numpy()
    with np.errstate(over="ignore", divide="ignore"):
        ratio = ohlc / median[:, None]
    return ((ratio > OUTLIER_FACTOR) | (ratio < 1 / OUTLIER_FACTOR)).any(axis=1)


def _warn_outliers(source: str, bars: pd.DataFrame) -> int:
    """Warn about bars with a price OUTLIER_FACTOR times above or below the median close of the
    OUTLIER_NEIGHBOURS bars around them; returns how many there are. They are kept: a bad tick and a
    real jump cannot be told apart for certain, and a jump lasts longer than half that median."""
    suspect = suspect_outliers(bars[list(PRICE_COLUMNS)].to_numpy())
    n = int(suspect.sum())
    if n:
        warnings.warn(
            f"{source}: {n} suspect outlier bar(s), a price more than {OUTLIER_FACTOR:g}x away from the "
            f"median close of the {OUTLIER_NEIGHBOURS} bars around it; first at "
            f"{_fmt(bars.index[suspect][:_N_EXAMPLES])}. They are kept: check the file",
            SuspectOutlierWarning,
            stacklevel=3,
        )
    return n


def _to_float(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float64 copy of a column and the mask of values that are present but not numbers."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        return values, np.zeros(len(column), dtype=bool)
    numbers = pd.to_numeric(column, errors="coerce")
    arr = numbers.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    return arr, np.isnan(arr) & np.asarray(column.notna())


def _values(raw, rows: np.ndarray) -> str:
    """The raw timestamp values of ``rows`` (positions), as the file holds them."""
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in pd.Series(raw).iloc[rows])


def _fmt(stamps) -> str:
    return ", ".join(str(t) for t in stamps)
