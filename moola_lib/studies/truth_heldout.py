"""Cross-validation's bias on the truth study's sets, taken apart (issue 28):
``python -m moola_lib.studies.truth_heldout TRUTH_DIR OUT_DIR``.

The verdicts' estimates differ from the truth at the set's size (VALIDATION.md) for two reasons one
measurement cannot tell apart: cross-validation trains on (folds - 1) / folds of the set (the truth, on all of
it), and it scores on held-out windows of the set (the truth, on a large test set from another market). Here
each fold's models are scored on both: every arm fitted on every training fold of the verdicts' first repeat
as the verdict fits it (the same folds, inner splits and seeds: ``protocol.fold_splits``), its probabilities
taken on the held-out fold AND on the truth study's test set. Per set and arm: the cross-validated estimate
(the mean over folds of the held-out balanced accuracy, the verdict's) and the same models' true accuracy (the
mean over folds, on the test set); the truth folder holds the whole-set truth. Per arm against the baseline,
paired by set:

- held-out windows: the estimate minus the same models' true difference (what scoring on held-out windows of
  the set gets wrong, the models held fixed);
- training size: the same models' true difference minus the whole-set truth (what training on 4/5 changes);

the two add up to the verdicts' bias against the truth. Settings: the truth folder's verdict recipe
(``truth.verdict_config``), one repeat, ``arms`` (default the baseline, the probes and the summaries' arms),
the verdict encoder only. OUT_DIR/heldout.json after each set (atomically; resumable by set; one writer; other
settings refused), OUT_DIR/heldout.md.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from ..pretraining.checkpoints import load_encoder
from ..transfer.fits import Inputs, arm_probabilities
from ..transfer.folds import config_groups, make_folds
from ..transfer.intervals import per_window_scores
from ..transfer.protocol import fold_splits
from ..util.cli import ArgumentParser, run
from ..util.io import write_json
from ..util.rundir import run_dir_claim
from .truth import TruthConfig, arm_plan, fitted_sets, labelled_set, test_set, verdict_config
from .truth_folds import add_arguments, load_study, settings, study_folders, truth_folder, write_study
from .truth_report import difference, interval_text, load_results
from .truth_verdicts import METRIC
from .validation_truth import concatenate


def heldout_set(tc: TruthConfig, cfg, i: int, k: int, encoders: dict, tests: dict, fraction: float = 1.0) -> dict:
    """Set (i, k): every arm of the plan fitted on each training fold, scored on its held-out fold ("cv") and on
    each set of ``tests`` (name -> LabelledSet: "test", the truth study's; "later", ``later_set``); each the
    mean over the folds. ``fraction`` < 1: each training fold subsampled as the learning curve's fraction is
    (``truth_curve``)."""
    train = labelled_set(tc, i, k)
    both = train
    for other in tests.values():
        both = concatenate(both, other)
    groups = config_groups(train, cfg)
    assign = make_folds(train.y, groups, cfg.folds, cfg.repeats, cfg.seed)
    inputs = {name: Inputs.build(both, enc, cfg) for name, enc in encoders.items()}
    parts = {"cv": None, **{name: other.y for name, other in tests.items()}}
    scores: dict[str, dict[str, list[float]]] = {part: {} for part in parts}
    for _, _, seed, _, (fit_idx, val_idx, held_out) in fold_splits(train, cfg, assign, groups, fraction):
        scored = np.concatenate([held_out, np.arange(len(train), len(both))])
        for key, arm, name in arm_plan(cfg, encoders):
            probas, _ = arm_probabilities(arm, inputs[name], both.y, (fit_idx, val_idx, scored), cfg, seed)
            p = np.split(np.mean(probas, axis=0), np.cumsum([len(held_out), *(len(t) for t in tests.values())])[:-1])
            for (part, y), q in zip(parts.items(), p):
                y = train.y[held_out] if y is None else y
                scores[part].setdefault(key, []).append(per_window_scores(y, q, METRIC).mean())
    return {part: {key: float(np.mean(x)) for key, x in d.items()} for part, d in scores.items()}


def later_set(tc: TruthConfig, period: list[str]):
    """A test set like the truth study's (its market, size and draw) over ``period``: windows of the months
    after the labelled sets, the months a deployed classifier meets."""
    return test_set(dataclasses.replace(tc, test_period=list(period)))


def run_heldout(truth_dir: Path, out: Path, wanted: dict, sets: int, jobs: int, log=print) -> dict:
    """Every set not yet in out/heldout.json (``jobs`` at once: ``truth.fitted_sets``), written as each finishes;
    the results. Settings are refused before anything is fitted."""
    _, tc, path = truth_folder(truth_dir, wanted["size"], sets)
    size, name = wanted["size"], tc.verdict_encoder
    cfg = verdict_config(tc, repeats=wanted["repeats"], arms=wanted["arms"])
    encoders = {name: load_encoder(path, input_size=None, hidden_size=None, num_layers=None)}
    out.mkdir(parents=True, exist_ok=True)
    with run_dir_claim(out):  # one writer: a second process on the same folder would lose sets
        results = load_study(out / "heldout.json", wanted, "sets")
        pending = [k for k in range(sets) if str(k) not in results["sets"]]
        i = tc.sizes.index(size)
        tests = {"test": test_set(tc)}
        if wanted["later_period"]:
            tests["later"] = later_set(tc, wanted["later_period"])
        for k, fitted, seconds in fitted_sets(tc, cfg, i, pending, encoders, tests, jobs, fit=heldout_set):
            results["sets"][str(k)] = {**fitted, "seconds": seconds}
            write_json(out / "heldout.json", results)
            log(f"set {k}: {seconds:.0f} s")
    return results


def decomposition(truth: dict, heldout: dict) -> dict:
    """Per arm against the baseline (paired by set): the estimate, the same models' and the whole-set true
    differences, and the bias split into held-out windows and training size (``difference`` of each)."""
    size = str(heldout["settings"]["size"])
    sets = {k: s for k, s in heldout["sets"].items() if k in truth["sets"][size]}
    first = next(iter(sets.values()))
    baseline = next(key for key in first["cv"] if key.endswith(":baseline"))
    rows = {}
    for key in first["cv"]:
        if key == baseline:
            continue
        part = {p: np.array([s[p][key] - s[p][baseline] for s in sets.values()]) for p in first if p != "seconds"}
        whole = np.array(
            [truth["sets"][size][k]["scores"][key] - truth["sets"][size][k]["scores"][baseline] for k in sets]
        )
        rows[f"{key} - {baseline}"] = {
            "sets": len(sets),
            "estimate": float(part["cv"].mean()),
            "same_models": float(part["test"].mean()),
            "truth": float(whole.mean()),
            "held_out": difference(part["cv"], part["test"]),
            "training_size": difference(part["test"], whole),
            "bias": difference(part["cv"], whole),
        }
        if "later" in part:  # the same models on the months after the sets: against the estimate, the test set
            rows[f"{key} - {baseline}"]["later"] = difference(part["cv"], part["later"])
            rows[f"{key} - {baseline}"]["period"] = difference(part["later"], part["test"])
    return rows


def markdown(truth: dict, heldout: dict) -> str:
    """heldout.md: the settings and one row per arm against the baseline (``decomposition``)."""
    s = heldout["settings"]
    lines = [
        f"Cross-validation's bias taken apart: {s['truth_dir']}, sets of {s['size']}, {s['repeats']} repeat(s), "
        f"arms {' '.join(s['arms'])} (`python -m moola_lib.studies.truth_heldout`). pp, mean [95% t interval "
        "over sets]; estimate: the folds' held-out windows; same models: the folds' models on the test set; "
        "truth: the whole set's models on the test set.",
        "",
        "| difference | sets | estimate | same models | truth | held-out windows (estimate - same models) | "
        "training size (same models - truth) | bias (estimate - truth) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = decomposition(truth, heldout)
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['sets']} | {100 * r['estimate']:+.1f} | {100 * r['same_models']:+.1f} | "
            f"{100 * r['truth']:+.1f} | {interval_text(r['held_out'])} | {interval_text(r['training_size'])} | "
            f"{interval_text(r['bias'])} |"
        )
    if s.get("later_period"):
        lo, hi = s["later_period"]
        lines += [
            "",
            f"The same models on the test market's windows of {lo} .. {hi} (after the labelled sets: the months a "
            "deployed classifier meets): the estimate minus their difference there, and their difference there "
            "minus on the test set (the test period's own effect, the models held fixed).",
            "",
            "| difference | estimate - same models, later months | same models: later months - test set |",
            "|---|---|---|",
            *(f"| {name} | {interval_text(r['later'])} | {interval_text(r['period'])} |" for name, r in rows.items()),
        ]
    return "\n".join(lines) + "\n"


def _main(argv=None) -> int:
    parser = ArgumentParser(
        prog="python -m moola_lib.studies.truth_heldout",
        description="Cross-validation's bias on the truth study's sets: held-out windows vs training size.",
    )
    add_arguments(parser, "heldout.json, heldout.md", "sets fitted at once, a process each")
    parser.add_argument(
        "--later-period",
        nargs=2,
        metavar=("FIRST", "LAST"),
        help="also score the fold models on the test market's windows of these days (e.g. after the sets)",
    )
    args = parser.parse_args(argv)
    files = ("heldout.json", "heldout.md")
    truth_dir, out = study_folders(args, files)
    wanted = {**settings(truth_dir, args.size, 1, args.arms), "later_period": args.later_period}
    return write_study(
        out,
        files,
        "sets",
        wanted,
        args.report_only,
        lambda: run_heldout(truth_dir, out, wanted, args.sets, args.jobs),
        lambda heldout: markdown(load_results(truth_dir / "truth.json"), heldout),
        "held-out study",
    )


def main(argv=None) -> int:
    """The command line; expected errors print one line and exit 2 (``moola_lib.util.cli.run``)."""
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
