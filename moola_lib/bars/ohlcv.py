"""Load and validate 1-minute OHLCV bars (the bars of a run and their splits: ``moola_lib.bars.sources``).

Every loader returns the same frame shape: a ``DatetimeIndex`` named "timestamp" (tz-aware UTC,
nanosecond unit) and float64 columns open, high, low, close (+ volume when the source has one). Bad
input raises ``DataValidationError`` naming the source, the check, how many rows fail and the first
offending timestamps; ``on_invalid="drop"`` drops such rows instead and records what it dropped in
``frame.attrs["dropped"]``. A price far from its neighbours (a bad tick: 1e300 among prices near 2e4)
passes the checks but is reported as a suspect outlier (``SuspectOutlierWarning``, with its timestamps).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..util.errors import ExpectedError
from .constants import WINDOW_LENGTH

PRICE_COLUMNS = ("open", "high", "low", "close")
VOLUME_COLUMN = "volume"
TIMESTAMP_NAMES = ("timestamp", "ts_event", "datetime", "date", "time")
_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_N_EXAMPLES = 5
# the remedy the messages offer: a parameter of load_ohlcv, of the pretrain and transfer jobs (command line and
# notebooks) and of the sweep's base; the EDA notebook drops bad rows itself
DROP_OPTION = "on_invalid='drop' (the on_invalid parameter)"
OUTLIER_FACTOR = 10.0  # a price this many times above or below the median close around it is suspect
OUTLIER_NEIGHBOURS = 11  # bars in that centred median: robust to a run of up to 5 bad bars


class DataValidationError(ExpectedError, ValueError):
    """Invalid data: ``source`` (file or "<DataFrame>"), the ``check`` that failed, a ``detail`` text and,
    for row checks, ``n_rows`` failing. The message reads "<source>: check '<check>' failed: <detail>"."""

    def __init__(self, source: str, check: str, detail: str, n_rows: int | None = None):
        super().__init__(f"{source}: check '{check}' failed: {detail}")
        self.source, self.check, self.detail, self.n_rows = source, check, detail, n_rows

    def __reduce__(self):  # picklable (e.g. across worker processes) despite the multi-argument __init__
        return type(self), (self.source, self.check, self.detail, self.n_rows)


class DataValidationWarning(UserWarning):
    """Emitted when ``on_invalid="drop"`` dropped or reordered rows."""


class SuspectOutlierWarning(DataValidationWarning):
    """Emitted for bars whose prices are OUTLIER_FACTOR times away from the bars around them."""


def load_ohlcv(
    path: str | os.PathLike,
    *,
    timestamp_column: str | None = None,
    on_invalid: str = "raise",
    min_bars: int = WINDOW_LENGTH,
) -> pd.DataFrame:
    """Read bars from ``.parquet``/``.pq`` or ``.csv``/``.csv.gz`` and validate them (see ``validate_ohlcv``).

    The timestamp comes from a DatetimeIndex, the column ``timestamp_column``, or the first column named
    (case-insensitively) one of timestamp, ts_event, datetime, date, time. Strings, datetimes and epoch
    numbers (s, ms, us or ns, told apart by magnitude) are accepted; naive times are taken as UTC.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DataValidationError(source, "missing_file", "not a file" if path.exists() else "no such file")
    name = path.name.lower()
    if name.endswith(_CSV_SUFFIXES):
        reader = pd.read_csv
    elif name.endswith(_PARQUET_SUFFIXES):
        reader = pd.read_parquet
    else:
        raise DataValidationError(
            source,
            "unreadable_file",
            "unknown file type; expected one of " + ", ".join(_CSV_SUFFIXES + _PARQUET_SUFFIXES),
        )
    try:
        raw = reader(path)
    except Exception as exc:  # any parser failure means the file itself is unreadable
        raise DataValidationError(source, "unreadable_file", f"{type(exc).__name__}: {exc}") from exc
    return validate_ohlcv(
        raw, source=source, on_invalid=on_invalid, min_bars=min_bars, timestamp_column=timestamp_column
    )


def validate_ohlcv(
    frame: pd.DataFrame,
    *,
    source: str = "<DataFrame>",
    on_invalid: str = "raise",
    min_bars: int = WINDOW_LENGTH,
    timestamp_column: str | None = None,
) -> pd.DataFrame:
    """Return a new, validated bar frame built from ``frame`` (which is never modified).

    Checks, in order: bad_timestamp, non_numeric, non_finite, non_positive_price, high_below_open_close,
    low_above_open_close (together these imply high >= low), negative_volume, duplicate_timestamp,
    unsorted_timestamp, too_few_bars. ``on_invalid="raise"`` raises on the first failing check;
    ``"drop"`` drops the failing rows, sorts by time, keeps the first of duplicate timestamps, warns,
    and records ``attrs["dropped"] = {check: n_rows}``. Fewer than ``min_bars`` bars always raises.
    """
    if on_invalid not in ("raise", "drop"):
        raise ValueError(f"on_invalid must be 'raise' or 'drop', got {on_invalid!r}")
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    source = str(source)
    ts_values = _find_timestamps(frame, source, timestamp_column)
    columns = _find_columns(frame, source)
    ts, bad_ts = _parse_timestamps(ts_values)
    rows = _RowChecks(source, ts, drop=on_invalid == "drop")
    values = _check_rows(rows, frame, columns, bad_ts)
    positions, stamps, n_unsorted = _check_order(rows, ts)
    if len(stamps) < min_bars:
        raise DataValidationError(
            source,
            "too_few_bars",
            f"{len(stamps)} valid bars, fewer than min_bars={min_bars} (one window)"
            + (f" after dropping {rows.dropped}" if rows.dropped else ""),
        )
    if len(positions) < len(frame) or n_unsorted:  # the value arrays are fresh copies: no need to copy again
        values = {name: v[positions] for name, v in values.items()}
    out = pd.DataFrame(values, index=stamps, copy=False)
    out.attrs["dropped"] = rows.dropped
    _warn_dropped(source, rows.dropped, n_unsorted, len(frame))
    out.attrs["suspect_outliers"] = _warn_outliers(source, out)
    return out


