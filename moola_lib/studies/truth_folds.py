"""Cross-validation's bias against the truth, by fold grouping (issue 28):
``python -m moola_lib.studies.truth_folds TRUTH_DIR OUT_DIR --blocks 7 28``.

The truth study's verdicts at 174 estimated every other arm's difference to the baseline 1.2-2.4 pp above the
truth, more than cross-validation's smaller training size explains (VALIDATION.md). One hypothesis: the folds
keep a trading session together but not a stretch of weeks, while the testbed's slow volatility outlives a
session, so held-out windows share their weeks with training windows; the truth, like a deployed model, meets
other months. This study tests it: on the first ``sets`` sets of ``size`` of a truth study folder (read only:
its sets, encoders and session-grouped verdicts), the protocol's cross-validation reruns with folds grouped by
blocks of N calendar days (``TransferConfig.fold_block_days``, for each N of ``blocks``; 1 is the session,
the folder's own grouping), and each comparison's estimate is held against the set's own truth (paired by
set: the bias) and against the folder's verdict on the same set (paired: the shift the grouping makes).

The recipe is the folder's verdicts' (``truth.verdict_config``) but for ``repeats`` (default 1: repeats lower
an estimate's noise, not its expectation, and the bias is a mean over sets) and ``arms`` (default the
baseline, the probes and the summaries' arms). Results: OUT_DIR/folds.json after each set (atomically;
resumable by block and set; one study process per folder; a rerun may add blocks and sets, other settings
are refused), OUT_DIR/folds.md. On the testbed, 28-day blocks moved no estimate by 1 pp or significantly:
the bias is not shared weeks (VALIDATION.md; ``truth_heldout`` measures where it is).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..util.cli import ArgumentParser, run
from ..util.config import ConfigError
from ..util.io import atomic_write_text, check_writable, read_json, write_json
from ..util.rundir import run_dir_claim
from .truth import TruthConfig, changed_transfer, labelled_set, verdict_config
from .truth_report import difference, interval_text, load_results
from .truth_verdicts import run_verdict

ARMS = ["baseline", "frozen", "random_frozen", "simple"]
VERDICTS = "session (the folder's verdicts)"  # the truth folder's own verdicts: the reference grouping


def settings(truth_dir: Path, size: int, repeats: int, arms: list[str]) -> dict:
    return {"truth_dir": str(truth_dir), "size": size, "repeats": repeats, "arms": arms}


def load_study(path: Path, wanted: dict, part: str) -> dict:
    """A study's results file (folds.json, heldout.json), or a new one ({settings, ``part``: {}}); refused (one
    line) when not JSON or written with other settings (every key of ``wanted``)."""
    if not path.exists():
        return {"settings": wanted, part: {}}
    try:
        stored = read_json(path)
    except ValueError as e:
        raise ConfigError(f"{path}: not JSON ({e})") from None
    if not isinstance(stored, dict) or part not in stored:
        raise ConfigError(f"{path}: not this study's results (no {part!r})")
    changed = [k for k in wanted if stored.get("settings", {}).get(k) != wanted[k]]
    if changed:
        raise ConfigError(f"{path}: written with other settings ({', '.join(changed)}): use another output folder")
    return stored


def add_arguments(parser: ArgumentParser, files: str, jobs: str) -> None:
    """The options the bias studies share (``truth_folds``, ``truth_heldout``); ``files``: what OUT_DIR holds."""
    parser.add_argument("truth_dir", help="a truth study folder (read only)")
    parser.add_argument("out_dir", help=f"results: {files}")
    parser.add_argument("--size", type=int, default=174, help="the sets' size (default 174)")
    parser.add_argument("--sets", type=int, default=20, help="the first N sets of that size (default 20)")
    parser.add_argument("--arms", nargs="+", default=ARMS, help=f"TransferConfig.arms (default {' '.join(ARMS)})")
    parser.add_argument("--jobs", type=int, default=1, help=f"{jobs} (default 1)")
    parser.add_argument("--report-only", action="store_true", help="redraw the report, fit nothing")


def study_folders(args, names: tuple[str, ...]) -> tuple[Path, Path]:
    """(truth folder, output folder) of the command line, refused before any work: the output folder must be
    another than the truth folder's and its ``names`` writable; --jobs >= 1, --sets >= 2."""
    if args.jobs < 1 or args.sets < 2:
        raise ConfigError("--jobs must be >= 1 and --sets >= 2")
    truth_dir, out = Path(args.truth_dir), Path(args.out_dir)
    if out.resolve() == truth_dir.resolve():
        raise ConfigError(f"{out}: the truth folder itself; the results go to a folder of their own")
    for name in names:
        check_writable(out / name)
    return truth_dir, out


