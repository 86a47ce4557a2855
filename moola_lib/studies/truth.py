"""The testbed's answer measured against its truth: ``python -m moola_lib.studies.truth OUT_DIR`` (issue 28).

One labelled set, cross-validated, cannot see an effect of a few points (its intervals are ~10 pp wide at
174 windows). The testbed knows the truth, so this study measures it directly. For every size of ``sizes``
and every set k < ``sets``: a FRESH labelled set of that size from its own market (``set_seed``: keyed by the
size and k, whatever the run's other sizes; labelled period ``period``, after every encoder's pretraining
period; pretraining runs on market ``synthetic_seed`` 0), every arm fitted on the WHOLE set with the
protocol's own recipe (``transfer.fits.arm_probabilities`` on the inner split of all its windows: early
stopping, read-out, regularisation, ``seeds_per_fold`` seeds averaged -- the model ``classify fit`` deploys) and scored
(balanced accuracy) on ONE large fresh balanced test set from a market no set and no encoder touches.

Arms: the non-neural ones (simple_*, rocket_*) once per set; per encoder architecture the random-init
``baseline`` and ``random_frozen``; per encoder ``frozen``, ``finetune``, ``lpft``. Result keys name the encoder
or the architecture: ``masked64:frozen``, ``2x64:baseline``, ``simple_boosting``. Encoders are pretrained by
the study into OUT_DIR/encoders/NAME (``encoders``: name -> PretrainConfig options), once; ``--encoders`` picks
them from ``ENCODERS``, VALIDATION.md's 2 x 64 (the default) and 2 x 128 masked and forecast ones.

The transfer settings are those users run: params/transfer_full.yaml's epochs, patience, seeds per fold,
read-outs and arms (``transfer_settings``; --quick shrinks them). Results go to OUT_DIR/truth.json after
every set (atomically; a rerun skips the sets it holds: resumable by set; one study process per folder, and a
rerun may change only the sizes, the number of sets and the verdicts: other settings are refused, so one
truth.json never mixes two recipes), the test-window scores of each set to OUT_DIR/sets/ (the test set's own
sampling noise, ``truth_report``). ``truth_report`` turns them into the tables and the figure of VALIDATION.md.
The fits run with the settings' ``cpu_threads`` torch threads (one): two studies side by side on two cores
then use one core each (with torch's default, a thread per core, they thrashed; VALIDATION.md has the times).
``--jobs N`` fits N sets at once on N spawned processes of one thread each, and each verdict's fits on N
workers (the protocol's parallel path); the results are those of ``--jobs 1`` (the parent process alone
writes truth.json and sets/, as each set finishes). ``--join A B``: folders of other encoders on the same sets,
their tables joined (``truth_join``).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..labels.testbed import EMBEDDED_SET, synthetic_labelled_set
from ..pretraining.checkpoints import load_encoder
from ..pretraining.config import PretrainConfig
from ..pretraining.job import pretrain
from ..transfer.arms import arm as arm_row
from ..transfer.arms import result_arms
from ..transfer.config import TransferConfig
from ..transfer.fits import Inputs, arm_probabilities, fit_seed
from ..transfer.folds import config_groups, inner_split
from ..transfer.intervals import per_window_scores
from ..util.cli import ArgumentParser, run
from ..util.config import ConfigError, StrictConfig
from ..util.io import check_writable, write_json
from ..util.paths import resolve_path
from ..util.processes import spawn_pool
from ..util.rundir import run_dir_claim
from ..util.threads import cpu_threads_block
from .truth_join import join, sources_markdown
from .truth_report import load_results, report
from .truth_verdicts import VERDICT_RUNS, check, check_markdown, remove_verdict_run, run_verdict
from .validation_truth import concatenate

SET_MARKET = 5_000_000
OTHER_SIZE_MARKET = 7_000_000  # sizes outside SIZE_SLOTS: 7,000,000 + 1,000 x size + k (apart from the test's)
SIZE_SLOTS = (174, 700, 50, 100, 350)  # the first run's order: its sets keep their markets, whatever --sizes says
TEST_MARKET = 6_000_000
TEST_SEED = 6_000_001
PRETRAIN_SPLITS = {"train": ["2024-01-01", "2025-01-01"], "val": ["2025-01-01", "2025-04-01"]}
PRETRAIN = dict(
    synthetic_start="2023-12-01",
    synthetic_end="2025-04-30",
    splits={**PRETRAIN_SPLITS, "test": ["2025-04-01", "2025-05-01"]},
    hidden_size=64,
    num_layers=2,
    epochs=6,
    batch_size=64,  # ~110 steps an epoch on ~7,000 windows: the default 1,024 takes 7 and learns nothing
    lr=3e-3,
    device="cpu",
    progress=False,
)
# VALIDATION.md's 2 x 128 (the real Jade's shape): 1.5 years of bars, 8 epochs (~4 min each on 2 cores)
PRETRAIN_128 = dict(
    PRETRAIN,
    synthetic_start="2023-06-01",
    splits={**PRETRAIN["splits"], "train": ["2023-07-01", "2025-01-01"]},
    hidden_size=128,
    epochs=8,
)
ENCODERS = {  # --encoders picks from this table; a study folder keeps the ones it was started with
    "masked64": {**PRETRAIN, "objective": "masked"},
    "forecast64": {**PRETRAIN, "objective": "forecast"},
    "masked128": {**PRETRAIN_128, "objective": "masked"},
    "forecast128": {**PRETRAIN_128, "objective": "forecast"},
}
DEFAULT_ENCODERS = ("masked64", "forecast64")
FULL_PARAMS = "params/transfer_full.yaml"


@dataclass
class TruthConfig(StrictConfig):
    """What the truth study runs (defaults: the issue's sizes, 20 sets a size, the 2 x 64 encoders)."""

    sizes: list[int] = field(default_factory=lambda: [174, 700, 50, 100, 350])  # run in this order
    sets: int = 20  # fresh labelled sets per size
    arms: list[str] = field(default_factory=list)  # TransferConfig.arms values; [] = transfer_full.yaml's
    encoders: dict[str, dict[str, Any]] = field(default_factory=lambda: {n: ENCODERS[n] for n in DEFAULT_ENCODERS})
    period: list[str] = field(default_factory=lambda: [EMBEDDED_SET.start, "2026-03-31"])  # labelled sets
    test_period: list[str] = field(default_factory=lambda: ["2022-01-03", "2024-06-30"])
    test_size: int = 2400  # the fresh balanced test set's windows
    transfer: dict[str, Any] = field(default_factory=dict)  # TransferConfig options over transfer_full.yaml's
    verdicts: int = 0  # per size of verdict_sizes: the protocol's verdict on the first sets (truth_verdicts)
    verdict_sizes: list[int] = field(default_factory=lambda: [174, 700])
    verdict_encoder: str = "masked64"
    # CV options over transfer's; {}: transfer_full.yaml's 5 x 5, the verdict users read (the hierarchical interval
    # and the decision's joint model; 5 x 2 would check the corrected t only): 2.5x the fits of 5 x 2. Like the
    # sets, without the learning curve's smaller fractions (labels_needed: its default exponent) or the bootstrap
    verdict_transfer: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        self.require(
            [
                (bool(self.sizes) and all(s >= 10 for s in self.sizes), "sizes must be a list of sizes >= 10"),
                (2 <= self.sets <= 1000, "sets must be 2 .. 1000 (an interval over sets needs two)"),
                (self.test_size >= 20, "test_size must be >= 20"),
                (len(self.period) == 2 and len(self.test_period) == 2, "periods must be [first day, last day]"),
                (bool(self.encoders), "encoders must name at least one encoder"),
                (self.verdicts == 0 or self.verdict_encoder in self.encoders, "verdict_encoder must be an encoder"),
            ]
        )

    def transfer_config(self) -> TransferConfig:
        return TransferConfig.from_dict(transfer_settings(self.arms, self.transfer))


QUICK = dict(
    sizes=[24],
    sets=2,
    arms=["baseline", "frozen", "random_frozen", "simple"],
    encoders={
        "masked8": {
            **PRETRAIN,
            "hidden_size": 8,
            "num_layers": 1,
            "epochs": 1,
            "synthetic_start": "2024-11-20",
            "synthetic_end": "2025-01-31",
            "splits": {"train": ["2024-12-01", "2025-01-15"], "val": ["2025-01-15", "2025-02-01"]},
        }
    },
    period=["2025-07-01", "2025-08-31"],
    test_period=["2025-10-01", "2025-11-30"],
    test_size=40,
    transfer={"epochs": 2, "patience": 2, "seeds_per_fold": 1, "readouts": ["mean:last", "span:both"]},
    verdict_sizes=[24],
    verdict_encoder="masked8",
    verdict_transfer={"folds": 2, "repeats": 1},
)


def transfer_settings(arms: list[str], overrides: dict) -> dict:
    """TransferConfig options: params/transfer_full.yaml's (the settings users run) without the run's paths,
    then the study's own (no bootstrap, one fraction, CPU, one process), then ``overrides``."""
    full = yaml.safe_load(resolve_path(FULL_PARAMS).read_text(encoding="utf-8"))
    names = {f.name for f in dataclasses.fields(TransferConfig)}
    options = {k: v for k, v in full.items() if k in names}
    options.update(n_bootstrap=0, fractions=[1.0], progress=False, device="cpu", n_jobs=1)
    if arms:
        options["arms"] = arms
    return {**options, **overrides}


def prepare_encoders(tc: TruthConfig, out: Path) -> dict:
    """name -> encoder, pretrained into out/encoders/NAME unless its training_results.json is there."""
    encoders = {}
    for name, options in tc.encoders.items():
        run_dir = out / "encoders" / name
        if not (run_dir / "training_results.json").exists():
            pretrain(PretrainConfig.from_dict({**options, "resume": run_dir.exists()}), run_dir)
        encoders[name] = load_encoder(
            run_dir / "checkpoint_best.pt", input_size=None, hidden_size=None, num_layers=None
        )
    return encoders


def period_windows(n: int, period: list[str], draw: int, market: int, class_balance: float = 0.5):
    """``n`` windows of market ``market`` over ``period`` (first and last day), drawn with seed ``draw``, the
    market starting 30 days before the period so every feature is warm: every set and test set of the studies."""
    lo, hi = period
    history = str(np.datetime64(lo, "D") - 30)
    return synthetic_labelled_set(
        n, class_balance, 0.0, draw, start=lo, end=hi, history_start=history, market_seed=market
    )


def test_set(tc: TruthConfig):
    """The fresh balanced test set: one market of its own over ``test_period`` (no set, no encoder reads it)."""
    return period_windows(tc.test_size, tc.test_period, TEST_SEED, TEST_MARKET)


def set_seed(size: int, k: int) -> int:
    """Market and draw seed of set k of ``size``: keyed by the size, never by its place in ``sizes`` (a run of
    ``--sizes 50`` must not redraw the markets of the sets of 174)."""
    if size in SIZE_SLOTS:
        return SET_MARKET + 1000 * SIZE_SLOTS.index(size) + k
    return OTHER_SIZE_MARKET + 1000 * size + k


def labelled_set(tc: TruthConfig, i: int, k: int):
    """Set k of size index i: its own market and draw (``set_seed``), the embedded set's class balance."""
    seed = set_seed(tc.sizes[i], k)
    return period_windows(tc.sizes[i], tc.period, seed, seed, EMBEDDED_SET.class_balance)


def architecture(encoder) -> str:
    """An encoder's architecture as a key prefix: "2x64" (layers x hidden size)."""
    return f"{encoder.arch['num_layers']}x{encoder.arch['hidden_size']}"


def arm_plan(cfg: TransferConfig, encoders: dict) -> list[tuple[str, str, str]]:
    """(result key, protocol arm, encoder name) of every fit of one set: the non-neural arms once (read with
    the first encoder, which they ignore), the random-encoder arms per architecture, the rest per encoder."""
    plan, archs = [], {}
    for name, enc in encoders.items():
        archs.setdefault(architecture(enc), name)
    first = next(iter(encoders))
    for arm in result_arms(cfg.arms):
        kind = arm_row(arm).encoder
        if kind is None:
            plan.append((arm, arm, first))
        elif kind == "random":
            plan += [(f"{arch}:{arm}", arm, name) for arch, name in archs.items()]
        else:
            plan += [(f"{name}:{arm}", arm, name) for name in encoders]
    return plan


def set_probabilities(tc: TruthConfig, cfg: TransferConfig, i: int, k: int, encoders: dict, test) -> dict:
    """Every arm of the plan fitted on the whole of set (i, k) (the protocol's recipe: one inner split, the
    settings' seeds): key -> its probabilities on the windows of ``test`` (the mean over seeds)."""
    train = labelled_set(tc, i, k)
    both = concatenate(train, test)
    n = len(train)
    groups = config_groups(train, cfg)
    seed = fit_seed(cfg.seed, tc.sizes[i], k)
    fit, val = inner_split(np.arange(n), train.y, groups, cfg.inner_val_fraction, seed)
    split = (fit, val, np.arange(n, len(both)))
    inputs = {name: Inputs.build(both, enc, cfg) for name, enc in encoders.items()}
    out = {}
    for key, arm, name in arm_plan(cfg, encoders):
        probas, _ = arm_probabilities(arm, inputs[name], both.y, split, cfg, seed)
        out[key] = np.mean(probas, axis=0)
    return out


def run_set(tc: TruthConfig, cfg: TransferConfig, i: int, k: int, encoders: dict, test) -> tuple[dict, dict]:
    """Every arm of the plan fitted on set (i, k) and scored on the test set (``set_probabilities``): (balanced
    accuracy per key, per-window scores per key)."""
    probas = set_probabilities(tc, cfg, i, k, encoders, test)
    windows = {key: per_window_scores(test.y, p, "balanced_accuracy") for key, p in probas.items()}
    return {key: float(w.mean()) for key, w in windows.items()}, windows


_WORKER: dict = {}  # in a set worker process: the encoders and the test set (``_set_worker``)


def _set_worker(encoders: dict, test) -> None:
    _WORKER.update(encoders=encoders, test=test)


def _timed_set(tc: TruthConfig, cfg: TransferConfig, i: int, k: int, fit, encoders=None, test=None):
    """``fit`` (``run_set``) on the settings' CPU threads, and its seconds; encoders and test set: the worker's."""
    t0 = time.perf_counter()
    encoders = _WORKER["encoders"] if encoders is None else encoders
    with cpu_threads_block(cfg.cpu_threads):
        fitted = fit(tc, cfg, i, k, encoders, _WORKER["test"] if test is None else test)
    return k, fitted, time.perf_counter() - t0


def fitted_sets(
    tc: TruthConfig, cfg: TransferConfig, i: int, pending: list[int], encoders: dict, test, jobs: int, fit=run_set
):
    """(k, ``fit``'s result, seconds) for every set k of ``pending``, as each finishes: on ``jobs`` spawned
    processes (one thread each; a set's fits are seeded by the set alone, so its scores are those of the
    serial run), in this process when ``jobs`` is 1 or one set is pending. ``fit``: ``run_set`` or another
    module-level function of the same arguments (``truth_heldout``)."""
    if jobs == 1 or len(pending) <= 1:
        yield from (_timed_set(tc, cfg, i, k, fit, encoders, test) for k in pending)
        return
    pool = spawn_pool(min(jobs, len(pending)), _set_worker, (encoders, test))
    try:
        futures = [pool.submit(_timed_set, tc, cfg, i, k, fit) for k in pending]
        yield from (future.result() for future in as_completed(futures))
    finally:
        pool.shutdown(cancel_futures=True)  # an error or an interrupt: no further set starts


SET_SIZE_OPTIONS = ("sizes", "sets", "verdicts", "verdict_sizes")  # a rerun may change these: more or other sets


def changed_transfer(results: dict, tc: TruthConfig) -> list[str]:
    """The transfer options whose value ``tc`` resolves to now (params/transfer_full.yaml may have been edited)
    differs from the one the results' sets were fitted with, as "transfer.NAME"."""
    resolved, fitted = dataclasses.asdict(tc.transfer_config()), results.get("transfer", {})
    # a TransferConfig option added since the file was written is not a change of its settings
    return [f"transfer.{k}" for k in resolved if k in fitted and fitted[k] != resolved[k]]


def check_same_settings(results: dict, tc: TruthConfig, path: Path) -> None:
    """Refuse to add sets fitted with other settings to a results file (its means would mix two studies): the
    study's options, then the transfer settings they resolve to (``changed_transfer``)."""
    new, stored = dataclasses.asdict(tc), results["config"]
    changed = [k for k in new if k not in SET_SIZE_OPTIONS and k in stored and stored[k] != new[k]]
    changed = changed or changed_transfer(results, tc)
    if changed:
        raise ConfigError(
            f"{path}: written with other settings ({', '.join(changed)}); only {', '.join(SET_SIZE_OPTIONS)} may "
            "change between runs of one study: use another output folder"
        )


def run_study(tc: TruthConfig, out: Path, log=print, jobs: int = 1) -> dict:
    """Every set of every size not yet in out/truth.json, each written as it finishes (``jobs`` sets at once,
    ``fitted_sets``; then the verdicts of the size, ``run_verdicts``, their fits on ``jobs`` worker processes);
    the results."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "truth.json"
    results = load_results(path) if path.exists() else {"config": dataclasses.asdict(tc), "sets": {}}
    check_same_settings(results, tc, path)
    cfg = tc.transfer_config()
    encoders = prepare_encoders(tc, out)
    test = test_set(tc)
    results["test"] = {"n": len(test), "class_counts": test.class_counts()}
    results["transfer"] = dataclasses.asdict(cfg)
    results["encoders"] = {name: architecture(enc) for name, enc in encoders.items()}
    for i, size in enumerate(tc.sizes):
        sets = results["sets"].setdefault(str(size), {})
        pending = [k for k in range(tc.sets) if str(k) not in sets]
        for k, (scores, windows), seconds in fitted_sets(tc, cfg, i, pending, encoders, test, jobs):
            (out / "sets").mkdir(exist_ok=True)
            arrays = {key.replace(":", "__"): w for key, w in windows.items()}
            np.savez_compressed(out / "sets" / f"{size}_{k}.npz", **arrays)
            sets[str(k)] = {"scores": scores, "seconds": seconds}
            results["sets"][str(size)] = sets = dict(sorted(sets.items(), key=lambda item: int(item[0])))
            write_json(path, results)
            shown = ", ".join(f"{a} {100 * x:.1f}" for a, x in scores.items())
            log(f"size {size} set {k}: {seconds:.0f} s, {shown}")
        if size in tc.verdict_sizes:
            run_verdicts(tc, i, out, results, encoders, log, jobs)
    return results


def verdict_config(tc: TruthConfig, **options) -> TransferConfig:
    """The verdicts' TransferConfig: the study's transfer settings, its ``verdict_transfer``, then ``options``."""
    return TransferConfig.from_dict({**transfer_settings(tc.arms, tc.transfer), **tc.verdict_transfer, **options})


def run_verdicts(tc: TruthConfig, i: int, out: Path, results: dict, encoders: dict, log=print, jobs: int = 1) -> None:
    """The protocol's verdict on each of the first ``tc.verdicts`` sets of size index i not yet recorded
    (``truth_verdicts``), written as each finishes. ``jobs``: worker processes for a verdict's fits (the
    protocol's results are the same bit for bit for any number, so it is not part of the recipe). Each verdict
    keeps its finished fits in OUT_DIR/verdict-runs/SIZE-SET until it is recorded: a verdict stopped part-way
    (hours on a CPU) continues where it stopped, with the same results."""
    size, name = tc.sizes[i], tc.verdict_encoder
    cfg = verdict_config(tc, n_jobs=jobs)
    done = results.setdefault("verdicts", {}).setdefault(str(size), {})
    for k in range(min(tc.verdicts, tc.sets)):
        if str(k) in done:
            continue
        t0 = time.perf_counter()
        path = out / "encoders" / name / "checkpoint_best.pt"
        run_dir = out / VERDICT_RUNS / f"{size}-{k}"  # its finished fits: an interrupted verdict continues there
        done[str(k)] = run_verdict(labelled_set(tc, i, k), path, cfg, name, architecture(encoders[name]), run_dir)
        write_json(out / "truth.json", results)
        remove_verdict_run(run_dir)
        chosen = done[str(k)]["recommended"]
        log(f"size {size} set {k}: verdict in {time.perf_counter() - t0:.0f} s, recommends {chosen}")


def _main(argv=None) -> int:
    parser = ArgumentParser(
        prog="python -m moola_lib.studies.truth",
        description="The testbed's true balanced accuracy per arm and labelled-set size (module docstring).",
    )
    parser.add_argument("out_dir", help="results: truth.json, sets/, encoders/, truth.md, truth.png")
    parser.add_argument("--sizes", type=int, nargs="+", help="labelled-set sizes (default 174 700 50 100 350)")
    parser.add_argument("--sets", type=int, help="fresh labelled sets per size (default 20)")
    parser.add_argument("--arms", nargs="+", help="TransferConfig.arms values (default: transfer_full.yaml's)")
    parser.add_argument(
        "--encoders",
        nargs="+",
        choices=list(ENCODERS),
        help=f"encoders to pretrain and transfer (default {' '.join(DEFAULT_ENCODERS)}; the first is the verdicts')",
    )
    parser.add_argument("--verdicts", type=int, help="per size of verdict_sizes: the protocol's verdict on N sets")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes: sets at once (a thread each) and each verdict's fits (default 1; same results)",
    )
    parser.add_argument("--quick", action="store_true", help="a seconds-long run of tiny sizes (tests)")
    parser.add_argument("--report-only", action="store_true", help="redraw truth.md and truth.png, fit nothing")
    parser.add_argument(
        "--join",
        nargs="+",
        metavar="DIR",
        help="study folders fitted on the same sets (other encoders): their tables joined into OUT_DIR, no fits",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1 (got {args.jobs})")
    options = dict(QUICK) if args.quick else {}
    given = (("sizes", args.sizes), ("sets", args.sets), ("arms", args.arms), ("verdicts", args.verdicts))
    options.update({k: v for k, v in given if v})
    if args.encoders:
        options.update(encoders={n: ENCODERS[n] for n in args.encoders}, verdict_encoder=args.encoders[0])
    tc = TruthConfig.from_dict(options)
    out = Path(args.out_dir)
    for name in ("truth.json", "truth.md", "truth.png"):
        check_writable(out / name)  # before hours of work
    if args.join:
        if args.quick or any(v for _, v in given) or args.encoders:
            raise ConfigError("--join fits nothing: it takes no study options (--sizes, --sets, --arms, ...)")
        return _join(args.join, out)
    if args.report_only:
        results = load_results(out / "truth.json")
    else:
        with run_dir_claim(out):  # one writer: a second study on the same folder would lose sets
            results = run_study(tc, out, jobs=args.jobs)
    report(results, out, check_markdown(check(results)))
    print(f"truth study: {out / 'truth.md'}")
    return 0


def _join(folders: list[str], out: Path) -> int:
    """``--join``: the folders' truth tables on their common sets into out/truth.md and truth.png."""
    if (out / "truth.json").exists():
        raise ConfigError(f"{out}: a study folder (truth.json); a joined report goes to a folder of its own")
    joined, windows = join([Path(f) for f in folders])
    out.mkdir(parents=True, exist_ok=True)
    report(joined, out, sources_markdown(joined), test_windows=windows)
    print(f"truth study, joined: {out / 'truth.md'}")
    return 0


def main(argv=None) -> int:
    """The command line; expected errors print one line and exit 2 (``moola_lib.util.cli.run``)."""
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
