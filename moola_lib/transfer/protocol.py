"""The protocol: every arm on the same repeated folds, summarised, compared and written out.

``run_transfer(labelled, encoder, config, run_dir)`` returns the results dict and writes
``transfer_results.json``; ``evaluate_arms`` trains and tests every arm on every fold of one fraction of
the training windows (the learning curve repeats it for each fraction). Per fold, an arm's score is the
mean over its training seeds (``seeds_per_fold`` for the SGD-trained arms; the probes and the non-neural
models are deterministic, one fit); its out-of-fold probabilities are the mean over those seeds. How each
arm is fitted: ``fits`` (one class per kind of arm of the table in ``arms``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..labels.provenance import EncoderSource, pretraining_overlap
from ..labels.sets import LabelledSet
from ..pretraining.devices import resolve_device
from ..util.io import write_json
from ..util.progress import progress_bar
from .arms import REFERENCE, result_arms
from .arms import arm as arm_row
from .comparisons import comparisons
from .config import METRICS, RESULTS_FORMAT, TransferConfig
from .decision import decision
from .extrapolation import labels_needed
from .fit_store import FitStore, fingerprint
from .fits import Inputs, fit_seed
from .folds import config_groups, embargo, inner_split, make_folds, subsample
from .parallel import Fit, run_fits, start_workers
from .stats import confusion, fold_metrics, fold_test_train_ratio, summarise
from .verdict import verdict

ALL_WINDOWS = 104729  # seed key of a model fitted on every labelled window (apart from every fold's keys)


def _fold_record(y_test: np.ndarray, probas: list[np.ndarray], classes) -> dict:
    """The fold's metrics: each the mean over the arm's fits (seeds) on this fold."""
    per_fit = [fold_metrics(y_test, p) for p in probas]
    record = {m: float(np.mean([f[m] for f in per_fit])) for m in METRICS}
    record["recall"] = {c: float(np.mean([f["recall"][i] for f in per_fit])) for i, c in enumerate(classes)}
    if len(per_fit) > 1:
        record["seed_scores"] = {m: [f[m] for f in per_fit] for m in METRICS}
    return record


def evaluate_arms(
    labelled: LabelledSet,
    inputs: Inputs,
    cfg: TransferConfig,
    assign: np.ndarray,
    groups: np.ndarray,
    fraction: float = 1.0,
    progress=None,
    arms=None,
) -> dict:
    """Train and test every arm (``arms``, default those of ``cfg``) on every (repeat, fold) of ``assign``.
    With ``fraction`` < 1 each training set is a stratified subsample (identical for all arms). Returns,
    per arm, the fold records and the out-of-fold probabilities [repeats, N, C]. The fits run on
    ``cfg.n_jobs`` processes (``parallel``), with the serial run's results."""
    return _evaluate(labelled, inputs, cfg, assign, groups, [fraction], progress, arms)[fraction]


def _evaluate(
    labelled, inputs: Inputs, cfg: TransferConfig, assign, groups, fractions, progress, arms=None, store=None
) -> dict:
    """``evaluate_arms`` of every fraction, keyed by fraction: all their fits submitted at once (``run_fits``
    balances the slow trained arms against the quick ones across every fraction; ``store``: its fits are
    read, not fitted again)."""
    y, C = labelled.y, len(labelled.classes)
    arms = result_arms(cfg.arms) if arms is None else list(arms)
    plan = [
        (f, r, k, train_idx, split, Fit(arm, split, seed))
        for f in fractions
        for r, k, seed, train_idx, split in fold_splits(labelled, cfg, assign, groups, f)
        for arm in arms
    ]
    results = run_fits([p[-1] for p in plan], inputs, y, cfg, progress, store)
    out = {f: {arm: {"folds": [], "oof": np.full(assign.shape + (C,), np.nan)} for arm in arms} for f in fractions}
    for (f, r, k, train_idx, (fit_idx, val_idx, test_idx), fit), (probas, info, seconds) in zip(plan, results):
        out[f][fit.arm]["oof"][r, test_idx] = np.mean(probas, axis=0)
        out[f][fit.arm]["folds"].append(
            {
                "repeat": r,
                "fold": k,
                "fraction": f,
                "n_train": len(train_idx),
                "n_fit": len(fit_idx),
                "n_val": len(val_idx),
                "n_test": len(test_idx),
                **_fold_record(y[test_idx], probas, labelled.classes),
                **info,
                "seconds": seconds,
                "fit_idx": fit_idx.tolist(),
                "val_idx": val_idx.tolist(),
                "test_idx": test_idx.tolist(),
            }
        )
    return out


