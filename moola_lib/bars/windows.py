"""Fixed-length windows over the feature array, as start positions and index gathers.

A window is identified by the position of its first bar; ``gather_windows`` turns a batch of starts
into ``[N, length, F]`` with one fancy-index gather, so ``[T, length, F]`` is never materialised.
Where windows may lie: inside a split (``split_windows``), or inside a contiguous run of bars
(``contiguous_runs``: no gap between consecutive bars longer than a limit, ``long_gaps``, and optionally
only valid bars; ``run_window_starts``: the windows of every run, each run's from its own first bar).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .constants import WINDOW_LENGTH, WINDOW_STRIDE
from .sources import split_slices
from .splits import DEFAULT_SPLITS


def window_starts(n_bars: int, length: int = WINDOW_LENGTH, stride: int = WINDOW_STRIDE) -> np.ndarray:
    """Start offsets of the windows in a contiguous run of n_bars bars: 0, stride, ... (int64).

    floor((n_bars - length) / stride) + 1 windows; none if the run is shorter than one window.
    """
    for name, value in (("length", length), ("stride", stride)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if int(n_bars) != n_bars or n_bars < 0:
        raise ValueError(f"n_bars must be an integer >= 0, got {n_bars!r}")
    return np.arange(0, max(int(n_bars) - int(length) + 1, 0), int(stride), dtype=np.int64)


def windows_hit(flags: np.ndarray, starts: np.ndarray, span: int) -> np.ndarray:
    """For each start s, whether any of flags[s : s + span] is set (prefix-sum lookup)."""
    counts = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
    return counts[starts + span] > counts[starts]


def _as_timedelta(max_gap) -> pd.Timedelta:
    if isinstance(max_gap, (int, float, np.integer, np.floating)) and not isinstance(max_gap, bool):
        gap = pd.Timedelta(minutes=float(max_gap))
    else:
        gap = pd.Timedelta(max_gap)
    if not gap > pd.Timedelta(0):
        raise ValueError(f"max_gap must be positive, got {max_gap!r}")
    return gap


def long_gaps(index: pd.DatetimeIndex, max_gap) -> np.ndarray:
    """bool [T - 1]: whether bars i and i + 1 of the sorted ``index`` lie further apart than ``max_gap``
    (a pd.Timedelta, or minutes as a number)."""
    return np.asarray((index[1:] - index[:-1]) > _as_timedelta(max_gap))  # unit-safe, unlike asi8


def contiguous_runs(index: pd.DatetimeIndex, max_gap=None, valid=None) -> np.ndarray:
    """The maximal runs of consecutive bars with no gap longer than ``max_gap`` between neighbours (None:
    no limit) and, with ``valid`` (bool [T]), only valid bars: int64 [R, 2] of (first, stop) positions
    (half-open), in time order. A window inside one run spans no session break and no invalid bar."""
    n = len(index)
    ok = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if ok.shape != (n,):
        raise ValueError(f"valid has shape {ok.shape}, expected ({n},) to match the index")
    if n == 0:
        return np.empty((0, 2), dtype=np.int64)
    cut = ~ok[:-1] | ~ok[1:]  # cut[i]: bars i and i + 1 are not in one run
    if max_gap is not None:
        cut |= long_gaps(index, max_gap)
    first = np.flatnonzero(ok & np.r_[True, cut])
    stop = np.flatnonzero(ok & np.r_[cut, True]) + 1
    return np.stack([first, stop], axis=1).astype(np.int64)


def run_window_starts(runs: np.ndarray, length: int = WINDOW_LENGTH, stride: int = WINDOW_STRIDE) -> np.ndarray:
    """Absolute start positions of the windows inside each run of ``runs`` ([R, 2] from
    ``contiguous_runs``): ``window_starts`` of every run, from the run's own first bar, in order."""
    window_starts(0, length, stride)  # checks length and stride even when there is no run
    parts = [first + window_starts(stop - first, length, stride) for first, stop in np.asarray(runs)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _as_timestamp(value, tz) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if tz is None:
        return ts.tz_convert(None) if ts.tz is not None else ts
    return ts.tz_localize("UTC").tz_convert(tz) if ts.tz is None else ts.tz_convert(tz)


def split_windows(
    index: pd.DatetimeIndex,
    valid=None,
    splits=DEFAULT_SPLITS,
    *,
    length: int = WINDOW_LENGTH,
    stride: int = WINDOW_STRIDE,
    require_valid: bool = True,
    max_gap=None,
    exclude=None,
) -> dict[str, np.ndarray]:
    """Window start positions (absolute, into the full series) per split; no window crosses a split.

    valid: bool [T] per-bar mask (e.g. the features' warm-up mask); with require_valid, windows holding
    an invalid bar are dropped. max_gap: pd.Timedelta (or minutes as a number; None = no limit);
    windows spanning a longer gap between consecutive bars are dropped. exclude: (start, end)
    timestamp pairs (inclusive; naive = UTC); windows overlapping any of them are dropped.
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError(f"index must be a pandas DatetimeIndex, not {type(index).__name__}")
    n = len(index)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != (n,):
            raise ValueError(f"valid has shape {valid.shape}, expected ({n},) to match the index")
    gap_too_long = None
    if max_gap is not None:
        gap_too_long = long_gaps(index, max_gap)
    ranges = []
    for pair in exclude or ():
        if len(pair) != 2:
            raise ValueError(f"exclude entries must be (start, end) pairs, got {pair!r}")
        lo, hi = (_as_timestamp(x, index.tz) for x in pair)
        if hi < lo:
            raise ValueError(f"exclude range ends before it starts: {pair!r}")
        ranges.append((lo, hi))

    out = {}
    for name, part in split_slices(index, splits).items():
        starts = part.start + window_starts(part.stop - part.start, length, stride)
        keep = np.ones(len(starts), dtype=bool)
        if require_valid and valid is not None:
            keep &= ~windows_hit(~valid, starts, length)
        if gap_too_long is not None:
            keep &= ~windows_hit(gap_too_long, starts, length - 1)
        if ranges:
            first, last = index[starts], index[starts + length - 1]
            for lo, hi in ranges:
                keep &= ~((first <= hi) & (last >= lo))
        out[name] = starts[keep]
    return out


def gather_windows(X, starts, length: int = WINDOW_LENGTH):
    """X[starts[i] : starts[i] + length] for every i, stacked to [N, length, ...] by one index gather.

    Works for numpy arrays and torch tensors (the result lives where X lives). Starts given on the CPU
    are bounds-checked; starts already on a GPU are trusted (checking would force a device sync).
    """
    if type(X).__module__.startswith("torch"):
        import torch

        on_gpu = isinstance(starts, torch.Tensor) and starts.device.type != "cpu"
        if not on_gpu:
            _check_bounds(np.asarray(starts.cpu() if isinstance(starts, torch.Tensor) else starts), len(X), length)
        starts = torch.as_tensor(starts, dtype=torch.long, device=X.device)
        return X[starts[:, None] + torch.arange(length, device=X.device)]
    starts = np.asarray(starts, dtype=np.int64)
    _check_bounds(starts, len(X), length)
    return X[starts[:, None] + np.arange(length)]


def _check_bounds(starts: np.ndarray, n: int, length: int) -> None:
    if starts.ndim != 1:
        raise ValueError(f"starts must be 1-D, got shape {starts.shape}")
    if starts.size and (starts.min() < 0 or starts.max() + length > n):
        raise IndexError(
            f"window starts must lie in [0, {n - length}] for {n} bars and length "
            f"{length}; got min {starts.min()}, max {starts.max()}"
        )
