import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import moola_lib
from moola_lib.features.options import (
    FEATURE_OPTION_DEFAULTS,
    FEATURE_RANGES,
    ORIGINAL_FEATURE_OPTIONS,
    FeatureOptionError,
    feature_ranges,
    resolve_feature_options,
)
from moola_lib.features.relativity import FEATURE_NAMES, relativity_features, swing_points

ORIGINAL = ORIGINAL_FEATURE_OPTIONS
OPTION_SETS = {"defaults": FEATURE_OPTION_DEFAULTS, "original": ORIGINAL}
FIXTURES = Path(__file__).parents[1] / "fixtures"


def bounds(options):
    ranges = feature_ranges(**options)
    return (
        np.array([ranges[n][0] for n in FEATURE_NAMES], dtype=np.float32),
        np.array([ranges[n][1] for n in FEATURE_NAMES], dtype=np.float32),
    )


# ---------------------------------------------------------------------------------------------------
# an independent, slow, per-bar pure-Python transcription of DESIGN.md section 3


def reference_features(
    o,
    h,
    l,
    c,
    atr_period=10,
    ema_period=20,
    reversal_atr=2.0,
    hybrid_max_age=-1,
    hybrid_atr=0.5,
    bars_norm=105,
    dist_transform="log",
    dist_clip=4.0,
):
    def ratio(num, den, lo, hi):
        x = (0.0 if num == 0 else (hi if num > 0 else lo)) if den == 0 else num / den
        return min(max(x, lo), hi)

    def dist(num, den):
        if den == 0 or dist_transform == "linear":
            return ratio(num, den, -dist_clip, dist_clip)
        d = num / den
        return ratio(math.copysign(math.log1p(abs(d)), d), 1.0, -dist_clip, dist_clip)

    alpha = 2.0 / (ema_period + 1.0)
    n = len(c)
    X = np.zeros((n, 10), dtype=np.float32)
    valid = np.zeros(n, dtype=bool)
    swings = []
    trs = []
    ema = None
    leg = None  # (direction, extreme price, extreme bar)
    last = {"high": None, "low": None}
    for t in range(n):
        o_t, h_t, l_t, c_t = float(o[t]), float(h[t]), float(l[t]), float(c[t])
        r = h_t - l_t
        trs.append(r if t == 0 else max(r, abs(h_t - c[t - 1]), abs(l_t - c[t - 1])))
        recent = trs[-atr_period:]
        atr = sum(recent) / len(recent)
        ema = r if ema is None else alpha * r + (1.0 - alpha) * ema
        if leg is None:
            leg = ("up", h_t, t)
        else:
            direction, extreme, pos = leg
            if direction == "up":
                if h_t > extreme:
                    extreme, pos = h_t, t
                move, pull = extreme - c_t, extreme - l_t
            else:
                if l_t < extreme:
                    extreme, pos = l_t, t
                move, pull = c_t - extreme, h_t - extreme
            primary = move > 0 and move >= reversal_atr * atr
            hybrid = t - pos <= hybrid_max_age and pull > 0 and pull >= hybrid_atr * atr
            if primary or hybrid:
                kind = "high" if direction == "up" else "low"
                swings.append((kind, pos, t, extreme))
                last[kind] = (extreme, pos)
                leg = ("down", l_t, t) if direction == "up" else ("up", h_t, t)
            else:
                leg = (direction, extreme, pos)
        if t + 1 < atr_period or t + 1 < ema_period or last["high"] is None or last["low"] is None:
            continue
        valid[t] = True
        if r == 0:
            candle = [0.5, 0.5, 0.0, 0.0, 0.0]
        else:
            candle = [
                ratio(o_t - l_t, r, 0, 1),
                ratio(c_t - l_t, r, 0, 1),
                ratio(c_t - o_t, r, -1, 1),
                ratio(h_t - max(o_t, c_t), r, 0, 1),
                ratio(min(o_t, c_t) - l_t, r, 0, 1),
            ]
        (sh, sh_pos), (sl, sl_pos) = last["high"], last["low"]
        X[t] = candle + [
            ratio(r, ema, 0, 3),
            dist(sh - c_t, atr),
            dist(c_t - sl, atr),
            min((t - sh_pos) / bars_norm, 3.0),
            min((t - sl_pos) / bars_norm, 3.0),
        ]
    return X, valid, swings


# ---------------------------------------------------------------------------------------------------
# bar generators