def stored_study(path: Path, wanted: dict, part: str) -> dict:
    """--report-only: the results file ``load_study`` reads, which must exist."""
    if not path.exists():
        raise ConfigError(f"{path}: not found (--report-only redraws a run's report)")
    return load_study(path, wanted, part)


def write_study(out: Path, files: tuple[str, str], part: str, wanted: dict, report_only: bool, run, report, what: str):
    """A bias study command's tail: its results (``run()``; with --report-only the stored ones, ``stored_study``),
    its report ``report(results)`` written to out/files[1] (atomically), the report's path printed; 0."""
    results = stored_study(out / files[0], wanted, part) if report_only else run()
    atomic_write_text(out / files[1], report(results))
    print(f"{what}: {out / files[1]}")
    return 0


def truth_folder(truth_dir: Path, size: int, sets: int) -> tuple[dict, TruthConfig, Path]:
    """(truth.json, its TruthConfig, its verdict encoder's checkpoint) of the truth folder the bias studies read;
    one line when it holds fewer than ``sets`` sets of ``size`` or lacks that encoder."""
    truth = load_results(truth_dir / "truth.json")
    tc = TruthConfig.from_dict(truth["config"])
    if size not in tc.sizes or len(truth["sets"].get(str(size), {})) < sets:
        raise ConfigError(f"{truth_dir / 'truth.json'}: holds fewer than {sets} sets of size {size}")
    changed = changed_transfer(truth, tc)
    if changed:  # the study's fits would not be the recipe its truth was measured with
        raise ConfigError(
            f"{truth_dir / 'truth.json'}: its sets were fitted with other transfer settings than its options "
            f"resolve to now ({', '.join(changed)}: params/transfer_full.yaml was edited since?)"
        )
    encoder = truth_dir / "encoders" / tc.verdict_encoder / "checkpoint_best.pt"
    if not encoder.exists():
        raise ConfigError(f"{encoder}: not found (the truth folder's verdict encoder)")
    return truth, tc, encoder


def run_folds(truth_dir: Path, out: Path, wanted: dict, blocks: list[int], sets: int, jobs: int, log=print) -> dict:
    """Every (block, set) not yet in out/folds.json: the protocol's verdict with folds grouped by that block,
    written as each finishes (one writer: ``run_dir_claim``); the results. Settings are refused before anything
    is written or fitted."""
    truth, tc, encoder = truth_folder(truth_dir, wanted["size"], sets)
    size, name = wanted["size"], tc.verdict_encoder
    configs = {
        block: verdict_config(tc, repeats=wanted["repeats"], arms=wanted["arms"], fold_block_days=block, n_jobs=jobs)
        for block in blocks
    }
    path = out / "folds.json"
    out.mkdir(parents=True, exist_ok=True)
    with run_dir_claim(out):  # one writer: a second process on the same folder would lose sets
        results = load_study(path, wanted, "blocks")  # other settings: refused here, before any fit
        for block, cfg in configs.items():
            done = results["blocks"].setdefault(str(block), {})
            for k in (k for k in range(sets) if str(k) not in done):
                t0 = time.perf_counter()
                record = run_verdict(
                    labelled_set(tc, tc.sizes.index(size), k), encoder, cfg, name, truth["encoders"][name]
                )
                done[str(k)] = {**record, "seconds": time.perf_counter() - t0}
                write_json(path, results)
                log(f"block {block} set {k}: {done[str(k)]['seconds']:.0f} s")
    return results


def _estimates(records: dict, name: str) -> dict[str, float]:
    return {k: r["comparisons"][name]["mean"] for k, r in records.items() if name in r["comparisons"]}


