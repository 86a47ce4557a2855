"""The 10 causal "relativity" features of the Jade encoder (DESIGN.md section 3).

All features are computed once for the whole series as a float32 ``[T, 10]`` array:

- features 0-4 describe the bar's candle relative to its own range (vectorised numpy);
- feature 5 is the range relative to its EMA, features 6-9 the distance (in ATR) and age (in windows)
  of the last *confirmed* swing high / low of a causal zigzag. ATR, EMA and the zigzag are one
  sequential pass in a numba-compiled loop.

Value at bar t depends only on bars 0..t. Every feature is a ratio of price differences, so the
features do not change under ``price -> a * price + b`` (a > 0). That holds for swings too: a reversal
move within ``TIE_TOLERANCE`` x ATR of its threshold counts as reaching it, so an exact tie of decimal
prices is not decided by how a shifted or scaled price happens to round.

Options (keyword arguments of ``relativity_features``; defined and checked in ``feature_options``:
``FEATURE_OPTION_DEFAULTS``): the defaults are
DESIGN.md section 3's (reversal at 2.0 ATR, no hybrid rule, dist features as sign(d) * ln(1 + |d|)
clipped to [-4, 4]); ``ORIGINAL_FEATURE_OPTIONS`` are the original's (1.2 ATR, hybrid rule on, linear
dist clipped to [-3, 3]) and reproduce its values exactly. ``resolve_feature_options`` checks a partial
mapping and fills in the rest; ``feature_ranges`` gives each feature's clip range under given options.

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

from collections.abc import Mapping

import numba
import numpy as np
import pandas as pd

from .options import FEATURE_OPTION_DEFAULTS as _DEFAULTS
from .options import check_options, resolve_feature_options

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

_PRICE_COLUMNS = ("open", "high", "low", "close")


# ---------------------------------------------------------------------------------------------------
# sequential part: TR/ATR, EMA of the range, causal zigzag (one compiled pass)

# Reversal ties, relative to ATR. Float rounding of a * price + b moves a difference of prices by about
# |price| * 2e-16, i.e. 1e-9 ATR for prices 1e4 x their ATR; two tick-grid prices that do not tie differ
# by far more than 1e-6 ATR (a tick is typically >= 1e-3 ATR).
TIE_TOLERANCE = 1e-6


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


@numba.njit(cache=True, inline="always")
def _dist(num, den, log, bound):
    """Distance num / den in ATR, optionally as sign(d) * ln(1 + |d|), clipped to [-bound, bound].

    The linear case computes exactly what ``_clipped_ratio(num, den, -bound, bound)`` does (the
    original's values); the log transform keeps heavy-tailed distances apart instead of saturating."""
    if den <= 0.0:
        return _clipped_ratio(num, den, -bound, bound)
    x = num / den
    if log:
        x = np.log1p(x) if x >= 0.0 else -np.log1p(-x)
    return min(max(x, -bound), bound)


@numba.njit(cache=True)
def _scan(
    high,
    low,
    close,
    atr_period,
    ema_period,
    reversal_atr,
    hybrid_max_age,
    hybrid_atr,
    bars_norm,
    dist_log,
    dist_clip,
    out,
    valid,
    swing_kind,
    swing_extreme,
    swing_confirm,
    swing_price,
):
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
    tr = np.empty(atr_period)  # ring buffer of the last atr_period true ranges
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
        for i in range(t + 1 - k, t + 1):  # oldest first: the sum does not depend on buffer layout
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
            # a move within TIE_TOLERANCE * ATR of the threshold is a tie, and a tie reverses: on decimal
            # prices a tie is exact, and the rounding of a * price + b must not decide it
            tie = TIE_TOLERANCE * atr
            if (move > 0.0 and move >= reversal_atr * atr - tie) or (
                t - extreme_pos <= hybrid_max_age and pull > 0.0 and pull >= hybrid_atr * atr - tie
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
            out[t, 6] = _dist(sh_price - c, atr, dist_log, dist_clip)
            out[t, 7] = _dist(c - sl_price, atr, dist_log, dist_clip)
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
        raise ValueError(f"open/high/low/close must be 1-D of equal length; got shapes {[a.shape for a in arrays]}")
    o, h, l, c = (np.ascontiguousarray(a) for a in arrays)
    for name, a in zip(_PRICE_COLUMNS, (o, h, l, c)):
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"{name} has {int(bad.sum())} non-finite value(s), first at row {int(np.argmax(bad))}")
    bad = h < l
    if bad.any():
        raise ValueError(f"high < low in {int(bad.sum())} bar(s), first at row {int(np.argmax(bad))}")
    return o, h, l, c


def _run_scan(h, l, c, out, valid, swings, options: Mapping):
    check_options(options)
    o = options
    return _scan(
        h,
        l,
        c,
        int(o["atr_period"]),
        int(o["ema_period"]),
        float(o["reversal_atr"]),
        int(o["hybrid_max_age"]),
        float(o["hybrid_atr"]),
        float(o["bars_norm"]),
        o["dist_transform"] == "log",
        float(o["dist_clip"]),
        out,
        valid,
        *swings,
    )


def _candle_features(o, h, l, c, out):
    """Features 0-4 into out[:, 0:5]: candle position/body/wicks as fractions of the bar's range."""
    flat = h == l
    r = np.where(flat, 1.0, h - l)
    # flat bar: open/close at mid-range (0.5), no body, no wicks
    for j, (num, lo, hi, flat_value) in enumerate(
        (
            (o - l, 0.0, 1.0, 0.5),
            (c - l, 0.0, 1.0, 0.5),
            (c - o, -1.0, 1.0, 0.0),
            (h - np.maximum(o, c), 0.0, 1.0, 0.0),
            (np.minimum(o, c) - l, 0.0, 1.0, 0.0),
        )
    ):
        num /= r
        np.clip(num, lo, hi, out=num)
        num[flat] = flat_value
        out[:, j] = num


def relativity_features(
    bars,
    *,
    atr_period: int = _DEFAULTS["atr_period"],
    ema_period: int = _DEFAULTS["ema_period"],
    reversal_atr: float = _DEFAULTS["reversal_atr"],
    hybrid_max_age: int = _DEFAULTS["hybrid_max_age"],
    hybrid_atr: float = _DEFAULTS["hybrid_atr"],
    bars_norm: float = _DEFAULTS["bars_norm"],
    dist_transform: str = _DEFAULTS["dist_transform"],
    dist_clip: float = _DEFAULTS["dist_clip"],
) -> tuple[np.ndarray, np.ndarray]:
    """The 10 relativity features of every bar.

    bars: DataFrame with open/high/low/close columns (any index) or a mapping of 1-D arrays.
    Returns ``(X, valid)``: X float32 [T, 10] in FEATURE_NAMES order, valid bool [T] (False during the
    warm-up: fewer than atr_period / ema_period bars, or no swing high and low confirmed yet; X is 0
    there). Zigzag: an up leg reverses when ``extreme - close >= reversal_atr * ATR`` or, with
    ``hybrid_max_age >= 0``, when its extreme is at most ``hybrid_max_age`` bars old and
    ``extreme - low >= hybrid_atr * ATR`` (a negative hybrid_max_age disables this rule); down legs
    mirror it. Dist features: d in ATR, as ``sign(d) * ln(1 + |d|)`` (dist_transform "log") or d itself
    ("linear"), clipped to [-dist_clip, dist_clip]. Bad options raise FeatureOptionError.
    """
    options = dict(
        atr_period=atr_period,
        ema_period=ema_period,
        reversal_atr=reversal_atr,
        hybrid_max_age=hybrid_max_age,
        hybrid_atr=hybrid_atr,
        bars_norm=bars_norm,
        dist_transform=dist_transform,
        dist_clip=dist_clip,
    )
    o, h, l, c = _price_arrays(bars)
    n = h.shape[0]
    X = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float32)
    valid = np.zeros(n, dtype=np.bool_)
    no_swings = (np.empty(0, np.int8), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    _run_scan(h, l, c, X, valid, no_swings, options)
    _candle_features(o, h, l, c, X)
    # validity is monotone (once valid, always valid): the warm-up is a prefix
    first_valid = int(np.argmax(valid)) if valid.any() else n
    X[:first_valid] = 0.0
    return X, valid


def swing_points(bars, **options) -> pd.DataFrame:
    """The zigzag's confirmed swings, in confirmation order, under the feature ``options`` (the same
    rules and defaults as relativity_features; options that do not shape the zigzag are ignored).

    Columns: kind ("high"/"low"), extreme_pos (bar of the swing's extreme), confirm_pos (bar at which
    it became known), price; plus extreme_time / confirm_time when bars has a DatetimeIndex.
    """
    _, h, l, c = _price_arrays(bars)
    n = h.shape[0]
    swings = (np.empty(n, np.int8), np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n))
    k = _run_scan(
        h,
        l,
        c,
        np.empty((0, len(FEATURE_NAMES)), np.float32),
        np.empty(n, np.bool_),
        swings,
        resolve_feature_options(options),
    )
    kind, extreme_pos, confirm_pos, price = (a[:k] for a in swings)
    frame = pd.DataFrame(
        {
            "kind": np.where(kind > 0, "high", "low"),
            "extreme_pos": extreme_pos,
            "confirm_pos": confirm_pos,
            "price": price,
        }
    )
    if isinstance(bars, pd.DataFrame) and isinstance(bars.index, pd.DatetimeIndex):
        frame["extreme_time"] = bars.index[extreme_pos]
        frame["confirm_time"] = bars.index[confirm_pos]
    return frame