def fold_splits(
    labelled: LabelledSet, cfg: TransferConfig, assign: np.ndarray, groups: np.ndarray, fraction: float = 1.0
):
    """(repeat, fold, seed, training windows, (fit, early-stopping, test windows)) of every fold: the
    embargo, the learning curve's subsample and the inner split applied."""
    y = labelled.y
    for r, row in enumerate(assign):
        for k in range(row.max() + 1):
            test_idx, train_idx = np.flatnonzero(row == k), np.flatnonzero(row != k)
            train_idx = embargo(train_idx, test_idx, labelled.start, labelled.end, cfg.embargo_bars)
            seed = fit_seed(cfg.seed, r, k, round(fraction * 1000))
            if fraction < 1:
                train_idx = subsample(train_idx, y, fraction, seed)
            fit_idx, val_idx = inner_split(train_idx, y, groups, cfg.inner_val_fraction, seed)
            yield r, k, seed, train_idx, (fit_idx, val_idx, test_idx)


def all_windows_split(labelled: LabelledSet, cfg: TransferConfig) -> tuple[int, tuple]:
    """(seed, (fit, early-stopping, test windows)) of a model fitted on every labelled window with the protocol's
    recipe (``moola_lib.classifier``): the inner split of all windows, grouped as the folds are, no test windows
    (nothing is held out: the cross-validation estimated how such a model does on new windows)."""
    groups = config_groups(labelled, cfg)
    seed = fit_seed(cfg.seed, ALL_WINDOWS)
    fit_idx, val_idx = inner_split(np.arange(len(labelled)), labelled.y, groups, cfg.inner_val_fraction, seed)
    return seed, (fit_idx, val_idx, np.arange(0))


def run_transfer(
    labelled: LabelledSet,
    encoder: EncoderSource | str | Path,
    config: TransferConfig | Mapping | None = None,
    run_dir=None,
) -> dict:
    """The whole protocol. ``encoder``: an ``EncoderSource`` read once by the caller (with its feature
    options and training_results.json), or the path of an encoder file or checkpoint (read here, once).
    Its input size must match the features. Evaluates every arm on the same folds, reports how many
    labelled windows lie inside the encoder's pretraining period, and writes
    ``run_dir/transfer_results.json`` (atomically) when ``run_dir`` is given. With ``run_dir`` each fit is also
    kept in ``run_dir/transfer_fits/`` as it completes (``fit_store``), so that a rerun there after an
    interruption fits only those missing (same results); the folder goes once the results are written."""
    cfg = config if isinstance(config, TransferConfig) else TransferConfig.from_dict(dict(config or {}))
    t_start = time.perf_counter()
    start_workers(cfg)  # they start while the folds and the fixed features are prepared
    source = _encoder_source(encoder, labelled.X.shape[-1])
    groups = config_groups(labelled, cfg)
    labelled.check_folds(cfg.folds, groups)
    assign = make_folds(labelled.y, groups, cfg.folds, cfg.repeats, cfg.seed)
    for fraction in sorted({*cfg.fractions, 1.0}, reverse=True):  # every inner split exists: before any training
        for _ in fold_splits(labelled, cfg, assign, groups, fraction):
            pass
    device = str(resolve_device(cfg.device))
    store = None if run_dir is None else FitStore(run_dir, fingerprint(labelled, source.encoder, cfg, device))
    runs = _evaluate_fractions(labelled, Inputs.build(labelled, source.encoder, cfg), cfg, assign, groups, store)
    results = {
        "format": RESULTS_FORMAT,
        "config": dataclasses.asdict(cfg),
        "data": labelled.summary(),
        "encoder": {
            "path": str(source.path),
            "arch": dict(source.encoder.arch),
            "parameters": sum(p.numel() for p in source.encoder.parameters()),
            "training_results": str(source.training_results_path) if source.training_results_path else None,
            "pretraining_overlap": pretraining_overlap(labelled, source.training_results),
        },
        "protocol": _protocol(labelled, cfg, assign, groups, runs[1.0]),
        "arms": _arm_results(labelled, runs[1.0], cfg),
        "comparisons": comparisons(labelled.y, groups, len(labelled.classes), runs[1.0], cfg),
        "learning_curve": _learning_curve(runs, cfg, list(labelled.classes)),
        "labels_needed": labels_needed(runs, cfg, labelled.y, groups),
        "seconds": time.perf_counter() - t_start,
        "device": device,
        "fits_resumed": 0 if store is None else store.read,  # fitted by an earlier process (their seconds are its)
    }
    results["decision"] = decision(results)  # before the verdict, which opens with its answer
    results["verdict"] = verdict(results)
    if run_dir is not None:
        write_json(Path(run_dir) / "transfer_results.json", results)
        store.remove()
    return results


