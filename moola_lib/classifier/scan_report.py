"""Figures of a scan (``classifier.scan``), for a notebook or a report; each draws what it is given.

- ``top_detections_figure``: the most probable detections on their candles, with grey context around each
  window: the label notebook's gallery (``labelling.figures.window_gallery``), so a detection looks like a
  window to label;
- ``detections_per_day_figure``: detections per UTC day and class, every scanned day shown (zeros too);
- ``score_histograms_figure``: the distribution of every class's probability over the scanned windows, with
  the detection threshold.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..bars.constants import WINDOW_LENGTH
from ..labelling.figures import window_gallery


def top_detections_figure(
    bars: pd.DataFrame, found: pd.DataFrame, n: int = 8, *, context: int = 15, length: int = WINDOW_LENGTH
) -> plt.Figure:
    """The ``n`` detections of highest ``p`` (``scan.detections`` of these bars), highest first."""
    top = found.sort_values("p", ascending=False, kind="stable").head(n)
    position = bars.index.get_indexer(pd.DatetimeIndex(top["start"]))
    if (position < 0).any():
        raise ValueError("detections start at times that are not bars of these bars: pass the bars that were scanned")
    titles = [
        f"#{k + 1} {row['class']} p={row['p']:.2f} ({row['n_windows']} windows)\n"
        f"{pd.Timestamp(row['start']):%Y-%m-%d %H:%M} UTC"
        for k, (_, row) in enumerate(top.iterrows())
    ]
    suptitle = f"Top {len(top)} of {len(found)} detections, highest probability first; grey: context outside the window"
    return window_gallery(bars, pd.DataFrame({"start": position}), titles, suptitle, context=context, length=length)


def detections_per_day_figure(found: pd.DataFrame, scores: pd.DataFrame) -> plt.Figure:
    """Detections per UTC day (of their first bar), one bar per class side by side, over every day that
    ``scores`` (the scan) holds a window of."""
    days = pd.DatetimeIndex(scores["start"]).normalize().unique()
    classes = sorted(found["class"].unique()) if len(found) else []
    counts = (
        found.assign(day=pd.DatetimeIndex(found["start"]).normalize())
        .pivot_table(index="day", columns="class", values="p", aggfunc="size", fill_value=0)
        .reindex(index=days, columns=classes, fill_value=0)
    )
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(days) + 2), 3.2))
    width = 0.8 / max(len(classes), 1)
    x = np.arange(len(days))
    for k, c in enumerate(classes):
        ax.bar(x + (k - (len(classes) - 1) / 2) * width, counts[c].to_numpy(), width, label=c)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{d:%m-%d}" for d in days], rotation=90, fontsize=7)
    ax.set_ylabel("detections")
    ax.set_title(f"Detections per day (UTC), {len(found)} in all", fontsize=10)
    if classes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def score_histograms_figure(scores: pd.DataFrame, threshold: float | None = None, bins: int = 50) -> plt.Figure:
    """One histogram per class of its probability over the scanned windows (log counts), the threshold marked."""
    columns = [c for c in scores.columns if str(c).startswith("p_")]
    fig, axes = plt.subplots(1, len(columns), figsize=(3.6 * len(columns), 2.8), squeeze=False, sharey=True)
    for ax, column in zip(axes.flat, columns):
        ax.hist(scores[column].to_numpy(), bins=bins, range=(0.0, 1.0), color="#1565c0")
        if threshold is not None:
            above = int((scores[column] >= threshold).sum())
            ax.axvline(threshold, color="#c62828", lw=1, label=f"threshold {threshold:g}: {above:,} windows")
            ax.legend(fontsize=7)
        ax.set_yscale("log")
        ax.set_xlabel(f"p({column[2:]})")
    axes.flat[0].set_ylabel("windows")
    fig.suptitle(f"Scores of {len(scores):,} windows", fontsize=10)
    fig.tight_layout()
    return fig
