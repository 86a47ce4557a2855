"""Embedded market data: deterministic, vectorised NQ-like 1-minute bars with planted patterns.

The generator follows the CME Globex schedule of NQ futures (Sunday 18:00 to Friday 17:00 New York
time, a one-hour halt at 17:00 every day, weekend gaps; 1,380 bars a trading day). Exchange holidays are
ignored, so a year has a few more bars than the real file. Bars are labelled by their opening minute.

Price model, in log-price and per bar: volatility = level x intraday profile (quiet overnight, a burst at
the 09:30 cash open and around the 16:00 close) x clustered noise (three AR(1) log-volatility components:
bursts that fade over minutes, hours and weeks; the minute-scale bursts are what makes volatility
clustering visible inside a 105-bar window, after range_z divides by the 20-bar EMA of the range);
regimes alternate between trending (drift, momentum) and ranging (no drift, mean-reverting chop, lower
volatility); each bar is a path of a few sub-steps, which gives its open, high, low and close; sessions
open with a gap; a slow pull keeps the level near an NQ-like trend (about 11,500 in September 2020,
x1.15 a year). Prices are rounded to the 0.25 tick; quiet bars are sometimes flat (one price); volume
grows with volatility and with the size of the move.

Episodes (``synthetic_market`` returns them as ``events``; ``moola_lib.bars.episodes`` defines them): an
expansion leg of 10-30 bars drifting 1.5-2.5 x the bar's volatility per bar, then 15-50 bars that either
retrace part of the leg or hold the level, at the market's own volatility. They run through the whole
history, unlabelled, at ``event_rate`` per 1,000 bars (default 4: about 5.5 per 23-hour trading day, one
every ~4 hours: about one 105-bar window in five holds a whole one); ``difficulty`` scales the retracement
depth. The embedded labelled set (``moola_lib.labels.testbed``) is a sample of these episodes from a period
kept out of pretraining: pretraining on this market sees episodes of the labelled kind, as pretraining on
a user's years of bars does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from .episodes import DEFAULT_DIFFICULTY, MAX_RATE, episode_table, plant_episodes

NEW_YORK = ZoneInfo("America/New_York")
REFERENCE_DATE = pd.Timestamp("2020-09-01", tz="UTC")
REFERENCE_PRICE = 11_500.0
PULL_BARS = 1380 * 5 * 13  # time constant (a quarter) of the pull towards the long-run trend
_MIN_REGIME_BARS = 30
_SUBSTEPS = 6
_WICK_SCALE = 2.5  # wicks beyond the sub-step path: intrabar noise that does not carry to the close
_MINUTE_NS = 60_000_000_000

# Intraday volatility multiplier at New York wall-clock times (hh:mm), linearly interpolated.
_PROFILE_KNOTS = (
    ("00:00", 0.35),
    ("02:30", 0.35),
    ("03:00", 0.60),
    ("04:00", 0.50),
    ("08:25", 0.55),
    ("08:30", 1.10),
    ("08:45", 0.75),
    ("09:29", 0.80),
    ("09:30", 2.20),
    ("10:00", 1.60),
    ("10:30", 1.30),
    ("12:00", 0.90),
    ("13:30", 0.85),
    ("15:30", 1.15),
    ("15:55", 1.60),
    ("16:00", 1.00),
    ("16:15", 0.55),
    ("17:00", 0.45),
    ("18:00", 0.60),
    ("18:30", 0.45),
    ("20:00", 0.50),
    ("21:00", 0.40),
    ("24:00", 0.35),
)


@dataclass(frozen=True)
class SyntheticOptions:
    """Generator knobs (keyword options of ``synthetic_market`` / ``synthetic_ohlcv``)."""

    start_price: float | None = None  # None: the NQ-like trend level at the start date
    annual_drift: float = 0.14  # log growth a year of the long-run level
    vol_per_minute: float = 4.0e-4  # std of 1-minute log returns where the intraday profile is 1
    vol_of_vol: float = 0.4  # std of the clustered log-volatility
    burst_half_life: float = 20.0  # bars: half-life of the fastest log-volatility component (minute-scale bursts)
    regime_bars: float = 720.0  # mean length of a trending or ranging regime
    trend_fraction: float = 0.4  # share of regimes that trend
    event_rate: float = 4.0  # episodes (expansion, then retracement or hold) per 1,000 bars (0 = none)
    difficulty: float = DEFAULT_DIFFICULTY  # retracement depth x (1 - difficulty): 0 easy .. 1 = holds
    flat_rate: float = 0.004  # chance that a bar at the quietest time of day is flat
    base_volume: float = 300.0  # typical contracts per bar where the intraday profile is 1
    tick_size: float = 0.25

    def __post_init__(self):
        for name in ("vol_per_minute", "vol_of_vol", "base_volume", "tick_size", "burst_half_life"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not self.regime_bars > _MIN_REGIME_BARS:
            raise ValueError(f"regime_bars must be > {_MIN_REGIME_BARS}, got {self.regime_bars!r}")
        if self.start_price is not None and not self.start_price > 0:
            raise ValueError(f"start_price must be > 0 or None, got {self.start_price!r}")
        for name in ("trend_fraction", "flat_rate", "difficulty"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not 0 <= self.event_rate <= MAX_RATE:
            raise ValueError(
                f"event_rate must be in [0, {MAX_RATE:.2f}] episodes per 1,000 bars (episodes are "
                f"at least a window apart), got {self.event_rate!r}"
            )


def synthetic_ohlcv(start="2020-09-01", end="2025-09-30", seed: int = 0, **options) -> pd.DataFrame:
    """NQ-like 1-minute bars from ``start`` to ``end`` (inclusive UTC dates); see ``synthetic_market``."""
    return synthetic_market(start, end, seed, **options)[0]


def synthetic_market(
    start="2020-09-01", end="2025-09-30", seed: int = 0, **options
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(bars, events)``.

    ``bars``: UTC DatetimeIndex named "timestamp", float64 open/high/low/close/volume. ``events``: one row
    per episode with ``expansion_start``, ``expansion_end``, ``pattern_end`` (timestamps of the first and
    last bar of the leg and of the last bar of the follow-up, inclusive), ``kind`` ("consolidation" |
    "retracement"), ``direction`` (+1 up leg, -1 down leg), ``strength`` (leg drift per bar in units of
    the bar's volatility) and ``depth`` (share of the leg retraced; 0 for consolidations). Same seed,
    same output. Options: the fields of ``SyntheticOptions``; unknown ones raise TypeError.
    """
    opts = _options(options)
    minutes, ny_minute_of_day = _trading_minutes(start, end)
    n = len(minutes)
    if n == 0:
        raise ValueError(f"no trading minutes between {start} and {end} (Globex is closed then)")
    rng = np.random.default_rng(seed)
    session_start = np.r_[False, np.diff(minutes) > 1]

    profile = _intraday_profile()[ny_minute_of_day]
    # the bursts and the episodes come from streams of their own: the episodes of a seed do not depend on
    # the other options, and the other draws not on the episode options (event_rate, difficulty)
    bursts = _burst_log_vol(np.random.default_rng([seed, 1]), n, opts.vol_of_vol, opts.burst_half_life)
    sigma = opts.vol_per_minute * profile * np.exp(_clustered_log_vol(rng, n, opts.vol_of_vol) + bursts)
    drift, momentum, vol_scale = _regimes(rng, n, opts)
    sigma *= vol_scale
    drift *= sigma
    events = plant_episodes(np.random.default_rng([seed, 2]), minutes, sigma, drift, opts.event_rate, opts.difficulty)
    in_event = np.zeros(n + 1, dtype=np.int64)
    np.add.at(in_event, events["first"], 1)
    np.add.at(in_event, events["last"] + 1, -1)
    in_event = np.cumsum(in_event[:-1]) > 0
    quiet = (profile.min() / profile) ** 2
    flat = (rng.random(n) < opts.flat_rate * quiet) & ~in_event

    open_, high, low, close, move = _prices(rng, opts, minutes, sigma, drift, momentum, flat, session_start)
    excitement = (sigma / opts.vol_per_minute) ** 1.2 * (1 + 0.25 * np.abs(move) / sigma)
    volume = np.round(opts.base_volume * excitement * np.exp(0.5 * rng.standard_normal(n) - 0.125))
    volume = np.where(flat, rng.integers(1, 8, n), np.maximum(volume, 1.0)).astype(np.float64)

    index = pd.DatetimeIndex((minutes * _MINUTE_NS).astype("datetime64[ns]"), name="timestamp")
    index = index.tz_localize("UTC")
    bars = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index, copy=False
    )
    return bars, episode_table(index, events)


