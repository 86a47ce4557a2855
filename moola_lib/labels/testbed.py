"""The embedded labelled set: windows of the synthetic market, each holding one of the market's own episodes
(``moola_lib.bars.episodes``: the process that runs, unlabelled, through all its bars), labelled from the
generator's truth. It stands in for the user's hand-labelled windows wherever no labels file is given
(notebooks, validation, the GPU check); its defaults are ``EMBEDDED_SET``, written once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..bars.constants import WINDOW_LENGTH
from ..bars.episodes import DEFAULT_DIFFICULTY, KINDS
from ..bars.windows import gather_windows, windows_hit
from ..features.relativity import relativity_features
from .sets import DEFAULT_CLASSES, LabelledSet, overlap_groups

_WINDOW_SPACING = 20  # bars between two labelled windows
_MINUTE = pd.Timedelta(minutes=1)


@dataclass(frozen=True)
class EmbeddedSet:
    """The defaults of the embedded labelled set, written once: ``synthetic_labelled_set``, the notebooks'
    parameter classes (TransferParams, LabelParams), their parameter cells (tests/labels/test_testbed.py checks the
    literals), the validation script and the GPU check all read them from ``EMBEDDED_SET``.

    The market runs from ``history_start`` to ``end`` (seed ``market_seed``): the transfer notebook's
    default encoder pretrains on the same market (the same bars at the default difficulty), whose default
    splits end before ``start``; the labelled windows lie in [start, end], after the default test split,
    so outside pretraining."""

    n: int = 174  # windows
    class_balance: float = 0.466  # fraction of consolidation windows (81 / 174 like the original set)
    label_noise: float = 0.0  # fraction of labels flipped at random
    difficulty: float = DEFAULT_DIFFICULTY  # 0 easy .. 1 chance (episodes.py)
    start: str = "2025-07-01"  # labelled period (inclusive dates)
    end: str = "2025-09-30"
    history_start: str = "2024-10-01"  # the market's first day (features warm up long before start)
    market_seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


EMBEDDED_SET = EmbeddedSet()
_D = EMBEDDED_SET


def synthetic_labelled_set(
    n: int = _D.n,
    class_balance: float = _D.class_balance,
    label_noise: float = _D.label_noise,
    seed: int = 0,
    *,
    difficulty: float = _D.difficulty,
    start: str = _D.start,
    end: str = _D.end,
    history_start: str = _D.history_start,
    market_seed: int = _D.market_seed,
    feature_options: dict | None = None,
) -> LabelledSet:
    """The embedded labelled set: ``n`` windows of 105 bars of the synthetic market, each holding one whole
    episode of the market's own episode process (``moola_lib.bars.episodes``: an expansion leg, then a
    retracement or a hold at the same volatility), labelled from the generator's truth. The same process
    runs, unlabelled, through every bar of the market, so pretraining on it sees episodes of this kind.

    ``difficulty`` in [0, 1] scales the retracement depth of the market (0 = easy, 1 = chance); at the
    default the simple models trained on ~140 windows reach 60-80% balanced accuracy on fresh windows
    (VALIDATION.md, "The embedded testbed"; tests guard it). ``class_balance`` is the fraction of
    ``consolidation`` windows; ``label_noise`` flips exactly round(noise * n) labels chosen at random.
    Windows come from [start, end] (inclusive dates), one session long, at least 20 bars apart, the
    episode at a random offset (no other episode lies within a window of it); the market runs from
    ``history_start`` so the features have full warm-up history. ``seed`` picks the episodes and offsets.
    ``truth`` records each window's true kind, flip flag, episode times and parameters. Defaults:
    ``EMBEDDED_SET``.
    """
    from ..bars.synthetic import synthetic_market

    if not 0.0 <= class_balance <= 1.0 or not 0.0 <= label_noise <= 1.0 or not 0.0 <= difficulty <= 1.0:
        raise ValueError("class_balance, label_noise and difficulty must lie in [0, 1]")
    L = WINDOW_LENGTH
    bars, events = synthetic_market(start=history_start, end=end, seed=market_seed, difficulty=difficulty)
    index = bars.index
    rng = np.random.default_rng(seed)
    lo = int(index.searchsorted(pd.Timestamp(start, tz="UTC")))
    hi = int(index.searchsorted(pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)))
    n_consolidation = round(n * class_balance)
    quota = dict(zip(KINDS, (n_consolidation, n - n_consolidation)))
    try:
        starts, rows = episode_windows(rng, index, events, lo, hi, quota, _WINDOW_SPACING, L)
    except ValueError as e:
        raise ValueError(
            f"synthetic market {start}..{end}: {e} (each window holds one episode of the period, "
            "one session long; widen the period or lower n)"
        ) from None
    episodes = events.iloc[rows].reset_index(drop=True)
    X_full, valid_full = relativity_features(bars, **(feature_options or {}))
    classes = DEFAULT_CLASSES
    y_true = np.array([classes.index(k) for k in episodes["kind"]], dtype=np.int64)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=round(label_noise * n), replace=False)] = True
    y = np.where(flipped, 1 - y_true, y_true)
    ids = np.array([f"syn{i:04d}" for i in range(n)], dtype=object)
    first = index.get_indexer(pd.DatetimeIndex(episodes["expansion_start"]))
    leg_end = index.get_indexer(pd.DatetimeIndex(episodes["expansion_end"]))
    truth = _synthetic_truth(ids, episodes, first - starts, classes, y, flipped)
    settings = dict(difficulty=difficulty, class_balance=class_balance, label_noise=label_noise, seed=seed)
    period = dict(market_seed=market_seed, start=start, end=end, history_start=history_start)
    source = {"path": "<synthetic>", "format": "synthetic", "rows": n, "n": n, **settings, **period}
    source["n_flipped"] = int(flipped.sum())
    expansion = np.stack([first - starts, leg_end - starts], axis=1).astype(np.int64)
    return _labelled_set(X_full, valid_full, starts, index, y, ids, expansion, source, truth)


def _labelled_set(X_full, valid_full, starts, index, y, ids, expansion, source, truth) -> LabelledSet:
    """The embedded set's LabelledSet: its windows gathered from the market's features."""
    L = WINDOW_LENGTH
    return LabelledSet(
        X=gather_windows(np.asarray(X_full), starts, length=L).astype(np.float32, copy=False),
        valid=gather_windows(np.asarray(valid_full)[:, None], starts, length=L)[..., 0].astype(bool),
        y=y,
        classes=DEFAULT_CLASSES,
        window_id=ids,
        start=index[starts],
        end=index[starts + L - 1],
        expansion=expansion,
        groups=overlap_groups(starts, L),
        source=source,
        truth=truth,
    )


def free_starts(index: pd.DatetimeIndex, lo: int, hi: int, length: int = WINDOW_LENGTH) -> np.ndarray:
    """Window starts s in [lo, hi - length] whose bars [s, s + length) are one-minute consecutive (no
    session gap)."""
    gap = np.diff(index.as_unit("ns").asi8) != _MINUTE.value  # gap[i]: bar i + 1 follows a gap
    s = np.arange(max(lo, 0), max(min(hi, len(index)) - length + 1, 0))
    return s[~windows_hit(gap, s, length - 1)]


def episode_windows(
    rng: np.random.Generator,
    index: pd.DatetimeIndex,
    events: pd.DataFrame,
    lo: int,
    hi: int,
    quota: dict[str, int],
    spacing: int,
    length: int = WINDOW_LENGTH,
) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``length`` bars in [lo, hi), each holding one whole episode of ``events`` at a random
    offset, ``quota[kind]`` of each kind, at least ``length + spacing`` bars apart. Returns the sorted
    window starts and the rows of ``events`` they hold. Raises ValueError when too few fit."""
    first = index.get_indexer(pd.DatetimeIndex(events["expansion_start"]))
    last = index.get_indexer(pd.DatetimeIndex(events["pattern_end"]))
    allowed = free_starts(index, lo, hi, length)
    a = np.searchsorted(allowed, last - length + 1, side="left")
    count = np.searchsorted(allowed, first, side="right") - a  # windows [s, s + length) holding the episode
    eligible = np.flatnonzero(count > 0)
    pick = np.full(len(first), -1, dtype=np.int64)
    pick[eligible] = allowed[a[eligible] + (rng.random(len(eligible)) * count[eligible]).astype(np.int64)]
    need, kinds = dict(quota), events["kind"].to_numpy()
    taken = np.zeros(len(index) + length + spacing, dtype=bool)
    chosen = []
    apart = length + spacing
    for i in rng.permutation(eligible):
        s = int(pick[i])
        if need.get(kinds[i], 0) > 0 and not taken[max(s - apart + 1, 0) : s + apart].any():
            chosen.append(i)
            taken[s] = True
            need[kinds[i]] -= 1
    short = {k: v for k, v in need.items() if v > 0}
    if short:
        got = {k: quota[k] - short.get(k, 0) for k in quota}
        raise ValueError(f"only {got} separate episode windows fit, {quota} requested")
    chosen = np.asarray(sorted(chosen, key=lambda i: pick[i]), dtype=np.int64)
    return pick[chosen], chosen


def _synthetic_truth(ids, episodes, offset, classes, y, flipped) -> pd.DataFrame:
    """How the embedded set was made: true kind, label, flip flag, episode times and parameters."""
    return pd.DataFrame(
        {
            "window_id": ids,
            "true_kind": episodes["kind"].to_numpy(),
            "label": np.asarray(classes, dtype=object)[y],
            "flipped": flipped,
            "direction": episodes["direction"].to_numpy(),
            **{c: pd.DatetimeIndex(episodes[c]) for c in ("expansion_start", "expansion_end", "pattern_end")},
            "offset": np.asarray(offset),
            "strength": episodes["strength"].to_numpy(),
            "depth": episodes["depth"].to_numpy(),
        }
    )
