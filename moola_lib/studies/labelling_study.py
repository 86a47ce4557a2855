"""Simulated labelling study (issue 21): which suggestion strategy saves labels, before anyone clicks.

Per repeat r: a pool market (``synthetic_market``, seed ``first_market_seed + r``, the label notebook's
default period) whose candidate windows are cut and ranked by the notebook's own code path
(``LabellingSession`` on a real labels file, ``suggestions.suggest``), and a held-out set of ``heldout_n``
fresh episode windows of another market (``synthetic_labelled_set``, market seed ``heldout_seed_offset +
r``). An oracle answers each suggestion from the generator's truth: a candidate whose zigzag leg covers
at least ``min_overlap`` of an episode's expansion leg (of the shorter of the two) gets that episode's kind,
flipped with probability ``flip_rate`` (people err); a candidate matching no episode is *skipped* (a
click, no label). That is what a person does with a window that is neither class, and it charges a
strategy for suggesting them; the report counts clicks next to labels.

Every strategy of a repeat starts from the same seed set (``seed_labels`` random matched candidates, half
of each class) and sees batches of ``batch`` suggestions; the session refits between batches. Whenever the
labels reach a checkpoint (every ``batch`` labels, plus 174 and 500), a fixed cheap probe is trained on the
labels so far and scored by balanced accuracy on the held-out set: L2 logistic regression (C =
``probe_C``, balanced class weights) on the standardised ``summary_features`` (mean and sd of each
feature over the window). The strategies rank candidates on the same summaries, passed as the session's
``embed`` (so ``uncertainty`` runs; the labelling wing cannot import the transfer arms).

``python -m moola_lib.studies.labelling_study --out DIR [options]`` rewrites DIR/study.json and DIR/study.md
after every repeat (atomically: a stopped run leaves the repeats done); an invalid option, or an --out or
--figure that cannot be written, is a one-line error and exit status 2 before any work (``moola_lib.util.cli``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..bars.splits import to_utc
from ..bars.synthetic import synthetic_market
from ..bars.windows import gather_windows
from ..features.relativity import relativity_features
from ..labelling.session import LabellingSession, candidate_windows
from ..labelling.store import LabelStore
from ..labelling.suggestions import STRATEGIES, summary_features
from ..labels.sets import DEFAULT_CLASSES
from ..labels.testbed import EMBEDDED_SET, synthetic_labelled_set
from ..util import cli
from ..util.config import ConfigError
from ..util.io import atomic_write_text, check_writable, write_json
from .labelling_study_report import TARGETS, figure, report, summarise


@dataclass(frozen=True)
class StudyConfig:
    """Settings of the study (see the module docstring); an invalid value is a ConfigError."""

    strategies: tuple[str, ...] = STRATEGIES
    repeats: int = 10
    seed_labels: int = 10
    batch: int = 10
    budget: int = 500
    flip_rate: float = 0.0
    heldout_n: int = 1000
    min_overlap: float = 0.5
    probe_C: float = 0.1
    pool_start: str = EMBEDDED_SET.history_start
    pool_end: str = EMBEDDED_SET.end
    first_market_seed: int = 1
    heldout_seed_offset: int = 1000

    def __post_init__(self):
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies or "random" not in self.strategies:
            raise ConfigError(
                f"strategies {list(self.strategies)}: each one of {list(STRATEGIES)}, random "
                "included (it is the baseline)"
            )
        if min(self.repeats, self.batch) < 1 or self.seed_labels < 2 or self.seed_labels % 2:
            raise ConfigError("repeats and batch must be >= 1 and seed_labels an even number >= 2")
        if self.budget <= self.seed_labels:
            raise ConfigError(f"budget ({self.budget}) must exceed seed_labels ({self.seed_labels})")
        if not (0 <= self.flip_rate < 0.5 and 0 < self.min_overlap <= 1 and self.probe_C > 0 and self.heldout_n >= 20):
            raise ConfigError("need 0 <= flip_rate < 0.5, 0 < min_overlap <= 1, probe_C > 0, heldout_n >= 20")
        if min(self.first_market_seed, self.heldout_seed_offset) < 0:
            raise ConfigError("first_market_seed and heldout_seed_offset must be >= 0 (they seed markets)")
        try:
            ordered = to_utc(self.pool_start) < to_utc(self.pool_end)
        except ValueError:
            ordered = False
        if not ordered:
            raise ConfigError(f"pool_start {self.pool_start!r} and pool_end {self.pool_end!r}: two dates, in order")

    def checkpoints(self) -> list[int]:
        grid = set(range(self.seed_labels, self.budget + 1, self.batch)) | {self.budget}
        return sorted(grid | {t for t in TARGETS if self.seed_labels <= t <= self.budget})


@dataclass
class Pool:
    """One pool market: bars, features, the true kind of each candidate by window start (None: no episode)."""

    bars: pd.DataFrame
    X: np.ndarray
    valid: np.ndarray
    truth: dict


def candidate_truth(bars: pd.DataFrame, events: pd.DataFrame, candidates: pd.DataFrame, min_overlap: float) -> dict:
    """{candidate start: kind of the episode whose expansion leg its leg covers by >= ``min_overlap`` of the
    shorter leg (the best such), or None}."""
    index = bars.index
    es = index.get_indexer(pd.DatetimeIndex(events["expansion_start"]))
    ee = index.get_indexer(pd.DatetimeIndex(events["expansion_end"]))
    starts = candidates["start"].to_numpy()
    ls, le = starts + candidates["expansion_start"].to_numpy(), starts + candidates["expansion_end"].to_numpy()
    kinds = events["kind"].to_numpy()
    truth = dict.fromkeys(int(s) for s in starts)
    for s, a, b in zip(starts, ls, le):
        near = np.flatnonzero((es <= b) & (ee >= a))  # episodes whose leg overlaps this one
        share = (np.minimum(b, ee[near]) - np.maximum(a, es[near])) / np.maximum(
            np.minimum(b - a, ee[near] - es[near]), 1
        )
        if len(near) and share.max() >= min_overlap:
            truth[int(s)] = kinds[near[int(np.argmax(share))]]
    return truth


def make_pool(cfg: StudyConfig, repeat: int) -> Pool:
    bars, events = synthetic_market(start=cfg.pool_start, end=cfg.pool_end, seed=cfg.first_market_seed + repeat)
    X, valid = (np.asarray(a, dtype=t) for a, t in zip(relativity_features(bars), (np.float32, bool)))
    return Pool(bars, X, valid, candidate_truth(bars, events, candidate_windows(bars, valid), cfg.min_overlap))


class Oracle:
    """Answers from the generator's truth, flipping with probability ``flip_rate``; records what it did."""

    def __init__(self, pool: Pool, flip_rate: float, seed: int):
        self.pool, self.flip_rate, self.rng = pool, flip_rate, np.random.default_rng(seed)
        self.starts, self.y, self.clicks = [], [], 0  # labelled windows, their labels; labels + skips

    def answer(self, session: LabellingSession, wanted=lambda kind: True) -> bool:
        """Label (or skip) the session's current window; True if it was labelled."""
        start = int(session.current["start"])
        kind = self.pool.truth.get(start)
        self.clicks += 1
        if kind is None or not wanted(kind):
            session.skip()
            return False
        if self.rng.random() < self.flip_rate:
            kind = DEFAULT_CLASSES[1 - DEFAULT_CLASSES.index(kind)]
        session.label(kind)
        self.starts.append(start)
        self.y.append(DEFAULT_CLASSES.index(kind))
        return True


