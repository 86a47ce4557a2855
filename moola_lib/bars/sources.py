"""The bars of a run: where they come from (``run_bars``: a validated file or the embedded market;
``bars_source`` / ``describe_source``: the file's path and SHA-256, or the market's range and seed) and how
they split on the time axis (``split_slices``: positions of half-open date splits; ``resolve_splits``:
"auto" or fractions resolved to dates cut at sessions, ``moola_lib.bars.splits``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..util.io import file_sha256
from .ohlcv import DataValidationError, load_ohlcv
from .splits import AUTO_SPLITS, DEFAULT_SPLITS, FRACTIONS_HINT, fraction_bounds, is_fractions, split_problems, to_utc

# how a run reads its data file: fields of PretrainConfig and of every notebook's parameters (RunParams)
READ_OPTIONS = ("timestamp_column", "data_timezone", "resample_to_1min")


def read_options(spec) -> dict:
    """How ``spec`` (a config, parameters, parsed flags) says its bars are read: its ``READ_OPTIONS``, those it has."""
    return {name: getattr(spec, name) for name in READ_OPTIONS if hasattr(spec, name)}


def split_slices(
    index: pd.DatetimeIndex, splits: Mapping[str, tuple] = DEFAULT_SPLITS, *, source: str = "<index>"
) -> dict[str, slice]:
    """Positional slices of a sorted DatetimeIndex, one per split, in the order given.

    Each split is a half-open ``[start, end)`` interval; dates without a time mean UTC midnight, naive
    timestamps are UTC. Splits must have start < end and must not overlap. An empty split raises
    (DataValidationError naming ``source``, the bars' file).
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError(f"split_slices needs a DatetimeIndex, got {type(index).__name__}")
    if not index.is_monotonic_increasing:
        raise DataValidationError(source, "unsorted_timestamp", "the index must be sorted to split it")
    if problems := split_problems(splits, required=()):
        raise ValueError(problems[0])
    search = index if index.tz is not None else index.tz_localize("UTC")
    out = {}
    for name, pair in splits.items():
        start, end = (to_utc(x) for x in pair)
        lo, hi = search.searchsorted(start, side="left"), search.searchsorted(end, side="left")
        if hi <= lo:
            span = f"{index[0]} .. {index[-1]}" if len(index) else "no bars"
            raise DataValidationError(
                source,
                "empty_split",
                f"split {name!r} [{start}, {end}) holds no bars; "
                f"the data spans {span}. Give dates inside it, or {FRACTIONS_HINT}",
            )
        out[name] = slice(int(lo), int(hi))
    return out


def resolve_splits(index: pd.DatetimeIndex, splits, *, source: str = "<index>") -> dict[str, tuple[str, str]]:
    """The ``[start, end)`` dates of ``splits`` (moola_lib.bars.splits) on the sorted bars of ``index``: date pairs as
    given; "auto" / fractions of the span first .. last bar cut at 17:00 New York (``fraction_bounds``), as ISO
    timestamps: a fraction too small for a whole session, or one whose sessions hold no bars (a weekend),
    raises DataValidationError 'short_split' naming ``source``, the bars' file."""
    if not is_fractions(splits):
        return {name: tuple(bounds) for name, bounds in splits.items()}
    if problems := split_problems(splits, required=()):
        raise ValueError(problems[0])
    if not len(index):
        raise DataValidationError(source, "short_split", "there are no bars to split")
    fractions = AUTO_SPLITS if splits == "auto" else splits
    bounds = fraction_bounds(index[0], index[-1], fractions)
    for name, (start, end) in bounds.items():
        if start >= end or index.searchsorted(start) == index.searchsorted(end):
            what = (
                "holds no whole session (cut at 17:00 New York)"
                if start >= end
                else f"[{start}, {end}) holds no bars (a weekend or holiday)"
            )
            raise DataValidationError(
                source,
                "short_split",
                f"split {name!r}, {fractions[name]:g} of the data's span, {what}: the data spans {index[0]} .. "
                f"{index[-1]}; give it a larger fraction, or dates",
            )
    return {name: (start.isoformat(), end.isoformat()) for name, (start, end) in bounds.items()}


def run_bars(spec, *, on_invalid: str | None = None) -> tuple[pd.DataFrame, dict]:
    """The bars of a run and where they came from (``bars_source``).

    ``spec`` is anything with a ``data_path`` and (for the embedded market) ``synthetic_start``,
    ``synthetic_end`` and ``synthetic_seed``: a PretrainConfig, a notebook's parameters. With a
    ``data_path`` the file is loaded and validated (``load_ohlcv``, with the spec's ``READ_OPTIONS`` it has:
    ``timestamp_column``, ``data_timezone``, ``resample_to_1min``; ``on_invalid`` as there, by default the
    spec's own ``on_invalid`` parameter, else "raise"); without one the embedded synthetic market is generated
    for that range and seed.
    """
    if spec.data_path:
        options = read_options(spec)
        bars = load_ohlcv(spec.data_path, on_invalid=on_invalid or getattr(spec, "on_invalid", "raise"), **options)
    else:
        from .synthetic import synthetic_ohlcv

        bars = synthetic_ohlcv(spec.synthetic_start, spec.synthetic_end, seed=spec.synthetic_seed)
    return bars, bars_source(spec)


def bars_source(spec) -> dict:
    """Where the bars of ``spec`` come from, without loading them: a file (absolute path and SHA-256;
    ``exists: False`` if missing) or the arguments of the embedded synthetic market."""
    if not spec.data_path:
        return {
            "kind": "synthetic",
            "generator": "moola_lib.bars.synthetic.synthetic_ohlcv",
            **{k: getattr(spec, f"synthetic_{k}", None) for k in ("start", "end", "seed")},
        }
    path = Path(spec.data_path).resolve()
    if not path.is_file():
        return {"kind": "file", "path": str(path), "exists": False}
    return {"kind": "file", "path": str(path), "sha256": file_sha256(path)}


def describe_source(source: Mapping) -> str:
    """One line naming a ``bars_source``: the file path, or the embedded market's range and seed."""
    if source["kind"] == "file":
        return source["path"]
    return f"embedded synthetic bars {source['start']} .. {source['end']} (seed {source['seed']})"
