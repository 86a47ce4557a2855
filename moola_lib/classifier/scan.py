"""Scan new bars with a fitted classifier: a score for every window, and the episodes it detects.

The model is anything with the fitted classifier's interface (``ArmClassifier``, ``classifier.model``):
``predict_proba(X, valid, expansion=None) -> [N, C]`` (X float32 [N, L, 10], valid bool [N, L]),
``classes_`` (the C class names), ``feature_options`` (every ``relativity_features`` option),
``window_length`` (L) and ``meta`` (a dict).

``scan(model, bars, start, end, stride)``: the features of all ``bars`` under the model's options (the bars
before ``start`` are the features' warm-up history), then windows of L bars, one every ``stride`` bars from
the first bar of each contiguous run (``bars.windows.contiguous_runs``: valid feature bars only, no gap between
consecutive bars over ``max_gap_minutes``, so no window spans two sessions), kept where the window's first bar
lies in the dates ``start`` .. ``end`` (inclusive, UTC; None: open). Windows are gathered from the [T, 10]
feature array ``batch_size`` at a time (never more than [batch_size, L, 10] in memory) and scored by the
model. One row per window, in time order: ``start``, ``end`` (UTC times of its first and last bar),
``predicted`` (the most likely class) and ``p_<class>`` for every class.

What equals what. The features are causal (bar t's values depend on bars 0..t only), so for a model that
scores each window on its own:
- the same bars give the same scores however the dates are cut, exactly: a scan of the whole file is the
  concatenation of the scans up to a day and from the next day on;
- a file that starts later (the same bars without their earlier history) gives the same scores only where
  the features have forgotten where the history starts: ATR exactly after ``atr_period`` bars, the EMA of
  the range geometrically (x (1 - 2 / (ema_period + 1)) a bar, gone below float32 resolution within a few
  hundred bars), the zigzag from the first swing both histories confirm alike. Measured on the embedded
  market (tests/test_scan.py): with ``WARMUP_BARS`` (one trading day) of earlier bars the scores are those
  of the whole file exactly, with 105 they still differ. This is not a guarantee for every market (a leg that
  does not reverse keeps two zigzags apart): give a second file a day or more of history before ``start``.

``detections(scores, threshold, background)``: for every class but ``background``, the windows whose
probability of it is >= ``threshold``, merged by non-maximum suppression (keep the highest-scoring window,
drop the windows sharing a bar with it, repeat): one row per episode, ``start`` and ``end`` of the kept
window, ``class``, ``p`` (its probability, the episode's maximum) and ``n_windows`` (the windows it merged,
itself included). A run of windows above the threshold longer than two windows gives several episodes
side by side.

Which classes are detected: every class of the model, except the background class that
``model.meta["background"]`` names, if any (a "none" class: windows without a pattern). A model fitted on
pattern windows only (consolidation vs retracement, the labelled task) has no background class: it tells
which pattern a window would be, not whether there is one, and with two classes at threshold 0.5 every
window is a detection of one of them. Raise the threshold, or fit a model with a background class.

``scan_detections(model, bars, start, end, threshold, stride)``: both, the scores and their detections (of
every class but the background class); classify.ipynb calls it on bars it holds.

``scan_to_files(model, data_path, out_path, ...)``: checks the settings and the output path before any work
(``.parquet`` or ``.csv``; a folder that exists and takes files), loads the bars (``load_ohlcv``: a bad file
is a one-line DataValidationError), scans, and writes the scores to ``out_path`` and the detections beside
it (``<stem>.detections.<ext>``), each atomically in the format of its extension; returns a summary.
Expected errors are ``ScanError`` (a ``util.errors.ExpectedError``): one line on a command line.
"""

from __future__ import annotations

import numbers
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..bars.constants import SESSION_GAP_MINUTES
from ..bars.ohlcv import load_ohlcv
from ..bars.splits import to_utc
from ..bars.windows import contiguous_runs, gather_windows, run_window_starts
from ..features.relativity import relativity_features
from ..util.errors import ExpectedError
from ..util.io import TABLE_SUFFIXES, atomic_write_table

BATCH_SIZE = 4096  # windows scored at once: [4096, 105, 10] float32 is 17 MB
WARMUP_BARS = 1380  # one trading day: the history a later file needs to score as the whole file does


class ScanError(ExpectedError, ValueError):
    """A scan that cannot run as asked (its settings, dates or output path); the message says what to fix."""