def _prices(rng, opts: SyntheticOptions, minutes, sigma, drift, momentum, flat, session_start):
    """Open, high, low, close on the tick grid (and each bar's log move open -> close): bar paths,
    session gaps, a slow pull towards the long-run trend."""
    move, up, down = _bar_paths(rng, sigma, drift, momentum, flat, session_start)
    gap_scale = np.where(np.r_[False, np.diff(minutes) > 24 * 60], 12.0, 4.0)
    jump = np.zeros(len(minutes))
    jump[session_start] = (sigma * gap_scale)[session_start] * rng.standard_normal(int(session_start.sum()))
    # Log close relative to the trend; a slow pull keeps it within about 10% of the trend.
    close_log = lfilter([1.0], [1.0, -np.exp(-1.0 / PULL_BARS)], jump + move)
    years = (minutes - minutes[0]) / (365.25 * 1440)
    start_price = opts.start_price or _trend_price(minutes[0], opts.annual_drift)
    open_log = close_log - move + np.log(start_price) + opts.annual_drift * years
    del close_log, years, jump

    tick = opts.tick_size

    def on_grid(log_price):
        return np.round(np.exp(log_price) / tick) * tick

    close = on_grid(open_log + move)
    open_ = on_grid(open_log)
    open_[1:] = np.where(session_start[1:], open_[1:], close[:-1])  # within a session, open = last close
    high = np.maximum(on_grid(open_log + up), np.maximum(open_, close))
    low = np.minimum(on_grid(open_log + down), np.minimum(open_, close))
    close[flat] = high[flat] = low[flat] = open_[flat]
    return open_, high, low, close, move


