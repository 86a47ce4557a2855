"""Masked-reconstruction pretraining of the Jade encoder (DESIGN.md section 4).

The whole feature array lives on the device; a batch is an index gather of window starts, its mask is
drawn on the device, and nothing per sample runs in Python. One epoch:

    shuffle the train windows (this rank's shard under torchrun) -> for each batch: gather, mask,
    forward under autocast, masked Huber loss, backward, clip, AdamW step, per-step lr schedule
    -> validation loss on FIXED seeded masks -> checkpoint_best.pt (if improved), checkpoint_last.pt

Every epoch reseeds its shuffle, masks and dropout from (seed, epoch), so a run resumed from
checkpoint_last.pt continues exactly as if it had never stopped. The validation and test masks are
drawn once, on the CPU, from their own fixed seed (EVAL_MASK_SEED): they do not depend on ``seed`` or
the device, so val losses compare across epochs, runs, seeds and machines. The best checkpoint is
evaluated on val and test at the end, next to two reference predictors (training mean; linear
interpolation between unmasked neighbours) on the same masks and a third, per feature the better of
the two; every loss is also given per feature (``per_feature_losses`` in training_results.json).

Before any data is loaded the job claims its run directory (``rundir``: one writer per directory) and
checks what it would resume from: the checkpoints record where the bars came from (the data file's
SHA-256), and a resume on a changed file, or from a run directory that lost its checkpoint_last.pt, is
refused.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import platform
import resource
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from . import cli, distributed
from .config import ConfigError, PretrainConfig
from .data import bars_source, describe_source, run_bars, split_slices, to_utc
from .features import FEATURE_NAMES, relativity_features, swing_points
from .util.io import CheckpointError, atomic_torch_save, load_torch_file, write_json
from .masking import interpolation_baseline, masked_huber, random_mask, span_mask
from .models import JadePretrainer, encoder_state
from .util.progress import progress_bar
from .util.rundir import run_dir_claim
from .windows import gather_windows, split_windows

CHECKPOINT_FORMAT = "moola.pretrain_checkpoint.v1"
RESULTS_FORMAT = "moola.training_results.v1"
BEST, LAST, RESULTS = "checkpoint_best.pt", "checkpoint_last.pt", "training_results.json"
CHECKPOINT_KEYS = ("epoch", "encoder", "model", "optimizer", "scheduler", "scaler", "rng", "config", "history",
                   "best_val_loss", "best_epoch", "epochs_since_best", "finished", "elapsed_seconds")
RESUMABLE_CHANGES = ("resume", "progress", "device")   # options that may differ on resume
EVAL_SPLITS = ("val", "test")
EVAL_MASK_SEED = 20_261_125   # the fixed masks of the eval splits: independent of config.seed and the device
REFERENCES = ("train_mean", "interpolation", "better_reference")   # keys of reference_losses per split


# ---------------------------------------------------------------------------------------------------
# data

@dataclass
class PretrainData:
    bars: pd.DataFrame
    X: np.ndarray                     # float32 [T, F]
    valid: np.ndarray                 # bool [T]
    starts: dict[str, np.ndarray]     # window start positions per split
    slices: dict[str, slice]          # bar positions per split
    summary: dict


def load_pretrain_data(config: PretrainConfig | Mapping) -> PretrainData:
    """Bars (file or synthetic), features once over the whole series, window starts per split."""
    config = _as_config(config)
    bars, source = run_bars(config)
    t0 = time.perf_counter()
    X, valid = relativity_features(bars, **config.feature_options)
    features_seconds = time.perf_counter() - t0
    if X.shape[1] != config.input_size:
        raise ConfigError(f"input_size={config.input_size} but there are {X.shape[1]} features "
                          f"({', '.join(FEATURE_NAMES)})")
    splits = {name: tuple(bounds) for name, bounds in config.splits.items()}
    slices = split_slices(bars.index, splits)
    starts = split_windows(bars.index, valid, splits, length=config.window_length, stride=config.stride,
                           max_gap=config.max_gap_minutes, exclude=_excluded_periods(bars.index, config))
    for name in ("train", "val"):
        if len(starts[name]) == 0:
            raise ConfigError(_no_windows_message(name, splits[name], config, bars, valid, slices[name], source))
    index = bars.index
    summary = {
        "source": source,
        "bars": len(bars),
        "valid_bars": int(valid.sum()),
        "first_bar": index[0].isoformat(),
        "last_bar": index[-1].isoformat(),
        "features": list(FEATURE_NAMES),
        "feature_options": dict(config.feature_options),   # every option with its value
        "features_seconds": round(features_seconds, 3),
        "window_length": config.window_length,
        "stride": config.stride,
        "splits": {
            name: {"start": splits[name][0], "end": splits[name][1], "bars": sl.stop - sl.start,
                   "first_bar": index[sl.start].isoformat(), "last_bar": index[sl.stop - 1].isoformat(),
                   "windows": len(starts[name])}
            for name, sl in slices.items()
        },
    }
    return PretrainData(bars, X, valid, starts, slices, summary)


def _no_windows_message(name: str, bounds: tuple, config: PretrainConfig, bars: pd.DataFrame,
                        valid: np.ndarray, bar_slice: slice, source: dict) -> str:
    """Why split ``name`` holds no window, in the terms the user can act on: data whose prices never
    confirm a swing (flat or degenerate), a split inside the feature warm-up, or a split too short."""
    where = f"split {name!r} {list(bounds)} of {describe_source(source)}"
    if not valid.any():
        options = config.feature_options            # resolved: every option with its value
        swings = swing_points(bars, **options)
        missing = sorted({"high", "low"} - set(swings["kind"]))
        if missing:
            return (f"{where}: 0 valid bars in the whole data: no swing {' or '.join(missing)} is ever "
                    f"confirmed (that needs a reversal of reversal_atr={options['reversal_atr']} x ATR), so "
                    "the swing features never warm up. The prices are flat or degenerate: check the data file")
        return (f"{where}: 0 valid bars in the whole data: {len(bars)} bars are too few for the feature warm-up "
                "(ATR, EMA and a confirmed swing high and low); use a longer data file")
    if not valid[bar_slice].any():
        return (f"{where}: none of its {bar_slice.stop - bar_slice.start} bars is valid (all lie before the "
                "feature warm-up); start the split later")
    n_bars = bar_slice.stop - bar_slice.start
    if config.stride >= n_bars:   # one window at most, at the split's first bar: usually not a valid one
        return (f"{where}: stride={config.stride} is not shorter than the split's {n_bars} bars, so at most "
                f"one window start is tried; lower stride")
    return (f"{where} holds no window of {config.window_length} consecutive valid bars; widen the split "
            "or check the data")


def _excluded_periods(index: pd.DatetimeIndex, config: PretrainConfig) -> list[tuple]:
    """config.exclude as inclusive (first bar, last bar) pairs widened by exclude_margin_bars."""
    periods, m = [], config.exclude_margin_bars
    for start, end in config.exclude:
        lo = index.searchsorted(to_utc(start)) - m
        hi = index.searchsorted(to_utc(end), side="right") - 1 + m
        lo, hi = max(lo, 0), min(hi, len(index) - 1)
        if lo <= hi:
            periods.append((index[lo], index[hi]))
    return periods


# ---------------------------------------------------------------------------------------------------
# the job

def pretrain(config: PretrainConfig | Mapping, run_dir) -> dict:
    """Run a pretraining job; write checkpoints and training_results.json into run_dir (rank 0 under
    torchrun) and return the results dict."""
    config = _as_config(config)
    ctx, device = distributed.setup(config.device)   # a device that is not there: ConfigError, nothing done
    try:
        with run_dir_claim(run_dir, enabled=ctx.is_main):   # one writer; refused before any work
            return _pretrain(config, Path(run_dir), ctx, device)
    finally:
        distributed.teardown(ctx)


class Trainer:
    """Model, optimiser, lr schedule and device-resident data of one pretraining job."""

    def __init__(self, config: PretrainConfig, data: PretrainData, device: torch.device,
                 ctx: distributed.DistContext | None = None):
        self.config, self.device = config, device
        self.ctx = ctx or distributed.DistContext()
        self.X = torch.from_numpy(data.X).to(device)
        self.valid = torch.from_numpy(data.valid).to(device)
        self.starts = {name: torch.from_numpy(s).to(device) for name, s in data.starts.items()}
        self.eval_masks = self.fixed_eval_masks(data)

        torch.manual_seed(config.seed)
        self.model = JadePretrainer(input_size=config.input_size, hidden_size=config.hidden_size,
                                    num_layers=config.num_layers, dropout=config.dropout).to(device)
        self.model.encoder.feature_options = dict(config.feature_options)   # stored with every encoder
        self.amp_dtype = _amp_dtype(config, self.model, self.X, device)
        self.train_model = self.model
        if self.ctx.active:
            ids = [device.index] if device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay, fused=device.type == "cuda")
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)

        n_train = len(self.starts["train"])
        self.per_rank = n_train // self.ctx.world_size
        if self.per_rank == 0:
            raise ValueError(f"{n_train} train windows cannot be shared by {self.ctx.world_size} processes")
        self.steps_per_epoch = math.ceil(self.per_rank / config.batch_size)
        warmup_steps = config.warmup_epochs * self.steps_per_epoch
        self.total_steps = config.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, warmup_steps, self.total_steps))

    def fixed_eval_masks(self, data: PretrainData) -> dict[str, torch.Tensor]:
        """The val/test masks, drawn on the CPU from EVAL_MASK_SEED (a CPU generator gives the same
        numbers on every machine; a CUDA one would not) and moved to the device: the same every epoch,
        run, seed, device and world size."""
        valid, masks = torch.from_numpy(data.valid), {}
        for name in EVAL_SPLITS:
            if name in data.starts and len(data.starts[name]):
                g = torch.Generator().manual_seed(_seed(EVAL_MASK_SEED, "eval", name))
                mask = self.make_mask(self.windows(valid, torch.from_numpy(data.starts[name])), g)
                masks[name] = mask.to(self.device)
        return masks

    def windows(self, series: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        return gather_windows(series, starts, self.config.window_length)

    def make_mask(self, valid_windows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        c = self.config
        if c.mask_mode == "span":
            return span_mask(valid_windows, c.mask_ratio, c.mean_span, generator=generator)
        return random_mask(valid_windows, c.mask_ratio, generator=generator)

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Generator]:
        """Reseed dropout for ``epoch``; return this rank's shuffled train-window indices and the
        epoch's mask generator. All three are pure functions of (seed, epoch, rank)."""
        seed, rank = self.config.seed, self.ctx.rank
        torch.manual_seed(_seed(seed, "dropout", epoch, rank))
        g_shuffle = torch.Generator(self.device).manual_seed(_seed(seed, "shuffle", epoch))
        g_mask = torch.Generator(self.device).manual_seed(_seed(seed, "mask", epoch, rank))
        world = self.ctx.world_size
        order = torch.randperm(len(self.starts["train"]), generator=g_shuffle, device=self.device)
        return order[: self.per_rank * world].view(self.per_rank, world)[:, rank], g_mask

    def train_epoch(self, epoch: int) -> dict:
        """One pass over this rank's train windows; metrics are all-reduced over ranks."""
        t0 = time.perf_counter()
        self.model.train()
        order, g_mask = self.epoch_plan(epoch)
        sums, first_bad, lr = self.run_steps(order, g_mask)
        self.ctx.all_reduce(sums)
        self.ctx.all_reduce(first_bad, "min")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        if int(first_bad) <= self.steps_per_epoch:
            raise FloatingPointError(f"non-finite training loss at epoch {epoch}, "
                                     f"step {int(first_bad)} of {self.steps_per_epoch}")
        return {"train_loss": (sums[0] / sums[1].clamp_min(1)).item(), "lr": lr,
                "train_seconds": seconds, "windows_per_s": self.per_rank * self.ctx.world_size / seconds}

    def run_steps(self, order: torch.Tensor, g_mask: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """The epoch's optimisation steps over the train windows ``order`` indexes, without a host-device
        sync (the GPU check runs this under ``torch.cuda.set_sync_debug_mode("error")``; the one sync
        left is cuDNN reseeding its dropout state at the epoch's first step, after ``epoch_plan``).

        The masks of all the epoch's windows are drawn at once and the per-step bookkeeping is
        deferred to the end: on a GPU the loop is bound by kernel launches at batch 1024, so every
        launch saved per step counts. Returns the device tensors (loss x masked steps, masked steps)
        and the first non-finite step (steps + 1 if none), and the lr of the last step."""
        c = self.config
        starts = self.starts["train"][order]
        masks = self.make_mask(self.windows(self.valid, starts), g_mask)
        losses = []
        for begin in range(0, len(starts), c.batch_size):
            lr = self.optimizer.param_groups[0]["lr"]
            batch = slice(begin, begin + c.batch_size)
            losses.append(self.step(self.windows(self.X, starts[batch]), masks[batch]))
        losses = torch.stack(losses).double()
        counts = masks.sum(dim=1).double()
        counts = F.pad(counts, (0, len(losses) * c.batch_size - len(counts))).view(len(losses), -1).sum(dim=1)
        sums = torch.stack([(losses * counts).sum(), counts.sum()])
        bad = ~torch.isfinite(losses)
        steps = torch.arange(1, len(losses) + 1, device=losses.device)
        first_bad = torch.where(bad, steps, len(losses) + 1).min()
        return sums, first_bad, lr

    def step(self, xb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One optimisation step on a gathered, masked batch; returns the (detached) loss tensor.

        Nothing here waits for the device: the loss stays a tensor, clipping and the fused AdamW step
        (which also takes the fp16 grad scaler's inf check) run as kernels, the lr schedule is host-side."""
        c = self.config
        with _autocast(self.device, self.amp_dtype):
            pred = self.train_model(xb, mask)
        loss = masked_huber(pred, xb, mask, c.huber_delta)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if c.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach()

    def predict(self, xb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with _autocast(self.device, self.amp_dtype):
            return self.model(xb, mask)

    @torch.no_grad()
    def evaluate(self, split: str, predict: Callable | None = None) -> dict:
        """Masked Huber loss (overall and per feature) and MAE of ``predict(x, mask)`` (default: the
        model, eval mode) on the split's fixed masks; each rank takes a shard, the sums are all-reduced.
        The overall loss is the mean of the per-feature losses (every masked step masks all features)."""
        c, starts, masks = self.config, self.starts[split], self.eval_masks[split]
        if predict is None:
            self.model.eval()
            predict = self.predict
        n_features = self.X.shape[1]
        # per-feature Huber sums, absolute-error sum, masked steps
        sums = torch.zeros(n_features + 2, dtype=torch.float64, device=self.device)
        mine = torch.arange(self.ctx.rank, len(starts), self.ctx.world_size, device=self.device)
        for chunk in mine.split(c.batch_size):
            xb, mb = self.windows(self.X, starts[chunk]), masks[chunk]
            pred, target, m = predict(xb, mb).float(), xb.float(), mb.unsqueeze(-1).float()
            huber = F.huber_loss(pred, target, reduction="none", delta=c.huber_delta)
            sums[:n_features] += (huber * m).sum(dim=(0, 1)).double()
            sums[n_features] += ((pred - target).abs() * m).sum().double()
            sums[n_features + 1] += mb.sum().double()
        self.ctx.all_reduce(sums)
        steps = sums[n_features + 1].clamp_min(1)
        per_feature = (sums[:n_features] / steps).tolist()
        return {"loss": float(np.mean(per_feature)), "mae": (sums[n_features] / steps / n_features).item(),
                "per_feature": dict(zip(FEATURE_NAMES, per_feature)), "windows": len(starts)}

    def state_dict(self) -> dict:
        return {
            "encoder": encoder_state(self.model.encoder),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": _rng_state(self.device),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        # the optimizer state may come from another device (a CPU run resumed on a GPU or back): take this
        # device's choice of fused AdamW, so load_state_dict also moves the step counters where fused wants them
        optimizer = dict(state["optimizer"])
        optimizer["param_groups"] = [{**group, "fused": self.optimizer.defaults["fused"]}
                                     for group in optimizer["param_groups"]]
        self.optimizer.load_state_dict(optimizer)
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], self.device)


def _pretrain(config: PretrainConfig, run_dir: Path, ctx: distributed.DistContext,
              device: torch.device) -> dict:
    t_start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    resumed = _resume_checkpoint(config, run_dir)
    ctx.barrier()  # every rank has looked at run_dir before rank 0 writes into it
    data = load_pretrain_data(config)
    trainer = Trainer(config, data, device, ctx)
    progress = _Progress.start(trainer, resumed, t_start, data.summary["source"])
    _train_epochs(trainer, progress, run_dir)
    ctx.barrier()   # rank 0 has written the checkpoints
    results = _final_results(trainer, data, progress, run_dir)
    if ctx.is_main:
        write_json(run_dir / RESULTS, results)
    ctx.barrier()
    return results


@dataclass
class _Progress:
    """Where a job stands between epochs: what checkpoint_last.pt stores to resume it."""

    history: list
    best_val: float = math.inf
    best_epoch: int = 0
    since_best: int = 0
    finished: bool = False
    elapsed_before: float = 0.0      # seconds spent before this process (resumed runs)
    t_start: float = 0.0             # perf_counter() when this process started the job
    start_epoch: int = 0             # epochs completed when this process started
    data_source: dict = field(default_factory=dict)   # data.bars_source: resume checks the file's SHA-256

    @classmethod
    def start(cls, trainer: Trainer, resumed: dict | None, t_start: float, data_source: dict) -> _Progress:
        if resumed is None:
            return cls([], t_start=t_start, data_source=data_source)
        trainer.load_state_dict(resumed)
        return cls(list(resumed["history"]), resumed["best_val_loss"], resumed["best_epoch"],
                   resumed["epochs_since_best"], resumed["finished"], resumed["elapsed_seconds"],
                   t_start, len(resumed["history"]), data_source)

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t_start

    def record(self, epoch: int, val_loss: float, patience: int | None, epochs: int) -> bool:
        """Update best / patience after ``epoch``; return whether its val loss improved."""
        improved = val_loss < self.best_val
        if improved:
            self.best_val, self.best_epoch, self.since_best = val_loss, epoch, 0
        else:
            self.since_best += 1
        self.finished = epoch == epochs or (patience is not None and self.since_best >= patience)
        return improved

    def checkpoint_fields(self) -> dict:
        return {"history": self.history, "best_val_loss": self.best_val, "best_epoch": self.best_epoch,
                "epochs_since_best": self.since_best, "finished": self.finished,
                "elapsed_seconds": self.elapsed(), "data_source": self.data_source}


def _train_epochs(trainer: Trainer, progress: _Progress, run_dir: Path) -> None:
    """Train until the last epoch or early stopping; a progress bar on rank 0."""
    config = trainer.config
    bar = progress_bar(total=config.epochs, initial=progress.start_epoch, desc="pretrain", unit="epoch",
                       dynamic_ncols=True, disable=not (config.progress and trainer.ctx.is_main))
    for epoch in range(progress.start_epoch + 1, config.epochs + 1):   # 1-based epochs
        if progress.finished:
            break
        row = _run_epoch(trainer, progress, epoch, run_dir)
        bar.set_postfix(train=f"{row['train_loss']:.4f}", val=f"{row['val_loss']:.4f}",
                        win_s=f"{row['windows_per_s']:.0f}", refresh=False)
        bar.update(1)
    bar.close()


def _run_epoch(trainer: Trainer, progress: _Progress, epoch: int, run_dir: Path) -> dict:
    """Train one epoch, validate, record it and write the checkpoints (rank 0); returns its history row."""
    config, t0 = trainer.config, time.perf_counter()
    kept = f"{run_dir / LAST} still holds epoch {epoch - 1}" if epoch > 1 else "no checkpoint was written"
    try:
        stats = trainer.train_epoch(epoch)
    except FloatingPointError as e:
        raise FloatingPointError(f"{e}; training stopped, {kept}. Lower lr or check the data.") from None
    val = trainer.evaluate("val")
    if not math.isfinite(val["loss"]):
        raise FloatingPointError(f"non-finite validation loss at epoch {epoch}; training stopped, {kept}.")
    improved = progress.record(epoch, val["loss"], config.patience, config.epochs)
    row = {"epoch": epoch, "train_loss": stats["train_loss"], "val_loss": val["loss"], "val_mae": val["mae"],
           "lr": stats["lr"], "seconds": round(time.perf_counter() - t0, 4),
           "train_seconds": round(stats["train_seconds"], 4), "windows_per_s": round(stats["windows_per_s"], 1)}
    progress.history.append(row)
    if trainer.ctx.is_main:   # best first: a kill between the two writes only repeats this epoch on resume
        state = {"format": CHECKPOINT_FORMAT, "epoch": epoch, **trainer.state_dict(),
                 "config": config.to_dict(), **progress.checkpoint_fields()}
        if improved:
            atomic_torch_save(state, run_dir / BEST)
        atomic_torch_save(state, run_dir / LAST)
    return row


def _final_results(trainer: Trainer, data: PretrainData, progress: _Progress, run_dir: Path) -> dict:
    """The content of training_results.json: the best checkpoint on val and test, next to the reference
    predictors on the same masks, the history, config, data summary, environment and costs."""
    config, device, history = trainer.config, trainer.device, progress.history
    trainer.model.load_state_dict(_load_checkpoint(run_dir / BEST, device)["model"])
    model = {name: trainer.evaluate(name) for name in trainer.eval_masks}   # the best checkpoint, once
    stopped_early = len(history) < config.epochs
    return {
        "format": RESULTS_FORMAT,
        "best_val_loss": progress.best_val,
        "best_epoch": progress.best_epoch,
        "best_val_mae": history[progress.best_epoch - 1]["val_mae"],
        "test": model.get("test"),
        **_per_feature_results(trainer, data, model),
        "epochs_completed": len(history),
        "stopped_early": stopped_early,
        "stop_reason": (f"no val improvement for {config.patience} epochs" if stopped_early
                        else "completed all epochs"),
        "resumed_from_epoch": progress.start_epoch or None,   # a checkpoint holds >= 1 epoch
        "history": history,
        "config": config.to_dict(),
        "data": data.summary,
        "environment": _environment(device, trainer.amp_dtype, trainer.ctx),
        "total_seconds": round(progress.elapsed(), 3),
        "peak_memory": _peak_memory(device),
        "files": {"best": BEST, "last": LAST},
    }


def _per_feature_results(trainer: Trainer, data: PretrainData, model: dict) -> dict:
    """``reference_losses`` (per split: predicting the per-feature train mean, linear interpolation, and
    per feature the better of the two) and ``per_feature_losses`` (per split and feature: the best
    model's masked loss, ``model[split]`` from ``Trainer.evaluate``, next to the three references)."""
    X, valid, train_bars = trainer.X, trainer.valid, data.slices["train"]
    train_mean = X[train_bars][valid[train_bars]].mean(dim=0)
    references, per_feature = {}, {}
    for name in trainer.eval_masks:
        refs = {"train_mean": trainer.evaluate(name, lambda xb, mb: train_mean.expand_as(xb)),
                "interpolation": trainer.evaluate(name, interpolation_baseline)}
        better = {f: min(refs["train_mean"]["per_feature"][f], refs["interpolation"]["per_feature"][f])
                  for f in FEATURE_NAMES}
        refs["better_reference"] = {"loss": float(np.mean(list(better.values()))), "per_feature": better}
        references[name] = refs
        per_feature[name] = {f: {"model": model[name]["per_feature"][f],
                                 **{key: refs[key]["per_feature"][f] for key in REFERENCES}}
                             for f in FEATURE_NAMES}
    return {"reference_losses": references, "per_feature_losses": per_feature}


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """lr multiplier for optimizer step ``step`` (0-based): linear warm-up from 1/warmup_steps to 1
    over the first warmup_steps steps, then cosine decay to 0 at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# ---------------------------------------------------------------------------------------------------
# checkpoints, resume, reproducibility

def load_pretrainer(checkpoint_path, *, map_location="cpu") -> JadePretrainer:
    """The JadePretrainer (eval mode) stored in a pretraining checkpoint; no pickled code runs."""
    ckpt = _load_checkpoint(Path(checkpoint_path), map_location)
    model = JadePretrainer(**ckpt["encoder"]["arch"])
    model.load_state_dict(ckpt["model"])
    return model.eval()


def _load_checkpoint(path: Path, map_location="cpu") -> dict:
    """A pretraining checkpoint; anything else (broken, unsafe, another kind of file) is CheckpointError."""
    ckpt = load_torch_file(path, map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not a moola pretraining checkpoint (expected format "
                              f"{CHECKPOINT_FORMAT!r}, found {found!r})")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: a pretraining checkpoint without {', '.join(missing)}; incomplete or "
                              "altered, it cannot be used. Use another checkpoint or a new run_dir")
    return ckpt


def check_resume(config: PretrainConfig | Mapping, run_dir) -> None:
    """Raise (ConfigError, FileExistsError, CheckpointError) unless ``pretrain(config, run_dir)`` may start
    or resume there; reads only (start_run calls it before it writes the run's files)."""
    _resume_checkpoint(_as_config(config), Path(run_dir))


def _resume_checkpoint(config: PretrainConfig, run_dir: Path) -> dict | None:
    """The checkpoint to resume from (None = fresh start); refuses to overwrite an existing run, to
    resume on other settings or another data file, and to restart a run whose last checkpoint is gone."""
    existing = [name for name in (LAST, BEST, RESULTS) if (run_dir / name).exists()]
    if not config.resume:
        if existing:
            raise FileExistsError(f"{run_dir} already holds {', '.join(existing)}; nothing was overwritten. "
                                  "Pass resume=True to continue that run, or use a new run_dir.")
        return None
    if not (run_dir / LAST).exists():
        if existing:   # starting over would replace the best checkpoint of the earlier run
            raise ConfigError(f"cannot resume {run_dir}: it holds {', '.join(existing)} but no {LAST} to "
                              f"continue from; nothing was changed. Move those files away or use a new run_dir.")
        return None   # nothing completed yet: start from scratch
    if not (run_dir / BEST).exists():   # the results are the best checkpoint's: found now, not after the work
        raise ConfigError(f"cannot resume {run_dir}: it holds {LAST} but no {BEST}, which the results are "
                          f"computed from; nothing was changed. Restore {BEST} or use a new run_dir.")
    ckpt = _load_checkpoint(run_dir / LAST)
    saved, now = ckpt["config"], config.to_dict()
    changed = [f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in now
               if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]]
    if changed:
        raise ConfigError(f"cannot resume {run_dir / LAST}: the config differs from the checkpoint's "
                          f"({'; '.join(changed)}). Use the original settings or a new run_dir.")
    _check_same_data(ckpt.get("data_source"), bars_source(config), run_dir / LAST)
    return ckpt


def _check_same_data(saved: dict | None, now: dict, checkpoint: Path) -> None:
    """Refuse to resume on a data file whose content differs from the one the checkpoint trained on."""
    if not saved:
        warnings.warn(f"{checkpoint} does not record its data file's SHA-256 (written by an older moola); "
                      "resuming without checking that the data is unchanged")
        return
    if saved.get("kind") != "file":
        return   # the embedded market: a pure function of the config, compared above
    if now.get("exists") is False:
        raise ConfigError(f"cannot resume {checkpoint}: its data file {now['path']} is missing")
    if now.get("sha256") != saved.get("sha256"):
        raise ConfigError(f"cannot resume {checkpoint}: the data file {now['path']} changed since the checkpoint "
                          f"was written (SHA-256 {saved.get('sha256', '?')[:12]}... then, {now['sha256'][:12]}... "
                          f"now; trained on {saved.get('path')}). Restore that file or start a new run_dir.")


def _seed(*parts) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (ints and strings)."""
    words = [p if isinstance(p, int) else int.from_bytes(str(p).encode(), "little") for p in parts]
    return int(np.random.SeedSequence(words).generate_state(2, np.uint64)[0] >> np.uint64(1))


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# ---------------------------------------------------------------------------------------------------
# precision, environment

def _amp_dtype(config: PretrainConfig, model: JadePretrainer, X: torch.Tensor,
               device: torch.device) -> torch.dtype | None:
    """Autocast dtype on CUDA: bf16 where supported, else fp16 (with a grad scaler); None = fp32.

    cuDNN LSTMs take bf16 only from cuDNN 9.13, so each candidate is probed with one tiny
    forward/backward and the next one is used if it fails."""
    if device.type != "cuda" or not config.mixed_precision:
        return None
    candidates = ([torch.bfloat16] if torch.cuda.is_bf16_supported() else []) + [torch.float16]
    x = X[: 2 * config.window_length].reshape(2, config.window_length, -1)
    mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=device)
    for dtype in candidates:
        try:
            with torch.autocast("cuda", dtype=dtype):
                out = model(x, mask)
            out.float().sum().backward()
            return dtype
        except RuntimeError as e:
            warnings.warn(f"mixed precision {dtype} is not usable with this LSTM ({e}); trying the next option")
        finally:
            model.zero_grad(set_to_none=True)
    return None


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    return contextlib.nullcontext() if amp_dtype is None else torch.autocast(device.type, dtype=amp_dtype)


def _environment(device: torch.device, amp_dtype, ctx: distributed.DistContext) -> dict:
    cuda = device.type == "cuda"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "precision": str(amp_dtype).replace("torch.", "") if amp_dtype is not None else "float32",
        "cpu_threads": torch.get_num_threads(),
        "world_size": ctx.world_size,
        "distributed_backend": torch.distributed.get_backend() if ctx.in_group else None,
    }


def _peak_memory(device: torch.device) -> dict:
    peak = {"host_max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device.type == "cuda":
        peak["device_max_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
    return peak


def _as_config(config) -> PretrainConfig:
    if isinstance(config, PretrainConfig):
        return config
    if isinstance(config, Mapping):
        return PretrainConfig.from_dict(config)
    raise TypeError(f"config must be a PretrainConfig or a mapping, got {type(config).__name__}")


# ---------------------------------------------------------------------------------------------------
# command line (for torchrun and scripts; the notebooks call pretrain() directly)

def main(argv: list[str] | None = None) -> dict:
    """``python -m moola_lib.pretrain RUN_DIR [-f FILE.yaml] [-y YAML] [-p NAME VALUE]...``, also under
    ``torchrun --standalone --nproc_per_node=N -m moola_lib.pretrain ...``. Parameters are PretrainConfig
    fields, given as for papermill; unknown names and wrong types fail before anything runs."""
    parser = argparse.ArgumentParser(prog="python -m moola_lib.pretrain", description=main.__doc__)
    parser.add_argument("run_dir")
    cli.add_parameter_flags(parser, what="PretrainConfig field")
    args = parser.parse_args(argv)
    config = PretrainConfig.from_dict(cli.parameters(args))
    return pretrain(config, args.run_dir)


if __name__ == "__main__":
    sys.exit(cli.run(main))
