"""The embedded synthetic market (moola_lib.bars.synthetic)."""

import time

import numpy as np
import pandas as pd
import pytest

from moola_lib.bars.ohlcv import PRICE_COLUMNS, validate_ohlcv
from moola_lib.bars.synthetic import synthetic_market, synthetic_ohlcv

NY = "America/New_York"


@pytest.fixture(scope="module")
def month():
    return synthetic_market("2025-07-01", "2025-07-31", seed=3)


def test_same_seed_same_bars_other_seed_differs():
    a_bars, a_events = synthetic_market("2024-01-08", "2024-01-12", seed=7)
    b_bars, b_events = synthetic_market("2024-01-08", "2024-01-12", seed=7)
    pd.testing.assert_frame_equal(a_bars, b_bars)
    pd.testing.assert_frame_equal(a_events, b_events)
    other = synthetic_ohlcv("2024-01-08", "2024-01-12", seed=8)
    assert other.index.equals(a_bars.index)
    assert not np.array_equal(other["close"].to_numpy(), a_bars["close"].to_numpy())


@pytest.mark.parametrize(
    "first_day, utc_open",
    [
        ("2024-06-02", "22:00"),  # summer (EDT)
        ("2024-01-07", "23:00"),  # winter (EST)
        ("2024-03-10", "22:00"),  # DST starts that Sunday
        ("2024-11-03", "23:00"),
    ],
)  # DST ends that Sunday
def test_one_week_of_globex(first_day, utc_open):
    last_day = pd.Timestamp(first_day) + pd.Timedelta(days=6)  # Sunday .. Saturday
    bars = synthetic_ohlcv(first_day, last_day)
    assert len(bars) == 5 * 1380  # five sessions of 23 hours
    local = bars.index.tz_convert(NY)
    assert bars.index[0] == pd.Timestamp(f"{first_day} {utc_open}", tz="UTC")
    assert (local[0].day_name(), local[0].strftime("%H:%M")) == ("Sunday", "18:00")
    assert (local[-1].day_name(), local[-1].strftime("%H:%M")) == ("Friday", "16:59")
    gaps = np.diff(bars.index.asi8) // 60_000_000_000
    assert sorted(set(gaps)) == [1, 61]  # minute bars and four daily one-hour halts
    assert (gaps == 61).sum() == 4


def test_schedule_over_months(month):
    bars, _ = month
    local = bars.index.tz_convert(NY)
    minute = local.hour * 60 + local.minute
    assert not (local.day_of_week == 5).any()  # no Saturday
    assert not ((minute >= 17 * 60) & (minute < 18 * 60)).any()  # daily halt
    assert not ((local.day_of_week == 6) & (minute < 18 * 60)).any()
    assert not ((local.day_of_week == 4) & (minute >= 17 * 60)).any()
    gaps = np.diff(bars.index.asi8) // 60_000_000_000
    assert (gaps == 49 * 60 + 1).sum() == 4  # four weekends: Friday 16:59 -> Sunday 18:00
    assert set(np.unique(gaps)) == {1, 61, 49 * 60 + 1}


def test_frame_shape_tick_grid_and_validity(month):
    bars, _ = month
    assert list(bars.columns) == [*PRICE_COLUMNS, "volume"]
    assert (bars.dtypes == np.float64).all()
    assert bars.index.name == "timestamp" and str(bars.index.tz) == "UTC"
    prices = bars[list(PRICE_COLUMNS)].to_numpy()
    np.testing.assert_array_equal(prices * 4, np.round(prices * 4))
    validate_ohlcv(bars)  # raises on any invalid bar
    assert (bars["volume"] >= 1).all() and (bars["volume"] == bars["volume"].round()).all()


def test_realistic_statistics(month):
    bars, _ = month
    rng = bars["high"] - bars["low"]
    local = bars.index.tz_convert(NY)
    minute = local.hour * 60 + local.minute
    cash = (minute >= 9 * 60 + 30) & (minute < 16 * 60)
    assert 15_000 < bars["close"].median() < 35_000  # NQ level in 2025
    assert 2 <= rng.median() <= 15
    assert rng[cash].median() > 1.5 * rng[~cash].median()  # intraday volatility profile
    first_half_hour = (minute >= 9 * 60 + 30) & (minute < 10 * 60)
    assert rng[first_half_hour].median() > rng[cash].median()
    assert 0.0002 < (rng == 0).mean() < 0.02  # flat bars occur, rarely
    assert np.corrcoef(rng, bars["volume"])[0, 1] > 0.3
    assert (bars["open"].to_numpy()[1:] == bars["close"].to_numpy()[:-1]).mean() > 0.95
    abs_ret = np.abs(np.diff(np.log(bars["close"].to_numpy())))
    assert np.corrcoef(abs_ret[1:], abs_ret[:-1])[0, 1] > 0.1  # volatility clustering


