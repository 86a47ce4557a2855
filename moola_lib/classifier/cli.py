"""``python -m moola_lib.classify``: fit the classifier the labels were for, and scan new bars with it.

    python -m moola_lib.classify fit RUN_DIR [--labels PATH] [--data PATH] [--encoder PATH]
                                 [--arm NAME|auto] [--transfer-run DIR] [--background CLASS]
    python -m moola_lib.classify scan MODEL_DIR --data PATH --out PATH [--start DATE] [--end DATE]
                                 [--threshold P] [--stride N]

``fit`` claims RUN_DIR (a new or empty run directory) before any work, reads the labelled windows as
transfer.ipynb does (``labels.sources``: a labels file with the bars it points into, or without ``--labels``
the embedded labelled set; features with the encoder's feature options), fits ``--arm`` (default ``auto``:
the best arm of ``--transfer-run``, which it requires; ``--background`` names the class of windows without a
pattern, which ``scan`` then does not report as detections) with that run's recipe, saves the model into RUN_DIR
and prints what it did (``summary``): the arm and why, its cross-validated balanced accuracy, the calibration,
where the model is; ``fit_from_spec`` is that fit without the run directory (classify.ipynb calls it too).
``scan`` reads a saved model and hands it to ``scan.scan_to_files``. Expected errors (an unknown
arm, ``auto`` without a transfer run, an arm that reads an encoder without ``--encoder``, labels of one
class, a broken model) print one line ``error: ...`` and exit 2 (``util.cli.run``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..bars.sources import read_options
from ..labels.provenance import EncoderSource
from ..labels.sources import LabelledSpec, labelled_from_params
from ..transfer.arms import BY_NAME
from ..transfer.arms import arm as arm_row
from ..util import cli
from ..util.paths import resolve_path
from ..util.rundir import run_dir_claim
from .files import check_new_run_dir
from .model import ArmClassifier
from .recipe import AUTO, TransferRun, check_encoder, choose_arm


def parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m moola_lib.classify", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit an arm on all labelled windows and save it into RUN_DIR")
    fit.add_argument("run_dir", metavar="RUN_DIR")
    fit.add_argument("--labels", help="labels file (CSV, parquet, JSON); default: the embedded labelled set")
    fit.add_argument("--data", help="the OHLCV file timestamped labels point into")
    fit.add_argument("--encoder", help="encoder file or pretraining checkpoint (arms that read one need it)")
    fit.add_argument("--arm", default=AUTO, help=f"{AUTO} (needs --transfer-run) or one of: {', '.join(BY_NAME)}")
    fit.add_argument("--transfer-run", dest="transfer_run", help="transfer run directory: its recipe, its choice")
    fit.add_argument(
        "--background", help="the labelled class of windows without a pattern: scan detects only the other classes"
    )
    _read_flags(fit)
    scan = sub.add_parser("scan", help="classify the windows of new bars with a saved model")
    scan.add_argument("model_dir", metavar="MODEL_DIR")
    scan.add_argument("--data", required=True, help="OHLCV file to scan")
    scan.add_argument("--out", required=True, help="where the detections go")
    scan.add_argument("--start", help="first date scanned (default: the data's first)")
    scan.add_argument("--end", help="last date scanned (default: the data's last)")
    scan.add_argument("--threshold", type=_probability, default=0.5, help="report windows above this probability")
    scan.add_argument("--stride", type=_positive, default=1, help="bars between scanned windows")
    _read_flags(scan)
    return p


def _read_flags(p: argparse.ArgumentParser) -> None:
    """How the bars are read (``bars.sources.READ_OPTIONS``; README, "Your own bars")."""
    p.add_argument("--data-timezone", dest="data_timezone", help="the zone of timestamps without one, e.g. UTC")
    p.add_argument("--timestamp-column", dest="timestamp_column", help="the timestamp column, or 'Date+Time'")
    p.add_argument("--resample-to-1min", dest="resample_to_1min", action="store_true", help="aggregate finer bars")


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in (0, 1)")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number of bars >= 1")
    return value


def fit(args: argparse.Namespace) -> ArmClassifier:
    """The ``fit`` command: checks first (run directory, then ``fit_from_spec``'s), then the work."""
    run_dir = resolve_path(args.run_dir)
    with run_dir_claim(run_dir):
        check_new_run_dir(run_dir)
        data = str(resolve_path(args.data)) if args.data else None
        spec = LabelledSpec(labels_path=args.labels, data_path=data, encoder_path=args.encoder, **read_options(args))
        classifier = fit_from_spec(spec, args.arm, args.transfer_run, background=args.background)
        classifier.save(run_dir)
    print(summary(classifier, run_dir))
    return classifier


def fit_from_spec(
    spec: LabelledSpec, arm: str = AUTO, transfer_run=None, config=None, background=None
) -> ArmClassifier:
    """``arm`` fitted on the labelled windows ``spec`` names (``labels.sources``: a labels file with the bars
    it points into, or the embedded labelled set), with the recipe of ``transfer_run`` (a run directory or
    results file; None: the defaults) and ``config`` overrides; the ``fit`` command and classify.ipynb.
    Checks first (the arm, the transfer run, the encoder an arm needs), then the work: the encoder file
    ``spec.encoder_path`` read once, the windows computed with its feature options (an arm that reads no
    encoder, given none: the options of the encoder the transfer run evaluated, if its file is there)."""
    run = TransferRun.read(resolve_path(transfer_run)) if transfer_run else None
    chosen, _ = choose_arm(arm, run)
    check_encoder(chosen, spec.encoder_path is not None, run)
    source = EncoderSource.load(resolve_path(spec.encoder_path)) if spec.encoder_path else None
    labelled = labelled_from_params(spec, source or _evaluated_encoder(chosen, run))
    return ArmClassifier(arm, encoder=source, config=config, transfer_run=run, background=background).fit(labelled)


def _evaluated_encoder(arm: str, run: TransferRun | None) -> EncoderSource | None:
    """For an arm that reads no encoder, given none: the encoder the transfer run evaluated, if its file is
    there, so the windows get the feature options the run's windows had (None: the defaults)."""
    evaluated = (run.results.get("encoder") or {}).get("path") if run is not None else None
    if arm_row(arm).encoder is not None or not evaluated or not Path(evaluated).is_file():
        return None
    return EncoderSource.load(evaluated)


def summary(classifier: ArmClassifier, run_dir: Path) -> str:
    """What ``fit`` did, in a few lines: the arm and why, its cross-validated accuracy, calibration, files."""
    meta = classifier.meta
    lines = [f"arm: {meta['arm']} ({meta['title']})"]
    choice = meta["choice"]
    if choice["how"] == AUTO:
        ranked = sorted(choice["p_best"].items(), key=lambda kv: -kv[1])[:4]
        odds = ", ".join(f"{a} {p:.2f}" for a, p in ranked)
        clear = "" if choice["separable"] else "; the run does not clearly separate the best arms"
        lines.append(f"why: best cross-validated balanced accuracy of the transfer run; P(best): {odds}{clear}")
    run = meta["transfer_run"]
    estimate = run and run["balanced_accuracy"]
    if estimate:
        lines.append(
            f"cross-validated balanced accuracy: {estimate['mean']:.3f} [{estimate['ci_low']:.3f}, "
            f"{estimate['ci_high']:.3f}] (95% interval, {run['path']})"
        )
    else:
        lines.append("cross-validated balanced accuracy: unknown (no transfer run of this arm given)")
    cal = meta["calibration"]
    lines.append(
        f"calibration: temperature {cal['temperature']:.3g}; ECE {cal['ece_before']:.3f} -> {cal['ece_after']:.3f} "
        f"on {cal['n']} inner validation windows"
    )
    lines.append(f"fitted on {meta['labels']['n_windows']} labelled windows in {meta['seconds']:.1f} s")
    lines.append(f"saved: {run_dir / 'model.json'} (weights: {meta['weights']['file']})")
    return "\n".join(lines)


def scan(args: argparse.Namespace):
    """The ``scan`` command: the saved model, then ``scan.scan_to_files`` (imported here: its own module)."""
    from .scan import scan_to_files

    model = ArmClassifier.load(resolve_path(args.model_dir))
    done = scan_to_files(
        model,
        resolve_path(args.data),
        resolve_path(args.out),
        start=args.start,
        end=args.end,
        threshold=args.threshold,
        stride=args.stride,
        read_options=read_options(args),
    )
    print(
        f"scanned {done['n_windows']:,} windows in {done['seconds']:.1f} s: {done['scores_path']}\n"
        f"{done['n_detections']:,} detections of {', '.join(done['detected_classes'])} at p >= {done['threshold']}: "
        f"{done['detections_path']}"
    )
    return done


def main(argv: Sequence[str] | None = None):
    args = parser().parse_args(argv)
    return fit(args) if args.command == "fit" else scan(args)
