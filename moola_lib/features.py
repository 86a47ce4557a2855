"""The 10 causal "relativity" features of the Jade encoder (DESIGN.md section 3).

All features are computed once for the whole series as a float32 ``[T, 10]`` array:

- features 0-4 describe the bar's candle relative to its own range (vectorised numpy);
- feature 5 is the range relative to its EMA, features 6-9 the distance (in ATR) and age (in windows)
  of the last *confirmed* swing high / low of a causal zigzag. ATR, EMA and the zigzag are one
  sequential pass in a numba-compiled loop.

Value at bar t depends only on bars 0..t. Every feature is a ratio of price differences, so the
features do not change under ``price -> a * price + b`` (a > 0).

Degenerate cases (documented choices, never NaN/inf):
- a flat bar (high == low) gets the candle features (0.5, 0.5, 0, 0, 0);
- a ratio with a zero denominator (ATR == 0 after a run of identical flat bars, EMA of the range == 0)
  is 0 when its numerator is 0 and otherwise the clip bound on the numerator's side (the limit of
  x / eps);
- a zigzag reversal needs a strictly positive move, so a zero move does not reverse a leg when ATR == 0;
- the first bar opens the up leg; reversal tests start at the second bar;
- ties when extending a leg keep the earlier bar as the extreme.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping

import numba
import numpy as np
import pandas as pd

from .constants import WINDOW_LENGTH

FEATURE_NAMES: tuple[str, ...] = (
    "open_norm",
    "close_norm",
    "body_pct",
    "upper_wick_pct",
    "lower_wick_pct",
    "range_z",
    "dist_to_prev_SH",
    "dist_to_prev_SL",
    "bars_since_SH_norm",
    "bars_since_SL_norm",
)

FEATURE_RANGES: dict[str, tuple[float, float]] = {
    "open_norm": (0.0, 1.0),
    "close_norm": (0.0, 1.0),
    "body_pct": (-1.0, 1.0),
    "upper_wick_pct": (0.0, 1.0),
    "lower_wick_pct": (0.0, 1.0),
    "range_z": (0.0, 3.0),
    "dist_to_prev_SH": (-3.0, 3.0),
    "dist_to_prev_SL": (-3.0, 3.0),
    "bars_since_SH_norm": (0.0, 3.0),
    "bars_since_SL_norm": (0.0, 3.0),
}

_PRICE_COLUMNS = ("open", "high", "low", "close")


# ---------------------------------------------------------------------------------------------------
# sequential part: TR/ATR, EMA of the range, causal zigzag (one compiled pass)


@numba.njit(cache=True, inline="always")
def _clipped_ratio(num, den, lo, hi):
    """num / den clipped to [lo, hi]; den == 0 gives 0 for num == 0, else the bound on num's side."""
    if den > 0.0:
        x = num / den
    elif num > 0.0:
        x = hi
    elif num < 0.0:
        x = lo
    else:
        x = 0.0
    return min(max(x, lo), hi)


