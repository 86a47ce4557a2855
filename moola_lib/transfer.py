"""Transfer evaluation: does the pretrained encoder help the small labelled task, and by how much?

Protocol (DESIGN.md section 5):
- arms share one architecture (the encoder checkpoint's): ``baseline`` = random init, all trained;
  ``frozen`` = pretrained encoder frozen, only the head trains; ``finetune`` = pretrained encoder, head
  first (``unfreeze_epoch`` epochs frozen), then the encoder too at ``lr * encoder_lr_scale``;
  ``random_frozen`` = a random encoder under the same head-only probe (the control for ``frozen``);
- repeated stratified K-fold, identical folds for all arms, windows that overlap in time in the same
  fold; early stopping on an inner validation split of the training folds, never the test fold;
- per arm: accuracy, balanced accuracy, macro F1, per-class recall with 95% confidence intervals; paired
  differences (each arm against the baseline, frozen against random_frozen) with the corrected
  resampled t-test of Nadeau & Bengio (2003) and a paired bootstrap over windows; a learning curve over
  fractions of the labelled set.

``run_transfer(labelled, encoder_path, config, run_dir)`` returns the results dict and writes
``transfer_results.json``; ``verdict(results)`` turns the numbers into one paragraph.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn

from .config import IsoDate, PretrainConfig, StrictConfig, apply_overrides
from .data import load_ohlcv
from .io import read_json, resolve_device, write_json
from .labels import LabelledSet, load_labels, read_label_table, synthetic_labelled_set
from .models import JadeClassifier, JadeEncoder, load_encoder
from .pretrain import pretrain
from .progress import progress_bar
from .runs import params_like, resolve_path
from .synthetic import synthetic_ohlcv

ARMS = ("baseline", "frozen", "finetune", "random_frozen")
ARM_TITLES = {"baseline": "random init (baseline)", "frozen": "pretrained, frozen encoder",
              "finetune": "pretrained, fine-tuned encoder",
              "random_frozen": "random init, frozen encoder (probe control)"}
RANDOM_INIT = ("baseline", "random_frozen")   # arms whose encoder is randomly initialised
FROZEN = ("frozen", "random_frozen")          # arms that train the head only
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
RESULTS_FORMAT = "moola.transfer_results.v1"


@dataclass
class TransferConfig(StrictConfig):
    """Options of the transfer protocol."""

    arms: list[Literal["baseline", "frozen", "finetune", "random_frozen"]] = field(
        default_factory=lambda: list(ARMS))
    folds: int = 5
    repeats: int = 5
    epochs: int = 60
    batch_size: int = 32
    lr: float = 3e-3                   # head (and baseline encoder) learning rate
    encoder_lr_scale: float = 0.1      # finetune: encoder lr = lr * encoder_lr_scale
    unfreeze_epoch: int = 10           # finetune: encoder frozen for the first N epochs (head first)
    weight_decay: float = 1e-2
    dropout: float = 0.3               # classifier head dropout
    patience: int | None = 15          # early stopping on the inner validation loss; None = all epochs
    inner_val_fraction: float = 0.2    # of the training folds, held out for early stopping
    class_weighting: bool = True       # loss weights n / (n_classes * count) from the training windows
    fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])  # learning curve
    n_bootstrap: int = 2000
    cpu_threads: int | None = 1        # torch threads on the CPU (tiny LSTMs run fastest on one); None = as is
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        checks = [
            ("baseline" in self.arms, "arms must include 'baseline' (every comparison is against it)"),
            (len(set(self.arms)) == len(self.arms), "arms must not repeat"),
            (self.folds >= 2 and self.repeats >= 1, "folds must be >= 2 and repeats >= 1"),
            (self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1"),
            (self.lr > 0 and self.encoder_lr_scale > 0, "lr and encoder_lr_scale must be > 0"),
            (self.unfreeze_epoch >= 0 and self.weight_decay >= 0,
             "unfreeze_epoch and weight_decay must be >= 0"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.patience is None or self.patience >= 1, "patience must be >= 1 or None"),
            (0 < self.inner_val_fraction <= 0.5, "inner_val_fraction must be in (0, 0.5]"),
            (all(0 < f <= 1 for f in self.fractions), "fractions must lie in (0, 1]"),
            (self.n_bootstrap >= 0, "n_bootstrap must be >= 0"),
            (self.cpu_threads is None or self.cpu_threads >= 1, "cpu_threads must be >= 1 or None"),
        ]
        self.require(checks)


# ------------------------------------------------------------------------------------------- folds

def make_folds(y: np.ndarray, groups: np.ndarray, folds: int, repeats: int, seed: int) -> np.ndarray:
    """Fold id of every window, one row per repeat: [repeats, N]. Stratified by class; a group
    (windows overlapping in time) never straddles folds. The same array serves every arm."""
    assign = np.full((repeats, len(y)), -1, dtype=np.int64)
    for r in range(repeats):
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + r)
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
            assign[r, test] = k
    return assign


def inner_split(train_idx: np.ndarray, y: np.ndarray, groups: np.ndarray, fraction: float,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split training-fold indices into (fit, early-stopping validation), stratified and group-aware."""
    n_splits = max(2, round(1 / fraction))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    fit, val = next(splitter.split(train_idx, y[train_idx], groups[train_idx]))
    return train_idx[fit], train_idx[val]