def _bar_paths(rng, sigma, drift, momentum, flat, session_start):
    """Log moves from each bar's open: to the close, to the high and to the low (>= 0, <= 0).

    Each bar is a random walk of ``_SUBSTEPS`` steps with the bar's volatility and drift plus ``momentum``
    times the previous bar's shock (none across a session gap); flat bars do not move. The excursions
    beyond the open-close body are stretched by ``_WICK_SCALE``: intrabar noise that does not carry over.
    """
    steps = rng.standard_normal((_SUBSTEPS, len(sigma)), dtype=np.float32)  # one row per sub-step
    shock = steps.sum(axis=0, dtype=np.float64) / np.sqrt(_SUBSTEPS)
    carry = np.r_[0.0, shock[:-1]]
    carry[session_start] = 0.0
    moving = ~flat
    steps *= (sigma * moving / np.sqrt(_SUBSTEPS)).astype(np.float32)
    steps += ((drift + momentum * sigma * carry) * moving / _SUBSTEPS).astype(np.float32)
    path = np.cumsum(steps, axis=0, out=steps)
    move = path[-1].astype(np.float64)
    top, bottom = np.maximum(move, 0.0), np.minimum(move, 0.0)
    up = top + _WICK_SCALE * np.maximum(path.max(axis=0) - top, 0.0)
    down = bottom - _WICK_SCALE * np.maximum(bottom - path.min(axis=0), 0.0)
    return move, up, down


def _options(options: dict) -> SyntheticOptions:
    valid = [f.name for f in dataclasses.fields(SyntheticOptions)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"unknown synthetic option(s) {unknown}; valid options: {', '.join(valid)}")
    return SyntheticOptions(**options)


