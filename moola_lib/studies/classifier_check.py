"""The classifier on new bars of the embedded market: does the transfer verdict hold? (issue 27)

    python -m moola_lib.studies.classifier_check OUT_DIR [--arms auto simple_boosting frozen baseline]
        [--stride 5] [--quick]

The user's path on the embedded testbed, then the truth it is checked against:

1. an encoder pretrained on the embedded market's pretraining period (market ``EMBEDDED_SET.market_seed``
   from ``history_start`` to ``end``, the default splits, which end before the labelled period), sized for a
   CPU (``ENCODER``: 2 x 64, batch 64; the default batch of 1,024 takes a handful of steps an epoch here and
   learns nothing) into OUT_DIR/encoder;
2. ``run_transfer`` on the embedded labelled set (``synthetic_labelled_set()``: ``EMBEDDED_SET``) with that
   encoder and transfer.ipynb's CPU settings (``TRANSFER``; one learning-curve fraction, 1.0: every fit is
   seeded by run seed, repeat, fold and fraction alone, so the arms' results are the notebook's) into
   OUT_DIR/transfer: each arm's cross-validated balanced accuracy and the verdict's 95% interval;
3. per arm of ``arms`` (``auto``: the run's recommended arm), ``ArmClassifier(arm, encoder,
   transfer_run=OUT_DIR/transfer)`` fitted on the whole embedded set with that run's recipe.

The truth: the quarter after the labelled period (``later``, 2025-10-01 .. 12-31) of the market with the same
seed and first day. ``synthetic_market`` draws its series over the whole span, so this market shares the
embedded market's seed, start and process but not its bars (its bars before October differ too): new bars of
the same process, as a user's next months are. Its windows:

- ``later_n`` windows each holding one whole episode, labelled from the generator
  (``synthetic_labelled_set(later_n, 0.5, start=later[0], end=later[1], market_seed, history_start)``; 340 is
  about what the quarter holds, 170 of each kind): the true balanced accuracy of each fitted model, with a
  95% interval of its own sampling noise (normal approximation of each class's binomial recall), and
  whether it lies inside the verdict's interval;
- every window of the quarter, one every ``stride`` bars (``classifier.scan.scan``), and its detections
  (``scan.detections`` at each of ``thresholds``) matched against the generator's episodes of the quarter
  (``synthetic_market(...)[1]``; an episode runs from ``expansion_start`` to ``pattern_end``, inclusive): a
  detection of class c is a true positive when its window shares a minute with an episode of kind c;
  precision = true positives / detections of c, recall = episodes of kind c that a detection of c
  overlaps / episodes of kind c. ``base_rate`` is the precision of detecting every scanned window: the share
  of windows that overlap an episode of kind c. A 2-class model has no "no pattern" class, so at any
  threshold up to 0.5 every window is a detection of one class: its precision against the episodes is near
  the base rate by construction (README, "Use the classifier": a background class);
- ``scan_vs_windows``: the scan's scores of the windows that start where a labelled later window starts,
  against the model's scores of those labelled windows (the same bars and features: equal to float32
  rounding), so the two halves of the check read the same windows.

Results go to OUT_DIR/classifier_check.json and .md (atomically). The encoder and the transfer run are reused
when OUT_DIR holds them (a transfer run of other settings is refused). Expected errors print one line and
exit 2 (``util.cli.run``).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..bars.synthetic import synthetic_market
from ..classifier.model import ArmClassifier
from ..classifier.recipe import AUTO, TransferRun, choose_arm
from ..classifier.scan import detections, scan
from ..labels.provenance import EncoderSource
from ..labels.testbed import EMBEDDED_SET, synthetic_labelled_set
from ..pretraining.config import PretrainConfig
from ..pretraining.job import pretrain
from ..transfer.arms import BY_NAME
from ..transfer.arms import arm as arm_row
from ..transfer.config import TransferConfig
from ..transfer.protocol import run_transfer
from ..util.cli import ArgumentParser, run
from ..util.config import ConfigError, StrictConfig
from ..util.io import atomic_write_text, check_writable, write_json
from ..util.names import valid_names_hint
from .classifier_check_report import markdown

FORMAT = "moola.classifier_check.v1"
ENCODER = dict(  # the embedded market's pretraining period, the default splits (train ends 2025-01-01)
    synthetic_start=EMBEDDED_SET.history_start,
    synthetic_end=EMBEDDED_SET.end,
    synthetic_seed=EMBEDDED_SET.market_seed,
    hidden_size=64,
    num_layers=2,
    epochs=8,
    batch_size=64,
    lr=3e-3,
    warmup_epochs=1,
    device="cpu",
    progress=False,
)
# transfer.ipynb's CPU settings (notebook/params.py) where they differ from TransferConfig's, one fraction
TRANSFER = dict(repeats=2, epochs=40, fractions=[1.0], device="cpu", progress=False)


@dataclass
class CheckConfig(StrictConfig):
    """What the check runs (the module docstring)."""

    arms: list[str] = field(default_factory=lambda: [AUTO, "simple_boosting", "frozen", "baseline"])
    run_arms: list[str] = field(default_factory=lambda: ["baseline", "frozen", "simple"])  # + the arms' own
    encoder: dict[str, Any] = field(default_factory=lambda: dict(ENCODER))  # PretrainConfig options
    transfer: dict[str, Any] = field(default_factory=lambda: dict(TRANSFER))  # TransferConfig options
    later: list[str] = field(default_factory=lambda: ["2025-10-01", "2025-12-31"])  # inclusive dates
    later_n: int = 340
    later_seed: int = 1  # the draw of the later windows (episodes and offsets)
    stride: int = 5
    thresholds: list[float] = field(default_factory=lambda: [0.6, 0.8, 0.9])

    def __post_init__(self) -> None:
        unknown = next((a for a in self.arms if a != AUTO and a not in BY_NAME), None)
        self.require(
            [
                (bool(self.arms), "arms must name at least one arm (or auto)"),
                (unknown is None, f"unknown arm {unknown!r}: auto or an arm.{valid_names_hint(unknown, BY_NAME)}"),
                (
                    len(self.later) == 2 and EMBEDDED_SET.end < self.later[0] <= self.later[1],
                    f"later must be [first day, last day] after the labelled period (which ends {EMBEDDED_SET.end})",
                ),
                (self.later_n >= 10 and self.stride >= 1, "later_n must be >= 10 and stride >= 1"),
                (bool(self.thresholds) and all(0 < t <= 1 for t in self.thresholds), "thresholds lie in (0, 1]"),
            ]
        )

    def transfer_config(self) -> TransferConfig:
        """The transfer run's config: ``transfer`` with ``run_arms`` and the options of the named arms."""
        named = [arm_row(a).option for a in self.arms if a != AUTO]
        return TransferConfig.from_dict({**self.transfer, "arms": list(dict.fromkeys([*self.run_arms, *named]))})


