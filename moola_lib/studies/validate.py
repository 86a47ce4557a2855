"""The transfer protocol checked on known answers: ``python -m moola_lib.studies.validate``.

Every experiment runs through the protocol's own code (folds, probes, intervals, minimal detectable effect):

- ``pairs``: five pairs of arms (``validation_arms.PAIRS``) with true differences measured on the
  generator (``validation_truth.py``: each arm trained on ``truth_draws`` fresh fold-sized sets, each from
  its own market, scored on a pool of held-out windows from further markets). ``replicates`` labelled sets,
  each from its own market (independent market seed per replicate), run every arm on the same folds; the
  pairs with the SGD-trained baseline (``primary_null``: a frozen probe on a random encoder against the
  baseline, the primary comparison's null; ``positive``: a probe on an encoder trained on labelled windows
  of an independent market) run on the first ``sgd_replicates`` of them. Per pair and interval method:
  coverage of the true difference, true spread / printed se, rejection rate against implied power, and the
  spread of the printed minimal detectable effect (``validation_pairs.py``).
- ``real``: the real question on the embedded data: an encoder pretrained by masked reconstruction against
  the baseline, every arm, with the learning curve and the verdict.
- ``labels`` (``--labels-check``): ``labels_needed`` against larger labelled sets drawn from the generator
  (``validation_labels.py``).

``--quick`` runs a seconds-long version (the tests run it); the defaults fit 30 minutes on 2 idle CPU cores
(``workers`` 2 processes; about 20 minutes; with ``-p sgd_replicates 80 --labels-check`` 24 minutes,
measured on an idle 2-core machine, VALIDATION.md); ``-p replicate_offset N`` draws fresh replicates,
``-p difficulty`` and ``-p n_labelled`` other settings. Results go to a JSON file (``--json``) and a Markdown
summary (``--markdown``); every replicate keeps each pair's fold statistics, and ``--rescore RESULTS_JSON``
recomputes every per-window interval method from them (``rescore_results``: no fitting).
The run's sizes (``ValidationConfig``, ``QUICK``) and the labelled sets it draws: ``validation_config.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..pretraining.checkpoints import save_encoder
from ..pretraining.job import pretrain
from ..pretraining.model import JadeEncoder
from ..transfer.arms import REFERENCE
from ..transfer.folds import config_groups, inner_split, make_folds
from ..transfer.probe import build_classifier, fit_classifier
from ..transfer.protocol import run_transfer
from ..util.cli import ArgumentParser, add_parameter_flags, parameters, run
from ..util.errors import ExpectedError
from ..util.io import atomic_write_text, check_writable, read_json, write_json
from ..util.processes import spawn_pool
from .validation_arms import PAIRS, SGD_ARMS, arm_features, arms_of, encoders, run_arms
from .validation_config import (
    LABEL_ENCODER_MARKET_SEED,
    LABELLED_MARKET_SEED,
    QUICK,
    ValidationConfig,
    labelled_set,
    transfer_config,
)
from .validation_labels import labels_check
from .validation_pairs import replicate_rows, rescore, summarise_pair
from .validation_report import markdown
from .validation_truth import held_out_pool, true_differences, truth_draw


def _note(message: str) -> None:
    """A progress line on stderr (the run takes half an hour; stdout gets the summary)."""
    print(f"[validate {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parallel(fn, jobs: list[tuple], workers: int, what: str) -> list:
    """``fn(*job)`` for every job, in order, on ``workers`` processes (one torch thread each)."""
    out = []
    if workers <= 1:
        results = (fn(*job) for job in jobs)
        pool = None
    else:
        pool = spawn_pool(workers)
        results = pool.map(fn, *zip(*jobs))
    try:
        for i, res in enumerate(results):
            out.append(res)
            if (i + 1) % max(1, len(jobs) // 10) == 0 or i + 1 == len(jobs):
                _note(f"{what} {i + 1}/{len(jobs)}")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out


_FIXED: dict = {}  # per process: what _fixed built, by (sizes, label encoder path)


def _fixed(vc: ValidationConfig, label_path: str | None):
    """Per process: the probe encoders, the template of the baseline, the held-out pool and its features."""
    key = (repr(vc), label_path)
    if key not in _FIXED:
        arch = dict(hidden_size=vc.hidden_size, num_layers=vc.num_layers)
        encs = encoders(arch, vc.seed, label_path)
        pool = held_out_pool(functools.partial(labelled_set, vc), vc.pool_markets, vc.pool_per_market)
        _FIXED.clear()
        _FIXED[key] = (encs, JadeEncoder(**arch), pool, arm_features(pool, encs))
    return _FIXED[key]


def _arms(vc: ValidationConfig, index: int, sgd_count: int, label_path) -> list[str]:
    pairs = [
        p
        for p, (a, b) in PAIRS.items()
        if (index < sgd_count or not {a, b} & set(SGD_ARMS)) and (label_path is not None or "probe_label" not in (a, b))
    ]
    return arms_of(pairs)


def _timed(fn):
    """``fn`` returning also the CPU seconds of its process spent on it (``cpu_seconds``): what a run on idle
    cores would take, whatever the machine's load."""

    @functools.wraps(fn)
    def wrapper(*args):
        t = time.process_time()
        return fn(*args), time.process_time() - t

    return wrapper