def scan(
    model,
    bars: pd.DataFrame,
    start=None,
    end=None,
    stride: int = 1,
    *,
    max_gap_minutes: float | None = SESSION_GAP_MINUTES,
    batch_size: int = BATCH_SIZE,
) -> pd.DataFrame:
    """Score every window of ``bars`` whose first bar lies in the dates ``start`` .. ``end`` (module
    docstring); an empty range is a ScanError naming it and the data's span."""
    if not isinstance(bars.index, pd.DatetimeIndex) or bars.index.tz is None:
        raise TypeError("bars need a tz-aware DatetimeIndex (load_ohlcv / synthetic_ohlcv give one)")
    lo, hi = date_bounds(start, end)
    L = int(model.window_length)
    X, valid = relativity_features(bars, **model.feature_options)
    starts = run_window_starts(contiguous_runs(bars.index, max_gap_minutes, valid), L, stride)
    first = bars.index[starts]
    starts = starts[(first >= lo) & (first < hi)]
    if not len(starts):
        raise ScanError(_empty_range(bars.index, start, end, L, max_gap_minutes))
    proba = score_windows(model, X, starts, batch_size)
    columns = {f"p_{c}": proba[:, k] for k, c in enumerate(model.classes_)}
    return pd.DataFrame(
        {
            "start": bars.index[starts],
            "end": bars.index[starts + L - 1],
            "predicted": np.asarray(model.classes_, dtype=object)[proba.argmax(axis=1)],
            **columns,
        }
    )