QUICK = dict(
    arms=[AUTO, "simple_logistic", "frozen"],
    encoder={
        **ENCODER,
        "hidden_size": 8,
        "num_layers": 1,
        "epochs": 1,
        "synthetic_start": "2024-11-20",
        "synthetic_end": "2025-01-31",
        "splits": {"train": ["2024-12-01", "2025-01-15"], "val": ["2025-01-15", "2025-02-01"]},
    },
    transfer={**TRANSFER, "folds": 2, "repeats": 1, "epochs": 2, "patience": 2, "n_bootstrap": 50, "n_jobs": 1},
    later=["2025-10-01", "2025-10-10"],
    later_n=24,
    stride=1,
)


def prepare_encoder(cc: CheckConfig, out: Path) -> EncoderSource:
    """The encoder pretrained into out/encoder (reused when its training_results.json is there)."""
    run_dir = out / "encoder"
    if not (run_dir / "training_results.json").exists():
        pretrain(PretrainConfig.from_dict({**cc.encoder, "resume": run_dir.exists()}), run_dir)
    return EncoderSource.load(run_dir / "checkpoint_best.pt")


def transfer_run(cc: CheckConfig, labelled, source: EncoderSource, out: Path) -> TransferRun:
    """The transfer run in out/transfer: reused when it ran with these settings, refused when with others."""
    cfg = cc.transfer_config()
    run_dir = out / "transfer"
    if (run_dir / "transfer_results.json").exists():
        found = TransferRun.read(run_dir)
        if TransferConfig.from_dict(found.results["config"]) != cfg:
            raise ConfigError(f"{run_dir} holds a transfer run of other settings: give a new OUT_DIR")
        return found
    run_transfer(labelled, source, cfg, run_dir)
    return TransferRun.read(run_dir)