@_timed
def _truth_job(vc: ValidationConfig, m: int, label_path) -> dict:
    encs, template, pool, pool_feats = _fixed(vc, label_path)
    n_train = round(vc.n_labelled * (vc.folds - 1) / vc.folds)
    return truth_draw(
        m,
        _arms(vc, m, vc.sgd_truth_draws, label_path),
        functools.partial(labelled_set, vc),
        n_train,
        pool,
        pool_feats,
        encs,
        template,
        transfer_config(vc),
    )


def replicate_set(vc: ValidationConfig, r: int):
    """Replicate ``r``'s seed index (``replicate_offset`` + r: its market, window draw and folds) and labelled set."""
    i = vc.replicate_offset + r
    return i, labelled_set(vc, vc.n_labelled, 10_000 + i, LABELLED_MARKET_SEED + i)


@_timed
def _replicate_job(vc: ValidationConfig, r: int, label_path) -> dict:
    encs, template, _, _ = _fixed(vc, label_path)
    i, ls = replicate_set(vc, r)
    cfg = transfer_config(vc)
    groups = config_groups(ls, cfg)
    assign = make_folds(ls.y, groups, vc.folds, vc.repeats, seed=i)
    runs = run_arms(
        _arms(vc, r, vc.sgd_replicates, label_path), ls, arm_features(ls, encs), template, cfg, assign, groups
    )
    return replicate_rows(runs, PAIRS, ls.y, groups, cfg, vc.n_bootstrap, seed=i)


def pair_experiment(vc: ValidationConfig, workdir: Path) -> dict:
    """Truth first, then the replicates, then per pair the summary (module docstring)."""
    encoder, trained = train_label_encoder(vc)
    label_path = str(workdir / "label_encoder.pt")
    save_encoder(encoder, label_path)
    _note(f"label-carrying encoder trained: {trained}")
    draws, truth_cpu = zip(
        *parallel(_truth_job, [(vc, m, label_path) for m in range(vc.truth_draws)], vc.workers, "truth draw")
    )
    truths = true_differences(draws, PAIRS, _fixed(vc, label_path)[2])
    rows, cpu = zip(
        *parallel(_replicate_job, [(vc, r, label_path) for r in range(vc.replicates)], vc.workers, "replicate")
    )
    sgd = min(vc.sgd_replicates, vc.replicates)
    return {
        "label_encoder": trained,
        "pairs": summarise_pairs(vc, rows, truths),
        "replicates": list(rows),
        "cpu_seconds": {
            "truth_draws": float(sum(truth_cpu)),
            "replicates_with_sgd": float(sum(cpu[:sgd])),
            "replicates_without_sgd": float(sum(cpu[sgd:])),
        },
    }


def summarise_pairs(vc: ValidationConfig, rows, truths: dict) -> dict:
    """Per pair with a truth, its figures over the replicates that ran it (``validation_pairs.summarise_pair``)."""
    cfg = transfer_config(vc)
    return {
        name: summarise_pair([row[name] for row in rows if name in row], truths[name], cfg.alpha, cfg.power)
        for name in PAIRS
        if name in truths
    }