def random_walk(n, seed, *, tick=None, flat_prob=0.0, price=5000.0, vol=2.0):
    rng = np.random.default_rng(seed)
    c = price + np.cumsum(rng.standard_t(4, n) * vol)
    o = np.r_[price, c[:-1]] + rng.normal(0, vol / 4, n)
    h = np.maximum(o, c) + np.abs(rng.normal(0, vol / 2, n))
    l = np.minimum(o, c) - np.abs(rng.normal(0, vol / 2, n))
    if tick is not None:
        o, h, l, c = (np.round(x / tick) * tick for x in (o, h, l, c))
    flat = rng.random(n) < flat_prob
    o[flat] = h[flat] = l[flat] = c[flat]
    return {"open": o, "high": h, "low": l, "close": c}


def bars_from_mids(mids, open_offset=-0.5):
    """Bars [m - 1, m + 1] closing at the mid m and opening at m + open_offset."""
    m = np.asarray(mids, dtype=float)
    return {"open": m + open_offset, "high": m + 1, "low": m - 1, "close": m}


def concat(*parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in ("open", "high", "low", "close")}


def flat(prices):
    p = np.asarray(prices, dtype=float)
    return {"open": p, "high": p, "low": p, "close": p}


def transform(bars, a, b):
    return {k: a * v + b for k, v in bars.items()}


def check_bounded(X, valid, options=None):
    lo, hi = bounds(options or {})
    assert X.dtype == np.float32 and valid.dtype == np.bool_
    assert np.isfinite(X).all()
    assert (X >= lo).all() and (X <= hi).all()
    assert not X[~valid].any()
    assert not np.any(valid[:-1] & ~valid[1:]), "validity must be a prefix of False then True"


# ---------------------------------------------------------------------------------------------------
# hand-computed cases

# mids of a clear zigzag; every bar has range 2 and true range 2, so ATR = EMA(range) = 2 throughout
# and, with the original's reversal (1.2 ATR) and the hybrid rule off, a swing confirms when the close
# is >= 2.4 away from the leg extreme.
ZIGZAG_MIDS = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,  # up leg, high 13 at bar 12
    11,
    10,  # bar 14: close 10 <= 13 - 2.4 -> SH(13 @ 12)
    9,
    8,
    9,  # down leg from low 9 @ 14 to low 7 @ 16
    10,  # bar 18: close 10 >= 7 + 2.4 -> SL(7 @ 16)
    11,
    12,
    13,
    12,  # up leg from high 11 @ 18 to high 14 @ 21
    11,  # bar 23: close 11 <= 14 - 2.4 -> SH(14 @ 21)
    12,  # down leg from low 10 @ 23
    13,
]  # bar 25: close 13 >= 10 + 2.4 -> SL(10 @ 23)
ZIGZAG = dict(ORIGINAL, hybrid_max_age=-1)

# the same kind of zigzag under the defaults: reversal at 2.0 ATR = 4 price units, dist as log1p
DEFAULT_MIDS = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,  # up leg, high 13 at bar 12
    11,
    10,  # 13 - 10 = 3 < 4: no reversal yet
    9,  # bar 15: close 9 <= 13 - 4 -> SH(13 @ 12)
    8,
    7,  # down leg from low 8 @ 15 to low 6 @ 17
    8,
    9,  # 9 - 6 = 3 < 4
    10,  # bar 20: close 10 >= 6 + 4 -> SL(6 @ 17)
    11,
    12,
    13,
    14,
]  # up leg, closes through the old high 13


