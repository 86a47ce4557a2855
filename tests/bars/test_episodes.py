"""The episode process (moola_lib.bars.episodes): schedule, drift written into the generator; the labelled set's
windows around the market's episodes (moola_lib.labels.testbed)."""

import numpy as np
import pandas as pd
import pytest

from moola_lib.bars.episodes import (
    FOLLOW_BARS,
    KINDS,
    LEG_BARS,
    MIN_GAP,
    episode_table,
    plant_episodes,
)
from moola_lib.bars.synthetic import synthetic_market, synthetic_ohlcv
from moola_lib.labels.sets import DEFAULT_CLASSES
from moola_lib.labels.testbed import episode_windows, free_starts

L = 105


@pytest.fixture(scope="module")
def bars():
    return synthetic_ohlcv("2025-07-01", "2025-07-03", seed=2)


def test_kinds_are_the_embedded_task_classes():
    assert KINDS == DEFAULT_CLASSES


def test_schedule_drift_and_truth():
    rng = np.random.default_rng(0)
    n = 200_000
    minutes = np.arange(n)
    minutes[100_000:] += 60  # one session gap
    sigma = np.full(n, 1e-4) * np.exp(rng.normal(0, 0.3, n))
    drift = np.zeros(n)
    ev = plant_episodes(np.random.default_rng(1), minutes, sigma, drift, rate=4.0, difficulty=0.5)
    first, last = ev["first"], ev["last"]
    assert 0.7 * 4 * n / 1000 < len(first) < 1.1 * 4 * n / 1000  # about the rate (a few lost at the gap)
    assert (first[1:] - last[:-1] > MIN_GAP).all() and last[-1] < n
    assert not ((first < 100_000) & (last >= 100_000)).any()  # no episode across the gap
    assert LEG_BARS[0] <= ev["leg"].min() and ev["leg"].max() <= LEG_BARS[1]
    assert FOLLOW_BARS[0] <= ev["follow"].min() and ev["follow"].max() <= FOLLOW_BARS[1]
    assert 0.4 < ev["retracement"].mean() < 0.6 and (ev["depth"][~ev["retracement"]] == 0).all()
    assert (ev["depth"][ev["retracement"]] >= 0.5).all() and (ev["depth"][ev["retracement"]] <= 1.0).all()
    for i in range(0, len(first), 97):
        leg = slice(first[i], first[i] + ev["leg"][i])
        follow = slice(leg.stop, last[i] + 1)
        np.testing.assert_allclose(drift[leg], ev["direction"][i] * ev["strength"][i] * sigma[leg])
        assert drift[follow].sum() == pytest.approx(-ev["depth"][i] * drift[leg].sum())
        assert np.ptp(drift[follow]) < 1e-15  # a straight drift path
    outside = np.ones(n, dtype=bool)
    for a, b in zip(first, last):
        outside[a : b + 1] = False
    assert (drift[outside] == 0).all()
    table = episode_table(pd.date_range("2025-01-01", periods=n, freq="min", tz="UTC"), ev)
    assert list(table.columns) == [
        "expansion_start",
        "expansion_end",
        "pattern_end",
        "kind",
        "direction",
        "strength",
        "depth",
    ]


def test_difficulty_changes_only_the_retracement_depth():
    args = ("2025-07-01", "2025-07-10")
    easy_bars, easy = synthetic_market(*args, seed=4, difficulty=0.0)
    hard_bars, hard = synthetic_market(*args, seed=4, difficulty=1.0)
    pd.testing.assert_frame_equal(easy.drop(columns="depth"), hard.drop(columns="depth"))
    assert (hard["depth"] == 0).all() and (easy.loc[easy["kind"] == "retracement", "depth"] >= 1.0).all()
    first = easy_bars.index.get_loc(easy["pattern_end"].iloc[0]) + 1  # bars up to the first follow-up's end
    retrace = easy_bars.index.get_loc(easy.loc[easy["kind"] == "retracement", "expansion_end"].iloc[0])
    same = min(first, retrace + 1)
    pd.testing.assert_frame_equal(easy_bars.iloc[:same], hard_bars.iloc[:same])


def test_free_starts_avoid_session_gaps(bars):
    starts = free_starts(bars.index, 0, len(bars), L)
    gap = np.flatnonzero(np.diff(bars.index.asi8) != 60_000_000_000) + 1  # first bar after a halt
    assert len(gap) and len(starts)
    for s in starts:
        assert not ((gap > s) & (gap < s + L)).any()
    assert gap[0] in starts and gap[0] - 1 not in starts  # a window may open a session, not span it


def test_episode_windows_hold_one_whole_episode_each():
    bars, events = synthetic_market("2025-07-01", "2025-07-31", seed=5)
    index = bars.index
    quota = {"consolidation": 30, "retracement": 20}
    starts, rows = episode_windows(np.random.default_rng(0), index, events, 1000, len(index), quota, spacing=20)
    held = events.iloc[rows]
    assert held["kind"].value_counts().to_dict() == quota and (np.diff(starts) >= L + 20).all()
    first = index.get_indexer(pd.DatetimeIndex(held["expansion_start"]))
    last = index.get_indexer(pd.DatetimeIndex(held["pattern_end"]))
    assert (starts >= 1000).all() and (first >= starts).all() and (last < starts + L).all()
    minutes = index.asi8 // 60_000_000_000
    assert (minutes[starts + L - 1] - minutes[starts] == L - 1).all()  # one session
    all_first = index.get_indexer(pd.DatetimeIndex(events["expansion_start"]))
    all_last = index.get_indexer(pd.DatetimeIndex(events["pattern_end"]))
    for s in starts:  # no other episode's bar inside the window
        assert ((all_last >= s) & (all_first < s + L)).sum() == 1
    offsets = first - starts
    assert offsets.min() < 15 and offsets.max() > 45  # random offsets, not one fixed place
    with pytest.raises(ValueError, match="separate episode windows fit"):
        episode_windows(np.random.default_rng(0), index, events, 0, len(index), {"retracement": 10_000}, 20)
