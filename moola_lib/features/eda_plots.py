"""Figures and small tables of the data and its features (EDA): data summary, gaps, prices with candles
and swings, feature distributions, tables and warnings, swing frequency, correlations and windows
(matplotlib; every function returns its figure or frame). Pretraining and sweep figures:
``moola_lib.pretraining.plots``; transfer figures: ``moola_lib.transfer.figures``; labelling figures:
``moola_lib.labelling.figures``.

Notebooks call these and display the result; they hold no plotting logic of their own, and these functions
draw what they are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..bars.constants import WINDOW_LENGTH
from ..bars.sources import describe_source
from .options import FEATURE_RANGES
from .relativity import FEATURE_NAMES

UP, DOWN = "#2e7d32", "#c62828"
CANDLE_FEATURES = FEATURE_NAMES[:6]
SWING_FEATURES = FEATURE_NAMES[6:]


# ----------------------------------------------------------------------------------------------------
# data summary tables


def data_summary(bars: pd.DataFrame, source: str | Mapping) -> pd.DataFrame:
    """One-column table: source (a text or a ``sources.bars_source`` dict), bars, date range, trading days,
    bars per day, dropped rows."""
    days = bars.index.normalize().unique()
    sessions = 1 + int((np.diff(bars.index.asi8) > 30 * 60e9).sum())
    dropped = bars.attrs.get("dropped") or {}
    rows = {
        "source": source if isinstance(source, str) else describe_source(source),
        "bars": f"{len(bars):,}",
        "first bar (UTC)": str(bars.index[0]),
        "last bar (UTC)": str(bars.index[-1]),
        "days with bars": f"{len(days):,}",
        "sessions (no gap > 30 min inside)": f"{sessions:,}",
        "median bars per day": f"{bars.groupby(bars.index.normalize()).size().median():,.0f}",
        "columns": ", ".join(bars.columns),
        "validation": "all checks passed"
        if not dropped
        else "dropped " + ", ".join(f"{k}: {n}" for k, n in dropped.items()),
    }
    return pd.DataFrame({"value": rows})


def gap_table(index: pd.DatetimeIndex) -> pd.DataFrame:
    """How often consecutive bars are further apart than one minute, by gap length."""
    gaps = pd.Series(np.diff(index.asi8) / 60e9)
    bins = [1.5, 5, 30, 75, 24 * 60, 3 * 24 * 60, np.inf]
    labels = ["2-5 min", "5-30 min", "30-75 min (daily halt)", "75 min-1 day", "1-3 days (weekend)", "> 3 days"]
    counts = pd.cut(gaps[gaps > 1.5], bins, labels=labels).value_counts().reindex(labels)
    return pd.DataFrame({"gaps": counts, "share of bars %": (100 * counts / len(index)).round(3)})


# ----------------------------------------------------------------------------------------------------
# prices, candles and swings


def price_volume_overview(bars: pd.DataFrame, rule: str = "1D") -> plt.Figure:
    """Close (resampled to ``rule``, with its high-low band) and volume per period."""
    agg = (
        bars.resample(rule)
        .agg({"high": "max", "low": "min", "close": "last", **({"volume": "sum"} if "volume" in bars else {})})
        .dropna(subset=["close"])
    )
    has_volume = "volume" in agg
    fig, axes = plt.subplots(
        2 if has_volume else 1,
        1,
        figsize=(12, 5 if has_volume else 3.5),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1]} if has_volume else None,
        squeeze=False,
    )
    ax = axes[0, 0]
    ax.fill_between(agg.index, agg["low"], agg["high"], color="0.85", label=f"{rule} high-low")
    ax.plot(agg.index, agg["close"], lw=1, color="k", label=f"{rule} close")
    ax.set_ylabel("price")
    ax.legend(loc="upper left")
    ax.set_title("Price overview")
    if has_volume:
        axes[1, 0].bar(agg.index, agg["volume"], width=0.8, color="0.4")
        axes[1, 0].set_ylabel(f"volume / {rule}")
    fig.tight_layout()
    return fig


def draw_candles(ax, bars: pd.DataFrame, x: np.ndarray | None = None, width: float = 0.6) -> None:
    """Candlesticks of ``bars`` at positions ``x`` (default 0..n-1)."""
    x = np.arange(len(bars)) if x is None else np.asarray(x)
    o, h, l, c = (bars[k].to_numpy() for k in ("open", "high", "low", "close"))
    colors = np.where(c >= o, UP, DOWN)
    ax.vlines(x, l, h, colors=colors, lw=0.8)
    body = np.abs(c - o)
    ax.bar(
        x,
        np.where(body > 0, body, (h - l).max() * 1e-3 + 1e-12),
        bottom=np.minimum(o, c),
        width=width,
        color=colors,
        edgecolor=colors,
        lw=0.5,
    )


def swings_chart(bars: pd.DataFrame, swings: pd.DataFrame, start: int, n_bars: int = 400) -> plt.Figure:
    """Candles of bars[start:start+n_bars] with the confirmed swing points of the causal zigzag.

    Each swing is drawn at its extreme bar (triangle) with a thin line to the bar that confirmed it."""
    stop = min(start + n_bars, len(bars))
    part = bars.iloc[start:stop]
    fig, ax = plt.subplots(figsize=(13, 4.5))
    draw_candles(ax, part)
    inside = swings[(swings["extreme_pos"] >= start) & (swings["extreme_pos"] < stop)]
    for kind, marker, color in (("high", "v", DOWN), ("low", "^", UP)):
        s = inside[inside["kind"] == kind]
        offset = (part["high"].max() - part["low"].min()) * 0.015 * (1 if kind == "high" else -1)
        ax.scatter(
            s["extreme_pos"] - start,
            s["price"] + offset,
            marker=marker,
            color=color,
            s=45,
            zorder=3,
            label=f"swing {kind} (at its extreme)",
        )
        for _, r in s.iterrows():
            ax.plot(
                [r["extreme_pos"] - start, min(r["confirm_pos"], stop - 1) - start],
                [r["price"]] * 2,
                color=color,
                lw=0.7,
                ls=":",
            )
    ax.plot([], [], color="0.3", lw=0.7, ls=":", label="dotted: until the bar that confirmed it")
    _time_ticks(ax, part.index)
    ax.set_ylabel("price")
    ax.set_title(f"Confirmed swings, bars {start:,}-{stop - 1:,}")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def _time_ticks(ax, index: pd.DatetimeIndex, n: int = 8) -> None:
    pos = np.linspace(0, len(index) - 1, min(n, len(index))).astype(int)
    ax.set_xticks(pos)
    ax.set_xticklabels([index[p].strftime("%m-%d %H:%M") for p in pos], fontsize=8)


# ----------------------------------------------------------------------------------------------------
# features


def feature_distributions(
    X: np.ndarray,
    valid: np.ndarray,
    names: Sequence[str] = FEATURE_NAMES,
    ranges: Mapping[str, tuple[float, float]] = FEATURE_RANGES,
) -> plt.Figure:
    """Histogram of each feature over the valid bars, with its declared range and the share at the bounds."""
    Xv = X[valid]
    fig, axes = plt.subplots(2, 5, figsize=(15, 5.5))
    for j, (ax, name) in enumerate(zip(axes.ravel(), names)):
        lo, hi = ranges[name]
        v = Xv[:, j]
        ax.hist(v, bins=60, range=(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)), color="#4c72b0")
        for b in (lo, hi):
            ax.axvline(b, color="k", ls="--", lw=0.8)
        outside = np.mean((v < lo) | (v > hi)) * 100
        at_bounds = np.mean((v == lo) | (v == hi)) * 100
        ax.set_title(
            f"{name}\nat bounds {at_bounds:.1f}%" + (f", OUTSIDE {outside:.2f}%" if outside else ""), fontsize=9
        )
        ax.set_yticks([])
    fig.suptitle("Feature distributions over valid bars (dashed: declared range)")
    fig.tight_layout()
    return fig


def feature_table(
    X: np.ndarray,
    valid: np.ndarray,
    names: Sequence[str] = FEATURE_NAMES,
    ranges: Mapping[str, tuple[float, float]] = FEATURE_RANGES,
) -> pd.DataFrame:
    """Per feature over the valid bars: declared range, min, mean, max, std, entropy (bits, of a
    100-bin histogram over the declared range), share at each clip bound, and whether it is nearly
    constant (std under 2% of the range, or under 2 bits: it then tells the model almost nothing)."""
    Xv = X[valid]
    rows = {}
    for j, name in enumerate(names):
        lo, hi = ranges[name]
        v = Xv[:, j]
        counts = np.histogram(v, bins=100, range=(lo, hi))[0]
        p = counts[counts > 0] / max(1, counts.sum())
        entropy = float(-(p * np.log2(p)).sum())
        std = float(v.std()) if len(v) else 0.0
        rows[name] = {
            "declared": f"[{lo:g}, {hi:g}]",
            "min": v.min(initial=np.inf),
            "mean": v.mean() if len(v) else np.nan,
            "max": v.max(initial=-np.inf),
            "std": std,
            "entropy bits": entropy,
            "% at lower bound": 100 * np.mean(v == lo) if len(v) else 0.0,
            "% at upper bound": 100 * np.mean(v == hi) if len(v) else 0.0,
            "nearly constant": bool(std < 0.02 * (hi - lo) or entropy < 2.0),
            "non-finite": int((~np.isfinite(X[:, j])).sum()),
        }
    return pd.DataFrame(rows).T


def feature_warnings(table: pd.DataFrame, *, bound_share: float = 10.0) -> list[str]:
    """Warnings from ``feature_table``: nearly constant features, and features with more than
    ``bound_share`` % of their values at one bound. For the candle features (0-4) a bound is a natural
    limit (the open or close at the bar's high or low, no wick), not a clip: said so in the warning."""
    warnings = []
    for name, row in table.iterrows():
        if row["nearly constant"]:
            warnings.append(
                f"{name} is nearly constant (std {row['std']:.3g}, {row['entropy bits']:.1f} bits): "
                "it carries almost no information for the model"
            )
        for side in ("lower", "upper"):
            share = row[f"% at {side} bound"]
            if share > bound_share:
                why = (
                    " (a natural limit of the candle: open/close at the high or low, or no wick)"
                    if name in FEATURE_NAMES[:5]
                    else ": values beyond it are clipped and indistinguishable"
                )
                warnings.append(f"{name}: {share:.1f}% of values at the {side} bound{why}")
    return warnings


def swing_frequency(swings: pd.DataFrame, valid: np.ndarray, length: int = WINDOW_LENGTH) -> dict:
    """How often the zigzag confirms a swing: bars per swing over the valid bars, median bars between
    consecutive swing extremes, median confirmation delay, swings per window of ``length`` bars."""
    n_valid = int(np.asarray(valid).sum())
    n = len(swings)
    gaps = np.diff(swings["extreme_pos"].to_numpy())
    delay = (swings["confirm_pos"] - swings["extreme_pos"]).to_numpy()
    return {
        "swings": n,
        "bars per swing": round(n_valid / n, 2) if n else float("inf"),
        "median bars between swing extremes": float(np.median(gaps)) if len(gaps) else float("nan"),
        "median confirmation delay (bars)": float(np.median(delay)) if n else float("nan"),
        "swings per window": round(length * n / n_valid, 2) if n_valid else 0.0,
    }


def feature_correlations(X: np.ndarray, valid: np.ndarray, names: Sequence[str] = FEATURE_NAMES) -> plt.Figure:
    """Pearson correlation matrix of the features over the valid bars."""
    corr = np.corrcoef(X[valid].T.astype(np.float64))
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{corr[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=6.5,
                color="white" if abs(corr[i, j]) > 0.6 else "black",
            )
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title("Feature correlations")
    fig.tight_layout()
    return fig


def window_figure(
    bars: pd.DataFrame,
    X: np.ndarray,
    start: int,
    length: int = WINDOW_LENGTH,
    names: Sequence[str] = FEATURE_NAMES,
    title: str | None = None,
) -> plt.Figure:
    """One window: candles on top, candle-shape features and swing features below."""
    part = bars.iloc[start : start + length]
    feats = X[start : start + length]
    fig, axes = plt.subplots(3, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1.2, 1.2]})
    draw_candles(axes[0], part)
    axes[0].set_ylabel("price")
    axes[0].set_title(title or f"window at bar {start:,} ({part.index[0]:%Y-%m-%d %H:%M} UTC)")
    for ax, group in ((axes[1], CANDLE_FEATURES), (axes[2], SWING_FEATURES)):
        for name in group:
            ax.plot(feats[:, list(names).index(name)], lw=1, label=name)
        ax.legend(fontsize=7, ncol=3, loc="upper left")
    axes[1].set_ylabel("candle features")
    axes[2].set_ylabel("swing features")
    _time_ticks(axes[2], part.index)
    fig.tight_layout()
    return fig


def window_gallery(bars: pd.DataFrame, X: np.ndarray, starts: Sequence[int], length: int = WINDOW_LENGTH) -> plt.Figure:
    """A few windows side by side (candles over their features): the static stand-in for the browser."""
    starts = list(starts)
    fig, axes = plt.subplots(
        3, len(starts), figsize=(4.2 * len(starts), 6.5), squeeze=False, gridspec_kw={"height_ratios": [2, 1.2, 1.2]}
    )
    for k, s in enumerate(starts):
        part, feats = bars.iloc[s : s + length], X[s : s + length]
        draw_candles(axes[0, k], part)
        axes[0, k].set_title(f"bar {s:,}\n{part.index[0]:%Y-%m-%d %H:%M} UTC", fontsize=9)
        for row, group in ((1, CANDLE_FEATURES), (2, SWING_FEATURES)):
            for name in group:
                axes[row, k].plot(feats[:, FEATURE_NAMES.index(name)], lw=0.9, label=name)
        for row in range(3):
            axes[row, k].tick_params(labelsize=7)
    axes[1, 0].set_ylabel("candle features")
    axes[2, 0].set_ylabel("swing features")
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / fig.get_figwidth(), 1))  # room on the right for the legends
    for row in (1, 2):  # one readable legend per feature row, beside the last panel
        axes[row, -1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return fig


def window_browser(bars: pd.DataFrame, X: np.ndarray, starts: Sequence[int], length: int = WINDOW_LENGTH):
    """An ipywidgets slider over window starts that redraws ``window_figure`` (JupyterLab only)."""
    import ipywidgets as widgets
    from IPython.display import display

    starts = np.asarray(starts)
    # counted from 1 on the slider and in the title alike ("window 1 of N")
    slider = widgets.IntSlider(
        value=1,
        min=1,
        max=len(starts),
        description="window",
        continuous_update=False,
        layout=widgets.Layout(width="60%"),
    )
    out = widgets.Output()

    def show(change=None):
        with out:
            out.clear_output(wait=True)
            start = int(starts[slider.value - 1])
            fig = window_figure(bars, X, start, length, title=f"window {slider.value} of {len(starts)} (bar {start:,})")
            display(fig)
            plt.close(fig)

    slider.observe(show, names="value")
    show()
    return widgets.VBox([slider, out])