def test_names_and_ranges():
    assert FEATURE_NAMES == (
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
    assert set(FEATURE_RANGES) == set(FEATURE_NAMES)
    assert FEATURE_RANGES["body_pct"] == (-1.0, 1.0) and FEATURE_RANGES["dist_to_prev_SH"] == (-4.0, 4.0)
    assert feature_ranges(**ORIGINAL)["dist_to_prev_SL"] == (-3.0, 3.0)
    assert feature_ranges(dist_clip=2.5)["dist_to_prev_SH"] == (-2.5, 2.5)
    assert moola_lib.ORIGINAL_FEATURE_OPTIONS is ORIGINAL_FEATURE_OPTIONS


def test_default_and_original_options():
    assert FEATURE_OPTION_DEFAULTS == dict(
        atr_period=10,
        ema_period=20,
        reversal_atr=2.0,
        hybrid_max_age=-1,
        hybrid_atr=0.5,
        bars_norm=105,
        dist_transform="log",
        dist_clip=4.0,
    )
    assert ORIGINAL == dict(
        atr_period=10,
        ema_period=20,
        reversal_atr=1.2,
        hybrid_max_age=5,
        hybrid_atr=0.5,
        bars_norm=105,
        dist_transform="linear",
        dist_clip=3.0,
    )


def test_original_options_reproduce_the_original_values_exactly():
    # made with the code before issue 9 (tests/fixtures/original_encoder/README.md)
    saved = np.load(FIXTURES / "original_encoder" / "features_2025-01-06.npz")
    bars = {k: saved[k] for k in ("open", "high", "low", "close")}
    X, valid = relativity_features(bars, **ORIGINAL)
    np.testing.assert_array_equal(valid, saved["valid"])
    np.testing.assert_array_equal(X, saved["X"])
    assert not np.array_equal(relativity_features(bars)[0], saved["X"])  # the defaults differ


def test_resolve_feature_options():
    assert resolve_feature_options({}) == {**FEATURE_OPTION_DEFAULTS, "bars_norm": 105.0}
    resolved = resolve_feature_options({"reversal_atr": 3, "dist_transform": "linear"})
    assert resolved["reversal_atr"] == 3.0 and isinstance(resolved["reversal_atr"], float)
    assert resolved["dist_transform"] == "linear" and resolved["atr_period"] == 10
    # partial options over the original's (how stored options of old encoders are read)
    assert resolve_feature_options({"hybrid_max_age": -1}, base=ORIGINAL) == {**ZIGZAG, "bars_norm": 105.0}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"reversal": 2.0}, r"unknown feature option 'reversal'\. Did you mean 'reversal_atr'\?"),
        ({"atr_period": 10.5}, "atr_period must be an integer"),
        ({"atr_period": True}, "atr_period must be an integer"),
        ({"hybrid_max_age": "5"}, "hybrid_max_age must be an integer"),
        ({"reversal_atr": "2"}, "reversal_atr must be a number"),
        ({"dist_clip": 0}, "dist_clip must be a finite number > 0"),
        ({"hybrid_atr": -1.0}, "hybrid_atr must be a finite number >= 0"),
        ({"dist_transform": "sqrt"}, "dist_transform must be one of 'log', 'linear'"),
    ],
)
def test_bad_feature_options_are_named(options, message):
    with pytest.raises(FeatureOptionError, match=message):
        resolve_feature_options(options)


def test_hand_computed_defaults():
    bars = bars_from_mids(DEFAULT_MIDS)
    swings = swing_points(bars)
    assert list(swings.itertuples(index=False, name=None)) == [("high", 12, 15, 13.0), ("low", 17, 20, 6.0)]
    X, valid = relativity_features(bars)
    assert valid.tolist() == [False] * 20 + [True] * 5
    candle = [0.25, 0.5, 0.25, 0.5, 0.25]
    expected = {  # dist: d = (SH - close) / 2 and (close - SL) / 2, then sign(d) * ln(1 + |d|)
        20: candle + [1.0, math.log1p(1.5), math.log1p(2.0), (20 - 12) / 105, (20 - 17) / 105],
        22: candle + [1.0, math.log1p(0.5), math.log1p(3.0), (22 - 12) / 105, (22 - 17) / 105],
        23: candle + [1.0, 0.0, math.log1p(3.5), (23 - 12) / 105, (23 - 17) / 105],
        24: candle + [1.0, -math.log1p(0.5), math.log1p(4.0), (24 - 12) / 105, (24 - 17) / 105],
    }
    for t, row in expected.items():
        np.testing.assert_allclose(X[t], row, rtol=0, atol=1e-6, err_msg=f"bar {t}")


def test_hand_computed_swing_sequence():
    bars = bars_from_mids(ZIGZAG_MIDS)
    swings = swing_points(bars, **ZIGZAG)
    assert list(swings.itertuples(index=False, name=None)) == [
        ("high", 12, 14, 13.0),
        ("low", 16, 18, 7.0),
        ("high", 21, 23, 14.0),
        ("low", 23, 25, 10.0),
    ]

    X, valid = relativity_features(bars, **ZIGZAG)
    # ATR needs 10 bars, the EMA 20 bars (t = 19); the swing low is confirmed at t = 18
    assert valid.tolist() == [False] * 19 + [True] * 7
    assert not X[:19].any()
    candle = [0.25, 0.5, 0.25, 0.5, 0.25]  # open m - 0.5, close m, range [m - 1, m + 1]
    expected = {
        19: candle + [1.0, (13 - 11) / 2, (11 - 7) / 2, (19 - 12) / 105, (19 - 16) / 105],
        22: candle + [1.0, (13 - 12) / 2, (12 - 7) / 2, (22 - 12) / 105, (22 - 16) / 105],
        23: candle + [1.0, (14 - 11) / 2, (11 - 7) / 2, (23 - 21) / 105, (23 - 16) / 105],
        25: candle + [1.0, (14 - 13) / 2, (13 - 10) / 2, (25 - 21) / 105, (25 - 23) / 105],
    }
    for t, row in expected.items():
        np.testing.assert_allclose(X[t], row, rtol=0, atol=1e-6, err_msg=f"bar {t}")


