"""Labelled windows for the transfer task: loading both file formats (the embedded set: ``moola_lib.labels.testbed``).

Two formats (DESIGN.md section 5):

(a) timestamps into the OHLCV file: columns ``start`` (first bar of the window) and/or ``end`` (last bar),
    ``label``, optional ``window_id``, ``expansion_start``, ``expansion_end``. Features are gathered from
    the relativity features of the full history, exactly as in pretraining.
(b) self-contained windows: ``window_id``, ``label``, ``features`` (105 rows of [open, high, low, close]),
    optional ``expansion_start``, ``expansion_end``. Features can only be computed from the window itself:
    ATR, EMA and zigzag start cold inside the window, the bars before warm-up are invalid, and the values
    differ from what the encoder saw in pretraining. The loader warns and sets ``cold_start=True``.

Files may be CSV, parquet or JSON (records or lines); a DataFrame works too.
The row checks shared by both formats (ids, labels, offsets, duplicates, timestamps) are in ``label_rows``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..bars.constants import WINDOW_LENGTH
from ..bars.ohlcv import DataValidationError
from ..bars.windows import gather_windows
from ..features.options import resolve_feature_options
from ..features.relativity import relativity_features
from ..util.io import file_sha256
from .rows import (
    check_unique_ids,
    deduplicate,
    encode_labels,
    expansion_offsets,
    parse_times,
    rows_text,
    window_ids,
)
from .windows import COLD_START_WARNING, outlier_notes, shared_bar_groups, window_array

DEFAULT_CLASSES = ("consolidation", "retracement")
# what each default class means (what the labeller looks at: the bars after the expansion leg); the labelling
# widget shows them, the embedded set's classes are made by them, a saved classifier records them
DEFAULT_CLASS_DEFINITIONS = {
    "consolidation": "price holds near the leg's end: a sideways range that gives back little of the leg",
    "retracement": "price moves back against the leg and gives back a clear part of it",
}


@dataclass
class LabelledSet:
    """N labelled windows ready for the classifier.

    ``groups``: windows that overlap in time (or share bars) have the same group id and must land in the
    same cross-validation fold. ``expansion``: [N, 2] bar offsets of the pattern inside each window,
    -1 where unknown. ``start``/``end``: UTC timestamps of the first/last bar (NaT without timestamps).
    ``truth``: how a synthetic set was made (None for user files). ``feature_options``: every option of
    ``relativity_features`` the windows' features were computed with (None: unknown, e.g. features passed in).
    ``class_definitions``: what each class means, one line each (None: not recorded, as in a labels file).
    """

    X: np.ndarray
    valid: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    window_id: np.ndarray
    start: pd.DatetimeIndex
    end: pd.DatetimeIndex
    expansion: np.ndarray
    groups: np.ndarray
    source: dict
    cold_start: bool = False
    warnings: list[str] = field(default_factory=list)
    truth: pd.DataFrame | None = None
    feature_options: dict | None = None
    class_definitions: dict[str, str] | None = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[self.y]

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts)}

    def table(self) -> pd.DataFrame:
        """One row per window: id, label, time span, pattern offsets, overlap group, valid bars."""
        return pd.DataFrame(
            {
                "window_id": self.window_id,
                "label": self.labels,
                "start": self.start,
                "end": self.end,
                "expansion_start": self.expansion[:, 0],
                "expansion_end": self.expansion[:, 1],
                "group": self.groups,
                "valid_bars": self.valid.sum(axis=1),
            }
        )

    def check_folds(self, folds: int, groups: np.ndarray | None = None) -> None:
        """Raise DataValidationError unless every class has >= ``folds`` windows and the groups (default:
        the overlap groups; the protocol passes its session groups) suffice."""
        name = self.source.get("path", "<labels>")
        small = {c: n for c, n in self.class_counts().items() if n < folds}
        if small:
            raise DataValidationError(
                name,
                "class_size",
                f"class(es) {small} have fewer windows than folds={folds}; use fewer folds or label more windows",
            )
        n_groups = len(np.unique(self.groups if groups is None else groups))
        if n_groups < folds:
            raise DataValidationError(
                name,
                "overlap_groups",
                f"only {n_groups} groups of windows that "
                f"may be split apart (overlap / session) for folds={folds}; use fewer "
                "folds or group_by_session False",
            )

    def summary(self) -> dict:
        """JSON-friendly description (for transfer_results.json)."""
        times = self.start.dropna()
        return {
            "n_windows": len(self),
            "classes": list(self.classes),
            "class_counts": self.class_counts(),
            "n_groups": len(np.unique(self.groups)),
            "first_start": times.min().isoformat() if len(times) else None,
            "last_start": times.max().isoformat() if len(times) else None,
            "invalid_bars": int((~self.valid).sum()),
            "cold_start": self.cold_start,
            "source": self.source,
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------------------------- reading


def read_label_table(source) -> tuple[pd.DataFrame, str]:
    """Read a labels table (CSV, parquet, JSON records, JSON lines) -> (frame, name for messages)."""
    if isinstance(source, pd.DataFrame):
        return source.reset_index(drop=True), "<DataFrame>"
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"labels file not found: {path}")
    if path.is_dir():
        raise DataValidationError(
            str(path), "labels_path", "is a folder, not a labels file (.csv, .parquet, .json or .jsonl)"
        )
    suffix = path.suffix.lower()
    # window ids stay text ("007" is not 7) and JSON values keep their JSON types
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    elif suffix == ".csv":
        frame = pd.read_csv(path, dtype={"window_id": str})
    elif suffix in (".jsonl", ".json"):
        frame = pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
    else:
        raise ValueError(f"{path}: unsupported labels format {suffix!r} (use .csv, .parquet, .json or .jsonl)")
    named_index = frame.index.names != [None]  # a parquet file's window_id index is a column of the table
    return frame.reset_index(drop=not named_index), str(path)


@dataclass(frozen=True)
class LabelTable:
    """A labels table read once: the frame, its name for messages and the file's SHA-256 (None for a
    DataFrame). ``load_labels`` accepts it in place of the file, so a caller that inspects the table first
    does not read the file twice."""

    frame: pd.DataFrame
    name: str
    sha256: str | None

    @classmethod
    def read(cls, source) -> LabelTable:
        frame, name = read_label_table(source)
        return cls(frame, name, None if isinstance(source, pd.DataFrame) else file_sha256(source))


def load_labels(
    source,
    bars: pd.DataFrame | None = None,
    *,
    features=None,
    classes=DEFAULT_CLASSES,
    label_column: str = "label",
    feature_options: dict | None = None,
    data_timezone: str | None = None,
) -> LabelledSet:
    """Load labelled windows of either format (see the module docstring) from a file, a DataFrame or a
    ``LabelTable`` already read.

    ``bars``: the full OHLCV frame (UTC index), needed for format (a). ``features``: optional precomputed
    ``relativity_features(bars)`` result to avoid recomputing it. ``classes``: the allowed labels in
    class-index order (None = the sorted labels found). Labels are compared stripped and lower-cased.
    ``start``/``end`` times without a time zone are refused unless ``data_timezone`` names it (``rows.parse_times``).
    """
    table = source if isinstance(source, LabelTable) else LabelTable.read(source)
    frame, name = table.frame, table.name
    if label_column not in frame.columns:
        raise DataValidationError(
            name,
            "label_column",
            f"no label column {label_column!r}; columns are {list(frame.columns)} (pass label_column=...)",
        )
    if len(frame) == 0:
        raise DataValidationError(name, "empty", "the labels table is empty")
    frame = frame.rename(columns={label_column: "label"})
    ids = window_ids(frame, name)
    y, classes = encode_labels(frame["label"], ids, classes, name)
    expansion = expansion_offsets(frame, ids, name)
    source_info = {"path": name, "format": None, "rows": len(frame)}
    if table.sha256 is not None:
        source_info["sha256"] = table.sha256
    options = dict(feature_options or {})
    times = {c: parse_times(frame, c, ids, name, data_timezone) for c in ("start", "end") if c in frame.columns}

    if "features" in frame.columns:
        source_info["format"] = "windows"
        return _from_windows(frame, times, ids, y, classes, expansion, name, source_info, options)
    if "start" in frame.columns or "end" in frame.columns:
        source_info["format"] = "timestamps"
        if bars is None:
            raise ValueError(f"{name}: windows are given by timestamps; pass the OHLCV bars they point into")
        return _from_timestamps(frame, times, ids, y, classes, expansion, bars, features, name, source_info, options)
    raise DataValidationError(
        name,
        "format",
        "cannot tell the format: expected a 'features' column "
        "(self-contained windows) or a 'start'/'end' column (timestamps); "
        f"columns are {list(frame.columns)}",
    )


# ------------------------------------------------------------------------------------ format (a)


def _window_starts(times: dict, n: int, ids, index: pd.DatetimeIndex, name) -> np.ndarray:
    """Each row's first bar in ``index``, from its ``start`` and/or ``end`` time (``times``, UTC, of the ``n``
    rows); DataValidationError for a
    time that is no bar of the data, a row without either, a start/end pair not WINDOW_LENGTH bars apart, or a
    window reaching outside the data."""
    n_bars = len(index)
    L = WINDOW_LENGTH
    pos, has = {}, {}
    for col in ("start", "end"):
        col_times = times.get(col, pd.DatetimeIndex([pd.NaT] * n, tz="UTC"))
        has[col] = np.asarray(col_times.notna())
        p = index.get_indexer(col_times)
        missing = (p < 0) & has[col]
        if missing.any():
            raise DataValidationError(
                name,
                "window_outside_data",
                f"{col!r} is not a bar of the data ({index[0]} .. {index[-1]}, {n_bars} bars) in "
                f"{rows_text(missing, ids)}",
            )
        pos[col] = p
    no_time = ~has["start"] & ~has["end"]
    if no_time.any():
        raise DataValidationError(name, "timestamp", f"no start/end timestamp in {rows_text(no_time, ids)}")
    wrong = has["start"] & has["end"] & (pos["end"] - pos["start"] + 1 != L)
    if wrong.any():
        raise DataValidationError(
            name, "window_length", f"windows must span {L} bars from start to end in {rows_text(wrong, ids)}"
        )
    start = np.where(has["start"], pos["start"], pos["end"] - (L - 1))
    outside = (start < 0) | (start + L > n_bars)
    if outside.any():
        raise DataValidationError(
            name,
            "window_outside_data",
            f"window of {L} bars reaches outside the data ({index[0]} .. {index[-1]}) in {rows_text(outside, ids)}",
        )
    return start


def _from_timestamps(frame, times, ids, y, classes, expansion, bars, features, name, source_info, options):
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValueError("bars must have a tz-aware DatetimeIndex (use load_ohlcv / synthetic_ohlcv)")
    L = WINDOW_LENGTH
    start = _window_starts(times, len(frame), ids, index, name)

    keys = [int(s) for s in start]
    check_unique_ids(ids, keys, name)
    keep, note = deduplicate(keys, y, ids, name, "same start bar")
    start = start[keep].astype(np.int64)
    X_full, valid_full = features if features is not None else relativity_features(bars, **options)
    X = gather_windows(np.asarray(X_full), start, length=L).astype(np.float32, copy=False)
    valid = gather_windows(np.asarray(valid_full)[:, None], start, length=L)[..., 0].astype(bool)
    notes = [note] if note else []
    if (~valid).any():
        notes.append(
            f"{name}: {int((~valid).any(axis=1).sum())} window(s) contain bars before the "
            f"feature warm-up (marked invalid, ignored by the classifier's pooling)"
        )
    source_info["duplicates_dropped"] = int(len(frame) - len(keep))
    return LabelledSet(
        X=X,
        valid=valid,
        y=y[keep],
        classes=classes,
        window_id=ids[keep],
        start=index[start],
        end=index[start + L - 1],
        expansion=expansion[keep],
        groups=overlap_groups(start, L),
        source=source_info,
        warnings=notes,
        feature_options=resolve_feature_options(options) if features is None or options else None,
    )


def overlap_groups(starts: np.ndarray, length: int = WINDOW_LENGTH) -> np.ndarray:
    """Group ids such that windows [s, s + length) that overlap (transitively) share a group."""
    starts = np.asarray(starts, dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    s = starts[order]
    new_group = np.ones(len(s), dtype=bool)
    new_group[1:] = s[1:] >= np.maximum.accumulate(s + length)[:-1]
    groups = np.empty(len(s), dtype=np.int64)
    groups[order] = np.cumsum(new_group) - 1
    return groups


# ------------------------------------------------------------------------------------ format (b)


def _from_windows(frame, times, ids, y, classes, expansion, name, source_info, options):
    ohlc = np.stack([window_array(cell, wid, name) for cell, wid in zip(frame["features"], ids)])
    keys = [a.tobytes() for a in ohlc]
    check_unique_ids(ids, keys, name)
    keep, note = deduplicate(keys, y, ids, name, "identical bars")
    source_info["duplicates_dropped"] = int(len(frame) - len(keep))
    ohlc = ohlc[keep]
    feats = [relativity_features(dict(zip(("open", "high", "low", "close"), w.T)), **options) for w in ohlc]
    X = np.stack([f[0] for f in feats]).astype(np.float32)
    valid = np.stack([f[1] for f in feats]).astype(bool)
    notes = [f"{name}: {COLD_START_WARNING}"] + ([note] if note else []) + outlier_notes(ohlc, ids[keep], name)
    warnings.warn(notes[0], stacklevel=3)
    empty = ~valid.any(axis=1)
    if empty.any():
        msg = (
            f"{name}: dropped {int(empty.sum())} window(s) with no valid bar after the cold-start warm-up: "
            f"{list(ids[keep][empty][:10])}"
        )
        warnings.warn(msg, stacklevel=3)
        notes.append(msg)
        keep, ohlc, X, valid = keep[~empty], ohlc[~empty], X[~empty], valid[~empty]
    span = {
        c: times[c][keep] if c in times else pd.DatetimeIndex([pd.NaT] * len(keep), tz="UTC") for c in ("start", "end")
    }
    source_info["dropped_no_valid_bar"] = int(empty.sum())
    return LabelledSet(
        X=X,
        valid=valid,
        y=y[keep],
        classes=classes,
        window_id=ids[keep],
        start=span["start"],
        end=span["end"],
        expansion=expansion[keep],
        groups=shared_bar_groups(ohlc),
        source=source_info,
        cold_start=True,
        warnings=notes,
        feature_options=resolve_feature_options(options),
    )