def _paired(x: dict[str, float], y: dict[str, float]) -> dict | None:
    common = sorted(set(x) & set(y), key=int)
    if len(common) < 2:
        return None
    return difference(np.array([x[k] for k in common]), np.array([y[k] for k in common]))


def bias_rows(truth: dict, folds: dict) -> list[dict]:
    """Per comparison and grouping (the truth folder's session-grouped verdicts first, then each block): the
    mean estimate over the sets, the bias (estimate - the set's true difference, paired by set) and, for a
    block, the shift against the folder's verdict on the same set (paired); each with its t interval."""
    size = str(folds["settings"]["size"])
    sets = truth["sets"][size]
    groupings = {VERDICTS: truth.get("verdicts", {}).get(size, {})}
    for block, records in sorted(folds["blocks"].items(), key=lambda x: int(x[0])):
        groupings["session (rerun)" if block == "1" else f"blocks of {block} days"] = records
    names = {name for records in folds["blocks"].values() for r in records.values() for name in r["comparisons"]}
    rows = []
    for name in sorted(names):
        a, b = name.split(" - ")
        true = {k: s["scores"][a] - s["scores"][b] for k, s in sets.items() if {a, b} <= set(s["scores"])}
        reference = _estimates(groupings[VERDICTS], name)
        for grouping, records in groupings.items():
            estimates = _estimates(records, name)
            common = sorted(set(estimates) & set(true), key=int)
            if len(common) < 2:
                continue
            rows.append(
                {
                    "comparison": name,
                    "grouping": grouping,
                    "estimate": float(np.mean([estimates[k] for k in common])),
                    "truth": float(np.mean([true[k] for k in common])),
                    "bias": _paired(estimates, true),
                    "shift": None if grouping == VERDICTS else _paired(estimates, reference),
                }
            )
    return rows


def markdown(truth_dir: Path, folds: dict) -> str:
    """folds.md: the settings and one row per comparison and grouping (``bias_rows``)."""
    truth = load_results(truth_dir / "truth.json")
    s = folds["settings"]
    lines = [
        f"Cross-validation's bias by fold grouping: {s['truth_dir']}, sets of {s['size']}, {s['repeats']} "
        f"repeat(s) a block grouping, arms {' '.join(s['arms'])} (`python -m moola_lib.studies.truth_folds`).",
        "Bias: the estimate minus the set's true difference, paired by set; shift: the estimate minus the "
        "folder's session-grouped verdict on the same set. pp, mean [95% t interval over sets].",
        "",
        "| comparison | folds grouped by | sets | mean estimate | true difference | bias | shift against the session "
        "verdicts |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in bias_rows(truth, folds):
        lines.append(
            f"| {r['comparison']} | {r['grouping']} | {r['bias']['sets']} | {100 * r['estimate']:+.1f} | "
            f"{100 * r['truth']:+.1f} | "
            f"{interval_text(r['bias'])} | {interval_text(r['shift'])} |"
        )
    return "\n".join(lines) + "\n"


def _main(argv=None) -> int:
    parser = ArgumentParser(
        prog="python -m moola_lib.studies.truth_folds",
        description="Cross-validation's bias against the truth study's truth, by fold grouping (module docstring).",
    )
    add_arguments(parser, "folds.json, folds.md", "worker processes for each verdict's fits")
    parser.add_argument("--blocks", type=int, nargs="+", default=[28], help="fold_block_days values (default 28)")
    parser.add_argument("--repeats", type=int, default=1, help="cross-validation repeats (default 1)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or min(args.blocks) < 1:
        raise ConfigError("--repeats and every --blocks value must be >= 1")
    files = ("folds.json", "folds.md")
    truth_dir, out = study_folders(args, files)
    wanted = settings(truth_dir, args.size, args.repeats, args.arms)
    return write_study(
        out,
        files,
        "blocks",
        wanted,
        args.report_only,
        lambda: run_folds(truth_dir, out, wanted, args.blocks, args.sets, args.jobs),
        lambda folds: markdown(truth_dir, folds),
        "fold grouping study",
    )


def main(argv=None) -> int:
    """The command line; expected errors print one line and exit 2 (``moola_lib.util.cli.run``)."""
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