def test_hand_computed_hybrid_rule():
    # with the defaults the hybrid rule fires first: a new extreme on a bar whose low (high) is
    # >= 0.5 ATR = 1 away from it confirms the swing at once
    swings = swing_points(bars_from_mids(ZIGZAG_MIDS), **ORIGINAL)
    assert list(swings.head(4).itertuples(index=False, name=None)) == [
        ("high", 1, 1, 2.0),  # bar 1 makes the high 2; its low 0 is 2 below it
        ("low", 1, 2, 0.0),  # down leg opened at bar 1's low 0; bar 2's high 3 is 3 above it
        ("high", 3, 3, 4.0),  # up leg opened at bar 2's high 3; bar 3 extends to 4, low 2
        ("low", 3, 4, 2.0),
    ]
    # an old extreme does not trigger the hybrid rule: hybrid_max_age=0 needs the extreme on this bar
    # (at bar 2 the down leg's extreme, bar 1's low, is one bar old)
    mids = [0, 1, 2, 2, 2]
    late = swing_points(bars_from_mids(mids), hybrid_max_age=0, reversal_atr=100.0)
    assert list(late.itertuples(index=False, name=None)) == [("high", 1, 1, 2.0)]
    young = swing_points(bars_from_mids(mids), hybrid_max_age=1, reversal_atr=100.0)
    assert list(young.head(2).itertuples(index=False, name=None)) == [("high", 1, 1, 2.0), ("low", 1, 2, 0.0)]


@pytest.mark.parametrize(
    "dist",
    [dict(dist_transform="linear", dist_clip=3.0), dict(dist_transform="log", dist_clip=4.0)],
    ids=["linear", "log"],
)
def test_flat_bars_and_zero_atr(dist):
    # after the zigzag, 16 flat bars at 14: the first has TR 1, then ATR falls to exactly 0
    bars = concat(bars_from_mids(ZIGZAG_MIDS), flat([14.0] * 16))
    options = {**ZIGZAG, **dist}
    X, valid = relativity_features(bars, **options)
    check_bounded(X, valid, options)
    assert valid[26:].all()
    np.testing.assert_array_equal(X[26:, :5], np.tile([0.5, 0.5, 0, 0, 0], (16, 1)))
    assert (X[26:, 5] == 0).all()  # range 0 over a positive EMA
    t = 41  # ATR = 0 from bar 36 on
    # SH 14 == close: 0 / 0 -> 0; close 14 - SL 10 = 4 over ATR 0 -> the clip bound
    bound = dist["dist_clip"]
    np.testing.assert_allclose(X[t, 5:], [0.0, 0.0, bound, (t - 21) / 105, (t - 23) / 105], atol=1e-7)


def test_all_flat_series_is_never_valid():
    X, valid = relativity_features(flat(np.full(300, 123.25)))
    assert not valid.any() and not X.any()


def test_empty_and_tiny_inputs():
    X, valid = relativity_features(flat([]))
    assert X.shape == (0, 10) and valid.shape == (0,)
    X, valid = relativity_features(bars_from_mids([1.0]))
    assert X.shape == (1, 10) and not valid.any()


def test_dataframe_and_mapping_agree_and_swing_times():
    bars = random_walk(500, seed=1)
    index = pd.date_range("2024-01-01", periods=500, freq="1min", tz="UTC", name="timestamp")
    frame = pd.DataFrame({k.upper(): v for k, v in bars.items()}, index=index)
    X1, v1 = relativity_features(frame)
    X2, v2 = relativity_features(bars)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(v1, v2)
    swings = swing_points(frame)
    assert (swings["extreme_time"] == index[swings["extreme_pos"]]).all()
    assert (swings["confirm_time"] == index[swings["confirm_pos"]]).all()
    assert (swings["extreme_pos"] <= swings["confirm_pos"]).all()
    assert "extreme_time" not in swing_points(bars)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.pop("close"), "missing"),
        (lambda b: b["high"].__setitem__(7, np.nan), "non-finite"),
        (lambda b: b["low"].__setitem__(3, b["high"][3] + 1), "high < low"),
        (lambda b: b.__setitem__("open", b["open"][:-1]), "equal length"),
    ],
)
def test_bad_input_raises(change, message):
    bars = random_walk(50, seed=2)
    change(bars)
    with pytest.raises(ValueError, match=message):
        relativity_features(bars)