class _RowChecks:
    """The failing rows so far: ``fail`` raises on the first failing check, or (``drop``) marks its rows."""

    def __init__(self, source: str, ts: pd.DatetimeIndex, drop: bool):
        self.source, self.ts, self.drop = source, ts, drop
        self.bad = np.zeros(len(ts), dtype=bool)
        self.dropped: dict[str, int] = {}

    def fail(self, name: str, mask: np.ndarray, what: str) -> None:
        mask = mask & ~self.bad
        n = int(mask.sum())
        if n == 0:
            return
        if not self.drop:
            raise DataValidationError(
                self.source,
                name,
                f"{n} of {len(self.ts)} rows {what}; first at "
                f"{_examples(self.ts, mask, by_row=name == 'bad_timestamp')}. "
                f"Fix the file, or pass {DROP_OPTION} to drop such rows.",
                n_rows=n,
            )
        self.dropped[name] = n
        self.bad |= mask


def _check_rows(rows: _RowChecks, frame: pd.DataFrame, columns: dict, bad_ts: np.ndarray) -> dict:
    """The per-row checks, in order; returns the float64 column values (all rows)."""
    rows.fail("bad_timestamp", bad_ts, "have a missing or unparseable timestamp")
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


def _find_timestamps(frame: pd.DataFrame, source: str, column: str | None):
    """The raw timestamps: a column or the index."""
    lower = {str(c).strip().lower(): c for c in frame.columns}
    index_name = str(frame.index.name).strip().lower() if frame.index.name is not None else None
    if column is not None:
        key = column.strip().lower()
        if key in lower:
            return frame[lower[key]]
        if key == index_name:
            return frame.index
        raise DataValidationError(
            source,
            "timestamp_column",
            f"timestamp_column={column!r} not found; columns seen: {list(frame.columns)}, index: {frame.index.name!r}",
        )
    if isinstance(frame.index, pd.DatetimeIndex):
        return frame.index
    for key in TIMESTAMP_NAMES:
        if key in lower:
            return frame[lower[key]]
    if index_name in TIMESTAMP_NAMES:
        return frame.index
    raise DataValidationError(
        source,
        "timestamp_column",
        f"no timestamp found: the index is not a DatetimeIndex and no column is named "
        f"one of {', '.join(TIMESTAMP_NAMES)} (any case); columns seen: "
        f"{list(frame.columns)}. Rename the time column to 'timestamp' (in Python: "
        "load_ohlcv(path, timestamp_column=...))",
    )


def _find_columns(frame: pd.DataFrame, source: str) -> dict[str, object]:
    """Map canonical OHLCV names to the frame's own column labels (case-insensitive)."""
    found: dict[str, list] = {}
    for c in frame.columns:
        found.setdefault(str(c).strip().lower(), []).append(c)
    wanted = PRICE_COLUMNS + (VOLUME_COLUMN,)
    ambiguous = {k: v for k, v in found.items() if k in wanted and len(v) > 1}
    if ambiguous:
        raise DataValidationError(
            source, "ambiguous_columns", f"several columns match the same name (case-insensitive): {ambiguous}"
        )
    missing = [k for k in PRICE_COLUMNS if k not in found]
    if missing:
        raise DataValidationError(
            source, "missing_columns", f"missing price column(s) {missing}; columns seen: {list(frame.columns)}"
        )
    return {k: found[k][0] for k in wanted if k in found}


def _parse_timestamps(values) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Parse to a UTC, ns DatetimeIndex; also return the mask of rows whose timestamp is missing/bad."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.abs(numbers[np.isfinite(numbers)])
        magnitude = float(np.median(finite)) if finite.size else 0.0
        unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
        parsed = pd.to_datetime(values, unit=unit, utc=True, errors="coerce")
    else:
        try:
            parsed = pd.to_datetime(values, utc=True)
        except (ValueError, TypeError, OverflowError):
            parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    index = pd.DatetimeIndex(parsed).as_unit("ns")
    return index.rename("timestamp"), np.asarray(index.isna())


def _to_float(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float64 copy of a column and the mask of values that are present but not numbers."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        return values, np.zeros(len(column), dtype=bool)
    numbers = pd.to_numeric(column, errors="coerce")
    arr = numbers.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    return arr, np.isnan(arr) & np.asarray(column.notna())


def _examples(ts: pd.DatetimeIndex, mask: np.ndarray, by_row: bool) -> str:
    rows = np.flatnonzero(mask)[:_N_EXAMPLES]
    return "rows " + ", ".join(str(r) for r in rows) + " (0-based)" if by_row else _fmt(ts[rows])


def _fmt(stamps) -> str:
    return ", ".join(str(t) for t in stamps)