def subsample(train_idx: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A class-stratified random ``fraction`` of ``train_idx`` (at least 2 windows of each class)."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y[train_idx]):
        members = train_idx[y[train_idx] == c]
        keep.append(rng.choice(members, size=min(len(members), max(2, round(fraction * len(members)))),
                               replace=False))
    return np.sort(np.concatenate(keep))


# ------------------------------------------------------------------------------------------ metrics

def weighted_metrics(y: np.ndarray, pred: np.ndarray, n_classes: int, weights=None) -> dict:
    """Accuracy, balanced accuracy, macro F1 and per-class recall of ``pred`` against ``y``.

    ``weights`` [..., N] (default ones) weight each window; leading dimensions are kept, which lets the
    bootstrap evaluate thousands of resamples at once. A class absent from a resample is left out of
    the balanced accuracy / macro F1 means.
    """
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    onehot_y = np.eye(n_classes)[y]
    onehot_p = np.eye(n_classes)[pred]
    tp = w @ (onehot_y * onehot_p)
    support = w @ onehot_y
    predicted = w @ onehot_p
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / support
        f1 = 2 * tp / (support + predicted)
        return {
            "accuracy": tp.sum(-1) / w.sum(-1),
            "balanced_accuracy": np.nanmean(recall, axis=-1),
            "macro_f1": np.nanmean(f1, axis=-1),
            "recall": recall,
        }


def corrected_t(values, test_train_ratio: float, alpha: float = 0.05) -> dict:
    """Mean of per-fold scores (or paired differences) with the Nadeau-Bengio corrected resampled t-test.

    Variance of the mean = (1/J + n_test/n_train) * s^2 over the J = folds x repeats values (the naive
    1/J ignores that training sets overlap). Returns mean, sd, se, df, t, two-sided p against 0, and the
    (1 - alpha) CI. Zero variance: p = 1 when the mean is 0, else 0, and the CI collapses to the mean;
    a single value gives NaN for everything but the mean.
    """
    v = np.asarray(values, dtype=float)
    J, mean = len(v), float(np.mean(v))
    out = {"mean": mean, "sd": math.nan, "se": math.nan, "df": J - 1, "t": math.nan, "p_value": math.nan,
           "ci_low": math.nan, "ci_high": math.nan, "n": J}
    if J < 2:
        return out
    sd = float(np.std(v, ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):   # constant values (up to rounding)
        sd = 0.0
    se = math.sqrt((1.0 / J + test_train_ratio) * sd ** 2)
    out.update(sd=sd, se=se)
    if se == 0.0:
        out.update(t=0.0 if mean == 0 else math.copysign(math.inf, mean), p_value=1.0 if mean == 0 else 0.0,
                   ci_low=mean, ci_high=mean)
        return out
    t = mean / se
    half = float(stats.t.ppf(1 - alpha / 2, J - 1)) * se
    out.update(t=t, p_value=float(2 * stats.t.sf(abs(t), J - 1)), ci_low=mean - half, ci_high=mean + half)
    return out


def paired_bootstrap(y, pred_a, pred_b, groups, n_classes: int, n_boot: int, seed: int,
                     alpha: float = 0.05) -> dict:
    """Percentile CI of metric(a) - metric(b) on out-of-fold predictions ([repeats, N] each), resampling
    groups of overlapping windows with replacement. It captures test-set sampling noise only (not the
    variability of training), so it is usually narrower than the corrected t interval."""
    _, gidx = np.unique(groups, return_inverse=True)
    n_groups = gidx.max() + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(n_groups, size=(n_boot, n_groups))
    counts = np.zeros((n_boot, n_groups))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    w = counts[:, gidx]
    out = {}
    for metric in METRICS:
        diff = np.mean([weighted_metrics(y, a, n_classes, w)[metric]
                        - weighted_metrics(y, b, n_classes, w)[metric] for a, b in zip(pred_a, pred_b)], axis=0)
        lo, hi = np.nanpercentile(diff, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        out[metric] = {"ci_low": float(lo), "ci_high": float(hi)}
    return out


# ----------------------------------------------------------------------------------------- training

def build_classifier(arm: str, encoder: JadeEncoder, n_classes: int, dropout: float,
                     seed: int) -> JadeClassifier:
    """The arm's classifier: a copy of the pretrained encoder, or a random one of the identical
    architecture for the baseline. The head starts from the same seed in every arm."""
    torch.manual_seed(seed)
    enc = JadeEncoder(**encoder.arch) if arm in RANDOM_INIT else copy.deepcopy(encoder)
    torch.manual_seed(seed + 1)
    return JadeClassifier(enc, n_classes=n_classes, dropout=dropout)


def _optimizer(model: JadeClassifier, arm: str, cfg: TransferConfig) -> torch.optim.Optimizer:
    head = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    groups = [{"params": head, "lr": cfg.lr}]
    if arm == "baseline":
        groups.append({"params": list(model.encoder.parameters()), "lr": cfg.lr})
    elif arm == "finetune":
        groups.append({"params": list(model.encoder.parameters()), "lr": cfg.lr * cfg.encoder_lr_scale})
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def _logits(model: JadeClassifier, X, V, idx, norm, features=None):
    """Training-time logits of windows ``idx``: the head on standardised pooled features,
    (embed - mu) / sd; with ``features`` (already standardised, frozen encoder) only the head runs."""
    if features is None:
        mu, sd = norm
        features = (model.embed(X[idx], V[idx]) - mu) / sd
    else:
        features = features[idx]
    return model.head(model.dropout(features))


@torch.no_grad()
def _pooled(model: JadeClassifier, X, V, batch_size: int = 1024):
    """Pooled encoder features of every window (eval mode: no encoder dropout)."""
    model.eval()
    return torch.cat([model.embed(X[i:i + batch_size], V[i:i + batch_size])
                      for i in range(0, len(X), batch_size)])


def _raw_state(model: JadeClassifier, norm) -> dict:
    """A copy of the model's state with the standardisation (mu, sd) folded into the head, so that it
    takes raw pooled features like any JadeClassifier: W' = W / sd, b' = b - W' mu."""
    mu, sd = norm
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    weight = state["head.weight"] / sd
    state["head.bias"] = state["head.bias"] - weight @ mu
    state["head.weight"] = weight
    return state


def fit_classifier(model: JadeClassifier, arm: str, data: tuple, fit_idx: np.ndarray, val_idx: np.ndarray,
                   cfg: TransferConfig, seed: int) -> dict:
    """Train ``model`` in place on ``fit_idx``; keep the weights of the epoch with the lowest loss on
    ``val_idx`` (early stopping after ``patience`` epochs without improvement). Returns the history.

    Mean-pooled LSTM outputs differ by ~1e-2 between windows, too little for a linear head to separate
    in a few dozen steps (a randomly initialised classifier sits at chance for many epochs). So in every
    arm the head sees the pooled features standardised with a fixed mean and sd, measured once on the
    fit windows with the initial encoder; the standardisation is folded into the head of the returned
    model. While the encoder is frozen its pooled features are computed once."""
    X, V, Y = data
    device = X.device
    fit_t = torch.as_tensor(fit_idx, device=device)
    val_t = torch.as_tensor(val_idx, device=device)
    n_classes = model.head.out_features
    weight = None
    if cfg.class_weighting:
        counts = torch.bincount(Y[fit_t], minlength=n_classes).float().clamp_min(1.0)
        weight = len(fit_idx) / (n_classes * counts)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    opt = _optimizer(model, arm, cfg)
    gen = torch.Generator().manual_seed(seed)
    pooled = _pooled(model, X, V)
    norm = (pooled[fit_t].mean(0), pooled[fit_t].std(0).clamp_min(1e-6))
    frozen_features = (pooled - norm[0]) / norm[1]
    best = {"val_loss": math.inf, "epoch": -1, "state": None}
    history, waited = [], 0
    for epoch in range(cfg.epochs):
        frozen = arm in FROZEN or (arm == "finetune" and epoch < cfg.unfreeze_epoch)
        model.encoder.requires_grad_(not frozen)
        features = frozen_features if frozen else None
        model.train()
        total = 0.0
        for b in torch.randperm(len(fit_idx), generator=gen).split(cfg.batch_size):
            idx = fit_t[b.to(device)]
            loss = loss_fn(_logits(model, X, V, idx, norm, features), Y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(_logits(model, X, V, val_t, norm, features), Y[val_t]))
        history.append({"epoch": epoch, "train_loss": total / len(fit_idx), "val_loss": val_loss})
        if val_loss < best["val_loss"]:
            best = {"val_loss": val_loss, "epoch": epoch, "state": _raw_state(model, norm)}
            waited = 0
        else:
            waited += 1
            if cfg.patience is not None and waited >= cfg.patience:
                break
    model.load_state_dict(best["state"])
    model.encoder.requires_grad_(True)
    model.eval()
    return {"best_epoch": best["epoch"], "best_val_loss": best["val_loss"], "epochs_run": len(history),
            "history": history}


@torch.no_grad()
def predict(model: JadeClassifier, X, V, idx) -> np.ndarray:
    model.eval()
    return model(X[idx], V[idx]).argmax(-1).cpu().numpy()


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


def _ratio(folds: list[dict]) -> float:
    return float(np.mean([f["n_test"] for f in folds]) / np.mean([f["n_train"] for f in folds]))


def summarise(arm_folds: list[dict], classes) -> dict:
    """Per-metric mean and 95% corrected-t CI over the (repeat, fold) scores of one arm (the CI is
    clipped to [0, 1], the range of every metric)."""
    ratio = _ratio(arm_folds)
    values = {m: [f[m] for f in arm_folds] for m in METRICS}
    values.update({f"recall_{c}": [f["recall"][c] for f in arm_folds] for c in classes})
    out = {}
    for name, v in values.items():
        stat = corrected_t(v, ratio)
        stat["ci_low"], stat["ci_high"] = (float(np.clip(stat[k], 0, 1)) for k in ("ci_low", "ci_high"))
        out[name] = stat
    return out


def compare(arm_folds: list[dict], ref_folds: list[dict]) -> dict:
    """Paired per-fold differences arm - reference with the corrected resampled t-test, per metric."""
    ratio = _ratio(ref_folds)
    return {m: corrected_t([a[m] - b[m] for a, b in zip(arm_folds, ref_folds)], ratio) for m in METRICS}


def confusion(y: np.ndarray, oof: np.ndarray, n_classes: int) -> list[list[int]]:
    """Counts [true, predicted] summed over repeats."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for pred in oof:
        np.add.at(cm, (y, pred), 1)
    return cm.tolist()


# -------------------------------------------------------------------------------- pretraining period

def pretraining_overlap(labelled: LabelledSet, training_results) -> dict:
    """How many labelled windows lie inside the encoder's pretraining splits (from its
    training_results.json: a path or the loaded dict). ``seen`` counts windows overlapping the train or
    val split (used for gradients / checkpoint selection) and no excluded period."""
    res = read_json(training_results) if not isinstance(training_results, Mapping) else training_results
    cfg = res.get("config", {})
    splits = cfg.get("splits") or {}
    start, end = labelled.start, labelled.end
    known = ~start.isna()

    def hits(lo, hi, closed_end=False):
        lo, hi = pd.Timestamp(lo, tz="UTC"), pd.Timestamp(hi, tz="UTC")
        before_end = start <= hi if closed_end else start < hi
        return known & np.asarray(before_end) & np.asarray(end >= lo)

    per_split = {name: hits(lo, hi) for name, (lo, hi) in splits.items()}
    excluded = np.zeros(len(labelled), dtype=bool)
    for lo, hi in cfg.get("exclude", []):
        excluded |= hits(lo, hi, closed_end=True)
    seen = (per_split.get("train", excluded & False) | per_split.get("val", excluded & False)) & ~excluded
    return {
        "splits": {name: [str(lo), str(hi)] for name, (lo, hi) in splits.items()},
        "inside_split": {name: int(m.sum()) for name, m in per_split.items()},
        "seen": int(seen.sum()), "excluded": int(excluded.sum()), "without_timestamps": int((~known).sum()),
        "n_windows": len(labelled), "encoder_data_path": cfg.get("data_path"),
        "encoder_synthetic_seed": cfg.get("synthetic_seed") if cfg.get("data_path") is None else None,
    }


def find_training_results(encoder_path) -> Path | None:
    """The training_results.json of the run that produced an encoder: beside it, or beside the checkpoint
    an exported encoder names in its metadata ("source", as the sweep writes it). None if not found."""
    encoder_path = Path(encoder_path)
    candidates = [encoder_path.parent / "training_results.json"]
    obj = torch.load(encoder_path, map_location="cpu", weights_only=True)
    source = obj.get("metadata", {}).get("source") if isinstance(obj, dict) else None
    if source:
        candidates.append(resolve_path(source).parent / "training_results.json")
    return next((p for p in candidates if p.exists()), None)


def encoder_feature_options(encoder_path) -> dict:
    """The relativity_features options an encoder was pretrained with (from its checkpoint's config or
    its run's training_results.json), so that the labelled windows get the same features; {} = defaults."""
    obj = torch.load(encoder_path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and isinstance(obj.get("config"), dict):
        return dict(obj["config"].get("feature_options", {}))
    results = find_training_results(encoder_path)
    return dict(read_json(results)["config"].get("feature_options", {})) if results else {}


def exclude_intervals(labels, bars: pd.DataFrame | None = None, *, margin_minutes: float = 0.0,
                      bar_minutes: float = 1.0) -> list[list[str]]:
    """``PretrainConfig.exclude`` entries ([start, end] ISO strings, overlapping ones merged) that keep
    the labelled windows (plus ``margin_minutes`` each side) out of pretraining.

    ``labels``: a LabelledSet, or a labels file / DataFrame with ``start`` and/or ``end`` timestamps.
    With ``bars`` the windows are resolved exactly; without, a missing end (start) is taken as
    104 bars of ``bar_minutes`` after (before) the other, which is too short across session gaps: add a
    margin, or set ``PretrainConfig.exclude_margin_bars``.
    """
    if not isinstance(labels, LabelledSet) and bars is not None:
        labels = load_labels(labels, bars)
    if isinstance(labels, LabelledSet):
        start, end, name = labels.start, labels.end, labels.source.get("path", "<labels>")
    else:
        frame, name = read_label_table(labels)
        span = pd.Timedelta(minutes=104 * bar_minutes)
        col = {c: pd.DatetimeIndex(pd.to_datetime(frame[c], utc=True)) for c in ("start", "end") if c in frame}
        if not col:
            raise ValueError(f"{name}: no 'start' or 'end' column; self-contained windows carry no timestamps")
        start = col["start"] if "start" in col else col["end"] - span
        end = col["end"] if "end" in col else col["start"] + span
        start, end = start.where(start.notna(), end - span), end.where(end.notna(), start + span)
    if start.isna().any():
        raise ValueError(f"{name}: {int(start.isna().sum())} window(s) without timestamps cannot be excluded")
    margin = pd.Timedelta(minutes=margin_minutes)
    spans = sorted(zip(start - margin, end + margin))
    merged: list[list] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [[lo.isoformat(), hi.isoformat()] for lo, hi in merged]


# ------------------------------------------------------------------------------------------ running

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
    overlap = pretraining_overlap(labelled, results_path) if results_path else None

    assign = make_folds(labelled.y, labelled.groups, cfg.folds, cfg.repeats, cfg.seed)
    fractions = sorted(set(cfg.fractions) | {1.0})
    n_fits = len(fractions) * cfg.repeats * cfg.folds * len(cfg.arms)
    progress = _progress(n_fits, cfg.progress)
    threads = torch.get_num_threads()
    if cfg.cpu_threads is not None and resolve_device(cfg.device).type == "cpu":
        torch.set_num_threads(cfg.cpu_threads)
    try:
        runs = {f: evaluate_arms(labelled, encoder, cfg, assign, f, progress) for f in fractions}
    finally:
        torch.set_num_threads(threads)
        if progress is not None:
            progress.close()

    C, classes = len(labelled.classes), list(labelled.classes)
    main = runs[1.0]
    arms = {arm: {"title": ARM_TITLES[arm], "summary": summarise(main[arm]["folds"], classes),
                  "confusion": confusion(labelled.y, main[arm]["oof"], C), "folds": main[arm]["folds"],
                  "oof_predictions": main[arm]["oof"].tolist()} for arm in cfg.arms}
    pairs = [(arm, "baseline") for arm in cfg.arms if arm != "baseline"]
    if "frozen" in cfg.arms and "random_frozen" in cfg.arms:
        pairs.append(("frozen", "random_frozen"))
    comparisons = {}
    for arm, ref in pairs:
        comp = {"arm": arm, "reference": ref, **compare(main[arm]["folds"], main[ref]["folds"])}
        if cfg.n_bootstrap:
            boot = paired_bootstrap(labelled.y, main[arm]["oof"], main[ref]["oof"], labelled.groups, C,
                                    cfg.n_bootstrap, cfg.seed)
            for m in METRICS:
                comp[m]["bootstrap_ci"] = [boot[m]["ci_low"], boot[m]["ci_high"]]
        comparisons[f"{arm} vs {ref}"] = comp
    curve = {arm: [{"fraction": f, "n_train": float(np.mean([x["n_train"] for x in runs[f][arm]["folds"]])),
                    **{m: _brief(summarise(runs[f][arm]["folds"], classes)[m]) for m in METRICS}}
                   for f in fractions] for arm in cfg.arms}

    results = {
        "format": RESULTS_FORMAT,
        "config": dataclasses.asdict(cfg),
        "data": labelled.summary(),
        "encoder": {"path": str(encoder_path), "arch": dict(encoder.arch),
                    "parameters": sum(p.numel() for p in encoder.parameters()),
                    "training_results": str(results_path) if results_path else None,
                    "pretraining_overlap": overlap},
        "protocol": {"folds": cfg.folds, "repeats": cfg.repeats, "fold_assignment": assign.tolist(),
                     "test_train_ratio": _ratio(main["baseline"]["folds"]),
                     "n_groups": int(len(np.unique(labelled.groups))), "window_ids": list(labelled.window_id),
                     "y": labelled.y.tolist()},
        "arms": arms,
        "comparisons": comparisons,
        "learning_curve": curve,
        "seconds": time.perf_counter() - t_start,
        "device": str(resolve_device(cfg.device)),
    }
    results["verdict"] = verdict(results)
    if run_dir is not None:
        write_json(Path(run_dir) / "transfer_results.json", results)
    return results


def _brief(stat: dict) -> dict:
    return {k: stat[k] for k in ("mean", "ci_low", "ci_high")}


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    return progress_bar(total=total, desc="transfer fits", unit="fit")


# ------------------------------------------------------------------------------------------ verdict

def _pp(x: float) -> str:
    return f"{100 * x:+.1f}"


def verdict(results: dict, metric: str = "balanced_accuracy", alpha: float = 0.05) -> str:
    """One paragraph, generated from the numbers: each arm against the baseline, and the frozen
    pretrained encoder against frozen random features (same probe) when both ran."""
    name = metric.replace("_", " ")
    arms, n = results["arms"], results["data"]["n_windows"]
    proto = results["protocol"]
    base = arms["baseline"]["summary"][metric]
    parts = [f"On {n} labelled windows ({proto['folds']}-fold CV x {proto['repeats']} repeat(s), identical "
             f"folds for every arm), the randomly initialised baseline reached {100 * base['mean']:.1f}% "
             f"{name} (95% CI [{100 * base['ci_low']:.1f}, {100 * base['ci_high']:.1f}])."]
    for comp in results["comparisons"].values():
        arm = comp["arm"]
        ref = "the baseline" if comp["reference"] == "baseline" else f"the {ARM_TITLES[comp['reference']]}"
        d, own = comp[metric], arms[arm]["summary"][metric]
        numbers = (f"{_pp(d['mean'])} pp {name}, 95% CI [{_pp(d['ci_low'])}, {_pp(d['ci_high'])}], "
                   f"p = {d['p_value']:.2g} (corrected resampled t-test")
        if "bootstrap_ci" in d:
            lo, hi = d["bootstrap_ci"]
            numbers += f"; bootstrap CI [{_pp(lo)}, {_pp(hi)}]"
        numbers += ")"
        if math.isnan(d["p_value"]):
            parts.append(f"The {ARM_TITLES[arm]} ({100 * own['mean']:.1f}%) differs by {_pp(d['mean'])} pp "
                         f"{name}, which one train/test split cannot test.")
        elif d["p_value"] < alpha:
            finding = "better than" if d["mean"] > 0 else "worse than"
            parts.append(f"The {ARM_TITLES[arm]} ({100 * own['mean']:.1f}%) is significantly {finding} "
                         f"{ref}: {numbers}.")
        else:
            parts.append(f"The {ARM_TITLES[arm]} ({100 * own['mean']:.1f}%) shows no significant difference "
                         f"from {ref}: {numbers}; the interval includes zero.")
    if proto["folds"] * proto["repeats"] < 10:
        parts.append(f"With only {proto['folds'] * proto['repeats']} train/test splits the intervals are wide; "
                     "run the full protocol (params/transfer_full.yaml) before drawing conclusions.")
    overlap = results["encoder"].get("pretraining_overlap")
    if overlap is None:
        parts.append("The encoder's pretraining period is unknown (its training_results.json was not found), "
                     "so it is not known how many labelled windows it was pretrained on.")
    elif overlap["seen"]:
        parts.append(f"Caution: {overlap['seen']} of the {n} labelled windows lie inside the encoder's "
                     "pretraining (train/val) period, so the encoder has seen their bars.")
    else:
        parts.append("None of the labelled windows lies inside the encoder's pretraining train/val period.")
    if results["data"]["cold_start"]:
        parts.append("Features were computed cold from each window alone, unlike in pretraining.")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------- embeddings

@torch.no_grad()
def embed_windows(encoder: JadeEncoder, labelled: LabelledSet, device="cpu",
                  batch_size: int = 1024) -> np.ndarray:
    """Mean-pooled encoder features [N, 2H] of the labelled windows (the classifier's pooling)."""
    model = JadeClassifier(copy.deepcopy(encoder)).to(device)
    X = torch.as_tensor(labelled.X, device=device)
    V = torch.as_tensor(labelled.valid, device=device)
    return _pooled(model, X, V, batch_size).cpu().numpy()


# ------------------------------------------------------------------------------ notebook parameters

_ProtocolParams = params_like("_ProtocolParams", TransferConfig, skip=("seed", "device", "progress"))


@dataclass
class TransferParams(_ProtocolParams):
    """transfer.ipynb parameters: RunParams + TransferConfig + the data, labels and default encoder."""

    encoder_path: str | None = None       # encoder file or pretraining checkpoint; None = pretrain a small one
    labels_path: str | None = None        # labels file (CSV/parquet/JSON); None = embedded synthetic set
    label_column: str = "label"
    synthetic_start: IsoDate = "2024-10-01"  # embedded market (ignored with data_path)
    synthetic_end: IsoDate = "2025-09-30"    # inclusive
    synthetic_seed: int = 0
    n_labelled: int = 174                 # embedded labelled set: windows, fraction consolidation,
    class_balance: float = 0.466          # share of flipped labels, period (after the test split)
    label_noise: float = 0.0
    labels_start: IsoDate = "2025-07-01"
    labels_end: IsoDate = "2025-09-30"
    pretrain_epochs: int = 3              # the default encoder (encoder_path None), CPU-sized
    pretrain_hidden_size: int = 32
    pretrain_num_layers: int = 1
    pretrain_batch_size: int = 256
    pretrain_lr: float = 3e-3


def transfer_config(params) -> TransferConfig:
    """The TransferConfig that notebook parameters describe (progress bars on)."""
    names = [f.name for f in dataclasses.fields(TransferConfig)]
    values = {n: getattr(params, n) for n in names if hasattr(params, n)}
    return apply_overrides(TransferConfig(), {**values, "progress": True}, what="TransferConfig")


def labelled_from_params(params) -> LabelledSet:
    """The labelled set the notebook parameters name: a labels file (with the bars it points into) or the
    embedded synthetic set (drawn from the same synthetic market the default encoder pretrains on).
    Features use the feature options the encoder was pretrained with."""
    options = encoder_feature_options(resolve_path(params.encoder_path)) if params.encoder_path else None
    if params.labels_path is None:
        return synthetic_labelled_set(params.n_labelled, params.class_balance, params.label_noise, params.seed,
                                      start=params.labels_start, end=params.labels_end,
                                      history_start=params.synthetic_start, market_seed=params.synthetic_seed,
                                      feature_options=options)
    labels_path = resolve_path(params.labels_path)
    frame, _ = read_label_table(labels_path)
    bars = None
    if "features" not in frame.columns:
        bars = (load_ohlcv(params.data_path) if params.data_path else
                synthetic_ohlcv(params.synthetic_start, params.synthetic_end, seed=params.synthetic_seed))
    return load_labels(labels_path, bars, label_column=params.label_column, feature_options=options)


def default_pretrain_config(params, labelled: LabelledSet) -> PretrainConfig:
    """A small pretraining job for when no encoder is given: same data as the labels (file or embedded
    market), the labelled windows excluded (when they have timestamps)."""
    exclude = exclude_intervals(labelled) if not labelled.start.isna().any() else []
    return PretrainConfig(
        data_path=params.data_path, synthetic_start=params.synthetic_start, synthetic_end=params.synthetic_end,
        synthetic_seed=params.synthetic_seed, exclude=exclude, hidden_size=params.pretrain_hidden_size,
        num_layers=params.pretrain_num_layers, epochs=params.pretrain_epochs,
        batch_size=params.pretrain_batch_size, lr=params.pretrain_lr, warmup_epochs=1, seed=params.seed,
        device=params.device)


def encoder_from_params(params, labelled: LabelledSet, run_dir) -> Path:
    """``params.encoder_path``, or (when None) the best checkpoint of a small pretraining job run now into
    ``run_dir/encoder``."""
    if params.encoder_path is not None:
        return resolve_path(params.encoder_path)
    encoder_dir = Path(run_dir) / "encoder"
    pretrain(default_pretrain_config(params, labelled), encoder_dir)
    return encoder_dir / "checkpoint_best.pt"


def encoder_embeddings(encoder_path, labelled: LabelledSet, seed: int = 0,
                       device="cpu") -> dict[str, np.ndarray]:
    """Pooled features of the labelled windows from the pretrained encoder and from a randomly
    initialised one of the same architecture (for the 2-D projection)."""
    encoder = load_encoder(encoder_path, input_size=labelled.X.shape[-1], hidden_size=None, num_layers=None)
    torch.manual_seed(seed)
    return {"pretrained encoder": embed_windows(encoder, labelled, device),
            "random init (same architecture)": embed_windows(JadeEncoder(**encoder.arch), labelled, device)}