@pytest.mark.parametrize(
    "option",
    [
        dict(atr_period=0),
        dict(ema_period=2.5),
        dict(reversal_atr=-1),
        dict(hybrid_atr=np.inf),
        dict(bars_norm=0),
        dict(dist_clip=-1.0),
        dict(dist_transform="LOG"),
    ],
)
def test_bad_options_raise(option):
    with pytest.raises(FeatureOptionError, match=next(iter(option))):
        relativity_features(random_walk(50, seed=3), **option)
    with pytest.raises(FeatureOptionError, match=next(iter(option))):
        swing_points(random_walk(50, seed=3), **option)


# ---------------------------------------------------------------------------------------------------
# reference comparison, bounds, causality, invariance

CASES = {
    "generic": dict(n=1500, seed=10),
    "ticks_and_flats": dict(n=1500, seed=11, tick=0.25, flat_prob=0.2),
    "coarse_ticks": dict(n=1500, seed=12, tick=1.0, vol=0.7),
}
OPTIONS = [
    {},
    ORIGINAL,
    ZIGZAG,
    dict(
        atr_period=3,
        ema_period=5,
        reversal_atr=2.0,
        hybrid_max_age=2,
        hybrid_atr=1.0,
        bars_norm=20,
        dist_transform="linear",
    ),
    dict(atr_period=25, ema_period=3, reversal_atr=0.8, hybrid_max_age=0, bars_norm=3, dist_clip=1.5),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "original", "original_no_hybrid", "short", "long_atr"])
def test_matches_reference_implementation(case, options):
    bars = random_walk(**CASES[case])
    X, valid = relativity_features(bars, **options)
    X_ref, valid_ref, swings_ref = reference_features(*bars.values(), **options)
    np.testing.assert_array_equal(valid, valid_ref)
    np.testing.assert_array_equal(X, X_ref)
    swings = swing_points(bars, **options)
    assert list(swings.itertuples(index=False, name=None)) == swings_ref
    assert valid.sum() > 1000 and len(swings_ref) > 10
    check_bounded(X, valid, options)


def adversarial_cases():
    shift = np.repeat(np.random.default_rng(5).normal(0, 500, 6), 100)  # price gaps every 100 bars
    walk = random_walk(600, seed=6)
    jumps = random_walk(600, seed=7)
    for k in jumps:
        jumps[k][300:] *= 1e6  # a huge jump up ...
        jumps[k][450:] *= 1e-9  # ... and down
    return {
        "long_flat_runs": concat(walk, flat(np.full(8000, walk["close"][-1])), random_walk(200, seed=8)),
        "huge_jumps": jumps,
        "tiny_prices": transform(walk, 1e-9, 1e-6),
        "huge_prices": transform(walk, 1e9, 0.0),
        "gaps": {k: v + shift for k, v in walk.items()},
        "alternating_flat": flat(np.tile([100.0, 100.25], 300)),
        "mostly_flat_ticks": random_walk(800, seed=9, tick=0.25, flat_prob=0.9),
    }


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS)
@pytest.mark.parametrize("case", list(adversarial_cases()))
def test_adversarial_inputs_stay_finite_and_in_range(case, options):
    bars = adversarial_cases()[case]
    X, valid = relativity_features(bars, **options)
    check_bounded(X, valid, options)
    # a one-tick oscillation moves 1 ATR: a swing under the original's hybrid rule, none at 2 ATR
    assert valid.any() == (case != "alternating_flat" or options["reversal_atr"] < 1.0 or options is ORIGINAL)


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS)
def test_causal_prefix_replay(options):
    bars = random_walk(2500, seed=20, tick=0.25, flat_prob=0.05)
    X, valid = relativity_features(bars, **options)
    assert valid.sum() > 2000
    cuts = sorted(set(np.random.default_rng(0).integers(1, 2500, 60).tolist()) | {1, 2, 19, 20, 21})
    for t in cuts:
        Xt, vt = relativity_features({k: v[:t] for k, v in bars.items()}, **options)
        np.testing.assert_array_equal(Xt, X[:t], err_msg=f"prefix {t}")
        np.testing.assert_array_equal(vt, valid[:t], err_msg=f"prefix {t}")


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS)
@pytest.mark.parametrize("a, b", [(3.7, -1234.5), (0.01, 7.0), (250.0, 1e5)])
def test_invariant_under_affine_price_change(a, b, options):
    bars = random_walk(3000, seed=30)
    X, valid = relativity_features(bars, **options)
    Xa, valid_a = relativity_features(transform(bars, a, b), **options)
    np.testing.assert_array_equal(valid_a, valid)
    np.testing.assert_allclose(Xa, X, rtol=0, atol=1e-5)


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS)
def test_invariant_exactly_on_tick_data_with_ties(options):
    # tick prices scaled by a power of two and shifted by an integer stay exact in floating point,
    # so even exact ties (flat bars, equal highs, move == k * ATR) must give identical features
    bars = random_walk(3000, seed=31, tick=0.25, flat_prob=0.3, vol=0.5)
    X, valid = relativity_features(bars, **options)
    Xa, valid_a = relativity_features(transform(bars, 4.0, 2048.0), **options)
    np.testing.assert_array_equal(valid_a, valid)
    np.testing.assert_array_equal(Xa, X)


