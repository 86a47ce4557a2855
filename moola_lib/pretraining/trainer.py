"""The training engine of pretraining: model, optimiser, lr schedule and device-resident data of one job
(DESIGN.md section 4).

The whole feature array lives on the device; a batch is an index gather of window starts, its hidden
steps are drawn on the device by the job's pretext objective (``moola_lib.pretraining.objectives``), and nothing per
sample runs in Python. One epoch (``Trainer.train_epoch``):

    shuffle the train windows (this rank's shard under torchrun) -> draw the epoch's hidden steps -> for
    each batch: gather, forward under autocast, the objective's loss, backward, clip, AdamW step, per-step
    lr schedule

Every epoch reseeds its shuffle, masks and dropout from (seed, epoch), so a run resumed from its last
checkpoint continues exactly as if it had never stopped. The validation and test masks are drawn once,
on the CPU, from their own fixed seed (EVAL_MASK_SEED): they do not depend on ``seed`` or the device,
so val losses compare across epochs, runs, seeds and machines. ``Trainer.evaluate`` scores the model, or
any predictor (the objective's references), on those masks.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from ..bars.windows import gather_windows
from ..util.config import ConfigError
from ..util.threads import CpuThreads
from . import distributed
from .checkpoints import encoder_state
from .config import PretrainConfig
from .data import PretrainData
from .model import JadePretrainer
from .objectives import make_objective

EVAL_SPLITS = ("val", "test")
EVAL_MASK_SEED = 20_261_125  # the fixed masks of the eval splits: independent of config.seed and the device


class Trainer:
    """Model, optimiser, lr schedule and device-resident data of one pretraining job."""

    def __init__(
        self,
        config: PretrainConfig,
        data: PretrainData,
        device: torch.device,
        ctx: distributed.DistContext | None = None,
    ):
        self.config, self.device = config, device
        self.ctx = ctx or distributed.DistContext()
        self.cpu_threads = CpuThreads(device)  # re-decided before each epoch from the load of other processes
        self.objective = make_objective(config)
        self.X = torch.from_numpy(data.X).to(device)
        self.valid = torch.from_numpy(data.valid).to(device)
        self.starts = {name: torch.from_numpy(s).to(device) for name, s in data.starts.items()}
        self.eval_masks = self.fixed_eval_masks(data)

        torch.manual_seed(config.seed)
        self.model = JadePretrainer(
            input_size=config.input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout,
        ).to(device)
        self.model.encoder.feature_options = dict(config.feature_options)  # stored with every encoder
        self.model.encoder.objective = config.objective
        self.amp_dtype = amp_dtype(config, self.model, self.X, device)
        self.train_model = self.model
        if self.ctx.active:
            ids = [device.index] if device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=device.type == "cuda"
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)

        n_train = len(self.starts["train"])
        self.per_rank = n_train // self.ctx.world_size
        if self.per_rank == 0:
            raise ValueError(f"{n_train} train windows cannot be shared by {self.ctx.world_size} processes")
        self.steps_per_epoch = math.ceil(self.per_rank / config.batch_size)
        warmup_steps = config.warmup_epochs * self.steps_per_epoch
        self.total_steps = config.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, warmup_steps, self.total_steps)
        )

    def fixed_eval_masks(self, data: PretrainData) -> dict[str, torch.Tensor]:
        """The val/test masks, drawn on the CPU from EVAL_MASK_SEED (a CPU generator gives the same
        numbers on every machine; a CUDA one would not) and moved to the device: the same every epoch,
        run, seed, device and world size."""
        valid, masks = torch.from_numpy(data.valid), {}
        for name in EVAL_SPLITS:
            if name in data.starts and len(data.starts[name]):
                g = torch.Generator().manual_seed(_seed(EVAL_MASK_SEED, "eval", name))
                mask = self.objective.draw(self.windows(valid, torch.from_numpy(data.starts[name])), g)
                masks[name] = mask.to(self.device)
        return masks

    def windows(self, series: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        return gather_windows(series, starts, self.config.window_length)

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
        threads = self.cpu_threads.adapt()
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
            raise FloatingPointError(
                f"non-finite training loss at epoch {epoch}, step {int(first_bad)} of {self.steps_per_epoch}"
            )
        record = {
            "train_loss": (sums[0] / sums[1].clamp_min(1)).item(),
            "lr": lr,
            "train_seconds": seconds,
            "windows_per_s": self.per_rank * self.ctx.world_size / seconds,
        }
        if self.device.type == "cpu":  # what the thread policy chose for this epoch (util/threads.py)
            record["cpu_threads"] = threads
        return record

    def run_steps(self, order: torch.Tensor, g_mask: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
        """The epoch's optimisation steps over the train windows ``order`` indexes, without a host-device
        sync (the GPU check runs this under ``torch.cuda.set_sync_debug_mode("error")``; the one sync
        left is cuDNN reseeding its dropout state at the epoch's first step, after ``epoch_plan``).

        The masks of all the epoch's windows are drawn at once and the per-step bookkeeping is
        deferred to the end: on a GPU the loop is bound by kernel launches at batch 1024, so every
        launch saved per step counts. Returns the device tensors (loss x masked steps, masked steps)
        and the first non-finite step (steps + 1 if none), and the lr of the last step."""
        c = self.config
        starts = self.starts["train"][order]
        masks = self.objective.draw(self.windows(self.valid, starts), g_mask)
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
        with autocast(self.device, self.amp_dtype):
            pred = self.train_model(xb, mask)
        loss = self.objective.loss(pred, xb, mask)
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
        with autocast(self.device, self.amp_dtype):
            return self.model(xb, mask)

    @torch.no_grad()
    def evaluate(self, split: str, predict: Callable | None = None) -> dict:
        """The objective's metrics (loss, MAE, per-feature losses) of ``predict(x, hidden)`` (default: the
        model, eval mode) on the split's fixed masks; each rank takes a shard, the sums are all-reduced."""
        starts, masks = self.starts[split], self.eval_masks[split]
        if predict is None:
            self.model.eval()
            predict = self.predict
        sums = torch.zeros(self.X.shape[1] + 2, dtype=torch.float64, device=self.device)
        mine = torch.arange(self.ctx.rank, len(starts), self.ctx.world_size, device=self.device)
        for chunk in mine.split(self.config.batch_size):
            xb, mb = self.windows(self.X, starts[chunk]), masks[chunk]
            sums += self.objective.eval_sums(predict(xb, mb), xb, mb)
        self.ctx.all_reduce(sums)
        return {**self.objective.metrics(sums), "windows": len(starts)}

    def state_dict(self) -> dict:
        return {
            "encoder": encoder_state(self.model.encoder),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(self.device),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        # the optimizer state may come from another device (a CPU run resumed on a GPU or back): take this
        # device's choice of fused AdamW, so load_state_dict also moves the step counters where fused wants them
        optimizer = dict(state["optimizer"])
        optimizer["param_groups"] = [
            {**group, "fused": self.optimizer.defaults["fused"]} for group in optimizer["param_groups"]
        ]
        self.optimizer.load_state_dict(optimizer)
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], self.device)


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """lr multiplier for optimizer step ``step`` (0-based): linear warm-up from 1/warmup_steps to 1
    over the first warmup_steps steps, then cosine decay to 0 at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


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


def amp_dtype(
    config: PretrainConfig, model: JadePretrainer, X: torch.Tensor, device: torch.device
) -> torch.dtype | None:
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
            warnings.warn(
                f"mixed precision {dtype} is not usable with this LSTM ({e}); trying the next option", stacklevel=2
            )
        finally:
            model.zero_grad(set_to_none=True)
    return None


def autocast(device: torch.device, amp_dtype: torch.dtype | None):
    return contextlib.nullcontext() if amp_dtype is None else torch.autocast(device.type, dtype=amp_dtype)


def training_memory_bytes(config: PretrainConfig) -> int:
    """A rough estimate of the memory one training step takes: float32 weights, gradients and AdamW's two
    moments, and what the LSTM keeps for the backward pass, ~16 floats per hidden unit, step and layer
    (calibrated on the measured peaks: batch 1024 ~2 GB, 4096 ~7 GB at hidden_size 128, two layers)."""
    h, layers = config.hidden_size, config.num_layers
    inputs = [config.input_size] + [h] * (layers - 1)
    weights = sum(4 * h * (i + h + 2) for i in inputs) + h * config.input_size  # the LSTM layers + the head
    return 4 * 4 * weights + 4 * 16 * config.batch_size * config.window_length * layers * h


def check_memory(config: PretrainConfig, device: torch.device) -> None:
    """ConfigError, before any work, when ``training_memory_bytes`` exceeds all of the device's memory (the
    GPU's, or the machine's on the CPU): such a job would end in an out-of-memory error (or be killed)."""
    need = training_memory_bytes(config)
    if device.type == "cuda":
        have, where = torch.cuda.get_device_properties(device).total_memory, torch.cuda.get_device_name(device)
    else:
        have, where = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's memory"
    if need > have:
        raise ConfigError(
            f"batch_size {config.batch_size} with hidden_size {config.hidden_size}, num_layers "
            f"{config.num_layers} and window_length {config.window_length} needs about {need / 2**30:,.1f} GiB "
            f"to train, more than the {have / 2**30:,.1f} GiB of {where}; lower batch_size or hidden_size"
        )
