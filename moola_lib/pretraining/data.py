"""The data of a pretraining job, loaded once: bars (a file or the embedded synthetic market), the 10
relativity features over the whole series, and the window starts of each split (DESIGN.md sections 2-3).

``load_pretrain_data(config)`` reads what the config's data fields (``DATA_FIELDS``) describe;
``pretrain(config, run_dir, data=...)`` accepts data loaded before (a notebook shows it first) after
``check_data_matches`` has made sure the data was loaded from the same data fields.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..bars.sources import describe_source, resolve_splits, run_bars, split_slices
from ..bars.splits import is_fractions, resolved_splits_line, to_utc
from ..bars.windows import split_windows
from ..features.relativity import FEATURE_NAMES, relativity_features, swing_points
from ..util.config import ConfigError
from .config import PretrainConfig

# every PretrainConfig field that load_pretrain_data reads: data loaded with the same values is the same data
DATA_FIELDS = (
    "data_path",
    "timestamp_column",
    "data_timezone",
    "resample_to_1min",
    "on_invalid",
    "synthetic_start",
    "synthetic_end",
    "synthetic_seed",
    "splits",
    "window_length",
    "stride",
    "max_gap_minutes",
    "exclude",
    "exclude_margin_bars",
    "feature_options",
    "input_size",
)


@dataclass
class PretrainData:
    config: PretrainConfig  # the config it was loaded with (its DATA_FIELDS matter)
    bars: pd.DataFrame
    X: np.ndarray  # float32 [T, F]
    valid: np.ndarray  # bool [T]
    starts: dict[str, np.ndarray]  # window start positions per split
    slices: dict[str, slice]  # bar positions per split
    summary: dict


def load_pretrain_data(config: PretrainConfig | Mapping) -> PretrainData:
    """Bars (file or synthetic), features once over the whole series, window starts per split."""
    config = as_config(config)
    bars, source = run_bars(config)
    t0 = time.perf_counter()
    X, valid = relativity_features(bars, **config.feature_options)
    features_seconds = time.perf_counter() - t0
    if X.shape[1] != config.input_size:
        raise ConfigError(
            f"input_size={config.input_size} but there are {X.shape[1]} features ({', '.join(FEATURE_NAMES)})"
        )
    where = describe_source(source)
    splits = resolve_splits(bars.index, config.splits, source=where)  # "auto" / fractions: cut between sessions
    if is_fractions(config.splits) and os.environ.get("RANK", "0") == "0":  # torchrun: one line, not one per rank
        print(resolved_splits_line(config.splits, splits))
    slices = split_slices(bars.index, splits, source=where)
    starts = split_windows(
        bars.index,
        valid,
        splits,
        length=config.window_length,
        stride=config.stride,
        max_gap=config.max_gap_minutes,
        exclude=_excluded_periods(bars.index, config),
    )
    for name in starts:  # every split, test included: an empty one would be evaluated on nothing, silently
        if len(starts[name]) == 0:
            raise ConfigError(_no_windows_message(name, splits[name], config, bars, valid, slices[name], source))
    index = bars.index
    summary = {
        "source": source,
        "bars": len(bars),
        "valid_bars": int(valid.sum()),
        "first_bar": index[0].isoformat(),
        "last_bar": index[-1].isoformat(),
        "features": list(FEATURE_NAMES),
        "feature_options": dict(config.feature_options),  # every option with its value
        "features_seconds": round(features_seconds, 3),
        "window_length": config.window_length,
        "stride": config.stride,
        "splits": {
            name: {
                "start": splits[name][0],
                "end": splits[name][1],
                "bars": sl.stop - sl.start,
                "first_bar": index[sl.start].isoformat(),
                "last_bar": index[sl.stop - 1].isoformat(),
                "windows": len(starts[name]),
            }
            for name, sl in slices.items()
        },
    }
    return PretrainData(config, bars, X, valid, starts, slices, summary)


def _no_windows_message(
    name: str,
    bounds: tuple,
    config: PretrainConfig,
    bars: pd.DataFrame,
    valid: np.ndarray,
    bar_slice: slice,
    source: dict,
) -> str:
    """Why split ``name`` holds no window, in the terms the user can act on: data whose prices never
    confirm a swing (flat or degenerate), a split inside the feature warm-up, or a split too short for a window
    (its bars counted, and the fixes: more bars, other split dates or fractions, a smaller window or stride)."""
    where = f"split {name!r} {list(bounds)} of {describe_source(source)}"
    if not valid.any():
        options = config.feature_options  # resolved: every option with its value
        swings = swing_points(bars, **options)
        missing = sorted({"high", "low"} - set(swings["kind"]))
        if missing:
            return (
                f"{where}: 0 valid bars in the whole data: no swing {' or '.join(missing)} is ever "
                f"confirmed (that needs a reversal of reversal_atr={options['reversal_atr']} x ATR), so "
                "the swing features never warm up. The prices are flat or degenerate: check the data file"
            )
        return (
            f"{where}: 0 valid bars in the whole data: {len(bars)} bars are too few for the feature warm-up "
            "(ATR, EMA and a confirmed swing high and low); use a longer data file"
        )
    if not valid[bar_slice].any():
        return (
            f"{where}: none of its {bar_slice.stop - bar_slice.start} bars is valid (all lie before the "
            "feature warm-up); start the split later"
        )
    n_bars = bar_slice.stop - bar_slice.start
    bars_text = f"{n_bars} bars ({bars.index[bar_slice.start]} .. {bars.index[bar_slice.stop - 1]})"
    fix = "give it more bars (more data, other split dates, or larger fractions of the data's span)"
    if config.stride >= n_bars:  # one window at most, at the split's first bar: usually not a valid one
        return (
            f"{where}: stride={config.stride} is not shorter than the split's {bars_text}, so at most one "
            f"window start is tried; lower stride, or {fix}"
        )
    dropping = [f"max_gap_minutes={config.max_gap_minutes:g}"] if config.max_gap_minutes is not None else []
    dropping += ["exclude"] if config.exclude else []
    return (
        f"{where}: its {bars_text} hold no window of {config.window_length} consecutive valid bars (stride "
        f"{config.stride})"
        + (f" that {' and '.join(dropping)} keep" if dropping else "")
        + f"; {fix}, or a smaller window_length / stride"
        + (f", or loosen {' and '.join(dropping)}" if dropping else "")
    )


def _excluded_periods(index: pd.DatetimeIndex, config: PretrainConfig) -> list[tuple]:
    """config.exclude as inclusive (first bar, last bar) pairs widened by exclude_margin_bars."""
    periods, m = [], config.exclude_margin_bars
    for start, end in config.exclude:
        lo = index.searchsorted(to_utc(start)) - m
        hi = index.searchsorted(to_utc(end), side="right") - 1 + m
        lo, hi = max(lo, 0), min(hi, len(index) - 1)
        if lo <= hi:
            periods.append((index[lo], index[hi]))
    return periods


def check_data_matches(data: PretrainData, config: PretrainConfig) -> None:
    """Refuse data loaded with other data fields than ``config`` (other bars, splits, windows or features):
    the job would train on data its results and checkpoints do not describe."""
    loaded, wanted = data.config.to_dict(), config.to_dict()
    changed = [f"{k}: {loaded[k]!r} (data) vs {wanted[k]!r} (config)" for k in DATA_FIELDS if loaded[k] != wanted[k]]
    if changed:
        raise ConfigError(
            f"the data passed to pretrain() was loaded with other settings than the job's config "
            f"({'; '.join(changed)}); load it with load_pretrain_data(config) or pass data=None"
        )


def as_config(config) -> PretrainConfig:
    if isinstance(config, PretrainConfig):
        return config
    if isinstance(config, Mapping):
        return PretrainConfig.from_dict(config)
    raise TypeError(f"config must be a PretrainConfig or a mapping, got {type(config).__name__}")
