"""The embedded labelled set: windows of the synthetic market, each holding one expansion episode written into
the market's own bars (``moola_lib.episodes``), labelled from the generator's truth. It stands in for the
user's hand-labelled windows wherever no labels file is given (notebooks, validation, the GPU check).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .constants import WINDOW_LENGTH
from .features import relativity_features
from .labels import DEFAULT_CLASSES, LabelledSet, overlap_groups
from .windows import gather_windows

_WINDOW_SPACING = 20   # bars between two labelled windows, so one episode's aftermath stays out of the next


def synthetic_labelled_set(n: int = 174, class_balance: float = 81 / 174, label_noise: float = 0.0,
                           seed: int = 0, *, difficulty: float = 0.3, start: str = "2025-07-01",
                           end: str = "2025-09-30", history_start: str = "2025-06-01", market_seed: int = 0,
                           feature_options: dict | None = None) -> LabelledSet:
    """The embedded labelled set: ``n`` windows of 105 bars of the synthetic market, each holding one
    expansion episode written into the market's own bars (``moola_lib.episodes``); the label is how the
    episode unfolds after the expansion (retracement or consolidation), at the same volatility.

    ``difficulty`` in [0, 1] scales the retracement depth (0 = easy, 1 = chance); at the default 0.3 a
    logistic regression on per-window feature summaries reaches roughly 65-80% balanced accuracy (tests
    guard it). ``class_balance`` is the fraction of ``consolidation`` windows (default 81 / 174 like the
    original set); ``label_noise`` flips exactly round(noise * n) labels chosen at random. Windows come
    from [start, end] (inclusive dates, after the default test split, so outside pretraining), at
    session-contiguous stretches free of the generator's own planted patterns; the market runs from
    ``history_start`` so the features have full warm-up history. ``truth`` records each window's true
    kind, flip flag, episode times and parameters.
    """
    from .episodes import apply_drift, draw_episodes, episode_drift, free_starts, place_windows
    from .synthetic import synthetic_market

    if not 0.0 <= class_balance <= 1.0 or not 0.0 <= label_noise <= 1.0 or not 0.0 <= difficulty <= 1.0:
        raise ValueError("class_balance, label_noise and difficulty must lie in [0, 1]")
    L = WINDOW_LENGTH
    bars, events = synthetic_market(start=history_start, end=end, seed=market_seed)
    index = bars.index
    rng = np.random.default_rng(seed)
    lo = int(index.searchsorted(pd.Timestamp(start, tz="UTC")))
    hi = int(index.searchsorted(pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)))
    try:
        starts = place_windows(rng, free_starts(index, _planted_bars(index, events), lo, hi, L), n, L,
                               _WINDOW_SPACING)
    except ValueError as e:
        raise ValueError(f"synthetic market {start}..{end}: {e} (usable windows are one session long and "
                         "free of planted patterns; widen the period or lower n)") from None
    n_consolidation = int(round(n * class_balance))
    kinds = rng.permutation(np.array(["consolidation"] * n_consolidation + ["retracement"] * (n - n_consolidation),
                                     dtype=object))
    episodes = draw_episodes(rng, starts, kinds, difficulty, L)
    bars = apply_drift(bars, episode_drift(bars, starts, episodes))
    X_full, valid_full = relativity_features(bars, **(feature_options or {}))
    classes = DEFAULT_CLASSES
    y_true = np.array([classes.index(k) for k in kinds], dtype=np.int64)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=int(round(label_noise * n)), replace=False)] = True
    y = np.where(flipped, 1 - y_true, y_true)
    ids = np.array([f"syn{i:04d}" for i in range(n)], dtype=object)
    truth = _synthetic_truth(ids, index, starts, episodes, classes, y, flipped)
    source = {"path": "<synthetic>", "format": "synthetic", "rows": n, "n": n, "difficulty": difficulty,
              "class_balance": class_balance, "label_noise": label_noise, "seed": seed,
              "market_seed": market_seed, "start": start, "end": end, "history_start": history_start,
              "n_flipped": int(flipped.sum())}
    return LabelledSet(
        X=gather_windows(np.asarray(X_full), starts, length=L).astype(np.float32, copy=False),
        valid=gather_windows(np.asarray(valid_full)[:, None], starts, length=L)[..., 0].astype(bool),
        y=y, classes=classes, window_id=ids, start=index[starts], end=index[starts + L - 1],
        expansion=episodes[["offset", "leg_end"]].to_numpy(dtype=np.int64),
        groups=overlap_groups(starts, L), source=source, truth=truth)


def _planted_bars(index: pd.DatetimeIndex, events: pd.DataFrame) -> np.ndarray:
    """Bars covered by the generator's own planted patterns (labelled windows stay clear of them)."""
    first = index.get_indexer(pd.DatetimeIndex(events["expansion_start"]))
    last = index.get_indexer(pd.DatetimeIndex(events["pattern_end"]))
    cover = np.zeros(len(index) + 1, dtype=np.int64)
    np.add.at(cover, first, 1)
    np.add.at(cover, last + 1, -1)
    return np.cumsum(cover)[:-1] > 0


def _synthetic_truth(ids, index, starts, episodes, classes, y, flipped) -> pd.DataFrame:
    """How the embedded set was made: true kind, label, flip flag, episode times and parameters."""
    return pd.DataFrame({
        "window_id": ids, "true_kind": episodes["kind"].to_numpy(), "label": np.asarray(classes, dtype=object)[y],
        "flipped": flipped, "direction": episodes["direction"].to_numpy(),
        "expansion_start": index[starts + episodes["offset"].to_numpy()],
        "expansion_end": index[starts + episodes["leg_end"].to_numpy()],
        "pattern_end": index[starts + episodes["pattern_end"].to_numpy()], "offset": episodes["offset"].to_numpy(),
        "strength": episodes["strength"].to_numpy(), "depth": episodes["depth"].to_numpy(),
    })
