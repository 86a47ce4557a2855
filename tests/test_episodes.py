"""Episodes written into market bars (the embedded labelled task): placement and consistent bars."""
import numpy as np
import pandas as pd
import pytest

from moola_lib.episodes import apply_drift, draw_episodes, episode_drift, free_starts, place_windows
from moola_lib.synthetic import synthetic_ohlcv

L = 105


@pytest.fixture(scope="module")
def bars():
    return synthetic_ohlcv("2025-07-01", "2025-07-03", seed=2)


def test_free_starts_avoid_busy_bars_and_session_gaps(bars):
    busy = np.zeros(len(bars), dtype=bool)
    busy[500:520] = True
    starts = free_starts(bars.index, busy, 0, len(bars), L)
    gap = np.flatnonzero(np.diff(bars.index.asi8) != 60_000_000_000) + 1   # first bar after a halt
    assert len(gap) and len(starts)
    for s in starts:
        assert not busy[s:s + L].any()
        assert not ((gap > s) & (gap < s + L)).any()
    assert 395 in starts and 396 not in starts and 520 in starts and 519 not in starts
    assert gap[0] in starts and gap[0] - 1 not in starts   # a window may open a session, not span it


def test_place_windows_keeps_them_apart_and_fails_clearly():
    rng = np.random.default_rng(0)
    starts = place_windows(rng, np.arange(0, 5000), 20, L, spacing=20)
    assert len(starts) == 20 and (np.diff(starts) >= L + 20).all()
    with pytest.raises(ValueError, match="only"):
        place_windows(rng, np.arange(0, 300), 5, L, spacing=20)


def test_drift_path_is_written_into_consistent_bars(bars):
    starts = np.array([200, 600])
    kinds = np.array(["retracement", "consolidation"], dtype=object)
    episodes = draw_episodes(np.random.default_rng(1), starts, kinds, difficulty=0.0, length=L)
    assert (episodes["pattern_end"] < L).all() and (episodes["depth"].to_numpy() > [0.39, -1]).all()
    assert episodes.loc[1, "depth"] == 0
    drift = episode_drift(bars, starts, episodes)
    ep = episodes.iloc[0]
    leg = slice(200 + ep.offset, 200 + ep.leg_end + 1)
    follow = slice(200 + ep.leg_end + 1, 200 + ep.pattern_end + 1)
    assert np.sign(drift[leg]).tolist() == [ep.direction] * (ep.leg_end - ep.offset + 1)
    assert drift[follow].sum() == pytest.approx(-ep.depth * drift[leg].sum())   # gives back depth x leg
    assert drift[600 + episodes.loc[1, "leg_end"] + 1:600 + episodes.loc[1, "pattern_end"] + 1].sum() == 0
    out = apply_drift(bars, drift)
    o, h, l, c = (out[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert (l <= np.minimum(o, c)).all() and (h >= np.maximum(o, c)).all()
    assert np.allclose(np.round(o / 0.25) * 0.25, o)
    same_session = np.diff(bars.index.asi8) == 60_000_000_000
    assert (o[1:][same_session] == c[:-1][same_session]).all()
    pd.testing.assert_frame_equal(apply_drift(bars, np.zeros(len(bars))), bars)
    moved = np.log(c[leg.stop - 1] / bars["close"].to_numpy()[leg.stop - 1])
    assert moved == pytest.approx(drift[:leg.stop].sum(), abs=1e-4)