def _encoder_source(encoder: EncoderSource | str | Path, n_features: int) -> EncoderSource:
    """The encoder as a source read once (a path is read here), its input size checked against the features."""
    if not isinstance(encoder, EncoderSource):
        return EncoderSource.load(encoder, input_size=n_features)
    if encoder.encoder.arch["input_size"] != n_features:
        raise ValueError(
            f"{encoder.path}: encoder expects input_size={encoder.encoder.arch['input_size']} but the "
            f"labelled windows have {n_features} features"
        )
    return encoder


def _protocol(labelled: LabelledSet, cfg: TransferConfig, assign, groups, main: dict) -> dict:
    return {
        "folds": cfg.folds,
        "repeats": cfg.repeats,
        "seeds_per_fold": cfg.seeds_per_fold,
        "primary": cfg.primary,
        "primary_metric": cfg.primary_metric,
        "alpha": cfg.alpha,
        "power": cfg.power,
        "group_by_session": cfg.group_by_session,
        "fold_block_days": cfg.fold_block_days,
        "embargo_bars": cfg.embargo_bars,
        "fold_assignment": assign.tolist(),
        "groups": groups.tolist(),
        "test_train_ratio": fold_test_train_ratio(main[REFERENCE]["folds"]),
        "n_groups": len(np.unique(groups)),
        "window_ids": list(labelled.window_id),
        "y": labelled.y.tolist(),
    }


def _arm_results(labelled: LabelledSet, main: dict, cfg: TransferConfig) -> dict:
    classes = list(labelled.classes)
    return {
        arm: {
            "title": arm_row(arm).title,
            "summary": summarise(main[arm]["folds"], classes),
            "confusion": confusion(labelled.y, main[arm]["oof"].argmax(-1), len(classes)),
            "folds": main[arm]["folds"],
            "oof_probabilities": main[arm]["oof"].round(6).tolist(),
        }
        for arm in result_arms(cfg.arms)
    }


def _evaluate_fractions(
    labelled: LabelledSet, inputs: Inputs, cfg: TransferConfig, assign: np.ndarray, groups: np.ndarray, store=None
) -> dict:
    """``evaluate_arms`` for every learning-curve fraction (1.0 always), keyed by fraction, with one
    progress bar and cfg.cpu_threads torch threads on the CPU (restored afterwards; each worker of
    ``cfg.n_jobs`` > 1 runs that many too). ``store``: a ``FitStore`` (the fits it holds are not fitted again)."""
    fractions = sorted(set(cfg.fractions) | {1.0})
    progress = progress_bar(total=cfg.n_fits, desc="transfer fits", unit="fit") if cfg.progress else None
    threads = torch.get_num_threads()
    if cfg.cpu_threads is not None and resolve_device(cfg.device).type == "cpu":
        torch.set_num_threads(cfg.cpu_threads)
    try:
        return _evaluate(labelled, inputs, cfg, assign, groups, fractions, progress, store=store)
    finally:
        torch.set_num_threads(threads)
        if progress is not None:
            progress.close()


def _learning_curve(runs: dict, cfg: TransferConfig, classes: list) -> dict:
    """Per arm, one point per fraction: mean training windows and each metric's mean and CI."""

    def point(f, arm):
        folds = runs[f][arm]["folds"]
        summary = summarise(folds, classes)
        return {
            "fraction": f,
            "n_train": float(np.mean([x["n_train"] for x in folds])),
            **{m: {k: summary[m][k] for k in ("mean", "ci_low", "ci_high")} for m in METRICS},
        }

    return {arm: [point(f, arm) for f in sorted(runs)] for arm in result_arms(cfg.arms)}