def _utc_day(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return ts.normalize()


def _trading_minutes(start, end) -> tuple[np.ndarray, np.ndarray]:
    """UTC epoch minutes of Globex trading bars in [start, end + 1 day), and their NY minute of day."""
    first, stop = _utc_day(start), _utc_day(end) + pd.Timedelta(days=1)
    if stop <= first:
        raise ValueError(f"end ({end}) must not be before start ({start})")
    utc = np.arange(first.value // _MINUTE_NS, stop.value // _MINUTE_NS, dtype=np.int64)
    wall = pd.DatetimeIndex((utc * _MINUTE_NS).astype("datetime64[ns]")).tz_localize("UTC")
    local = wall.tz_convert(NEW_YORK).tz_localize(None).asi8 // _MINUTE_NS
    minute_of_day = local % 1440
    weekday = (local // 1440 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    halt = (minute_of_day >= 17 * 60) & (minute_of_day < 18 * 60)
    trading = (
        ((weekday <= 3) & ~halt)
        | ((weekday == 4) & (minute_of_day < 17 * 60))
        | ((weekday == 6) & (minute_of_day >= 18 * 60))
    )
    return utc[trading], minute_of_day[trading]


def _intraday_profile() -> np.ndarray:
    knots = np.array([int(t[:2]) * 60 + int(t[3:]) for t, _ in _PROFILE_KNOTS], dtype=float)
    return np.interp(np.arange(1440), knots, [v for _, v in _PROFILE_KNOTS])


def _ar1(rng, n: int, half_life: float, std: float) -> np.ndarray:
    """Stationary AR(1) series with the given half-life (bars) and standard deviation."""
    phi = 0.5 ** (1.0 / half_life)
    noise = rng.standard_normal(n) * std * np.sqrt(1 - phi**2)
    out, _ = lfilter([1.0], [1.0, -phi], noise, zi=[phi * std * rng.standard_normal()])
    return out


def _clustered_log_vol(rng, n: int, vol_of_vol: float) -> np.ndarray:
    """Log-volatility noise with a fast (hours) and a slow (weeks) component, mean of exp(.) = 1."""
    fast, slow = vol_of_vol * 0.6, vol_of_vol * 0.8
    return _ar1(rng, n, 240.0, fast) + _ar1(rng, n, 5 * 1380.0, slow) - 0.5 * (fast**2 + slow**2)


def _burst_log_vol(rng, n: int, vol_of_vol: float, half_life: float) -> np.ndarray:
    """Minute-scale volatility bursts (log-volatility AR(1), mean of exp(.) = 1). Strong (1.2 x
    vol_of_vol), so that they stand out of the bar-to-bar noise of the range: range_z's lag-1
    autocorrelation is ~0.24 with them, ~0 without (volatility clustering invisible inside a 105-bar
    window). 1.2, not the first version's 0.9: the episodes keep the market's volatility, where the first
    version's planted patterns (0.35x and 1.3x volatility) added clustering of their own."""
    std = 1.2 * vol_of_vol
    return _ar1(rng, n, half_life, std) - 0.5 * std**2


def _regimes(rng, n: int, opts: SyntheticOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bar: drift in units of sigma, coefficient on the previous bar's shock, volatility factor."""
    n_regimes = int(2 * n / opts.regime_bars) + 16
    ends = np.cumsum(_MIN_REGIME_BARS + rng.exponential(opts.regime_bars - _MIN_REGIME_BARS, n_regimes))
    regime = np.minimum(np.searchsorted(ends, np.arange(n), side="right"), n_regimes - 1)
    trending = rng.random(n_regimes) < opts.trend_fraction
    direction = rng.choice([-1.0, 1.0], n_regimes)
    drift = np.where(trending, 0.03 * direction, 0.0)[regime]
    momentum = np.where(trending, 0.15, -0.25)[regime]
    vol_scale = np.where(trending, 1.1, 0.85)[regime]
    return drift, momentum, vol_scale


def _trend_price(minute: int, annual_drift: float) -> float:
    years = (minute * _MINUTE_NS - REFERENCE_DATE.value) / (365.25 * 1440 * _MINUTE_NS)
    return REFERENCE_PRICE * float(np.exp(annual_drift * years))
