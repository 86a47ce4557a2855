"""Labelled episodes written into market bars: the embedded labelled task (``labels.synthetic_labelled_set``).

An episode is an expansion leg (``LEG_BARS`` bars drifting ``strength`` x the local noise per bar) and a
follow-up of ``FOLLOW_BARS`` bars that either gives back part of the leg (``retracement``: it drifts back
``depth`` x the leg over the follow-up) or holds the level (``consolidation``: no drift). Both kinds have
the same length distribution and keep the market's own bars and volatility: the episode only adds a
smooth log-price drift path. So the label is in how the path unfolds after the expansion, not in a
volatility level one feature could read off (the generator's own planted consolidations have 0.35x
volatility, which made the first embedded set trivial: 98% balanced accuracy from ``range_z`` alone).

``difficulty`` in [0, 1] scales the retracement depth, ``depth ~ U(0.4, 1.0) x (1 - difficulty)``:
0 = deep retracements (easy), 1 = none (the classes are identical: chance level). Measured with a
logistic regression on per-window summaries (5-fold grouped CV, 174 windows): about 75% balanced
accuracy at 0, 70% at 0.3 (the default of the embedded set), 67% at 0.5, 50% at 1. The market's noise
makes some episodes ambiguous at any difficulty, as real labels are.

Writing a drift path keeps bars consistent: bar t's open moves with the path at t - 1, its close with the
path at t, its high (low) with the larger (smaller) of the two, so low <= open, close <= high holds and,
within a session, each open still equals the previous close. Prices stay on the tick grid.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .windows import _windows_hit

LEG_BARS = (4, 30)        # inclusive ranges, as the generator's planted legs
FOLLOW_BARS = (15, 50)    # the same for both kinds: the follow-up's length tells nothing
STRENGTH = (0.9, 1.6)     # leg drift per bar in units of the local noise
DEPTH = (0.4, 1.0)        # retracement: share of the leg given back, before the difficulty scaling
_MINUTE = pd.Timedelta(minutes=1)


def free_starts(index: pd.DatetimeIndex, busy: np.ndarray, lo: int, hi: int, length: int) -> np.ndarray:
    """Window starts s in [lo, hi - length] whose bars [s, s + length) are one-minute consecutive (no
    session gap) and none ``busy``."""
    gap = np.diff(index.as_unit("ns").asi8) != _MINUTE.value   # gap[i]: bar i + 1 follows a gap
    s = np.arange(max(lo, 0), max(min(hi, len(index)) - length + 1, 0))
    # blocked by busy bars in [s, s + length) and by gaps between any two of its bars
    return s[~_windows_hit(np.asarray(busy, dtype=bool), s, length) & ~_windows_hit(gap, s, length - 1)]


def place_windows(rng: np.random.Generator, allowed: np.ndarray, n: int, length: int,
                  spacing: int) -> np.ndarray:
    """``n`` sorted window starts drawn at random from ``allowed``, at least ``length + spacing`` bars
    apart (windows and the episodes in them never touch). Raises ValueError when they do not fit."""
    chosen: list[int] = []
    apart = length + spacing
    taken = np.zeros(int(allowed.max()) + apart + 1 if len(allowed) else 1, dtype=bool)
    for s in rng.permutation(allowed):
        if not taken[max(s - apart + 1, 0):s + apart].any():
            chosen.append(int(s))
            taken[s] = True
            if len(chosen) == n:
                return np.sort(np.asarray(chosen, dtype=np.int64))
    raise ValueError(f"only {len(chosen)} separate windows fit, {n} requested")


def draw_episodes(rng: np.random.Generator, starts: np.ndarray, kinds: np.ndarray, difficulty: float,
                  length: int) -> pd.DataFrame:
    """One episode per window: bar offsets (of the leg's first bar, the leg's last bar, the follow-up's
    last bar) inside the window, direction, leg strength and retracement depth (0 for consolidations)."""
    n = len(starts)
    leg = rng.integers(LEG_BARS[0], LEG_BARS[1] + 1, n)
    follow = rng.integers(FOLLOW_BARS[0], FOLLOW_BARS[1] + 1, n)
    offset = (rng.random(n) * (length - leg - follow + 1)).astype(np.int64)
    depth = rng.uniform(*DEPTH, n) * (1.0 - difficulty)
    return pd.DataFrame({
        "kind": kinds, "offset": offset, "leg_end": offset + leg - 1, "pattern_end": offset + leg + follow - 1,
        "direction": rng.choice([-1, 1], n), "strength": rng.uniform(*STRENGTH, n),
        "depth": np.where(kinds == "retracement", depth, 0.0),
    })


def episode_drift(bars: pd.DataFrame, starts: np.ndarray, episodes: pd.DataFrame) -> np.ndarray:
    """Per-bar log drift [T] that writes the episodes into the bars. The noise unit of an episode is the
    robust sd (1.4826 x median absolute) of its own bars' log moves open -> close, so a leg is as strong
    against the noise in a quiet night as at the cash open."""
    move = np.log(bars["close"].to_numpy() / bars["open"].to_numpy())
    drift = np.zeros(len(bars))
    for s, ep in zip(starts, episodes.itertuples(index=False)):
        first, leg_end, end = s + ep.offset, s + ep.leg_end, s + ep.pattern_end
        noise = max(1.4826 * float(np.median(np.abs(move[first:end + 1]))), 1e-5)
        step = ep.direction * ep.strength * noise
        drift[first:leg_end + 1] = step
        drift[leg_end + 1:end + 1] = -ep.depth * step * (leg_end + 1 - first) / (end - leg_end)
    return drift


def apply_drift(bars: pd.DataFrame, drift: np.ndarray, tick: float = 0.25) -> pd.DataFrame:
    """``bars`` with the cumulative log drift path written in (see the module docstring); volume kept."""
    after = np.cumsum(drift)
    before = np.r_[0.0, after[:-1]]
    out = bars.copy()
    scale = {"open": before, "close": after, "high": np.maximum(before, after), "low": np.minimum(before, after)}
    for col, path in scale.items():
        out[col] = np.round(bars[col].to_numpy() * np.exp(path) / tick) * tick
    out["high"] = np.maximum(out["high"], np.maximum(out["open"], out["close"]))
    out["low"] = np.minimum(out["low"], np.minimum(out["open"], out["close"]))
    return out