def rescore_results(results: dict) -> dict:
    """A finished run's results with every per-window interval method recomputed from the replicates' stored
    fold statistics and the pairs summarised again (``--rescore``); the truth, estimates and fits unchanged."""
    vc = ValidationConfig.from_dict(results["config"])
    pairs = results.get("pairs", {})
    if not any("fold_statistics" in row for rep in pairs.get("replicates", []) for row in rep.values()):
        raise ExpectedError("no replicate there holds fold statistics (a pairs run of moola before 2026-12-05?)")
    cfg = transfer_config(vc)
    rescore(pairs["replicates"], cfg.alpha, cfg.power)
    truths = {name: p["truth"] for name, p in pairs["pairs"].items()}
    pairs["pairs"] = summarise_pairs(vc, pairs["replicates"], truths)
    return results


def train_label_encoder(vc: ValidationConfig) -> tuple[JadeEncoder, dict]:
    """An encoder that carries the label: a classifier trained on ``positive_windows`` labelled windows
    of 2023-2024 of an independent market, early-stopped on a fifth of them; its encoder."""
    extra = labelled_set(
        vc, vc.positive_windows, vc.seed + 99, LABEL_ENCODER_MARKET_SEED + vc.seed, period=["2023-01-01", "2024-12-31"]
    )
    cfg = transfer_config(vc, epochs=vc.positive_epochs, patience=5, lr=3e-3, batch_size=64)
    fit, val = inner_split(np.arange(len(extra)), extra.y, extra.groups, 0.2, vc.seed)
    template = JadeEncoder(hidden_size=vc.hidden_size, num_layers=vc.num_layers)
    model = build_classifier(REFERENCE, template, 2, cfg.dropout, vc.seed)
    data = tuple(torch.as_tensor(a) for a in (extra.X, extra.valid, extra.y))
    history = fit_classifier(model, REFERENCE, data, fit, val, cfg, vc.seed)
    return model.encoder, {
        "windows": len(extra),
        "best_epoch": history["best_epoch"],
        "best_val_loss": history["best_val_loss"],
    }


def real_question(vc: ValidationConfig, workdir: Path) -> dict:
    """Masked-reconstruction pretraining on the embedded market (splits end before the labelled period),
    then every arm against the baseline with the learning curve."""
    lo = vc.labels_period[0]
    pre = pretrain(
        {
            "synthetic_start": vc.pretrain_start,
            "synthetic_end": lo,
            "hidden_size": vc.pretrain_hidden_size,
            "num_layers": vc.pretrain_num_layers,
            "epochs": vc.pretrain_epochs,
            "batch_size": 256,
            "lr": 3e-3,
            "warmup_epochs": 1,
            "seed": vc.seed,
            "device": "cpu",
            "progress": False,
            "splits": _pretrain_splits(vc.pretrain_start, lo),
        },
        workdir / "pretrain",
    )
    _note(f"pretrained: best val loss {pre['best_val_loss']:.4f} in {pre['total_seconds']:.0f} s")
    cfg = transfer_config(vc, repeats=vc.real_repeats, fractions=vc.real_fractions, n_bootstrap=1000)
    res = run_transfer(
        labelled_set(vc, vc.n_labelled, 10_000, vc.seed), workdir / "pretrain" / "checkpoint_best.pt", cfg
    )
    summary = {arm: a["summary"]["balanced_accuracy"] for arm, a in res["arms"].items()}
    return {
        "pretraining": {k: pre[k] for k in ("best_val_loss", "reference_losses", "total_seconds", "epochs_completed")}
        | {"data": pre["data"]},
        "balanced_accuracy": {arm: {k: s[k] for k in ("mean", "ci_low", "ci_high")} for arm, s in summary.items()},
        "comparisons": {
            k: {
                m: {
                    f: c[m][f]
                    for f in (
                        "mean",
                        "ci_low",
                        "ci_high",
                        "p_value",
                        "p_holm",
                        "mde",
                        "interval",
                        "mde_range",
                        "test_noise_only_ci",
                    )
                    if f in c[m]
                }
                for m in ("balanced_accuracy", "log_loss")
            }
            for k, c in res["comparisons"].items()
        },
        "learning_curve": {
            arm: [(p["n_train"], p["balanced_accuracy"]["mean"]) for p in pts]
            for arm, pts in res["learning_curve"].items()
        },
        "labels_needed": res["labels_needed"],
        "verdict": res["verdict"],
        "seconds": res["seconds"],
    }