@numba.njit(cache=True)
def _scan(high, low, close, atr_period, ema_period, reversal_atr, hybrid_max_age, hybrid_atr,
          bars_norm, out, valid, swing_kind, swing_extreme, swing_confirm, swing_price):
    """One pass over the bars.

    Writes features 5-9 into ``out[:, 5:10]`` (valid bars only; skipped when out has 0 rows) and the
    warm-up mask into ``valid``.
    When the ``swing_*`` arrays have length T, records every confirmed swing (kind +1 high, -1 low)
    and returns how many; with length-0 arrays nothing is recorded.
    """
    n = high.shape[0]
    record = swing_kind.shape[0] >= n
    write = out.shape[0] >= n
    n_swings = 0
    alpha = 2.0 / (ema_period + 1.0)
    tr = np.empty(atr_period)          # ring buffer of the last atr_period true ranges
    ema = 0.0
    leg_up = True
    extreme = 0.0
    extreme_pos = 0
    sh_price = 0.0
    sl_price = 0.0
    sh_pos = -1
    sl_pos = -1
    for t in range(n):
        h = high[t]
        lo = low[t]
        c = close[t]
        r = h - lo

        # true range, ATR (mean of the last atr_period TRs; expanding at the start), EMA of the range
        if t == 0:
            tr_t = r
            ema = r
        else:
            prev_c = close[t - 1]
            tr_t = max(r, abs(h - prev_c), abs(lo - prev_c))
            ema = alpha * r + (1.0 - alpha) * ema
        tr[t % atr_period] = tr_t
        k = min(t + 1, atr_period)
        total = 0.0
        for i in range(t + 1 - k, t + 1):    # oldest first: the sum does not depend on buffer layout
            total += tr[i % atr_period]
        atr = total / k

        # zigzag: extend the current leg's extreme, then test for a reversal. An up leg extends with
        # highs and is pulled back by lows and closes; a down leg mirrors it (sign = -1).
        if t == 0:
            extreme = h
            extreme_pos = 0
        else:
            sign = 1.0 if leg_up else -1.0
            edge, opposite = (h, lo) if leg_up else (lo, h)
            if sign * (edge - extreme) > 0.0:
                extreme = edge
                extreme_pos = t
            move = sign * (extreme - c)
            pull = sign * (extreme - opposite)
            if (move > 0.0 and move >= reversal_atr * atr) or (
                t - extreme_pos <= hybrid_max_age and pull > 0.0 and pull >= hybrid_atr * atr
            ):
                if leg_up:
                    sh_price, sh_pos = extreme, extreme_pos
                else:
                    sl_price, sl_pos = extreme, extreme_pos
                if record:
                    swing_kind[n_swings] = 1 if leg_up else -1
                    swing_extreme[n_swings] = extreme_pos
                    swing_confirm[n_swings] = t
                    swing_price[n_swings] = extreme
                n_swings += 1
                leg_up = not leg_up
                extreme = opposite
                extreme_pos = t

        ok = t >= atr_period - 1 and t >= ema_period - 1 and sh_pos >= 0 and sl_pos >= 0
        valid[t] = ok
        if ok and write:
            out[t, 5] = _clipped_ratio(r, ema, 0.0, 3.0)
            out[t, 6] = _clipped_ratio(sh_price - c, atr, -3.0, 3.0)
            out[t, 7] = _clipped_ratio(c - sl_price, atr, -3.0, 3.0)
            out[t, 8] = min((t - sh_pos) / bars_norm, 3.0)
            out[t, 9] = min((t - sl_pos) / bars_norm, 3.0)
    return n_swings


# ---------------------------------------------------------------------------------------------------
# public API


def _price_arrays(bars) -> tuple[np.ndarray, ...]:
    """open, high, low, close as float64 1-D arrays of equal length, checked finite with high >= low."""
    if isinstance(bars, pd.DataFrame):
        columns = {str(c).lower(): c for c in bars.columns}
        missing = [name for name in _PRICE_COLUMNS if name not in columns]
        if missing:
            raise ValueError(f"bars are missing column(s) {missing}; got {list(bars.columns)}")
        arrays = [bars[columns[name]].to_numpy(dtype=np.float64) for name in _PRICE_COLUMNS]
    elif isinstance(bars, Mapping):
        missing = [name for name in _PRICE_COLUMNS if name not in bars]
        if missing:
            raise ValueError(f"bars are missing key(s) {missing}; got {list(bars)}")
        arrays = [np.asarray(bars[name], dtype=np.float64) for name in _PRICE_COLUMNS]
    else:
        raise TypeError(f"bars must be a DataFrame or a mapping of arrays, not {type(bars).__name__}")
    n = arrays[0].shape
    if arrays[0].ndim != 1 or any(a.shape != n for a in arrays):
        raise ValueError(f"open/high/low/close must be 1-D of equal length; got shapes "
                         f"{[a.shape for a in arrays]}")
    o, h, l, c = (np.ascontiguousarray(a) for a in arrays)
    for name, a in zip(_PRICE_COLUMNS, (o, h, l, c)):
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"{name} has {int(bad.sum())} non-finite value(s), first at row "
                             f"{int(np.argmax(bad))}")
    bad = h < l
    if bad.any():
        raise ValueError(f"high < low in {int(bad.sum())} bar(s), first at row {int(np.argmax(bad))}")
    return o, h, l, c


