"""Candidate windows to label, taken from the user's own bars, and the labelling session that walks them.

A candidate is a 105-bar window holding the pattern the labelled task is about: an *expansion leg* of
the causal zigzag (``features.swing_points``) from one confirmed swing extreme to the next, at least
``min_leg_atr`` times the ATR at the leg's first bar, placed ``lead_bars`` after the window's first bar
with at least ``min_follow_bars`` bars after the leg's end (where consolidation or retracement shows).
Its span is offered as ``expansion_start`` / ``expansion_end`` (bar offsets inside the window). Windows
must hold only valid feature bars and no gap between bars longer than ``max_gap_minutes``.

Candidates may also come from a classifier's scan of the bars (``read_scan_file``, ``scan_candidates``: the
scores or detections file of ``moola_lib.classifier.scan``): the scanned windows that hold such a leg, ranked
by the model's uncertainty (its least certain windows first), so that new labels go where the model is
unsure.

Windows already labelled (labels file rows with timestamps), and every window overlapping one of them,
are never candidates. ``LabellingSession`` holds the bars, their features, the candidates, the labels
file (``label_store.LabelStore``) and the current batch of suggestions (``suggestions.suggest``); a
widget or a script calls ``label``, ``skip`` and ``undo``, each click is written to the file at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..bars.constants import SESSION_GAP_MINUTES, WINDOW_LENGTH
from ..bars.windows import gather_windows, long_gaps, windows_hit
from ..features.options import FeatureOptionError, resolve_feature_options
from ..features.relativity import swing_points
from ..pretraining.config import MAX_GAP_MESSAGE, max_gap_ok
from ..util.config import ConfigError
from ..util.io import read_table
from .store import LabelStore
from .suggestions import Suggestions, most_uncertain, suggest, summary_features

# The zigzag that finds legs: DESIGN.md's recommended k = 2 ATR without the hybrid rule (legs of ~12 bars,
# as a trader draws them); the original's hybrid rule confirms a swing on almost every bar.
DEFAULT_ZIGZAG = {"reversal_atr": 2.0, "hybrid_max_age": -1}


@dataclass(frozen=True)
class CandidateOptions:
    """How candidate windows are cut from the bars (see the module docstring); an invalid value is a
    ConfigError (label.ipynb's parameters)."""

    min_leg_atr: float = 5.0
    lead_bars: int = 20
    min_follow_bars: int = 30
    max_gap_minutes: float | None = SESSION_GAP_MINUTES
    zigzag: dict = field(default_factory=lambda: dict(DEFAULT_ZIGZAG))
    length: int = WINDOW_LENGTH

    def __post_init__(self):
        if not self.min_leg_atr > 0:
            raise ConfigError(f"min_leg_atr must be > 0, got {self.min_leg_atr}")
        if min(self.lead_bars, self.min_follow_bars) < 0 or self.lead_bars + self.min_follow_bars >= self.length - 1:
            raise ConfigError(
                f"lead_bars ({self.lead_bars}) + min_follow_bars ({self.min_follow_bars}) must be "
                f"non-negative and leave room for a leg in {self.length} bars"
            )
        if not max_gap_ok(self.max_gap_minutes):
            raise ConfigError(MAX_GAP_MESSAGE)
        try:
            resolve_feature_options(self.zigzag)
        except FeatureOptionError as e:
            raise ConfigError(f"zigzag: {e}") from None


class CandidatesFileError(ConfigError):
    """A scan file (the candidates_path parameter) that cannot give candidates: unreadable, not a scan's
    scores or detections file, or scanned on other bars."""


def average_true_range(bars: pd.DataFrame, period: int = 10) -> np.ndarray:
    """ATR_t as the features define it: mean true range of the last ``period`` bars (expanding at first)."""
    h, l, c = (bars[k].to_numpy(dtype=float) for k in ("high", "low", "close"))
    prev = np.concatenate([c[:1], c[:-1]])
    tr = np.maximum(h - l, np.maximum(np.abs(h - prev), np.abs(l - prev)))
    tr[:1] = h[:1] - l[:1]
    return pd.Series(tr).rolling(period, min_periods=1).mean().to_numpy()


def expansion_legs(bars: pd.DataFrame, min_leg_atr: float, zigzag: dict | None = None) -> pd.DataFrame:
    """Zigzag legs (swing extreme to the next swing extreme) of at least ``min_leg_atr`` ATR.

    Columns: leg_start, leg_end (bar positions of the two extremes), direction ("up"/"down"), size_atr
    (price move over the ATR at leg_start, the volatility before the move), size_price (the price move)."""
    zigzag = dict(DEFAULT_ZIGZAG if zigzag is None else zigzag)
    swings = swing_points(bars, **zigzag)
    atr = average_true_range(bars, resolve_feature_options(zigzag)["atr_period"])
    a, b = swings["extreme_pos"].to_numpy()[:-1], swings["extreme_pos"].to_numpy()[1:]
    move = swings["price"].to_numpy()[1:] - swings["price"].to_numpy()[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        size = np.where(atr[a] > 0, np.abs(move) / atr[a], 0.0)  # flat history: no measurable leg
    keep = (size >= min_leg_atr) & (b > a)
    return pd.DataFrame(
        {
            "leg_start": a[keep],
            "leg_end": b[keep],
            "direction": np.where(move[keep] > 0, "up", "down"),
            "size_atr": size[keep],
            "size_price": np.abs(move[keep]),
        }
    )


def candidate_windows(
    bars: pd.DataFrame, valid: np.ndarray, options: CandidateOptions = CandidateOptions()
) -> pd.DataFrame:
    """Candidate windows (one per qualifying leg), ordered by start.

    Columns: start (bar position), start_time, end_time, expansion_start, expansion_end (offsets inside the
    window), direction, size_atr, size_price."""
    L = options.length
    legs = expansion_legs(bars, options.min_leg_atr, options.zigzag)
    start = legs["leg_start"].to_numpy() - options.lead_bars
    room = L - 1 - options.min_follow_bars  # the leg must end by this offset
    fits = (start >= 0) & (start + L <= len(bars)) & (legs["leg_end"].to_numpy() - start <= room)
    fits[fits] = clean_windows(bars, valid, start[fits], options)
    return _candidate_frame(bars, start[fits], legs[fits], L)


def clean_windows(bars: pd.DataFrame, valid: np.ndarray, start: np.ndarray, options: CandidateOptions) -> np.ndarray:
    """Which windows starting at ``start`` (inside the bars) hold only valid feature bars and no gap between
    bars longer than ``options.max_gap_minutes``."""
    L = options.length
    clean = ~windows_hit(~np.asarray(valid, dtype=bool), start, L)
    if options.max_gap_minutes is not None:
        clean &= ~windows_hit(long_gaps(bars.index, options.max_gap_minutes), start, L - 1)
    return clean


def _candidate_frame(bars: pd.DataFrame, start: np.ndarray, legs: pd.DataFrame, L: int) -> pd.DataFrame:
    """The candidates table: windows starting at ``start``, each with its leg (a row of ``legs``)."""
    return pd.DataFrame(
        {
            "start": start,
            "start_time": bars.index[start],
            "end_time": bars.index[start + L - 1],
            "expansion_start": legs["leg_start"].to_numpy() - start,
            "expansion_end": legs["leg_end"].to_numpy() - start,
            "direction": legs["direction"].to_numpy(),
            "size_atr": legs["size_atr"].to_numpy(),
            "size_price": legs["size_price"].to_numpy(),
        }
    )


def read_scan_file(path: str | os.PathLike) -> pd.DataFrame:
    """A scan's scores or detections file (``moola_lib.classifier.scan``; CSV or parquet), for
    ``scan_candidates``: ``start`` parsed as UTC times. A file that cannot serve is a CandidatesFileError."""
    try:
        frame = read_table(path)
    except (OSError, ValueError, ImportError) as e:  # missing, unknown suffix, unparseable
        raise CandidatesFileError(f"candidates_path {path}: cannot read it ({' '.join(str(e).split())})") from None
    probabilities = [c for c in frame.columns if str(c).startswith("p_")] or ["p"]
    missing = [c for c in ("start", *probabilities) if c not in frame.columns]
    if missing:
        raise CandidatesFileError(
            f"candidates_path {path}: not a scan's scores or detections file: no column {missing} "
            f"(columns: {list(frame.columns)})"
        )
    frame = frame.assign(start=pd.to_datetime(frame["start"], utc=True))
    frame.attrs["source"] = f"candidates_path {path}"
    return frame


def scan_candidates(
    bars: pd.DataFrame, valid: np.ndarray, scan: pd.DataFrame, options: CandidateOptions = CandidateOptions()
) -> pd.DataFrame:
    """Candidate windows from a scan (``read_scan_file``), ordered by start: the columns of
    ``candidate_windows`` plus ``uncertainty``, 1 - the model's largest class probability.

    Each row's window starts at the bar whose time is its ``start`` (rows at no bar of ``bars`` are left
    out; none at all is a CandidatesFileError). Its leg is the first zigzag leg of at least ``min_leg_atr``
    ATR that starts inside the window and ends at least ``min_follow_bars`` bars before its last bar:
    windows without one are left out (the label is about the bars after a leg), as are windows that fail
    ``clean_windows``; ``lead_bars`` does not apply (the model chose where the window starts)."""
    L = options.length
    start, uncertainty = _scan_starts(bars, scan)
    legs = expansion_legs(bars, options.min_leg_atr, options.zigzag)
    k = np.minimum(np.searchsorted(legs["leg_start"].to_numpy(), start), max(len(legs) - 1, 0))
    fits = (start + L <= len(bars)) & (len(legs) > 0)
    if len(legs):
        leg_start, leg_end = legs["leg_start"].to_numpy()[k], legs["leg_end"].to_numpy()[k]
        fits &= (leg_start >= start) & (leg_end - start <= L - 1 - options.min_follow_bars)
    fits[fits] = clean_windows(bars, valid, start[fits], options)
    frame = _candidate_frame(bars, start[fits], legs.iloc[k[fits]], L)
    return frame.assign(uncertainty=uncertainty[fits])


def _scan_starts(bars: pd.DataFrame, scan: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The bar positions of the scan's windows (each once, in order) and their uncertainty (1 - max p)."""
    columns = [c for c in scan.columns if str(c).startswith("p_")] or ["p"]
    certainty = scan[columns].to_numpy(dtype=float).max(axis=1)
    position = bars.index.get_indexer(pd.DatetimeIndex(scan["start"]))
    if not (position >= 0).any():
        raise CandidatesFileError(
            f"{scan.attrs.get('source', 'the scan')}: none of its {len(scan)} windows starts at a bar of these bars "
            f"({bars.index[0]} .. {bars.index[-1]}): give the data_path that was scanned"
        )
    found = pd.Series(certainty[position >= 0]).groupby(position[position >= 0]).max()  # a window once
    return found.index.to_numpy(dtype=np.int64), 1.0 - found.to_numpy()


MAX_CLASSES = 9  # one key (1..9) per class in the labelling widget


def readable_classes(classes) -> tuple[str, ...]:
    """``classes`` stripped and lower-cased, the user's own (2 to ``MAX_CLASSES`` distinct, non-empty names of
    one line each: the labels file, transfer and the classifier read any such list); else a ConfigError
    naming the problem."""
    found = tuple(str(c).strip().lower() for c in classes)
    problems = [
        (2 <= len(found) <= MAX_CLASSES, f"give 2 to {MAX_CLASSES} classes (one key 1..{MAX_CLASSES} each)"),
        (len(set(found)) == len(found), "each class once (names compare stripped and lower-cased)"),
        (all(c and "\n" not in c and "," not in c for c in found), "each a non-empty name without commas"),
    ]
    for ok, fix in problems:
        if not ok:
            raise ConfigError(f"classes {list(classes)}: {fix}")
    return found


def overlaps_any(starts: np.ndarray, taken: np.ndarray, length: int = WINDOW_LENGTH) -> np.ndarray:
    """For each window start, whether [s, s + length) overlaps any window starting at ``taken``."""
    taken = np.sort(np.asarray(taken, dtype=np.int64))
    starts = np.asarray(starts, dtype=np.int64)
    if not len(taken):
        return np.zeros(len(starts), dtype=bool)
    # the nearest taken start at or after s - length + 1 overlaps iff it is < s + length
    k = np.searchsorted(taken, starts - length + 1)
    nearest = taken[np.minimum(k, len(taken) - 1)]
    return (k < len(taken)) & (nearest < starts + length)


class LabellingSession:
    """Bars, features, candidates, the labels file and the current batch of suggestions.

    ``embed(X [N, L, F], valid [N, L]) -> [N, D]``: the encoder's pooled features (None: summary
    features, and ``uncertainty`` falls back to ``diverse``). At most ``max_candidates`` candidates (a
    seeded random subset) are ranked, which bounds the encoder's work on years of bars.

    ``scan`` (``read_scan_file``): the candidates are a classifier's scanned windows instead
    (``scan_candidates``), ranked by the model's uncertainty, highest first, whatever ``strategy`` says;
    beyond ``max_candidates`` the most uncertain are kept.
    """

    def __init__(
        self,
        bars: pd.DataFrame,
        X: np.ndarray,
        valid: np.ndarray,
        store: LabelStore,
        classes=("consolidation", "retracement"),
        *,
        options: CandidateOptions = CandidateOptions(),
        strategy: str = "diverse",
        n_suggestions: int = 20,
        seed: int = 0,
        embed=None,
        min_labels: int = 10,
        max_candidates: int = 5000,
        scan: pd.DataFrame | None = None,
    ):
        self.bars, self.X, self.valid, self.store = bars, X, valid, store
        self.classes = readable_classes(classes)
        self.options, self.strategy, self.n_suggestions = options, strategy, n_suggestions
        self.seed, self.embed, self.min_labels = seed, embed, min_labels
        self.from_scan = scan is not None
        if self.from_scan:
            found = scan_candidates(bars, valid, scan, options)
        else:
            found = candidate_windows(bars, valid, options)
        self.n_found = len(found)
        if len(found) > max_candidates:
            if self.from_scan:  # the most uncertain, as the ranking would take them
                keep = np.sort(np.argsort(-found["uncertainty"].to_numpy(), kind="stable")[:max_candidates])
            else:
                keep = np.sort(np.random.default_rng(seed).choice(len(found), max_candidates, replace=False))
            found = found.iloc[keep].reset_index(drop=True)
        self.candidates = found
        self._random_key = np.random.default_rng(seed).random(len(found))
        ranked_by_points = strategy != "random" and not self.from_scan
        self._points = self._describe(found["start"].to_numpy()) if ranked_by_points else None
        self.skipped: set[int] = set()
        self.next_batch()

    def _describe(self, starts: np.ndarray) -> np.ndarray:
        Xw = gather_windows(self.X, starts, self.options.length)
        vw = gather_windows(self.valid[:, None], starts, self.options.length)[..., 0]
        return self.embed(Xw, vw) if self.embed is not None else summary_features(Xw, vw)

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """(window start positions, class index or -1 for labels outside ``classes``) of the labels file's
        rows that point into these bars."""
        rows, starts = self.store.window_starts(self.bars.index, self.options.length)
        labels = self.store.frame["label"].astype(str).str.strip().str.lower().to_numpy()[rows]
        lookup = {c: i for i, c in enumerate(self.classes)}
        return starts, np.array([lookup.get(v, -1) for v in labels], dtype=np.int64)

    def next_batch(self) -> Suggestions:
        """Rank the candidates that overlap no labelled window and were not skipped; refits the probe.
        Rows another labeller wrote into the same file since are seen here (``store.refresh``)."""
        self.store.refresh()
        starts, y = self.labelled()
        cand = self.candidates["start"].to_numpy()
        free = np.flatnonzero(~overlaps_any(cand, starts, self.options.length) & ~np.isin(cand, list(self.skipped)))
        known = y >= 0
        labelled_points = self._describe(starts[known]) if self._points is not None and known.any() else None
        L = self.options.length

        def blocked_by(i):  # candidates (positions into ``free``) overlapping the one picked
            s = cand[free]
            return range(np.searchsorted(s, s[i] - L + 1), np.searchsorted(s, s[i] + L))

        if self.from_scan:
            uncertainty = self.candidates["uncertainty"].to_numpy()[free]
            self.suggestions = most_uncertain(uncertainty, self.n_suggestions, blocked_by, asked=self.strategy)
        else:
            self.suggestions = suggest(
                self.strategy,
                self._points[free] if self._points is not None else np.empty((len(free), 0)),
                self.n_suggestions,
                labelled_points=labelled_points,
                labelled_y=y[known],
                features="encoder" if self.embed is not None else "summary",
                min_labels=self.min_labels,
                blocked_by=blocked_by,
                seed=self.seed,
                random_key=self._random_key[free],
            )
        self.n_free = len(free)
        batch = self.candidates.iloc[free[self.suggestions.order]].reset_index(drop=True)
        self.batch = batch.assign(score=self.suggestions.score)
        self.position = 0
        return self.suggestions

    @property
    def current(self) -> pd.Series | None:
        """The candidate on screen (None when the batch is done)."""
        return self.batch.iloc[self.position] if self.position < len(self.batch) else None

    def label(self, label: str) -> dict:
        """Save the current window with ``label`` (written at once) and move on."""
        window = self.current
        if window is None:
            raise IndexError("this batch is done: call next_batch() for more suggestions")
        label = label.strip().lower()
        if label not in self.classes:
            raise ValueError(f"unknown label {label!r}; classes are {list(self.classes)}")
        s = int(window["start"])
        ohlc = self.bars.iloc[s : s + self.options.length][["open", "high", "low", "close"]].to_numpy()
        row = self.store.add(
            start=window["start_time"],
            end=window["end_time"],
            label=label,
            expansion_start=window["expansion_start"],
            expansion_end=window["expansion_end"],
            ohlc=ohlc,
        )
        self.position += 1
        return row

    def skip(self) -> None:
        """Leave the current window unlabelled (not suggested again in this session)."""
        if self.current is not None:
            self.skipped.add(int(self.current["start"]))
            self.position += 1

    def undo(self) -> dict | None:
        """Remove the newest label this tool wrote; if it is this batch's previous window, show it again."""
        removed = self.store.undo()
        if removed is not None and self.position > 0:
            previous = self.batch.iloc[self.position - 1]["start_time"]
            if pd.Timestamp(removed["start"]) == previous:
                self.position -= 1
        return removed

    def counter(self) -> dict:
        """Labelled rows in the file (another labeller's too), per class, and windows left in this batch."""
        self.store.refresh()
        return {
            "labelled": len(self.store),
            "per_class": self.store.counts(self.classes),
            "left_in_batch": len(self.batch) - self.position,
        }

    def summary(self) -> str:
        """What the session holds, in a few lines (for the notebook)."""
        in_bars = len(self.store.window_starts(self.bars.index, self.options.length)[0])
        o = self.options
        lines = [
            f"{len(self.bars):,} bars {self.bars.index[0]:%Y-%m-%d} .. {self.bars.index[-1]:%Y-%m-%d}; "
            f"{self.n_found:,} candidate windows ("
            + ("scanned windows holding an " if self.from_scan else "")
            + f"expansion leg >= {o.min_leg_atr:g} ATR)"
            + (f", {len(self.candidates):,} of them ranked" if len(self.candidates) < self.n_found else ""),
            f"labels file {self.store.path}: {len(self.store)} rows ({in_bars} in these bars), "
            f"{self.n_free:,} candidates overlap none of them and were not skipped",
            f"strategy {self.strategy}: {len(self.batch)} suggestions by {self.suggestions.strategy} on "
            f"{self.suggestions.features} features",
        ]
        return "\n".join(lines + ([f"note: {self.suggestions.note}"] if self.suggestions.note else []))

    def suggestions_table(self) -> pd.DataFrame:
        """The batch in the labels file's timestamp format, ``label`` left empty (fill it in and the file
        loads with ``labels.load_labels``), plus the leg and the strategy's score; indexed by rank."""
        b = self.batch
        return pd.DataFrame(
            {
                "rank": np.arange(1, len(b) + 1),
                "start": [t.isoformat() for t in b["start_time"]],
                "end": [t.isoformat() for t in b["end_time"]],
                "label": "",
                "expansion_start": b["expansion_start"].to_numpy(),
                "expansion_end": b["expansion_end"].to_numpy(),
                "direction": b["direction"].to_numpy(),
                "size_atr": b["size_atr"].round(2).to_numpy(),
                "score": b["score"].to_numpy(),
                "strategy": self.suggestions.strategy,
            }
        ).set_index("rank")
