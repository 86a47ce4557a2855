"""Does a set's own learning curve correct cross-validation's training size? (issue 28):
``python -m moola_lib.studies.truth_curve TRUTH_DIR OUT_DIR --heldout HELDOUT_DIR``.

Cross-validation scores models trained on (folds - 1) / folds of the set; the classifier a user deploys is
trained on all of it. Where the arms' learning curves have different slopes, the cross-validated difference is
the difference at the smaller size (on the testbed at 174 the verdicts favoured every rival of the trained
baseline by about 2 pp, VALIDATION.md). The protocol's learning curve (``TransferConfig.fractions``:
transfer_full.yaml's 0.25 and 0.5 of every training fold) measures each arm's slope on the user's own set, so
the estimate could be projected to the set's full size. This study measures whether that projection brings
the estimate nearer the truth or only adds noise: on the first ``sets`` sets of ``size`` of a truth study
folder, each arm fitted on every training fold of the verdicts' first repeat subsampled to each fraction, as
the protocol's learning curve fits it (``protocol.fold_splits``: the same seeds and subsamples), scored on its
held-out fold (``truth_heldout.heldout_set``); the full fraction's scores are the held-out study's (HELDOUT_DIR:
``truth_heldout`` on the same truth folder, size, repeats and arms). Per set and arm, three estimates of its
score at the set's size n:

- ``raw``: the cross-validated score at the full fraction (what the verdict reports);
- ``two_point``: that, plus the slope per log training window between the largest fraction below 1 (0.5 in
  transfer_full.yaml) and 1.0, carried from the folds' mean training windows to n;
- ``log_linear``: the least-squares line of the score on log training windows over every fraction,
  evaluated at n.

Each arm's estimate minus the baseline's is held against the set's whole-set truth (paired by set): the bias
(mean error), the error's spread and root mean square, and the difference of squared errors against ``raw``.
Where the truth folder holds the verdicts' 5 x 5 estimates (``--verdicts``: the same sets), the projection's
correction (``two_point`` - ``raw`` of the first repeat) is added to each verdict's estimate as well. Results:
OUT_DIR/curve.json after each set (atomically; resumable by set; one writer; other settings refused),
OUT_DIR/curve.md.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

from ..pretraining.checkpoints import load_encoder
from ..transfer.folds import config_groups, make_folds
from ..transfer.protocol import fold_splits
from ..util.cli import ArgumentParser, run
from ..util.config import ConfigError
from ..util.io import write_json
from ..util.rundir import run_dir_claim
from .truth import TruthConfig, fitted_sets, labelled_set, verdict_config
from .truth_folds import add_arguments, load_study, settings, study_folders, truth_folder, write_study
from .truth_heldout import heldout_set
from .truth_report import difference, interval_text, load_results

FRACTIONS = [0.25, 0.5]  # params/transfer_full.yaml's learning curve below the full fraction
ESTIMATORS = ("raw", "two_point", "log_linear")


def curve_set(tc: TruthConfig, cfg, i: int, k: int, encoders: dict, tests: dict) -> dict:
    """Set (i, k): per fraction of ``cfg.fractions``, each arm's held-out score (the folds' mean) and the folds'
    mean training windows (``n_train``; the full fraction's too, for the projections)."""
    train = labelled_set(tc, i, k)
    groups = config_groups(train, cfg)
    assign = make_folds(train.y, groups, cfg.folds, cfg.repeats, cfg.seed)
    out = {"cv": {}, "n_train": {}}
    for f in [*cfg.fractions, 1.0]:
        splits = list(fold_splits(train, cfg, assign, groups, f))
        out["n_train"][str(f)] = float(np.mean([len(split[3]) for split in splits]))
        if f < 1:
            out["cv"][str(f)] = heldout_set(tc, cfg, i, k, encoders, tests, fraction=f)["cv"]
    return out


def run_curve(truth_dir: Path, out: Path, wanted: dict, sets: int, jobs: int, log=print) -> dict:
    """Every set not yet in out/curve.json (``jobs`` at once), written as each finishes; the results. Settings
    are refused before anything is fitted."""
    _, tc, path = truth_folder(truth_dir, wanted["size"], sets)
    cfg = dataclasses.replace(
        verdict_config(tc, repeats=wanted["repeats"], arms=wanted["arms"]), fractions=wanted["fractions"]
    )
    encoders = {tc.verdict_encoder: load_encoder(path, input_size=None, hidden_size=None, num_layers=None)}
    out.mkdir(parents=True, exist_ok=True)
    with run_dir_claim(out):  # one writer: a second process on the same folder would lose sets
        results = load_study(out / "curve.json", wanted, "sets")
        pending = [k for k in range(sets) if str(k) not in results["sets"]]
        i = tc.sizes.index(wanted["size"])
        for k, fitted, seconds in fitted_sets(tc, cfg, i, pending, encoders, {}, jobs, fit=curve_set):
            results["sets"][str(k)] = {**fitted, "seconds": seconds}
            write_json(out / "curve.json", results)
            log(f"set {k}: {seconds:.0f} s")
    return results


def projections(points: dict[float, float], n_train: dict[float, float], n: int) -> dict[str, float]:
    """An arm's ``ESTIMATORS`` at n windows from its scores by fraction (``points``, 1.0 included) and the folds'
    mean training windows by fraction (module docstring)."""
    fractions = sorted(points)
    x = {f: math.log(n_train[f]) for f in fractions}
    raw, below = points[1.0], fractions[-2]
    slope = (raw - points[below]) / (x[1.0] - x[below])
    line = np.polyfit([x[f] for f in fractions], [points[f] for f in fractions], 1)
    return {
        "raw": raw,
        "two_point": raw + slope * (math.log(n) - x[1.0]),
        "log_linear": float(np.polyval(line, math.log(n))),
    }


def set_estimates(record: dict, full: dict[str, float], n: int) -> dict[str, dict[str, float]]:
    """Per arm, its ``projections`` on one set: ``record`` (the set in curve.json) and ``full`` (arm -> the
    held-out study's full-fraction score)."""
    n_train = {float(f): v for f, v in record["n_train"].items()}
    return {
        arm: projections({**{float(f): s[arm] for f, s in record["cv"].items()}, 1.0: score}, n_train, n)
        for arm, score in full.items()
    }


def error_rows(truth: dict, heldout: dict, curve: dict) -> dict:
    """Per arm against the baseline and estimator: the error against the whole-set truth (``difference``: the bias
    and its interval, the sd), its root mean square, the mean squared error minus ``raw``'s with its interval,
    and where the truth folder has verdicts on the sets, the same for the verdict's estimate (``verdict_raw``)
    and for it plus the projection's correction (``verdict_two_point``)."""
    size = str(curve["settings"]["size"])
    common = [k for k in curve["sets"] if k in heldout["sets"] and k in truth["sets"][size]]
    if len(common) < 2:
        raise ConfigError("the curve, held-out and truth folders share fewer than 2 sets: nothing to compare")
    est = {k: set_estimates(curve["sets"][k], heldout["sets"][k]["cv"], int(size)) for k in common}
    first = est[common[0]]
    baseline = next(key for key in first if key.endswith(":baseline"))
    verdicts = truth.get("verdicts", {}).get(size, {})
    rows = {}
    for key in (a for a in first if a != baseline):
        name = f"{key} - {baseline}"
        truth_d = {
            k: truth["sets"][size][k]["scores"][key] - truth["sets"][size][k]["scores"][baseline] for k in common
        }
        errors = {e: {k: est[k][key][e] - est[k][baseline][e] - truth_d[k] for k in common} for e in ESTIMATORS}
        verdict = {k: d for k in common if (d := _verdict_estimate(verdicts.get(k, {}), key, baseline)) is not None}
        if len(verdict) >= 2:
            v = {k: verdict[k] - truth_d[k] for k in verdict}
            errors["verdict_raw"] = v
            errors["verdict_two_point"] = {k: v[k] + errors["two_point"][k] - errors["raw"][k] for k in verdict}
        rows[name] = {e: _error_summary(errors[e], errors["verdict_raw" if "verdict" in e else "raw"]) for e in errors}
    return rows


def _verdict_estimate(record: dict, arm: str, baseline: str) -> float | None:
    """A truth verdict's estimate of ``arm`` minus ``baseline`` (its comparisons name either first), or None."""
    comparisons = record.get("comparisons", {})
    if f"{arm} - {baseline}" in comparisons:
        return comparisons[f"{arm} - {baseline}"]["mean"]
    if f"{baseline} - {arm}" in comparisons:
        return -comparisons[f"{baseline} - {arm}"]["mean"]
    return None


def _error_summary(errors: dict[str, float], reference: dict[str, float]) -> dict:
    keys = sorted(errors, key=int)
    e, r = np.array([errors[k] for k in keys]), np.array([reference[k] for k in keys])
    return {
        "bias": difference(e, np.zeros_like(e)),
        "rmse": float(np.sqrt(np.mean(e**2))),
        "mse_change": difference(e**2, r**2),
    }


def markdown(truth: dict, heldout: dict, curve: dict) -> str:
    """curve.md: the settings and, per comparison, one row per estimator (``error_rows``)."""
    s = curve["settings"]
    lines = [
        f"Cross-validation projected to the set's size by its own learning curve: {s['truth_dir']}, sets of "
        f"{s['size']}, fractions {', '.join(map(str, s['fractions']))} and 1.0 ({s['heldout_dir']}), "
        f"{s['repeats']} repeat(s), arms {' '.join(s['arms'])} (`python -m moola_lib.studies.truth_curve`). "
        "Error: the estimate minus the set's whole-set true difference, pp; bias: its mean [95% t interval over "
        "sets]; MSE change: the mean squared error minus that of the unprojected estimate (pp^2, paired by set; "
        "negative: the projection is nearer the truth).",
        "",
        "| comparison | estimate | sets | bias | sd of the error | RMS error | MSE change |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, by_estimator in error_rows(truth, heldout, curve).items():
        for estimator, r in by_estimator.items():
            change = r["mse_change"]
            lines.append(
                f"| {name} | {estimator} | {r['bias']['sets']} | {interval_text(r['bias'])} | "
                f"{100 * r['bias']['sd']:.1f} | {100 * r['rmse']:.1f} | {1e4 * change['difference']:+.1f} "
                f"[{1e4 * change['ci'][0]:+.1f}, {1e4 * change['ci'][1]:+.1f}] |"
            )
    return "\n".join(lines) + "\n"


def _main(argv=None) -> int:
    parser = ArgumentParser(
        prog="python -m moola_lib.studies.truth_curve",
        description="Cross-validation projected to the set's size by its learning curve, against the truth.",
    )
    add_arguments(parser, "curve.json, curve.md", "sets fitted at once, a process each")
    parser.add_argument(
        "--heldout", required=True, help="a truth_heldout folder of the same truth folder, size and arms"
    )
    parser.add_argument(
        "--fractions", type=float, nargs="+", default=FRACTIONS, help="fractions below 1 (default 0.25 0.5)"
    )
    args = parser.parse_args(argv)
    if not all(0 < f < 1 for f in args.fractions):
        raise ConfigError("--fractions must lie between 0 and 1 (the full fraction's scores are the held-out study's)")
    files = ("curve.json", "curve.md")
    truth_dir, out = study_folders(args, files)
    heldout_dir = Path(args.heldout)
    same = settings(truth_dir, args.size, 1, args.arms)  # the held-out study's, which must match
    wanted = {**same, "fractions": sorted(args.fractions), "heldout_dir": str(heldout_dir)}
    if not (heldout_dir / "heldout.json").exists():
        raise ConfigError(f"{heldout_dir / 'heldout.json'}: not found (--heldout names a truth_heldout folder)")
    heldout = load_study(heldout_dir / "heldout.json", same, "sets")
    return write_study(
        out,
        files,
        "sets",
        wanted,
        args.report_only,
        lambda: run_curve(truth_dir, out, wanted, args.sets, args.jobs),
        lambda curve: markdown(load_results(truth_dir / "truth.json"), heldout, curve),
        "learning-curve study",
    )


def main(argv=None) -> int:
    """The command line; expected errors print one line and exit 2 (``moola_lib.util.cli.run``)."""
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
