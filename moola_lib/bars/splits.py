"""What a ``splits`` value may be, and splits given as fractions of the data's span, cut between sessions.

A ``splits`` value (PretrainConfig.splits, the pretrain notebook's parameter) is one of

- a mapping of split name -> ``[start, end]`` dates: half-open ``[start, end)``, start < end, no overlap;
  dates without a time mean UTC midnight, naive timestamps are UTC (``to_utc``);
- a mapping of split name -> fraction of the data's time span, each in (0, 1], together at most 1; the
  splits follow each other in the order given from the first bar, and what the fractions leave over lies
  at the end, unused;
- ``"auto"``: ``AUTO_SPLITS``, 80 / 10 / 10 of the span for train / val / test.

``split_problems`` says what is wrong with one (the config checks it before any data is loaded);
``fraction_bounds`` turns fractions into dates for the data's first and last bar (``moola_lib.bars.ohlcv.
resolve_splits`` does that for a bar index).

Cuts fall at 17:00 New York time (EST or EDT), between two trading sessions: CME Globex futures such as
NQ halt at 17:00 every day (Sunday 18:00 to Friday 17:00, as ``moola_lib.bars.synthetic`` models them), and
spot FX rolls its trading day over at 17:00 New York, so no session has bars on both sides of a cut.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping
from zoneinfo import ZoneInfo

import pandas as pd

NEW_YORK = ZoneInfo("America/New_York")
SESSION_CUT = dt.time(17, 0)  # New York local time of the daily halt
AUTO_SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}
DEFAULT_SPLITS = {  # the seed guide's splits of the 5-year NQ file (params/nq_5yr.yaml)
    "train": ("2020-09-01", "2025-01-01"),
    "val": ("2025-01-01", "2025-04-01"),
    "test": ("2025-04-01", "2025-07-01"),
}
FRACTIONS_HINT = (
    "splits: auto (80 / 10 / 10 of the data's span, cut at 17:00 New York) or fractions such as "
    '{"train": 0.8, "val": 0.1, "test": 0.1}'
)


def to_utc(value) -> pd.Timestamp:
    """A timestamp in UTC; a naive one is taken as UTC."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def is_fractions(splits) -> bool:
    """Whether ``splits`` is "auto" or a mapping of fractions (its dates then depend on the data)."""
    if isinstance(splits, str):
        return True
    return bool(splits) and all(_is_number(b) for b in splits.values())


def split_problems(splits, required: tuple[str, ...] = ("train", "val")) -> list[str]:
    """What is wrong with a ``splits`` value (module docstring), one message per problem; [] if nothing.
    The ``required`` split names must be there."""
    if isinstance(splits, str):
        return [] if splits == "auto" else [f"splits must be 'auto' or a mapping of split names, got {splits!r}"]
    if not isinstance(splits, Mapping) or not splits:
        return [f"splits must be 'auto' or a non-empty mapping of split names, got {splits!r}"]
    problems = (
        [f"splits must define {' and '.join(map(repr, required))} (got {list(splits)})"]
        if not set(required) <= set(splits)
        else []
    )
    numbers = [_is_number(b) for b in splits.values()]
    if any(numbers) and not all(numbers):
        return problems + [
            (
                "splits: give every split as [start, end] dates or every split as a fraction of the "
                f"data's span, not a mix (got {dict(splits)})"
            )
        ]
    return problems + (_fraction_problems(splits) if all(numbers) else _date_problems(splits))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fraction_problems(fractions: Mapping[str, float]) -> list[str]:
    problems = [
        f"splits[{name!r}] = {f!r}: a fraction must be in (0, 1]"
        for name, f in fractions.items()
        if not (math.isfinite(f) and 0 < f <= 1)
    ]
    total = sum(fractions.values())
    if not problems and total > 1 + 1e-9:
        problems.append(f"splits: the fractions sum to {total:g}; they may sum to at most 1 (got {dict(fractions)})")
    return problems


def _date_problems(splits: Mapping) -> list[str]:
    """Pairs that are not [start, end], unreadable dates, start >= end, overlapping splits."""
    bounds, problems = {}, []
    for name, pair in splits.items():
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            problems.append(f"splits[{name!r}] must be [start, end], got {pair!r}")
            continue
        try:
            bounds[name] = tuple(to_utc(x) for x in pair)
        except (TypeError, ValueError):
            problems.append(f"splits[{name!r}]: not a pair of ISO dates: {pair!r}")
            continue
        if not bounds[name][0] < bounds[name][1]:
            problems.append(f"splits[{name!r}]: start {pair[0]} must be before end {pair[1]}")
    ordered = sorted(bounds.items(), key=lambda item: item[1][0])
    problems += [
        f"splits {a!r} and {b!r} overlap ({a!r} ends {splits[a][1]}, {b!r} starts {splits[b][0]}); "
        "splits are half-open [start, end)"
        for (a, (_, a_end)), (b, (b_start, _)) in itertools.pairwise(ordered)
        if b_start < a_end
    ]
    return problems


def resolved_splits_line(given, resolved: Mapping[str, tuple[str, str]]) -> str:
    """One line saying which dates ``given`` splits ("auto", fractions) resolved to."""
    parts = [f"{name} [{start}, {end})" for name, (start, end) in resolved.items()]
    return f"splits {given!r} -> {', '.join(parts)}"


def fraction_bounds(first, last, fractions: Mapping[str, float]) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """Half-open UTC bounds of ``fractions`` (checked: ``split_problems``) of the span from bar ``first`` to bar
    ``last``. Each cut is the 17:00 New York cut nearest to its share of the span; the first split starts at
    the cut at or before ``first``, and a split that brings the fractions to 1 ends at the first cut after
    ``last``, so every bar lies in exactly one split. A fraction too small to reach the next cut gives an
    empty split (start == end): the caller says so."""
    first, last = to_utc(first), to_utc(last)
    start, end = session_cut_before(first), _next_cut(session_cut_before(last))
    bounds, lo, total = {}, start, 0.0
    for name, fraction in fractions.items():
        total += fraction
        hi = end if total >= 1 - 1e-9 else min(max(nearest_session_cut(first + (last - first) * total), lo), end)
        bounds[name], lo = (lo, hi), hi
    return bounds


def session_cut_before(ts) -> pd.Timestamp:
    """The latest 17:00 New York cut at or before ``ts``, in UTC."""
    ts = to_utc(ts)
    day = ts.tz_convert(NEW_YORK).date()
    cut = _cut_on(day)
    return cut if cut <= ts else _cut_on(day - dt.timedelta(days=1))


def nearest_session_cut(ts) -> pd.Timestamp:
    """The 17:00 New York cut nearest to ``ts`` (the earlier one on a tie), in UTC."""
    before = session_cut_before(ts)
    after = _next_cut(before)
    return after if after - to_utc(ts) < to_utc(ts) - before else before


def _next_cut(cut: pd.Timestamp) -> pd.Timestamp:
    return _cut_on(cut.tz_convert(NEW_YORK).date() + dt.timedelta(days=1))


def _cut_on(day: dt.date) -> pd.Timestamp:
    # 17:00 exists exactly once on every New York day (the clocks change at 02:00)
    return pd.Timestamp(dt.datetime.combine(day, SESSION_CUT, tzinfo=NEW_YORK)).tz_convert("UTC")
