"""Figures of candidate windows for labelling: one window with its context (the labelling widget), and a
gallery of a batch of suggestions (the headless report). Each draws what it is given (matplotlib).

Bars are drawn at offsets relative to the window's first bar, so the window is 0..104 and the context
before/after it lies outside, greyed; the expansion leg is shaded, and the labelling figure marks the
bars after the leg (the part of the window the label is about). ``window_gallery`` draws any windows
(a ``start`` bar position each; an expansion leg only where given) as small multiples: the suggestions here,
a scan's detections in ``moola_lib.classifier.scan_report``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..bars.constants import WINDOW_LENGTH
from ..features.eda_plots import CANDLE_FEATURES, SWING_FEATURES, draw_candles
from ..features.relativity import FEATURE_NAMES

EXPANSION = "#ff9800"
CONTEXT = "0.92"


def _draw_window(
    ax, bars: pd.DataFrame, window: pd.Series, context: int, length: int, expansion_ticks: bool = True
) -> None:
    """Candles of the window and ``context`` bars each side; context greyed, expansion shaded; time ticks
    at the window's first and last bar (and the expansion's, where there is room for them)."""
    s = int(window["start"])
    lo, hi = max(0, s - context), min(len(bars), s + length + context)
    draw_candles(ax, bars.iloc[lo:hi], x=np.arange(lo - s, hi - s))
    ax.axvspan(lo - s - 0.5, -0.5, color=CONTEXT, zorder=0)
    ax.axvspan(length - 0.5, hi - s - 0.5, color=CONTEXT, zorder=0)
    has_leg = "expansion_start" in window.index
    if has_leg:
        leg = (window["expansion_start"] - 0.5, window["expansion_end"] + 0.5)
        ax.axvspan(*leg, color=EXPANSION, alpha=0.25, zorder=0)
    ax.set_xlim(lo - s - 1, hi - s)
    ticks = [
        0,
        *([int(window["expansion_start"]), int(window["expansion_end"])] if expansion_ticks and has_leg else []),
        length - 1,
    ]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{bars.index[s + t]:%H:%M}" for t in ticks], fontsize=7)


def _title(window: pd.Series, prefix: str = "") -> str:
    return (
        f"{prefix}{window['start_time']:%Y-%m-%d %H:%M} UTC, {window['direction']} leg "
        f"{window['size_atr']:.1f} ATR (bars {int(window['expansion_start'])}-{int(window['expansion_end'])})"
    )


def _mark_follow_up(ax, expansion_end: int, length: int) -> None:
    """An arrow along the top of the price panel over the bars after the leg: the part the label is about."""
    if expansion_end + 1 >= length:
        return
    top = ax.get_xaxis_transform()  # x in bars, y in axes fraction
    ax.annotate(
        "",
        xy=(expansion_end + 0.5, 0.97),
        xytext=(length - 0.5, 0.97),
        xycoords=top,
        arrowprops={"arrowstyle": "<->", "color": "#1565c0", "lw": 1.2},
    )
    ax.text(
        (expansion_end + length) / 2,
        0.93,
        f"label: bars {expansion_end + 1}-{length - 1} after the leg",
        transform=top,
        ha="center",
        va="top",
        fontsize=8,
        color="#1565c0",
    )


def labelling_figure(
    bars: pd.DataFrame,
    X: np.ndarray,
    window: pd.Series,
    *,
    context: int = 30,
    length: int = WINDOW_LENGTH,
    title: str = "",
) -> plt.Figure:
    """One candidate: candles with context (grey) and the expansion (orange); its features below."""
    s = int(window["start"])
    fig, axes = plt.subplots(3, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [2.2, 1, 1]})
    _draw_window(axes[0], bars, window, context, length)
    axes[0].set_ylabel("price")
    axes[0].set_title(_title(window, title), fontsize=10)
    _mark_follow_up(axes[0], int(window["expansion_end"]), length)
    for ax, group in ((axes[1], CANDLE_FEATURES), (axes[2], SWING_FEATURES)):
        for name in group:
            ax.plot(np.arange(length), X[s : s + length, FEATURE_NAMES.index(name)], lw=0.9, label=name)
        ax.axvspan(window["expansion_start"] - 0.5, window["expansion_end"] + 0.5, color=EXPANSION, alpha=0.15)
        ax.legend(fontsize=7, ncol=3, loc="upper left")
    axes[1].set_ylabel("candle features")
    axes[2].set_ylabel("swing features")
    axes[2].set_xlabel("window start, expansion start/end, window end (UTC); grey: context outside the window")
    fig.tight_layout()
    return fig


def suggestions_gallery(
    bars: pd.DataFrame, batch: pd.DataFrame, *, context: int = 15, columns: int = 4, length: int = WINDOW_LENGTH
) -> plt.Figure:
    """The suggested windows in rank order, small multiples (candles, context grey, expansion orange)."""
    titles = [
        f"#{k + 1} {w['start_time']:%Y-%m-%d %H:%M}\n{w['direction']} {w['size_atr']:.1f} ATR"
        for k, (_, w) in enumerate(batch.iterrows())
    ]
    return window_gallery(
        bars,
        batch,
        titles,
        "Suggested windows (rank order); orange: expansion leg, grey: context outside the window",
        context=context,
        columns=columns,
        length=length,
    )


def window_gallery(
    bars: pd.DataFrame,
    windows: pd.DataFrame,
    titles: list[str],
    suptitle: str,
    *,
    context: int = 15,
    columns: int = 4,
    length: int = WINDOW_LENGTH,
) -> plt.Figure:
    """``windows`` (a ``start`` bar position each; ``expansion_start`` / ``expansion_end`` shaded where
    given) in their order, small multiples of candles with ``context`` grey bars each side."""
    n = max(len(windows), 1)
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, min(columns, n), figsize=(4.2 * min(columns, n), 2.9 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(windows):
            ax.axis("off")
            continue
        _draw_window(ax, bars, windows.iloc[k], context, length, expansion_ticks=False)  # small panels: no room
        ax.set_title(titles[k], fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig
