"""The bar interval: measured, held to the 1 minute moola assumes, and finer bars aggregated to it.

``bar_interval(index)`` measures it as the most common spacing between consecutive bars (to the
millisecond). Gaps (the daily halt, weekends, holidays, minutes without trades) are rare among the spacings
and of many lengths, so they do not count; a median would call a 1-minute file with half its minutes missing
2-minute bars.

``one_minute_bars(bars, source, resample)`` is the rule (DESIGN.md section 2.1): 1-minute bars pass unchanged;
coarser bars (5 minutes, hourly, daily) are refused, since moola's features and windows assume 1-minute bars
and nothing makes minutes out of hours; finer bars (30 seconds, ticks) are refused unless ``resample`` (the
``resample_to_1min`` parameter) aggregates them into 1-minute bars: per UTC minute the first open, the highest
high, the lowest low, the last close and the summed volume, labelled by the minute's start. The result's
``attrs["bar_interval"]`` records the measurement; ``interval_line`` says it in one line (the EDA report).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataValidationError

ONE_MINUTE = 60.0  # seconds: the interval moola's features and windows assume


def bar_interval(index: pd.DatetimeIndex) -> tuple[float | None, float]:
    """(the most common spacing between consecutive bars in seconds, the share of spacings that have it);
    (None, 0.0) with fewer than two bars."""
    if len(index) < 2:
        return None, 0.0
    spacing = np.round(np.diff(index.as_unit("ns").asi8) / 1e6) / 1e3  # to the millisecond
    values, counts = np.unique(spacing, return_counts=True)
    best = int(np.argmax(counts))
    return float(values[best]), float(counts[best] / len(spacing))


def describe_interval(seconds: float) -> str:
    """``30 seconds``, ``1 minute``, ``60 minutes``."""
    amount, unit = (seconds, "second") if seconds < ONE_MINUTE else (seconds / ONE_MINUTE, "minute")
    return f"{amount:g} {unit}{'' if amount == 1 else 's'}"


def one_minute_bars(bars: pd.DataFrame, source: str, resample: bool) -> pd.DataFrame:
    """``bars`` (sorted, unique timestamps) held to 1 minute by the module's rule; DataValidationError
    'bar_interval' names the measured interval and the fix."""
    seconds, share = bar_interval(bars.index)
    measured = f"the bars are {describe_interval(seconds or 0)} apart (the most common spacing, {share:.0%} of them)"
    if seconds is not None and seconds > ONE_MINUTE:
        raise DataValidationError(
            source,
            "bar_interval",
            f"{measured}, not 1 minute: moola's features and windows assume 1-minute bars, and coarser bars "
            "cannot be resampled to 1 minute; use a 1-minute export of the data",
        )
    if seconds is not None and seconds < ONE_MINUTE and not resample:
        raise DataValidationError(
            source,
            "bar_interval",
            f"{measured}, finer than the 1-minute bars moola's features and windows assume; pass "
            "resample_to_1min=True (the resample_to_1min parameter) to aggregate them into 1-minute bars",
        )
    finer = seconds is not None and seconds < ONE_MINUTE
    out = resample_to_one_minute(bars) if finer else bars.copy(deep=False)
    out.attrs["bar_interval"] = {
        "seconds": seconds,
        "share": share,
        "resampled_from_bars": len(bars) if finer else None,
    }
    return out


def resample_to_one_minute(bars: pd.DataFrame) -> pd.DataFrame:
    """OHLCV bars (sorted, unique timestamps) aggregated per UTC minute (module docstring)."""
    minutes = bars.index.floor("min")
    first = np.flatnonzero(np.r_[True, minutes.asi8[1:] != minutes.asi8[:-1]])
    last = np.r_[first[1:], len(bars)] - 1
    values = {
        "open": bars["open"].to_numpy()[first],
        "high": np.maximum.reduceat(bars["high"].to_numpy(), first),
        "low": np.minimum.reduceat(bars["low"].to_numpy(), first),
        "close": bars["close"].to_numpy()[last],
    }
    if "volume" in bars:
        values["volume"] = np.add.reduceat(bars["volume"].to_numpy(), first)
    return pd.DataFrame(values, index=minutes[first])


def interval_line(bars: pd.DataFrame) -> str:
    """One line on the bars' interval: as measured when they were loaded (``attrs``), else measured now."""
    info = bars.attrs.get("bar_interval")
    if info is None:
        seconds, share = bar_interval(bars.index)
        info = {"seconds": seconds, "share": share, "resampled_from_bars": None}
    if info["seconds"] is None:
        return "bar interval: unknown (fewer than two bars)"
    line = (
        f"bar interval: {describe_interval(info['seconds'])} (the most common spacing between consecutive bars, "
        f"{info['share']:.1%} of them; the others are gaps)"
    )
    if info["resampled_from_bars"] is not None:
        line += f", resampled to 1 minute: {info['resampled_from_bars']:,} bars -> {len(bars):,}"
    return line
