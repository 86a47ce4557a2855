"""The protocol: every arm on the same repeated folds, summarised, compared and written out.

``run_transfer(labelled, encoder_path, config, run_dir)`` returns the results dict and writes
``transfer_results.json``; ``evaluate_arms`` trains and tests every arm on every fold of one fraction of
the training windows (the learning curve repeats it for each fraction). Per fold, an arm's score is the
mean over its training seeds (``seeds_per_fold`` for the SGD-trained arms; the probes and the simple
models are deterministic, one fit); its out-of-fold probabilities are the mean over those seeds.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..devices import resolve_device
from ..util.io import write_json
from ..labels import LabelledSet
from ..models import JadeEncoder, load_encoder
from ..util.progress import progress_bar
from .comparisons import comparisons
from .config import ARM_TITLES, FROZEN, METRICS, RESULTS_FORMAT, SIMPLE_ARMS, TransferConfig, result_arms
from .extrapolation import labels_needed
from .folds import embargo, fold_groups, inner_split, make_folds, subsample
from .linear import fit_logistic
from .probe import build_classifier, fit_classifier, pooled, predict_proba
from ..provenance import find_training_results, pretraining_overlap
from .simple import fit_simple, window_summaries
from .stats import confusion, fold_metrics, fold_test_train_ratio, summarise
from .verdict import verdict


RANDOM_ENCODER = 7919   # seed key of the random_frozen encoder (apart from every fold's fit seeds)


def _fit_seed(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] % (2 ** 31))


@dataclasses.dataclass
class Inputs:
    """What every fold of a run needs: the windows as tensors on the device, and the fixed features of
    the deterministic arms (pooled features of the frozen encoders, window summaries)."""

    data: tuple
    encoder: JadeEncoder | None      # None when only fixed-feature arms run (the validation's null)
    fixed: dict

    @classmethod
    def build(cls, labelled: LabelledSet, encoder: JadeEncoder, cfg: TransferConfig) -> Inputs:
        device = resolve_device(cfg.device)
        data = tuple(torch.as_tensor(a, device=device) for a in (labelled.X, labelled.valid, labelled.y))
        arms = result_arms(cfg.arms)
        fixed = {}
        if "frozen" in arms:
            fixed["frozen"] = pooled(encoder, data[0], data[1])
        if "random_frozen" in arms:     # one random encoder per run, drawn from the run's seed
            random_encoder = build_classifier("random_frozen", encoder, 2, 0.0, _fit_seed(cfg.seed, RANDOM_ENCODER))
            fixed["random_frozen"] = pooled(random_encoder.encoder, data[0], data[1])
        if any(a in arms for a in SIMPLE_ARMS):
            fixed["simple"] = window_summaries(labelled.X, labelled.valid)
        return cls(data, encoder, fixed)


def arm_probabilities(arm: str, inputs: Inputs, y: np.ndarray, split: tuple, cfg: TransferConfig,
                      seed: int) -> tuple[list[np.ndarray], dict]:
    """Test-window probabilities of each of the arm's fits on one split (fit, val, test indices), and
    what the fits chose (epochs for trained arms, the probe's C)."""
    fit_idx, val_idx, test_idx = split
    if arm in FROZEN or arm == "simple_logistic":
        Z = inputs.fixed["simple" if arm == "simple_logistic" else arm]
        model = fit_logistic(Z, y, fit_idx, val_idx, cfg.class_weighting)
        return [model.predict_proba(Z[test_idx])], {"C": model.chosen_C}
    if arm == "simple_boosting":
        model = fit_simple("boosting", inputs.fixed["simple"], y, fit_idx, val_idx, seed, cfg.class_weighting)
        return [model.predict_proba(inputs.fixed["simple"][test_idx])], {}
    probas, info = [], {"best_epoch": [], "epochs_run": []}
    n_classes = int(y.max()) + 1
    for s in range(cfg.seeds_per_fold):
        fit_seed = _fit_seed(seed, s) if s else seed
        model = build_classifier(arm, inputs.encoder, n_classes, cfg.dropout, fit_seed).to(inputs.data[0].device)
        history = fit_classifier(model, arm, inputs.data, fit_idx, val_idx, cfg, fit_seed)
        probas.append(predict_proba(model, inputs.data[0], inputs.data[1], test_idx))
        info["best_epoch"].append(history["best_epoch"])
        info["epochs_run"].append(history["epochs_run"])
    return probas, info


def _fold_record(y_test: np.ndarray, probas: list[np.ndarray], classes) -> dict:
    """The fold's metrics: each the mean over the arm's fits (seeds) on this fold."""
    per_fit = [fold_metrics(y_test, p) for p in probas]
    record = {m: float(np.mean([f[m] for f in per_fit])) for m in METRICS}
    record["recall"] = {c: float(np.mean([f["recall"][i] for f in per_fit])) for i, c in enumerate(classes)}
    if len(per_fit) > 1:
        record["seed_scores"] = {m: [f[m] for f in per_fit] for m in METRICS}
    return record


def evaluate_arms(labelled: LabelledSet, inputs: Inputs, cfg: TransferConfig, assign: np.ndarray,
                  groups: np.ndarray, fraction: float = 1.0, progress=None, arms=None) -> dict:
    """Train and test every arm (``arms``, default those of ``cfg``) on every (repeat, fold) of ``assign``.
    With ``fraction`` < 1 each training set is a stratified subsample (identical for all arms). Returns,
    per arm, the fold records and the out-of-fold probabilities [repeats, N, C]."""
    y, C = labelled.y, len(labelled.classes)
    arms = result_arms(cfg.arms) if arms is None else list(arms)
    out = {arm: {"folds": [], "oof": np.full(assign.shape + (C,), np.nan)} for arm in arms}
    for r, row in enumerate(assign):
        for k in range(row.max() + 1):
            test_idx, train_idx = np.flatnonzero(row == k), np.flatnonzero(row != k)
            train_idx = embargo(train_idx, test_idx, labelled.start, labelled.end, cfg.embargo_bars)
            seed = _fit_seed(cfg.seed, r, k, round(fraction * 1000))
            if fraction < 1:
                train_idx = subsample(train_idx, y, fraction, seed)
            fit_idx, val_idx = inner_split(train_idx, y, groups, cfg.inner_val_fraction, seed)
            for arm in arms:
                t0 = time.perf_counter()
                probas, info = arm_probabilities(arm, inputs, y, (fit_idx, val_idx, test_idx), cfg, seed)
                out[arm]["oof"][r, test_idx] = np.mean(probas, axis=0)
                out[arm]["folds"].append({
                    "repeat": r, "fold": k, "fraction": fraction, "n_train": len(train_idx),
                    "n_fit": len(fit_idx), "n_val": len(val_idx), "n_test": len(test_idx),
                    **_fold_record(y[test_idx], probas, labelled.classes), **info,
                    "seconds": time.perf_counter() - t0,
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
    encoder_path = Path(encoder_path)
    encoder = load_encoder(encoder_path, input_size=labelled.X.shape[-1], hidden_size=None, num_layers=None)
    results_path = find_training_results(encoder_path)
    groups = fold_groups(labelled.groups, labelled.start, labelled.end, cfg.group_by_session)
    labelled.check_folds(cfg.folds, groups)
    assign = make_folds(labelled.y, groups, cfg.folds, cfg.repeats, cfg.seed)
    runs = _evaluate_fractions(labelled, Inputs.build(labelled, encoder, cfg), cfg, assign, groups)
    results = {
        "format": RESULTS_FORMAT, "config": dataclasses.asdict(cfg), "data": labelled.summary(),
        "encoder": {"path": str(encoder_path), "arch": dict(encoder.arch),
                    "parameters": sum(p.numel() for p in encoder.parameters()),
                    "training_results": str(results_path) if results_path else None,
                    "pretraining_overlap": pretraining_overlap(labelled, results_path)},
        "protocol": _protocol(labelled, cfg, assign, groups, runs[1.0]),
        "arms": _arm_results(labelled, runs[1.0], cfg),
        "comparisons": comparisons(labelled.y, groups, len(labelled.classes), runs[1.0], cfg),
        "learning_curve": _learning_curve(runs, cfg, list(labelled.classes)),
        "labels_needed": labels_needed(runs, cfg, labelled.y, groups),
        "seconds": time.perf_counter() - t_start, "device": str(resolve_device(cfg.device)),
    }
    results["verdict"] = verdict(results)
    if run_dir is not None:
        write_json(Path(run_dir) / "transfer_results.json", results)
    return results


def _protocol(labelled: LabelledSet, cfg: TransferConfig, assign, groups, main: dict) -> dict:
    return {"folds": cfg.folds, "repeats": cfg.repeats, "seeds_per_fold": cfg.seeds_per_fold,
            "primary": cfg.primary, "primary_metric": cfg.primary_metric, "alpha": cfg.alpha,
            "power": cfg.power, "group_by_session": cfg.group_by_session, "embargo_bars": cfg.embargo_bars,
            "fold_assignment": assign.tolist(), "groups": groups.tolist(),
            "test_train_ratio": fold_test_train_ratio(main["baseline"]["folds"]),
            "n_groups": int(len(np.unique(groups))), "window_ids": list(labelled.window_id),
            "y": labelled.y.tolist()}


def _arm_results(labelled: LabelledSet, main: dict, cfg: TransferConfig) -> dict:
    classes = list(labelled.classes)
    return {arm: {"title": ARM_TITLES[arm], "summary": summarise(main[arm]["folds"], classes),
                  "confusion": confusion(labelled.y, main[arm]["oof"].argmax(-1), len(classes)),
                  "folds": main[arm]["folds"], "oof_probabilities": main[arm]["oof"].round(6).tolist()}
            for arm in result_arms(cfg.arms)}


def _evaluate_fractions(labelled: LabelledSet, inputs: Inputs, cfg: TransferConfig, assign: np.ndarray,
                        groups: np.ndarray) -> dict:
    """``evaluate_arms`` for every learning-curve fraction (1.0 always), keyed by fraction, with one
    progress bar and cfg.cpu_threads torch threads on the CPU (restored afterwards)."""
    fractions = sorted(set(cfg.fractions) | {1.0})
    n_fits = len(fractions) * cfg.repeats * cfg.folds * len(result_arms(cfg.arms))
    progress = progress_bar(total=n_fits, desc="transfer fits", unit="fit") if cfg.progress else None
    threads = torch.get_num_threads()
    if cfg.cpu_threads is not None and resolve_device(cfg.device).type == "cpu":
        torch.set_num_threads(cfg.cpu_threads)
    try:
        return {f: evaluate_arms(labelled, inputs, cfg, assign, groups, f, progress) for f in fractions}
    finally:
        torch.set_num_threads(threads)
        if progress is not None:
            progress.close()


def _learning_curve(runs: dict, cfg: TransferConfig, classes: list) -> dict:
    """Per arm, one point per fraction: mean training windows and each metric's mean and CI."""
    def point(f, arm):
        folds = runs[f][arm]["folds"]
        summary = summarise(folds, classes)
        return {"fraction": f, "n_train": float(np.mean([x["n_train"] for x in folds])),
                **{m: {k: summary[m][k] for k in ("mean", "ci_low", "ci_high")} for m in METRICS}}

    return {arm: [point(f, arm) for f in sorted(runs)] for arm in result_arms(cfg.arms)}
