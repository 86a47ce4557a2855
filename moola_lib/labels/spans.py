"""When the labelled windows are: their time spans from a labels file, and the ``PretrainConfig.exclude``
entries that keep them out of pretraining (``moola_lib.exclude_intervals``).
"""

from __future__ import annotations

import pandas as pd

from ..bars.constants import WINDOW_LENGTH
from .rows import parse_times, window_ids
from .sets import LabelledSet, load_labels, read_label_table


def label_time_spans(source, bar_minutes: float = 1.0, data_timezone: str | None = None):
    """(start, end, name) of the windows of a labels file or DataFrame, as UTC DatetimeIndexes (NaT where a
    row has none; times without a zone in ``data_timezone``, else refused: ``rows.parse_times``); a missing
    column is the other one -+ WINDOW_LENGTH - 1 bars of ``bar_minutes`` (too short across a session halt).
    (None, None, name) when the file has neither column (self-contained)."""
    frame, name = read_label_table(source)
    span = pd.Timedelta(minutes=(WINDOW_LENGTH - 1) * bar_minutes)
    ids = window_ids(frame, name)
    col = {c: parse_times(frame, c, ids, name, data_timezone) for c in ("start", "end") if c in frame}
    if not col:
        return None, None, name
    start = col["start"] if "start" in col else col["end"] - span
    end = col["end"] if "end" in col else col["start"] + span
    return start, end, name


def exclude_intervals(
    labels,
    bars: pd.DataFrame | None = None,
    *,
    margin_minutes: float = 0.0,
    bar_minutes: float = 1.0,
    data_timezone: str | None = None,
) -> list[list[str]]:
    """``PretrainConfig.exclude`` entries ([start, end] ISO strings, overlapping ones merged) that keep
    the labelled windows (plus ``margin_minutes`` each side) out of pretraining.

    ``labels``: a LabelledSet, or a labels file / DataFrame with ``start`` and/or ``end`` timestamps (times
    without a zone in ``data_timezone``, else refused).
    With ``bars`` the windows are resolved exactly; without, a missing end (start) is taken as
    WINDOW_LENGTH - 1 bars of ``bar_minutes`` after (before) the other, which is too short across session gaps: add a
    margin, or set ``PretrainConfig.exclude_margin_bars``.
    """
    if not isinstance(labels, LabelledSet) and bars is not None:
        labels = load_labels(labels, bars, data_timezone=data_timezone)
    if isinstance(labels, LabelledSet):
        start, end, name = labels.start, labels.end, labels.source.get("path", "<labels>")
    else:
        start, end, name = label_time_spans(labels, bar_minutes, data_timezone)
        if start is None:
            raise ValueError(f"{name}: no 'start' or 'end' column; self-contained windows carry no timestamps")
        span = pd.Timedelta(minutes=(WINDOW_LENGTH - 1) * bar_minutes)
        start, end = start.where(start.notna(), end - span), end.where(end.notna(), start + span)
    if start.isna().any():
        raise ValueError(f"{name}: {int(start.isna().sum())} window(s) without timestamps cannot be excluded")
    margin = pd.Timedelta(minutes=margin_minutes)
    spans = sorted(zip(start - margin, end + margin))
    merged: list[list] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [[lo.isoformat(), hi.isoformat()] for lo, hi in merged]