def score_windows(model, X: np.ndarray, starts: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """``model.predict_proba`` of the windows of X [T, F] starting at ``starts``, gathered ``batch_size`` at a
    time (all their bars valid: the scan keeps such windows only); float64 [N, C]."""
    L, n_classes = int(model.window_length), len(model.classes_)
    out = np.empty((len(starts), n_classes))
    all_valid = np.ones((min(batch_size, len(starts)), L), dtype=bool)
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        p = np.asarray(model.predict_proba(gather_windows(X, chunk, L), all_valid[: len(chunk)]))
        if p.shape != (len(chunk), n_classes):
            raise ValueError(f"predict_proba returned shape {p.shape} for {len(chunk)} windows and {n_classes} classes")
        out[i : i + len(chunk)] = p
    return out


def date_bounds(start=None, end=None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The half-open UTC interval [start, end + 1 day) of the inclusive dates ``start`` .. ``end`` (None: open
    on that side); a value with a time of day, or an end before the start, is a ScanError."""
    bounds = []
    for name, value, default in (("start", start, pd.Timestamp.min), ("end", end, pd.Timestamp.max)):
        if value is None:
            bounds.append(default.tz_localize("UTC"))
            continue
        try:
            day = to_utc(value)
        except (ValueError, TypeError) as e:
            raise ScanError(f"{name} {value!r} is not a date (YYYY-MM-DD): {e}") from None
        if day != day.normalize():
            raise ScanError(f"{name} {value!r} has a time of day; give a date (YYYY-MM-DD, inclusive, UTC)")
        bounds.append(day + pd.Timedelta(days=1) if name == "end" else day)
    if bounds[1] <= bounds[0]:
        raise ScanError(f"end {end} is before start {start}")
    return bounds[0], bounds[1]


def _empty_range(index: pd.DatetimeIndex, start, end, length: int, max_gap_minutes) -> str:
    """What an empty scan range is, and why: the dates asked for, the data's span, and (when the range holds
    bars) that none of them starts a whole window."""
    lo, hi = date_bounds(start, end)
    n = int(((index >= lo) & (index < hi)).sum())
    asked = f"{start or 'the first bar'} .. {end or 'the last bar'} (inclusive UTC dates)"
    message = (
        f"no window to scan with its first bar in {asked}: the data spans {index[0]:%Y-%m-%d %H:%M} .. "
        f"{index[-1]:%Y-%m-%d %H:%M} UTC"
    )
    if n:
        gap = f" with no gap over {max_gap_minutes:g} minutes" if max_gap_minutes is not None else ""
        message += (
            f"; the {n} bars in that range start no window of {length} valid bars{gap} "
            "(the features' warm-up needs the first bars of a file)"
        )
    return message


def detections(scores: pd.DataFrame, threshold: float, background: str | None = None) -> pd.DataFrame:
    """The episodes of a scan (module docstring): one row per kept window, columns start, end, class, p,
    n_windows, in time order. ``scores``: ``scan``'s frame (or the file it was written to)."""
    check_threshold(threshold)
    classes = [str(c)[2:] for c in scores.columns if str(c).startswith("p_")]
    if background is not None and background not in classes:
        raise ValueError(f"the background class {background!r} is not one of the model's classes {classes}")
    start, end = (pd.DatetimeIndex(pd.to_datetime(scores[c], utc=True)) for c in ("start", "end"))  # a CSV's text too
    order = np.argsort(start.asi8, kind="stable")
    scores, start, end = scores.iloc[order], start[order], end[order]
    episodes = []
    for c in classes:
        if c == background:
            continue
        p = scores[f"p_{c}"].to_numpy(dtype=float)
        above = np.flatnonzero(p >= threshold)
        kept, merged = suppress(start[above], end[above], p[above])
        rows = {"start": start[above[kept]], "end": end[above[kept]], "class": c, "p": p[above[kept]]}
        episodes.append(pd.DataFrame({**rows, "n_windows": merged}))
    if not episodes:  # only a background class
        return pd.DataFrame(columns=["start", "end", "class", "p", "n_windows"])
    found = pd.concat(episodes, ignore_index=True)
    return found.sort_values(["start", "class"], kind="stable").reset_index(drop=True)


def scan_detections(
    model, bars: pd.DataFrame, start=None, end=None, threshold: float = 0.5, stride: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, detections): ``scan`` of ``bars``, then its ``detections`` at ``threshold`` of every class but
    the model's background class (``model.meta["background"]``, if any)."""
    scores = scan(model, bars, start, end, stride)
    return scores, detections(scores, threshold, model.meta.get("background"))


def check_stride(stride: int) -> None:
    """A scan's stride is a whole number of bars >= 1; anything else is a ScanError."""
    if isinstance(stride, bool) or not isinstance(stride, numbers.Real) or int(stride) != stride or stride < 1:
        raise ScanError(f"stride must be a whole number of bars >= 1, got {stride!r}")


def check_threshold(threshold: float) -> None:
    """A detection threshold is a probability in (0, 1]; anything else is a ScanError."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 < threshold <= 1:
        raise ScanError(f"threshold must be a probability in (0, 1], got {threshold!r}")


def suppress(start: pd.DatetimeIndex, end: pd.DatetimeIndex, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy non-maximum suppression of windows ordered by start (so that their ends are ordered too, as for
    windows of one length over one series): keep the highest ``p`` (the earlier window on a tie), drop every
    window sharing a bar with it, repeat. Returns the kept positions, highest p first, and how many windows
    each one absorbed (itself included; together, every window)."""
    order = np.argsort(-np.asarray(p), kind="stable")
    alive = np.ones(len(p), dtype=bool)
    kept, merged = [], []
    for i in order:  # one pass; the slice below drops a whole episode's windows at once
        if not alive[i]:
            continue
        lo, hi = end.searchsorted(start[i], side="left"), start.searchsorted(end[i], side="right")
        merged.append(int(alive[lo:hi].sum()))
        alive[lo:hi] = False
        kept.append(i)
    return np.asarray(kept, dtype=np.int64), np.asarray(merged, dtype=np.int64)


def output_paths(out_path: str | os.PathLike) -> tuple[Path, Path]:
    """The scores file and the detections file beside it (``<stem>.detections.<ext>``), checked before any
    work: a .parquet or .csv name, not a folder, in a folder that exists and takes files."""
    path = Path(out_path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ScanError(
            f"output {path}: name it .parquet or .csv (the format of the scores and detections files), "
            f"not {path.suffix or 'without an extension'}"
        )
    if path.is_dir():
        raise ScanError(f"output {path} is a folder; give a file name ending in .parquet or .csv")
    folder = path.parent
    if not folder.is_dir():
        why = "is a file, not a folder" if folder.exists() else "does not exist (create it first)"
        raise ScanError(f"output {path}: {folder} {why}")
    try:  # a real file, not a permission guess: also catches read-only file systems, and root on them
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ScanError(f"output {path}: cannot write in {folder} ({e.strerror or e}); choose another folder") from None
    return path, path.with_name(f"{path.stem}.detections{path.suffix}")


def scan_to_files(
    model, data_path, out_path, start=None, end=None, threshold: float = 0.5, stride: int = 1, read_options=None
) -> dict:
    """Scan the bars of ``data_path`` (read with ``read_options``: ``load_ohlcv``'s ``data_timezone``,
    ``timestamp_column``, ``resample_to_1min``) and write the scores and the detections (module docstring).
    Returns n_windows, n_detections, scores_path, detections_path, detected_classes, threshold, stride, seconds."""
    began = time.perf_counter()
    check_threshold(threshold)
    check_stride(stride)
    date_bounds(start, end)
    scores_path, detections_path = output_paths(out_path)
    bars = load_ohlcv(data_path, **(read_options or {}))
    scores, found = scan_detections(model, bars, start, end, threshold, int(stride))
    atomic_write_table(scores_path, scores)
    atomic_write_table(detections_path, found)
    return {
        "n_windows": len(scores),
        "n_detections": len(found),
        "scores_path": str(scores_path),
        "detections_path": str(detections_path),
        "detected_classes": [c for c in model.classes_ if c != model.meta.get("background")],
        "threshold": threshold,
        "stride": int(stride),
        "seconds": round(time.perf_counter() - began, 3),
    }