def event_positions(bars, events):
    pos = {c: bars.index.get_indexer(events[c]) for c in ("expansion_start", "expansion_end", "pattern_end")}
    assert all((p >= 0).all() for p in pos.values())  # every event timestamp is a bar
    return pos["expansion_start"], pos["expansion_end"], pos["pattern_end"]


def test_events_well_formed(month):
    bars, events = month
    assert list(events.columns) == [
        "expansion_start",
        "expansion_end",
        "pattern_end",
        "kind",
        "direction",
        "strength",
        "depth",
    ]
    assert set(events["kind"]) == {"consolidation", "retracement"}
    assert set(events["direction"]) == {-1, 1}
    start, leg_end, end = event_positions(bars, events)
    assert (start <= leg_end).all() and (leg_end < end).all()
    assert (end - start + 1).max() < 105
    assert (start[1:] > end[:-1] + 105).all()  # sorted, and a window apart
    minutes = bars.index.asi8 // 60_000_000_000
    assert (minutes[end] - minutes[start] == end - start).all()  # no session gap inside an event


def test_episodes_look_like_their_labels(month):
    """Legs move in their direction; retracements give back what the generator says (depth), holds do not
    move on average (tests/labels/test_testbed.py compares the two kinds' bars)."""
    bars, events = month
    start, leg_end, end = event_positions(bars, events)
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    sign = events["direction"].to_numpy()
    leg = (c[leg_end] - o[start]) * sign
    assert (leg > 0).mean() > 0.95
    pullback = (c[leg_end] - c[end]) * sign / leg
    calm = (events["kind"] == "consolidation").to_numpy()
    depth = events["depth"].to_numpy()
    assert abs(np.median(pullback[calm])) < 0.05
    assert abs(np.median(pullback[~calm] - depth[~calm])) < 0.05 and 0.25 <= depth[~calm].min()


def test_episodes_run_through_the_history_at_a_few_per_day():
    bars, events = synthetic_market("2025-07-01", "2025-09-30", seed=0)
    per_day = len(events) / (len(bars) / 1380)
    assert 4.5 < per_day < 6.0
    assert events["kind"].value_counts().min() >= 120  # enough for the 174 labelled windows of one quarter


def test_options():
    bars, events = synthetic_market("2024-01-08", "2024-01-09", start_price=5000.0, event_rate=0)
    assert abs(bars["open"].iloc[0] / 5000 - 1) < 0.02 and events.empty
    with pytest.raises(TypeError, match="unknown synthetic option.*'volatility'.*valid options: start_price"):
        synthetic_ohlcv("2024-01-08", "2024-01-09", volatility=2)
    with pytest.raises(ValueError, match="event_rate"):
        synthetic_ohlcv("2024-01-08", "2024-01-09", event_rate=50)
    with pytest.raises(ValueError, match="difficulty"):
        synthetic_ohlcv("2024-01-08", "2024-01-09", difficulty=1.5)
    with pytest.raises(ValueError, match="must not be before"):
        synthetic_ohlcv("2024-01-09", "2024-01-08")
    with pytest.raises(ValueError, match="no trading minutes"):
        synthetic_ohlcv("2024-01-06", "2024-01-06")  # a Saturday


def test_full_default_range():
    t0 = time.perf_counter()
    bars, events = synthetic_market()
    elapsed = time.perf_counter() - t0
    assert 1_780_000 < len(bars) < 1_850_000  # like the real file's 1,797,854 (no holidays here)
    assert bars.index[0] >= pd.Timestamp("2020-09-01", tz="UTC")
    assert bars.index[-1] < pd.Timestamp("2025-10-01", tz="UTC")
    assert 9_000 < bars["close"].iloc[:1000].mean() < 14_000 and bars["close"].iloc[-1000:].mean() > 15_000
    late = events[events["expansion_start"] >= pd.Timestamp("2025-07-01", tz="UTC")]
    assert late["kind"].value_counts().min() >= 120
    assert elapsed < 30, f"generation took {elapsed:.1f}s"


def test_volatility_bursts_are_visible_inside_a_window(month):
    """Minute-scale volatility bursts make range_z (the range over its 20-bar EMA) autocorrelated: what a
    model seeing 105 bars can learn from. Without bursts (half-life 1 bar: white noise) it is much less."""
    from moola_lib.features.relativity import relativity_features

    def lag1(bars):
        X, valid = relativity_features(bars)
        z = X[valid, 5] - X[valid, 5].mean()
        return float((z[:-1] * z[1:]).mean() / z.var())

    bars, events = month
    white, white_events = synthetic_market("2025-07-01", "2025-07-31", seed=3, burst_half_life=1e-3)
    assert lag1(bars) > 0.22 and lag1(white) < 0.18
    # the bursts have their own random stream: the episodes do not depend on them
    pd.testing.assert_frame_equal(events, white_events)
    with pytest.raises(ValueError, match="burst_half_life"):
        synthetic_ohlcv("2025-07-01", "2025-07-02", burst_half_life=0)