def later_truth(cc: CheckConfig) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """The later period's market (bars from the embedded market's first day), its episodes inside the
    period, and its labelled windows (the module docstring)."""
    first, last = cc.later
    bars, events = synthetic_market(EMBEDDED_SET.history_start, last, EMBEDDED_SET.market_seed)
    inside = events["expansion_start"] >= pd.Timestamp(first, tz="UTC")
    windows = synthetic_labelled_set(
        cc.later_n,
        0.5,
        0.0,
        cc.later_seed,
        start=first,
        end=last,
        history_start=EMBEDDED_SET.history_start,
        market_seed=EMBEDDED_SET.market_seed,
    )
    return bars, events[inside].reset_index(drop=True), windows


def balanced_accuracy(y: np.ndarray, proba: np.ndarray, z: float = 1.959964) -> dict:
    """Balanced accuracy (the mean of the class recalls) of ``proba`` on labels ``y``, with the 95% interval
    of its sampling noise: each recall a binomial proportion, normal approximation."""
    pred = np.asarray(proba).argmax(axis=1)
    classes = np.unique(y)
    recall = np.array([np.mean(pred[y == c] == c) for c in classes])
    counts = np.array([np.sum(y == c) for c in classes])
    value = float(recall.mean())
    se = float(np.sqrt(np.sum(recall * (1 - recall) / counts)) / len(classes))
    return {
        "balanced_accuracy": value,
        "ci_low": value - z * se,
        "ci_high": value + z * se,
        "se": se,
        "recall": [float(r) for r in recall],
        "n": len(y),
    }


def overlapping(start, end, other_start, other_end) -> np.ndarray:
    """Whether each interval [start, end] shares a minute with any of [other_start, other_end] (inclusive
    times; the others disjoint and in time order, as one class's detections and one kind's episodes are)."""
    start, end = np.asarray(start, dtype="datetime64[ns]"), np.asarray(end, dtype="datetime64[ns]")
    other_start = np.asarray(other_start, dtype="datetime64[ns]")
    other_end = np.asarray(other_end, dtype="datetime64[ns]")
    i = np.searchsorted(other_end, start, side="left")  # the first other interval that ends at or after start
    hit = np.zeros(len(start), dtype=bool)
    inside = i < len(other_end)
    hit[inside] = other_start[i[inside]] <= end[inside]
    return hit


def _utc(values) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).tz_localize(None).to_numpy()


def match(scores: pd.DataFrame, episodes: pd.DataFrame, classes, threshold: float) -> dict:
    """Per class: the detections at ``threshold`` matched against the episodes of that kind (module docstring)."""
    found = detections(scores, threshold)
    out = {}
    for c in classes:
        ep = episodes[episodes["kind"] == c].sort_values("expansion_start")
        ep_start, ep_end = _utc(ep["expansion_start"]), _utc(ep["pattern_end"])
        det = found[found["class"] == c].sort_values("start")
        det_start, det_end = _utc(det["start"]), _utc(det["end"])
        true_positive = overlapping(det_start, det_end, ep_start, ep_end)
        found_episodes = overlapping(ep_start, ep_end, det_start, det_end)
        base = overlapping(_utc(scores["start"]), _utc(scores["end"]), ep_start, ep_end)
        out[c] = {
            "detections": len(det),
            "true_positives": int(true_positive.sum()),
            "precision": float(true_positive.mean()) if len(det) else None,
            "episodes": len(ep),
            "found": int(found_episodes.sum()),
            "recall": float(found_episodes.mean()) if len(ep) else None,
            "base_rate": float(base.mean()),
        }
    return out


def scan_vs_windows(scores: pd.DataFrame, windows, proba: np.ndarray, classes) -> dict:
    """The scan's scores of the windows starting where labelled later windows start, against the model's scores
    of those windows: how many starts the scan holds, and the largest difference of a probability."""
    at = pd.Index(pd.to_datetime(scores["start"], utc=True)).get_indexer(pd.DatetimeIndex(windows.start))
    held = at >= 0
    scanned = scores[[f"p_{c}" for c in classes]].to_numpy()[at[held]]
    gap = float(np.abs(scanned - proba[held]).max()) if held.any() else None
    return {"windows": len(at), "in_scan": int(held.sum()), "max_abs_difference": gap}