def decimal_bars(seed: int, n: int = 5000) -> pd.DataFrame:
    """FX-like bars on a 1e-5 tick (EURUSD near 1.1) as decimal floats: a reversal move can equal
    reversal_atr * ATR exactly in decimals, and how a * price + b rounds must not decide that tie."""
    rng = np.random.default_rng(seed)
    close = 110_000 + np.cumsum(rng.integers(-30, 31, n))
    open_ = np.concatenate([close[:1], close[:-1]])
    high = np.maximum(open_, close) + rng.integers(0, 20, n)
    low = np.minimum(open_, close) - rng.integers(0, 20, n)
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame(
        {k: np.round(v * 1e-5, 5) for k, v in (("open", open_), ("high", high), ("low", low), ("close", close))},
        index=index,
    )


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS)
@pytest.mark.parametrize("seed", [0, 1, 3])
def test_swings_do_not_move_under_an_affine_change_of_decimal_prices(options, seed):
    bars = decimal_bars(seed)
    X, valid = relativity_features(bars, **options)
    swings = swing_points(bars, **options)
    for a, b in ((1.0, 1000.0), (3.0, 0.0), (7.3, 12.5)):  # +1000: the shift that moved EURUSD swings
        moved = bars * a + b
        pd.testing.assert_frame_equal(
            swing_points(moved, **options)[["kind", "extreme_pos", "confirm_pos"]],
            swings[["kind", "extreme_pos", "confirm_pos"]],
        )
        Xa, valid_a = relativity_features(moved, **options)
        np.testing.assert_array_equal(valid_a, valid)
        np.testing.assert_allclose(Xa, X, rtol=0, atol=1e-4)


@st.composite
def tick_bars(draw):
    n = draw(st.integers(1, 120))
    ticks = st.integers(0, 12)
    steps = draw(st.lists(st.integers(-10, 10), min_size=n, max_size=n))
    ups = draw(st.lists(ticks, min_size=n, max_size=n))
    downs = draw(st.lists(ticks, min_size=n, max_size=n))
    opens = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    closes = np.cumsum(steps) * 0.25 + 1000.0
    prev = np.r_[1000.0, closes[:-1]]
    open_ = np.where(np.array(opens) < 0.5, prev, closes)
    high = np.maximum(open_, closes) + np.array(ups) * 0.25
    low = np.minimum(open_, closes) - np.array(downs) * 0.25
    return {"open": open_, "high": high, "low": low, "close": closes}


@settings(max_examples=50, deadline=None)
@given(bars=tick_bars(), options=st.sampled_from(OPTIONS))
def test_property_random_bar_sequences(bars, options):
    X, valid = relativity_features(bars, **options)
    check_bounded(X, valid, options)
    X_ref, valid_ref, _ = reference_features(*bars.values(), **options)
    np.testing.assert_array_equal(valid, valid_ref)
    np.testing.assert_array_equal(X, X_ref)
    Xa, valid_a = relativity_features(transform(bars, 0.5, -512.0), **options)
    np.testing.assert_array_equal(Xa, X)
    np.testing.assert_array_equal(valid_a, valid)
