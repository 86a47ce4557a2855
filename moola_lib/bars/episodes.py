"""The episode process of the embedded market: one notion of an episode, for the pretraining bars and the labels.

An episode is an expansion leg of ``LEG_BARS`` bars drifting ``strength`` x the bar's own volatility per bar,
then a follow-up of ``FOLLOW_BARS`` bars that either gives back part of the leg (``retracement``: it drifts
back ``depth`` x the leg over the follow-up) or holds the level (``consolidation``: no drift). Both kinds
have the same length distribution, volatility and momentum: the follow-up differs only by its drift, which
enters each bar's sub-step path in the generator (``synthetic._bar_paths``), so a bar's high and low follow
the drift accumulated along the bar, never the whole drift at once. So the label is in how the path
unfolds after the expansion, not in a volatility level or bar width one feature could read off (the first
embedded set's consolidations had 0.35x volatility: 98% balanced accuracy from ``range_z`` alone).

``difficulty`` in [0, 1] scales the retracement depth, ``depth ~ U(1, 2) x (1 - difficulty)``: 0 = the
follow-up gives back the whole leg and more (a reversal: easy), the default 0.75 = a pullback of 25-50% of
the leg, 1 = none (the two kinds are one process: chance level). Held-out balanced accuracy of the simple
models (logistic regression / boosting on window summaries, trained on 140 windows): about 86% / 91% at 0,
70% / 74% at 0.75, 50% at 1 (VALIDATION.md, "The embedded testbed"). The depth draws do not depend on the
difficulty, so two markets of one seed that differ in it differ only in their retracement follow-ups.

``synthetic.synthetic_market`` plants episodes throughout its history (``plant_episodes``): starts are
``MIN_GAP`` bars plus an exponential wait after the previous episode's end, at ``rate`` episodes per
1,000 bars on average, half of each kind; episodes that would cross a session gap are dropped. The
minimum gap means any 105-bar window that holds an episode holds no other one. ``testbed`` samples its
labelled windows from these episodes (``testbed.episode_windows``), so the labelled windows and the
unlabelled pretraining bars come from one process.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .constants import WINDOW_LENGTH

KINDS = ("consolidation", "retracement")  # the embedded task's classes (labels.DEFAULT_CLASSES)
LEG_BARS = (10, 30)  # inclusive ranges
FOLLOW_BARS = (15, 50)  # the same for both kinds: the follow-up's length tells nothing
STRENGTH = (1.5, 2.5)  # leg drift per bar in units of the bar's volatility
DEPTH = (1.0, 2.0)  # retracement: share of the leg given back, before the difficulty scaling
DEFAULT_DIFFICULTY = 0.75  # the embedded market's and labelled set's default: depth 0.25-0.5 of the leg
MIN_GAP = WINDOW_LENGTH  # bars between one episode's last bar and the next one's first
_MEAN_SPAN = (sum(LEG_BARS) + sum(FOLLOW_BARS)) / 2
MAX_RATE = 1000 / (_MEAN_SPAN + MIN_GAP + 20)  # episodes per 1,000 bars (leaves a mean wait of 20 bars)


def plant_episodes(
    rng: np.random.Generator, minutes: np.ndarray, sigma: np.ndarray, drift: np.ndarray, rate: float, difficulty: float
) -> dict[str, np.ndarray]:
    """Draw the episodes of ``len(minutes)`` bars and write their drift into ``drift`` (in place; ``sigma``
    is the bars' volatility, drift per bar is in the same log units). Returns the episodes as arrays:
    ``first``, ``leg``, ``follow``, ``last`` (bar positions / lengths), ``retracement`` (bool),
    ``direction``, ``strength``, ``depth`` (0 for consolidations)."""
    n = len(minutes)
    ev = _schedule(rng, n, rate)
    count = len(ev["first"])
    ev.update(
        retracement=rng.random(count) < 0.5,
        direction=rng.choice([-1, 1], count),
        strength=rng.uniform(*STRENGTH, count),
        depth=rng.uniform(*DEPTH, count) * (1.0 - difficulty),
    )
    ev["depth"] = np.where(ev["retracement"], ev["depth"], 0.0)
    ev["last"] = ev["first"] + ev["leg"] + ev["follow"] - 1
    keep = ev["last"] < n
    keep[keep] = minutes[ev["last"][keep]] - minutes[ev["first"][keep]] == (ev["last"] - ev["first"])[keep]
    ev = {k: v[keep] for k, v in ev.items()}  # inside the bars, no session gap inside an episode

    pos, owner = _ranges(ev["first"], ev["leg"])
    drift[pos] = ev["direction"][owner] * ev["strength"][owner] * sigma[pos]
    leg_move = np.bincount(owner, weights=drift[pos], minlength=len(ev["first"]))
    pos, owner = _ranges(ev["first"] + ev["leg"], ev["follow"])
    drift[pos] = -ev["depth"][owner] * leg_move[owner] / ev["follow"][owner]
    return ev


def _schedule(rng: np.random.Generator, n: int, rate: float) -> dict[str, np.ndarray]:
    """First bars and lengths of the episodes of ``n`` bars: each starts MIN_GAP bars plus an exponential
    wait (mean chosen for ``rate`` per 1,000 bars) after the previous one's end."""
    if rate <= 0:
        return {"first": np.zeros(0, np.int64), "leg": np.zeros(0, np.int64), "follow": np.zeros(0, np.int64)}
    count = int(n * rate / 1000 * 1.2) + 8  # more than fit; the surplus lies beyond the bars
    leg = rng.integers(LEG_BARS[0], LEG_BARS[1] + 1, count)
    follow = rng.integers(FOLLOW_BARS[0], FOLLOW_BARS[1] + 1, count)
    wait = np.floor(rng.exponential(1000 / rate - _MEAN_SPAN - MIN_GAP, count)).astype(np.int64)
    first = np.cumsum(wait + MIN_GAP) + np.r_[0, np.cumsum(leg + follow)[:-1]] - MIN_GAP
    return {"first": first, "leg": leg, "follow": follow}


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions covered by [start, start + length) ranges, and which range each belongs to."""
    owner = np.repeat(np.arange(len(starts)), lengths)
    offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return starts[owner] + offset, owner


def episode_table(index: pd.DatetimeIndex, ev: dict[str, np.ndarray]) -> pd.DataFrame:
    """The episodes as timestamps (first and last bar of the leg, last bar of the follow-up: inclusive),
    kind, direction, leg strength and retracement depth."""
    return pd.DataFrame(
        {
            "expansion_start": index[ev["first"]],
            "expansion_end": index[ev["first"] + ev["leg"] - 1],
            "pattern_end": index[ev["last"]],
            "kind": pd.Series(np.asarray(KINDS)[ev["retracement"].astype(int)], dtype="str"),
            "direction": ev["direction"].astype(np.int64),
            "strength": ev["strength"],
            "depth": ev["depth"],
        }
    )