def check_arm(arm: str, cc: CheckConfig, labelled, source: EncoderSource, run: TransferRun, later) -> dict:
    """One arm fitted on the embedded set with the run's recipe, scored on the later windows and scanned over
    the later period (``later``: ``later_truth``'s bars, episodes and windows)."""
    bars, episodes, windows = later
    began = time.perf_counter()
    clf = ArmClassifier(arm, encoder=source, transfer_run=run).fit(labelled)
    fitted = time.perf_counter()
    proba = clf.predict_proba(windows)
    true = balanced_accuracy(windows.y, proba)
    cv = run.estimate(arm)
    scanned = time.perf_counter()
    scores = scan(clf, bars, cc.later[0], cc.later[1], cc.stride)
    scan_seconds = time.perf_counter() - scanned
    return {
        "cv": cv,
        "true": true,
        "inside": bool(cv["ci_low"] <= true["balanced_accuracy"] <= cv["ci_high"]),
        "fit_seconds": fitted - began,
        "chosen": clf.meta["chosen"],
        "temperature": clf.meta["calibration"]["temperature"],
        "scan": {"windows": len(scores), "stride": cc.stride, "seconds": scan_seconds},
        "scan_vs_windows": scan_vs_windows(scores, windows, proba, clf.classes_),
        "detections": {f"{t:g}": match(scores, episodes, clf.classes_, t) for t in cc.thresholds},
    }


def run_check(cc: CheckConfig, out: Path, log=print) -> dict:
    """The whole check (module docstring); writes out/classifier_check.json and .md, returns the results."""
    began, load = time.perf_counter(), os.getloadavg()
    out.mkdir(parents=True, exist_ok=True)
    labelled = synthetic_labelled_set()
    source = prepare_encoder(cc, out)
    log(f"encoder: {source.path}")
    run = transfer_run(cc, labelled, source, out)
    recommended, why = choose_arm(AUTO, run)
    log(f"transfer run: {run.path} ({run.results['seconds']:.0f} s), recommends {recommended}")
    later = later_truth(cc)
    results = {
        "format": FORMAT,
        "config": cc.to_dict(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "encoder": _encoder_record(source),
        "transfer": {"path": str(run.path), "seconds": run.results["seconds"], "recommended": recommended, **why},
        "later": _later_record(cc, later),
        "arms": {},
    }
    for arm in dict.fromkeys(recommended if a == AUTO else a for a in cc.arms):
        results["arms"][arm] = check_arm(arm, cc, labelled, source, run, later)
        row = results["arms"][arm]
        log(f"{arm}: cv {row['cv']['mean']:.3f}, true {row['true']['balanced_accuracy']:.3f}, inside {row['inside']}")
    results["seconds"] = time.perf_counter() - began
    results["machine"] = {"cpus": os.cpu_count(), "load_average_start": load, "load_average_end": os.getloadavg()}
    write_json(out / "classifier_check.json", results)
    atomic_write_text(out / "classifier_check.md", markdown(results))
    return results


def _encoder_record(source: EncoderSource) -> dict:
    trained = source.training_results or {}
    return {
        "path": str(source.path),
        "arch": dict(source.encoder.arch),
        "objective": source.encoder.objective,
        "best_val_loss": trained.get("best_val_loss"),
        "epochs": trained.get("epochs_completed"),
    }


def _later_record(cc: CheckConfig, later) -> dict:
    bars, episodes, windows = later
    first, last = (pd.Timestamp(d, tz="UTC") for d in cc.later)
    return {
        "period": list(cc.later),
        "bars": int(((bars.index >= first) & (bars.index < last + pd.Timedelta(days=1))).sum()),
        "episodes": {str(k): int(v) for k, v in episodes["kind"].value_counts().sort_index().items()},
        "windows": len(windows),
        "class_counts": windows.class_counts(),
    }


def _main(argv=None) -> int:
    parser = ArgumentParser(
        prog="python -m moola_lib.studies.classifier_check",
        description="The classifier on new bars of the embedded market against the generator's truth.",
    )
    parser.add_argument("out_dir", help="results: classifier_check.json and .md, encoder/, transfer/")
    parser.add_argument(
        "--arms", nargs="+", help="arms to fit (auto: the run's best); default auto simple_boosting frozen baseline"
    )
    parser.add_argument("--stride", type=int, help="bars between two scanned windows (default 5)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long run of tiny sizes (tests)")
    args = parser.parse_args(argv)
    options = dict(QUICK) if args.quick else {}
    options.update({k: v for k, v in (("arms", args.arms), ("stride", args.stride)) if v})
    cc, out = CheckConfig.from_dict(options), Path(args.out_dir)
    for name in ("classifier_check.json", "classifier_check.md"):
        check_writable(out / name)  # before minutes of work
    results = run_check(cc, out)
    print(f"classifier check: {out / 'classifier_check.md'} ({results['seconds']:.0f} s)")
    return 0


def main(argv=None) -> int:
    """The command line; expected errors print one line and exit 2 (``moola_lib.util.cli.run``)."""
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
