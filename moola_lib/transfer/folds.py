"""Which windows train, stop early and test: groups, outer folds, embargo, inner early-stopping split,
subsamples.

Every split is stratified by class and group-aware (a group never straddles a split), and a pure
function of its seed, so every arm sees identical folds. Groups join windows that overlap in time and,
by default, windows of the same trading session: bars of one session share its regime and news, so a
test window's session-mates in the training folds would flatter every arm. ``fold_block_days`` widens a
session to a block of calendar days (7: a week), for regimes that outlive a session. The embargo drops
training windows within N bars of a test window (purged cross-validation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold

from ..bars.ohlcv import DataValidationError

SESSION_TZ = "America/New_York"
SESSION_END_HOUR = 17  # the daily CME Globex halt: a session runs from 18:00 to 17:00 the next day


def session_ids(times: pd.DatetimeIndex) -> np.ndarray:
    """Trading session of each timestamp: days since the epoch of the session's closing date (New York
    time, a session closing at the 17:00 halt); -1 for NaT."""
    local = pd.DatetimeIndex(times).tz_convert(SESSION_TZ).tz_localize(None)
    # shifting by 24 - 17 = 7 hours puts a whole 18:00 .. 17:00 session on its closing date
    days = (local + pd.Timedelta(hours=24 - SESSION_END_HOUR)).floor("D")
    out = np.asarray((days - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1), dtype=float)
    return np.where(np.isnan(out), -1, out).astype(np.int64)


def fold_groups(
    overlap: np.ndarray,
    start: pd.DatetimeIndex,
    end: pd.DatetimeIndex,
    by_session: bool = True,
    block_days: int = 1,
) -> np.ndarray:
    """Group ids for the folds: windows that overlap (``overlap`` ids) and, with ``by_session``, windows
    whose first or last bar falls in the same trading session -- or, with ``block_days`` > 1, in the same
    block of that many calendar days of sessions (counted from the epoch's) -- are joined (transitively).
    Windows without timestamps keep their overlap group."""
    n = len(overlap)
    keys = [np.asarray(overlap)]
    if by_session:
        keys += [_block(session_ids(t), block_days) for t in (start, end)]
    rows, cols = [], []
    for k, key in enumerate(keys):
        _, node = np.unique(key, return_inverse=True)
        known = key >= 0
        rows.append(np.flatnonzero(known))
        cols.append(n + k * n + node[known])  # one graph node per (key kind, value)
    graph = coo_matrix(
        (np.ones(sum(map(len, rows))), (np.concatenate(rows), np.concatenate(cols))), shape=(n + len(keys) * n,) * 2
    )
    _, component = connected_components(graph, directed=False)
    return np.unique(component[:n], return_inverse=True)[1].astype(np.int64)


def _block(sessions: np.ndarray, days: int) -> np.ndarray:
    return np.where(sessions >= 0, sessions // days, -1)  # -1: no timestamp, no block


def config_groups(labelled, cfg) -> np.ndarray:
    """``fold_groups`` of a labelled set under a TransferConfig's (or the notebook parameters') grouping."""
    return fold_groups(labelled.groups, labelled.start, labelled.end, cfg.group_by_session, cfg.fold_block_days)


def embargo(
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    start: pd.DatetimeIndex,
    end: pd.DatetimeIndex,
    bars: int,
    bar_minutes: float = 1.0,
) -> np.ndarray:
    """``train_idx`` without the windows separated from a test window (before or after it) by fewer
    than ``bars`` bars of ``bar_minutes`` (measured in time: across a session halt the count is in
    minutes). Windows without timestamps cannot be placed in time and are kept."""
    if bars <= 0 or len(test_idx) == 0:
        return train_idx
    s, e = (np.asarray(pd.DatetimeIndex(t).as_unit("ns").asi8, dtype=float) for t in (start, end))
    s[np.asarray(start.isna())] = np.nan
    e[np.asarray(end.isna())] = np.nan
    gap = np.maximum(s[train_idx, None] - e[None, test_idx], s[None, test_idx] - e[train_idx, None])
    # start - end of consecutive windows with k bars between them is (k + 1) bar lengths
    too_close = (gap < (bars + 1) * bar_minutes * 60e9).any(axis=1)  # NaN compares False: unknown kept
    return train_idx[~too_close]


def make_folds(y: np.ndarray, groups: np.ndarray, folds: int, repeats: int, seed: int) -> np.ndarray:
    """Fold id of every window, one row per repeat: [repeats, N]. Stratified by class; a group
    (windows overlapping in time) never straddles folds. The same array serves every arm."""
    assign = np.full((repeats, len(y)), -1, dtype=np.int64)
    for r in range(repeats):
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + r)
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
            assign[r, test] = k
    return assign


def inner_split(
    train_idx: np.ndarray, y: np.ndarray, groups: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split training-fold indices into (fit, early-stopping validation), stratified and group-aware; too
    few windows of a class, or too few groups, for ``fraction`` is a DataValidationError saying what to change."""
    n_splits = max(2, round(1 / fraction))
    counts = np.bincount(y[train_idx], minlength=int(y.max()) + 1)
    if counts.min() < n_splits:
        raise DataValidationError(
            "labelled windows",
            "inner_split",
            f"a training fold holds only "
            f"{counts.tolist()} windows per class, too few for an inner split of "
            f"1/{n_splits} (after the embargo and learning-curve subsampling); lower "
            "embargo_bars, use fewer folds or a larger inner_val_fraction",
        )
    n_groups = len(np.unique(groups[train_idx]))
    if n_groups < n_splits:  # a group never straddles the split: each side needs groups of its own
        raise DataValidationError(
            "labelled windows",
            "inner_split",
            f"a training fold holds only {n_groups} "
            f"group(s) of windows (overlapping windows and, with group_by_session, "
            f"trading sessions), too few for an inner split of 1/{n_splits}; label "
            "windows from more sessions, set group_by_session False, use fewer folds "
            "or a larger inner_val_fraction",
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    fit, val = next(splitter.split(train_idx, y[train_idx], groups[train_idx]))
    return train_idx[fit], train_idx[val]


def subsample(train_idx: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A class-stratified random ``fraction`` of ``train_idx`` (at least 2 windows of each class)."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y[train_idx]):
        members = train_idx[y[train_idx] == c]
        keep.append(rng.choice(members, size=min(len(members), max(2, round(fraction * len(members)))), replace=False))
    return np.sort(np.concatenate(keep))