def _check_options(atr_period, ema_period, reversal_atr, hybrid_max_age, hybrid_atr, bars_norm):
    for name, value in (("atr_period", atr_period), ("ema_period", ema_period)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not isinstance(hybrid_max_age, (int, np.integer)) or isinstance(hybrid_max_age, bool):
        raise ValueError(f"hybrid_max_age must be an integer (negative disables the hybrid rule), "
                         f"got {hybrid_max_age!r}")
    for name, value in (("reversal_atr", reversal_atr), ("hybrid_atr", hybrid_atr)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not np.isfinite(bars_norm) or bars_norm <= 0:
        raise ValueError(f"bars_norm must be a finite number > 0, got {bars_norm!r}")


def _run_scan(h, l, c, out, valid, swings, *, atr_period, ema_period, reversal_atr, hybrid_max_age,
              hybrid_atr, bars_norm):
    _check_options(atr_period, ema_period, reversal_atr, hybrid_max_age, hybrid_atr, bars_norm)
    return _scan(h, l, c, int(atr_period), int(ema_period), float(reversal_atr), int(hybrid_max_age),
                 float(hybrid_atr), float(bars_norm), out, valid, *swings)


def _candle_features(o, h, l, c, out):
    """Features 0-4 into out[:, 0:5]: candle position/body/wicks as fractions of the bar's range."""
    flat = h == l
    r = np.where(flat, 1.0, h - l)
    # flat bar: open/close at mid-range (0.5), no body, no wicks
    for j, (num, lo, hi, flat_value) in enumerate((
        (o - l, 0.0, 1.0, 0.5),
        (c - l, 0.0, 1.0, 0.5),
        (c - o, -1.0, 1.0, 0.0),
        (h - np.maximum(o, c), 0.0, 1.0, 0.0),
        (np.minimum(o, c) - l, 0.0, 1.0, 0.0),
    )):
        num /= r
        np.clip(num, lo, hi, out=num)
        num[flat] = flat_value
        out[:, j] = num


def relativity_features(bars, *, atr_period: int = 10, ema_period: int = 20, reversal_atr: float = 1.2,
                        hybrid_max_age: int = 5, hybrid_atr: float = 0.5,
                        bars_norm: float = WINDOW_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """The 10 relativity features of every bar.

    bars: DataFrame with open/high/low/close columns (any index) or a mapping of 1-D arrays.
    Returns ``(X, valid)``: X float32 [T, 10] in FEATURE_NAMES order, valid bool [T] (False during the
    warm-up: fewer than atr_period / ema_period bars, or no swing high and low confirmed yet; X is 0
    there). Zigzag: an up leg reverses when ``extreme - close >= reversal_atr * ATR`` or when its
    extreme is at most ``hybrid_max_age`` bars old and ``extreme - low >= hybrid_atr * ATR`` (a negative
    hybrid_max_age disables this rule); down legs mirror it.
    """
    o, h, l, c = _price_arrays(bars)
    n = h.shape[0]
    X = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float32)
    valid = np.zeros(n, dtype=np.bool_)
    no_swings = (np.empty(0, np.int8), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    _run_scan(h, l, c, X, valid, no_swings, atr_period=atr_period, ema_period=ema_period,
              reversal_atr=reversal_atr, hybrid_max_age=hybrid_max_age, hybrid_atr=hybrid_atr,
              bars_norm=bars_norm)
    _candle_features(o, h, l, c, X)
    # validity is monotone (once valid, always valid): the warm-up is a prefix
    first_valid = int(np.argmax(valid)) if valid.any() else n
    X[:first_valid] = 0.0
    return X, valid


# keyword options of relativity_features and their defaults (the original's), for configs to check against
FEATURE_OPTION_DEFAULTS: dict[str, float] = {
    name: p.default for name, p in inspect.signature(relativity_features).parameters.items()
    if p.kind is p.KEYWORD_ONLY}


def swing_points(bars, *, atr_period: int = 10, reversal_atr: float = 1.2, hybrid_max_age: int = 5,
                 hybrid_atr: float = 0.5) -> pd.DataFrame:
    """The zigzag's confirmed swings, in confirmation order (same rules as relativity_features).

    Columns: kind ("high"/"low"), extreme_pos (bar of the swing's extreme), confirm_pos (bar at which
    it became known), price; plus extreme_time / confirm_time when bars has a DatetimeIndex.
    """
    _, h, l, c = _price_arrays(bars)
    n = h.shape[0]
    swings = (np.empty(n, np.int8), np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n))
    k = _run_scan(h, l, c, np.empty((0, len(FEATURE_NAMES)), np.float32), np.empty(n, np.bool_),
                  swings, atr_period=atr_period, ema_period=1, reversal_atr=reversal_atr,
                  hybrid_max_age=hybrid_max_age, hybrid_atr=hybrid_atr, bars_norm=1.0)
    kind, extreme_pos, confirm_pos, price = (a[:k] for a in swings)
    frame = pd.DataFrame({
        "kind": np.where(kind > 0, "high", "low"),
        "extreme_pos": extreme_pos,
        "confirm_pos": confirm_pos,
        "price": price,
    })
    if isinstance(bars, pd.DataFrame) and isinstance(bars.index, pd.DatetimeIndex):
        frame["extreme_time"] = bars.index[extreme_pos]
        frame["confirm_time"] = bars.index[confirm_pos]
    return frame