def _pretrain_splits(start: str, labels_start: str) -> dict:
    """Train / val / test thirds-ish of [start, labels_start): val and test one month each, all before
    the labelled period."""
    end = np.datetime64(labels_start, "D")
    return {"train": [start, str(end - 61)], "val": [str(end - 61), str(end - 30)], "test": [str(end - 30), str(end)]}


def validate(vc: ValidationConfig, workdir) -> dict:
    """The experiments of ``vc.experiments``; the results dict (timings and machine included)."""
    workdir = Path(workdir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0, out = time.perf_counter(), {"config": dataclasses.asdict(vc)}
    runs = {
        "pairs": lambda: pair_experiment(vc, workdir),
        "real": lambda: real_question(vc, workdir),
        "labels": lambda: labels_check(vc, functools.partial(labelled_set, vc), transfer_config(vc), parallel),
    }
    try:
        for name in vc.experiments:
            t = time.perf_counter()
            out[name] = runs[name]()
            out[name]["seconds_total"] = time.perf_counter() - t
            _note(f"{name} done in {out[name]['seconds_total']:.0f} s")
    finally:
        torch.set_num_threads(threads)
    out["seconds"] = time.perf_counter() - t0
    out["machine"] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": 1,
        "workers": vc.workers,
    }
    return out


def _main(argv=None) -> None:
    parser = ArgumentParser(prog="python -m moola_lib.studies.validate", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a seconds-long version (what the tests run)")
    parser.add_argument("--json", default="runs/validation/validation.json", help="results file")
    parser.add_argument("--markdown", help="also write the Markdown summary here")
    parser.add_argument(
        "--labels-check",
        action="store_true",
        help="also check labels_needed against larger labelled sets (the longer run)",
    )
    parser.add_argument(
        "--rescore",
        metavar="RESULTS_JSON",
        help="recompute every per-window interval method of a finished run's replicates from their stored fold "
        "statistics and summarise the pairs again (no fitting; writes --json / --markdown)",
    )
    add_parameter_flags(parser, what="size (a field of ValidationConfig)")
    args = parser.parse_args(argv)
    if args.rescore:
        return _write(args, _rescored(args.rescore), argv)
    options = {**(QUICK if args.quick else {}), **parameters(args)}
    vc = ValidationConfig.from_dict(options)
    for path in filter(None, (args.json, args.markdown)):
        check_writable(path)  # before the minutes of work, not after them
    if args.labels_check and "labels" not in vc.experiments:
        vc = dataclasses.replace(vc, experiments=[*vc.experiments, "labels"])
    with tempfile.TemporaryDirectory() as tmp:
        results = validate(vc, tmp)
    _write(args, results, argv)


def _rescored(path: str) -> dict:
    try:
        return rescore_results(read_json(path))
    except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
        raise ExpectedError(f"{path}: not the results of a validation run ({type(e).__name__}: {e})") from None
    except ExpectedError as e:
        raise ExpectedError(f"{path}: {e}") from None


def _write(args, results: dict, argv) -> None:
    """The results file, the Markdown summary (with --markdown) and the summary on stdout."""
    for path in filter(None, (args.json, args.markdown)):
        check_writable(path)
    key = "rescore_command" if args.rescore else "command"  # a rescored run keeps the command that fitted it
    results[key] = " ".join(["python -m moola_lib.studies.validate", *(argv or [])])
    write_json(args.json, results)
    text = markdown(results)
    if args.markdown:
        atomic_write_text(args.markdown, text)
    print(text)


def main(argv=None) -> int:
    """The command line; expected errors print one line and exit 2 (``moola_lib.util.cli.run``)."""
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
