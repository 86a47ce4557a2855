"""Which windows train, stop early and test: outer folds, inner early-stopping split, subsamples.

Every split is stratified by class and group-aware (a group = windows that overlap in time never
straddles a split), and a pure function of its seed, so every arm sees identical folds.
"""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold


def make_folds(y: np.ndarray, groups: np.ndarray, folds: int, repeats: int, seed: int) -> np.ndarray:
    """Fold id of every window, one row per repeat: [repeats, N]. Stratified by class; a group
    (windows overlapping in time) never straddles folds. The same array serves every arm."""
    assign = np.full((repeats, len(y)), -1, dtype=np.int64)
    for r in range(repeats):
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + r)
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
            assign[r, test] = k
    return assign


def inner_split(train_idx: np.ndarray, y: np.ndarray, groups: np.ndarray, fraction: float,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split training-fold indices into (fit, early-stopping validation), stratified and group-aware."""
    n_splits = max(2, round(1 / fraction))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    fit, val = next(splitter.split(train_idx, y[train_idx], groups[train_idx]))
    return train_idx[fit], train_idx[val]


def subsample(train_idx: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A class-stratified random ``fraction`` of ``train_idx`` (at least 2 windows of each class)."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y[train_idx]):
        members = train_idx[y[train_idx] == c]
        keep.append(rng.choice(members, size=min(len(members), max(2, round(fraction * len(members)))),
                               replace=False))
    return np.sort(np.concatenate(keep))
