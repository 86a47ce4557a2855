"""A pretraining job, from a config to a run directory (DESIGN.md section 4), and its command line.

``pretrain(config, run_dir, data=None)`` claims the run directory (``rundir``: one writer per directory),
checks what it would resume from (``checkpoints``), loads the data once (``pretrain_data``; or takes the
data the caller already loaded), trains epoch by epoch with the engine (``trainer.Trainer``: the job's
pretext objective, ``objectives``), writes checkpoint_best.pt (when the val loss improved) and
checkpoint_last.pt after every epoch, then the epoch's feedback (``feedback``: a line of progress.jsonl,
TensorBoard's scalars in tb/, the caller's ``on_epoch``), and finally training_results.json: the best
checkpoint evaluated on val and test next to the objective's reference predictors on the same masks (for
"masked": the training mean and linear interpolation between unmasked neighbours; for "forecast": the
training mean and persistence) and a third, per feature the better of them; every loss is also given per
feature (``per_feature_losses``). The command line prints one line per epoch.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..features.relativity import FEATURE_NAMES
from ..util import cli
from ..util.io import write_json
from ..util.progress import progress_bar
from ..util.rundir import run_dir_claim
from . import distributed
from .checkpoints import BEST, LAST, RESULTS, load_checkpoint, load_pretrainer, resume_checkpoint, save_checkpoints
from .config import PretrainConfig
from .data import PretrainData, as_config, check_data_matches, load_pretrain_data
from .feedback import PROGRESS_FILE, JobFeedback, print_epoch
from .trainer import Trainer, check_memory

__all__ = ["load_pretrain_data", "load_pretrainer", "main", "pretrain"]

RESULTS_FORMAT = "moola.training_results.v1"
BETTER = "better_reference"  # per feature the better of the objective's references


def pretrain(config: PretrainConfig | Mapping, run_dir, data: PretrainData | None = None, *, on_epoch=None) -> dict:
    """Run a pretraining job; write checkpoints and training_results.json into run_dir (rank 0 under
    torchrun) and return the results dict. ``data``: what ``load_pretrain_data(config)`` returns, when
    the caller has it already (it is checked to come from the same data fields); None loads it.
    ``on_epoch(record)``: called on rank 0 after every epoch with its line of progress.jsonl."""
    config = as_config(config)
    run_dir = Path(os.path.abspath(run_dir))  # q/../y: y, written through no folder q that may not exist
    if data is not None:
        check_data_matches(data, config)
    ctx, device = distributed.setup(config.device)  # a device that is not there: ConfigError, nothing done
    try:
        check_memory(config, device)  # a job that cannot fit: ConfigError now, not out of memory later
        with run_dir_claim(run_dir, enabled=ctx.is_main):  # one writer; refused before any work
            return _pretrain(config, run_dir, ctx, device, data, on_epoch)
    finally:
        distributed.teardown(ctx)


def _pretrain(
    config: PretrainConfig,
    run_dir: Path,
    ctx: distributed.DistContext,
    device: torch.device,
    data: PretrainData | None,
    on_epoch,
) -> dict:
    t_start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    resumed = resume_checkpoint(config, run_dir)
    ctx.barrier()  # every rank has looked at run_dir before rank 0 writes into it
    data = data if data is not None else load_pretrain_data(config)
    trainer = Trainer(config, data, device, ctx)
    progress = _Progress.start(trainer, resumed, t_start, data.summary["source"])
    feedback = JobFeedback.open(run_dir, config, progress.start_epoch, main=ctx.is_main, on_epoch=on_epoch)
    try:
        _train_epochs(trainer, progress, run_dir, feedback)
        ctx.barrier()  # rank 0 has written the checkpoints
        results = _final_results(trainer, data, progress, run_dir)
        results.update(feedback.finish(results))
    finally:
        feedback.close()
        trainer.cpu_threads.restore()  # the caller's thread count back, as the job found it
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
    elapsed_before: float = 0.0  # seconds spent before this process (resumed runs)
    t_start: float = 0.0  # perf_counter() when this process started the job
    start_epoch: int = 0  # epochs completed when this process started
    data_source: dict = field(default_factory=dict)  # sources.bars_source: resume checks the file's SHA-256

    @classmethod
    def start(cls, trainer: Trainer, resumed: dict | None, t_start: float, data_source: dict) -> _Progress:
        if resumed is None:
            return cls([], t_start=t_start, data_source=data_source)
        trainer.load_state_dict(resumed)
        return cls(
            list(resumed["history"]),
            resumed["best_val_loss"],
            resumed["best_epoch"],
            resumed["epochs_since_best"],
            resumed["finished"],
            resumed["elapsed_seconds"],
            t_start,
            len(resumed["history"]),
            data_source,
        )

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

    def epoch_record(self, row: dict, epochs: int) -> dict:
        """``row`` (an epoch's history row) with where the job stands: progress.jsonl's line."""
        mine = [h["seconds"] for h in self.history[self.start_epoch :]]  # this process's epochs: this machine's pace
        left = 0.0 if self.finished else (epochs - len(self.history)) * sum(mine) / len(mine)
        return {
            **row,
            "epochs": epochs,
            "best_val_loss": self.best_val,
            "best_epoch": self.best_epoch,
            "elapsed_seconds": round(self.elapsed(), 3),
            "eta_seconds": round(left, 1),
            "finished": self.finished,
        }

    def checkpoint_fields(self) -> dict:
        return {
            "history": self.history,
            "best_val_loss": self.best_val,
            "best_epoch": self.best_epoch,
            "epochs_since_best": self.since_best,
            "finished": self.finished,
            "elapsed_seconds": self.elapsed(),
            "data_source": self.data_source,
        }


def _train_epochs(trainer: Trainer, progress: _Progress, run_dir: Path, feedback: JobFeedback) -> None:
    """Train until the last epoch or early stopping; a progress bar on rank 0 and each epoch's feedback."""
    config = trainer.config
    bar = progress_bar(
        total=config.epochs,
        initial=progress.start_epoch,
        desc="pretrain",
        unit="epoch",
        dynamic_ncols=True,
        disable=not (config.progress and trainer.ctx.is_main),
    )
    for epoch in range(progress.start_epoch + 1, config.epochs + 1):  # 1-based epochs
        if progress.finished:
            break
        row = _run_epoch(trainer, progress, epoch, run_dir)
        feedback.epoch(progress.epoch_record(row, config.epochs))
        bar.set_postfix(
            train=f"{row['train_loss']:.4f}",
            val=f"{row['val_loss']:.4f}",
            win_s=f"{row['windows_per_s']:.0f}",
            refresh=False,
        )
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
    row = {
        "epoch": epoch,
        "train_loss": stats["train_loss"],
        "val_loss": val["loss"],
        "val_mae": val["mae"],
        "lr": stats["lr"],
        "seconds": round(time.perf_counter() - t0, 4),
        "train_seconds": round(stats["train_seconds"], 4),
        "windows_per_s": round(stats["windows_per_s"], 1),
        **({"cpu_threads": stats["cpu_threads"]} if "cpu_threads" in stats else {}),
    }
    progress.history.append(row)
    if trainer.ctx.is_main:
        save_checkpoints(
            {"epoch": epoch, **trainer.state_dict(), "config": config.to_dict(), **progress.checkpoint_fields()},
            run_dir,
            improved,
        )
    return row


def _final_results(trainer: Trainer, data: PretrainData, progress: _Progress, run_dir: Path) -> dict:
    """The content of training_results.json: the best checkpoint on val and test, next to the reference
    predictors on the same masks, the history, config, data summary, environment and costs."""
    config, device, history = trainer.config, trainer.device, progress.history
    trainer.model.load_state_dict(load_checkpoint(run_dir / BEST, device)["model"])
    model = {name: trainer.evaluate(name) for name in trainer.eval_masks}  # the best checkpoint, once
    stopped_early = len(history) < config.epochs
    return {
        "format": RESULTS_FORMAT,
        "best_val_loss": progress.best_val,
        "best_epoch": progress.best_epoch,
        "best_val_mae": history[progress.best_epoch - 1]["val_mae"],
        "test": model.get("test"),
        "objective": config.objective,
        "reference_titles": {**trainer.objective.reference_titles, BETTER: "per feature the better reference"},
        **_reference_results(trainer, data, model),
        "epochs_completed": len(history),
        "stopped_early": stopped_early,
        "stop_reason": (
            f"no val improvement for {config.patience} epochs" if stopped_early else "completed all epochs"
        ),
        "resumed_from_epoch": progress.start_epoch or None,  # a checkpoint holds >= 1 epoch
        "history": history,
        "config": config.to_dict(),
        "data": data.summary,
        "environment": _environment(device, trainer.amp_dtype, trainer.ctx),
        "total_seconds": round(progress.elapsed(), 3),
        "peak_memory": _peak_memory(device),
        "files": {"best": BEST, "last": LAST, "progress": PROGRESS_FILE},
    }


def _reference_results(trainer: Trainer, data: PretrainData, model: dict) -> dict:
    """``reference_losses`` (per split: each reference predictor of the objective, e.g. predicting the
    per-feature train mean, and per feature the better of them) and ``per_feature_losses`` (per split and
    feature: the best model's loss, ``model[split]`` from ``Trainer.evaluate``, next to the references)."""
    X, valid, train_bars = trainer.X, trainer.valid, data.slices["train"]
    predictors = trainer.objective.reference_predictors(X[train_bars][valid[train_bars]].mean(dim=0))
    references, per_feature = {}, {}
    for name in trainer.eval_masks:
        refs = {key: trainer.evaluate(name, predict) for key, predict in predictors.items()}
        better = {f: min(refs[key]["per_feature"][f] for key in predictors) for f in FEATURE_NAMES}
        refs[BETTER] = {"loss": float(np.mean(list(better.values()))), "per_feature": better}
        references[name] = refs
        per_feature[name] = {
            f: {"model": model[name]["per_feature"][f], **{key: ref["per_feature"][f] for key, ref in refs.items()}}
            for f in FEATURE_NAMES
        }
    return {"reference_losses": references, "per_feature_losses": per_feature}


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


# ---------------------------------------------------------------------------------------------------
# command line (for torchrun and scripts; the notebooks call pretrain() directly)


def main(argv: list[str] | None = None) -> dict:
    """``python -m moola_lib.pretrain RUN_DIR [-f FILE.yaml] [-y YAML] [-p NAME VALUE]...``, also under
    ``torchrun --standalone --nproc_per_node=N -m moola_lib.pretrain ...``. Parameters are PretrainConfig
    fields, given as for papermill; unknown names and wrong types fail before anything runs. Each epoch
    is one line on stderr (rank 0; none with ``-p progress False``)."""
    parser = cli.ArgumentParser(prog="python -m moola_lib.pretrain", description=main.__doc__)
    parser.add_argument("run_dir")
    cli.add_parameter_flags(parser, what="PretrainConfig field")
    args = parser.parse_args(argv)
    config = PretrainConfig.from_dict(cli.parameters(args))
    # lines instead of a bar: a terminal and a log file (nohup, torchrun's output) both keep lines, while a
    # bar's carriage-return updates become one garbled line in a file
    lines = print_epoch if config.progress else None
    return pretrain(dataclasses.replace(config, progress=False), args.run_dir, on_epoch=lines)
