"""The protocol: every arm on the same repeated folds, summarised, compared and written out.

``run_transfer(labelled, encoder_path, config, run_dir)`` returns the results dict and writes
``transfer_results.json``; ``evaluate_arms`` trains and tests every arm on every fold of one fraction of
the training windows (the learning curve repeats it for each fraction).
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..devices import resolve_device
from ..io import write_json
from ..labels import LabelledSet
from ..models import JadeEncoder, load_encoder
from ..progress import progress_bar
from .config import ARM_TITLES, METRICS, RESULTS_FORMAT, TransferConfig
from .folds import inner_split, make_folds, subsample
from .probe import build_classifier, fit_classifier, predict
from .provenance import find_training_results, pretraining_overlap
from .stats import compare, confusion, paired_bootstrap, summarise, fold_test_train_ratio, weighted_metrics
from .verdict import verdict


def _fit_seed(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] % (2 ** 31))


def evaluate_arms(labelled: LabelledSet, encoder: JadeEncoder, cfg: TransferConfig, assign: np.ndarray,
                  fraction: float = 1.0, progress=None) -> dict:
    """Train and test every arm on every (repeat, fold) of ``assign``. With ``fraction`` < 1 each training
    set is a stratified subsample (identical for all arms). Returns, per arm, the fold records and the
    out-of-fold predictions [repeats, N]."""
    device = resolve_device(cfg.device)
    data = (torch.as_tensor(labelled.X, device=device), torch.as_tensor(labelled.valid, device=device),
            torch.as_tensor(labelled.y, device=device))
    y, groups, C = labelled.y, labelled.groups, len(labelled.classes)
    out = {arm: {"folds": [], "oof": np.full(assign.shape, -1, dtype=np.int64)} for arm in cfg.arms}
    for r, row in enumerate(assign):
        for k in range(row.max() + 1):
            test_idx, train_idx = np.flatnonzero(row == k), np.flatnonzero(row != k)
            seed = _fit_seed(cfg.seed, r, k, round(fraction * 1000))
            if fraction < 1:
                train_idx = subsample(train_idx, y, fraction, seed)
            fit_idx, val_idx = inner_split(train_idx, y, groups, cfg.inner_val_fraction, seed)
            for arm in cfg.arms:
                t0 = time.perf_counter()
                model = build_classifier(arm, encoder, C, cfg.dropout, seed).to(device)
                info = fit_classifier(model, arm, data, fit_idx, val_idx, cfg, seed)
                pred = predict(model, data[0], data[1], test_idx)
                out[arm]["oof"][r, test_idx] = pred
                m = weighted_metrics(y[test_idx], pred, C)
                out[arm]["folds"].append({
                    "repeat": r, "fold": k, "fraction": fraction, "n_train": len(train_idx),
                    "n_fit": len(fit_idx), "n_val": len(val_idx), "n_test": len(test_idx),
                    **{name: float(m[name]) for name in METRICS},
                    "recall": {c: float(v) for c, v in zip(labelled.classes, m["recall"])},
                    "best_epoch": info["best_epoch"], "epochs_run": info["epochs_run"],
                    "best_val_loss": info["best_val_loss"], "seconds": time.perf_counter() - t0,
                    "fit_idx": fit_idx.tolist(), "val_idx": val_idx.tolist(), "test_idx": test_idx.tolist(),
                })
                if progress is not None:
                    progress.update(1)
    return out


def run_transfer(labelled: LabelledSet, encoder_path, config: TransferConfig | Mapping | None = None,
                 run_dir=None) -> dict:
    """The whole protocol. Loads the encoder strictly (input size must match the features), reads its
    training_results.json (``find_training_results``) for the pretraining-period report, evaluates every
    arm on the same folds, writes ``run_dir/transfer_results.json`` (atomically) when ``run_dir`` is given."""
    cfg = config if isinstance(config, TransferConfig) else TransferConfig.from_dict(dict(config or {}))
    t_start = time.perf_counter()
    labelled.check_folds(cfg.folds)
    encoder_path = Path(encoder_path)
    encoder = load_encoder(encoder_path, input_size=labelled.X.shape[-1], hidden_size=None, num_layers=None)
    results_path = find_training_results(encoder_path)
    assign = make_folds(labelled.y, labelled.groups, cfg.folds, cfg.repeats, cfg.seed)
    runs = _evaluate_fractions(labelled, encoder, cfg, assign)
    main, classes = runs[1.0], list(labelled.classes)
    results = {
        "format": RESULTS_FORMAT,
        "config": dataclasses.asdict(cfg),
        "data": labelled.summary(),
        "encoder": {"path": str(encoder_path), "arch": dict(encoder.arch),
                    "parameters": sum(p.numel() for p in encoder.parameters()),
                    "training_results": str(results_path) if results_path else None,
                    "pretraining_overlap": pretraining_overlap(labelled, results_path) if results_path else None},
        "protocol": {"folds": cfg.folds, "repeats": cfg.repeats, "fold_assignment": assign.tolist(),
                     "test_train_ratio": fold_test_train_ratio(main["baseline"]["folds"]),
                     "n_groups": int(len(np.unique(labelled.groups))), "window_ids": list(labelled.window_id),
                     "y": labelled.y.tolist()},
        "arms": {arm: {"title": ARM_TITLES[arm], "summary": summarise(main[arm]["folds"], classes),
                       "confusion": confusion(labelled.y, main[arm]["oof"], len(classes)),
                       "folds": main[arm]["folds"], "oof_predictions": main[arm]["oof"].tolist()}
                 for arm in cfg.arms},
        "comparisons": _comparisons(labelled, main, cfg),
        "learning_curve": _learning_curve(runs, cfg, classes),
        "seconds": time.perf_counter() - t_start,
        "device": str(resolve_device(cfg.device)),
    }
    results["verdict"] = verdict(results)
    if run_dir is not None:
        write_json(Path(run_dir) / "transfer_results.json", results)
    return results


def _evaluate_fractions(labelled: LabelledSet, encoder: JadeEncoder, cfg: TransferConfig,
                        assign: np.ndarray) -> dict:
    """``evaluate_arms`` for every learning-curve fraction (1.0 always), keyed by fraction, with one
    progress bar and cfg.cpu_threads torch threads on the CPU (restored afterwards)."""
    fractions = sorted(set(cfg.fractions) | {1.0})
    n_fits = len(fractions) * cfg.repeats * cfg.folds * len(cfg.arms)
    progress = progress_bar(total=n_fits, desc="transfer fits", unit="fit") if cfg.progress else None
    threads = torch.get_num_threads()
    if cfg.cpu_threads is not None and resolve_device(cfg.device).type == "cpu":
        torch.set_num_threads(cfg.cpu_threads)
    try:
        return {f: evaluate_arms(labelled, encoder, cfg, assign, f, progress) for f in fractions}
    finally:
        torch.set_num_threads(threads)
        if progress is not None:
            progress.close()


def _comparisons(labelled: LabelledSet, main: dict, cfg: TransferConfig) -> dict:
    """Paired differences of each arm against the baseline (and frozen against random_frozen): corrected
    t per metric, plus the bootstrap CI when cfg.n_bootstrap."""
    pairs = [(arm, "baseline") for arm in cfg.arms if arm != "baseline"]
    if "frozen" in cfg.arms and "random_frozen" in cfg.arms:
        pairs.append(("frozen", "random_frozen"))
    comparisons = {}
    for arm, ref in pairs:
        comp = {"arm": arm, "reference": ref, **compare(main[arm]["folds"], main[ref]["folds"])}
        if cfg.n_bootstrap:
            boot = paired_bootstrap(labelled.y, main[arm]["oof"], main[ref]["oof"], labelled.groups,
                                    len(labelled.classes), cfg.n_bootstrap, cfg.seed)
            for m in METRICS:
                comp[m]["bootstrap_ci"] = [boot[m]["ci_low"], boot[m]["ci_high"]]
        comparisons[f"{arm} vs {ref}"] = comp
    return comparisons


def _learning_curve(runs: dict, cfg: TransferConfig, classes: list) -> dict:
    """Per arm, one point per fraction: mean training windows and each metric's mean and CI."""
    def point(f, arm):
        folds = runs[f][arm]["folds"]
        summary = summarise(folds, classes)
        return {"fraction": f, "n_train": float(np.mean([x["n_train"] for x in folds])),
                **{m: {k: summary[m][k] for k in ("mean", "ci_low", "ci_high")} for m in METRICS}}

    return {arm: [point(f, arm) for f in sorted(runs)] for arm in cfg.arms}