def _session(pool: Pool, path: Path, strategy: str, cfg: StudyConfig, seed: int) -> LabellingSession:
    return LabellingSession(
        pool.bars,
        pool.X,
        pool.valid,
        LabelStore(path, user="oracle"),
        DEFAULT_CLASSES,
        strategy=strategy,
        n_suggestions=cfg.batch,
        seed=seed,
        embed=summary_features,
        min_labels=cfg.seed_labels,
        max_candidates=10**9,
    )


def _exhausted(session: LabellingSession) -> bool:
    """True if no window is left: a new batch is asked for when this one is done, and it is empty too."""
    return session.current is None and (session.next_batch(), session.current)[1] is None


def seed_set(pool: Pool, path: Path, cfg: StudyConfig, seed: int) -> None:
    """Write ``seed_labels`` random matched candidates, half of each class, to ``path``."""
    session = _session(pool, path, "random", cfg, seed)
    oracle = Oracle(pool, 0.0, seed)
    need = dict.fromkeys(DEFAULT_CLASSES, cfg.seed_labels // 2)
    while any(need.values()):
        if _exhausted(session):
            raise ValueError(
                f"pool market {cfg.first_market_seed + seed}: too few episode candidates for the "
                "seed set; widen pool_start..pool_end"
            )
        if oracle.answer(session, wanted=lambda kind: need[kind] > 0):
            need[DEFAULT_CLASSES[oracle.y[-1]]] -= 1


def probe_score(pool: Pool, starts, y, Zh: np.ndarray, yh: np.ndarray, C: float) -> float:
    """Balanced accuracy on the held-out summaries ``Zh`` of the fixed probe fitted on windows ``starts``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    starts = np.asarray(starts, dtype=np.int64)
    Z = summary_features(gather_windows(pool.X, starts), gather_windows(pool.valid[:, None], starts)[..., 0])
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=2000))
    return float(balanced_accuracy_score(yh, probe.fit(Z, np.asarray(y)).predict(Zh)))


def walk(pool: Pool, path: Path, strategy: str, cfg: StudyConfig, seed: int, heldout) -> list[dict]:
    """One strategy from the seed set in ``path`` to ``budget`` labels: a row per checkpoint reached."""
    session = _session(pool, path, strategy, cfg, seed)
    oracle = Oracle(pool, cfg.flip_rate, seed)
    oracle.starts, oracle.y = (list(map(int, a)) for a in session.labelled())
    rows, checkpoints = [], cfg.checkpoints()
    while checkpoints:
        if len(oracle.y) >= checkpoints[0]:
            rows.append(
                {
                    "labels": checkpoints.pop(0),
                    "clicks": oracle.clicks,
                    "balanced_accuracy": probe_score(pool, oracle.starts, oracle.y, *heldout, cfg.probe_C),
                }
            )
        elif _exhausted(session):
            break  # the pool ran out of candidates: the curve ends here
        else:
            oracle.answer(session)
    return rows


def run_repeat(cfg: StudyConfig, repeat: int) -> dict:
    """All strategies on one pool market and one held-out set, from one shared seed set."""
    t0 = time.time()
    pool = make_pool(cfg, repeat)
    held = synthetic_labelled_set(
        n=cfg.heldout_n,
        class_balance=0.5,
        seed=repeat,
        start="2024-10-01",
        end=EMBEDDED_SET.end,
        history_start="2024-07-01",
        market_seed=cfg.heldout_seed_offset + repeat,
    )
    heldout = (summary_features(held.X, held.valid), held.y)
    out = {
        "repeat": repeat,
        "candidates": len(pool.truth),
        "matched": sum(v is not None for v in pool.truth.values()),
        "curves": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        seed_path = Path(tmp) / "seed.csv"
        seed_set(pool, seed_path, cfg, repeat)
        for strategy in cfg.strategies:
            path = Path(tmp) / f"{strategy}.csv"
            path.write_bytes(seed_path.read_bytes())
            out["curves"][strategy] = walk(pool, path, strategy, cfg, repeat, heldout)
    out["seconds"] = round(time.time() - t0, 1)
    return out


def run(cfg: StudyConfig, out: Path, figure_path: Path | None = None, log=print) -> dict:
    """The whole study; DIR/study.json and DIR/study.md are rewritten after every repeat."""
    repeats, t0, result = [], time.time(), {}
    for r in range(cfg.repeats):
        repeats.append(run_repeat(cfg, r))
        summary = summarise(cfg, repeats)
        result = {
            "config": dataclasses.asdict(cfg),
            "wall_seconds": round(time.time() - t0, 1),
            "summary": summary,
            "repeats": repeats,
        }
        write_json(out / "study.json", result)
        atomic_write_text(out / "study.md", report(cfg, repeats, summary))
        log(f"repeat {r + 1}/{cfg.repeats} done in {repeats[-1]['seconds']:.0f} s")
    if figure_path is not None:
        figure(summary, figure_path)
    return result


def _parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m moola_lib.studies.labelling_study", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for study.json and study.md")
    p.add_argument("--figure", type=Path, default=None, help="PNG of the curves (optional)")
    p.add_argument("--strategies", default=",".join(StudyConfig.strategies), help="comma-separated")
    for f in dataclasses.fields(StudyConfig):
        if f.name != "strategies":
            p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    return p


def main(argv=None) -> int:
    """The command line; expected errors print one line and exit 2 (``moola_lib.cli.run``)."""
    return cli.run(_main, argv)


def _main(argv=None) -> None:
    args = vars(_parser().parse_args(argv))
    out, figure_path = args.pop("out"), args.pop("figure")
    cfg = StudyConfig(**{**args, "strategies": tuple(s.strip() for s in args["strategies"].split(","))})
    for path in (out / "study.json", figure_path):
        if path is not None:
            check_writable(path)  # an --out that is a file: refused now, not after the whole study
    run(cfg, out, figure_path)


if __name__ == "__main__":
    sys.exit(main())
