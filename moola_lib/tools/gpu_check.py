"""The prepared GPU check: prove the CUDA path and measure the real job in a few minutes.

An entry module (like run_notebook): it drives the pipeline and the transfer protocol.

    bin/dev gpu-check [OUT_DIR]        (= python -m moola_lib.gpu_check [OUT_DIR] [--dry-run] [--budget S])

Writes OUT_DIR/gpu_check.json (rewritten after every step, so a killed check keeps what it finished),
OUT_DIR/gpu_check.log, OUT_DIR/cuda_tests.xml and the step results below. Steps, in order:

1. environment: GPU, driver, torch / CUDA / cuDNN versions, bf16 support;
2. cuda_tests: ``pytest -m cuda tests/pretraining/test_cuda.py`` in a subprocess (autocast dtype, CPU-vs-CUDA loss,
   resume, checkpoints across devices, DDP over nccl, fused AdamW, no host sync in the training steps);
3. benchmark: the engine per batch size over whole epochs of the seed-scale data, overhead against the
   bare forward/backward/step, precision and batch-size variants, and a profiler table of one stretch
   of training steps (where the GPU time goes, and how busy the GPU is);
4. seed_job: the guide's job through ``pretrain()`` -- 1.8M bars, 50 epochs, batch 1024 -- wall time with
   the features included, best val loss against the reference predictors (seed_training_results.json);
5. transfer: the transfer protocol at the settings of params/transfer_full.yaml with the step-4 encoder on
   the embedded labelled set, in a subprocess that gets whatever is left of the time budget; reported,
   never blocking (transfer_results.json).

Steps 2 and 5 run in child processes; they and ``child_env`` live in ``tools.gpu_subprocesses``.

A failing step is logged with its traceback and the next one runs; the exit status is 0 when steps 1-4
passed. The terminal gets a few lines only (``gpu_check_summary``: each step's status with its headline
figure, then where the files are); gpu_check.log holds everything the check logs. Without a GPU (or with
--dry-run) every step runs at toy scale on the CPU (README.md states the measured time): the test suite
runs that dry run, so the check cannot rot between the sessions that have a GPU.
The check needs only the pipeline's own dependencies and pytest: no papermill, nbconvert or ipykernel.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from ..pretraining.config import PretrainConfig
from ..pretraining.data import PretrainData, load_pretrain_data
from ..pretraining.job import pretrain
from ..pretraining.trainer import Trainer
from ..util import cli
from ..util.config import ConfigError
from ..util.io import check_writable, write_json
from . import bench
from .gpu_check_summary import closing_lines, step_line
from .gpu_subprocesses import REPO, cuda_tests, run_transfer_protocol, transfer

GOALS = {"seed_job_seconds": 30.0, "overhead_ratio": 1.10}
# toy scale for the CPU dry run: seven weeks of bars, a tiny model, one epoch
DRY_PRETRAIN = dict(
    synthetic_start="2024-12-01",
    synthetic_end="2025-01-20",
    stride=105,
    hidden_size=8,
    epochs=1,
    batch_size=32,
    warmup_epochs=0,
    device="cpu",
    progress=False,
    splits={"train": ["2024-12-01", "2025-01-01"], "val": ["2025-01-01", "2025-01-21"]},
)

log = logging.getLogger("moola.gpu_check")
TERMINAL = {"terminal": True}  # ``extra`` of the log records the terminal shows too (the log file has all)


class Check:
    """Runs named steps, records each one's status, seconds and figures, and keeps the JSON current."""

    def __init__(self, out_dir: Path, dry: bool, budget_s: float):
        self.out, self.dry, self.deadline = out_dir, dry, time.monotonic() + budget_s
        self.summary = {
            "format": "moola.gpu_check.v1",
            "dry_run": dry,
            "budget_seconds": budget_s,
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "goals": GOALS,
            "steps": {},
        }

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def step(self, name: str, fn: Callable[[], dict]) -> dict | None:
        log.info("== %s (%.0f s of the budget left)", name, self.left())
        t0 = time.perf_counter()
        try:
            figures, status = fn(), "ok"
        except Exception as e:  # a failed step is recorded and the next one runs
            figures, status = {"error": f"{type(e).__name__}: {e}"}, "failed"
            log.error("%s failed:\n%s", name, traceback.format_exc())
        if isinstance(figures, dict) and figures.pop("_status", None) == "failed":
            status = "failed"
        seconds = round(time.perf_counter() - t0, 2)
        self.summary["steps"][name] = {"status": status, "seconds": seconds, **figures}
        log.info("-- %s: %s in %.1f s", name, status, seconds)
        log.info("%s", step_line(name, self.summary["steps"][name]), extra=TERMINAL)
        write_json(self.out / "gpu_check.json", self.summary)
        return figures if status == "ok" else None


# ---------------------------------------------------------------------------------------------------
# 1. environment


def environment() -> dict:
    cuda = torch.cuda.is_available()
    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cpu_count": os.cpu_count(),
        "gpu": None,
    }
    if cuda:
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "count": torch.cuda.device_count(),
            "bf16_supported": torch.cuda.is_bf16_supported(),
            "driver": _driver_version(),
        }
    for module in ("numba", "numpy", "pandas", "sklearn", "scipy"):
        try:
            env[module] = __import__(module).__version__
        except ImportError:
            env[module] = None
    log.info("environment: %s", env)
    return env


def _driver_version() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


# ---------------------------------------------------------------------------------------------------
# 3. benchmark


def benchmark(dry: bool, loaded: dict) -> dict:
    """The throughput benchmark; the seed-scale data it loads is left in ``loaded["data"]`` for the seed job."""
    if dry:
        return bench.run("tiny", "cpu", threads=1, full_job=False)
    base = PretrainConfig(device="cuda", progress=False, warmup_epochs=0)  # = the bench's full preset
    data = loaded["data"] = load_pretrain_data(base)
    result = bench.run("full", "cuda", full_job=False, data=data)
    log.info("benchmark:\n%s", bench.format_table(result))
    steps = len(data.starts["train"]) // 4096
    variants = {
        "fp32 (tf32) batch 1024": dict(batch_size=1024, mixed_precision=False),
        "amp batch 2048": dict(batch_size=2048),
        "amp batch 4096": dict(batch_size=4096),
    }
    result["variants"] = {}
    for name, change in variants.items():
        row = bench.bench_training(
            data, dataclasses.replace(base, **change), steps * 4096 // change["batch_size"], 1, torch.device("cuda")
        )
        result["variants"][name] = row
        log.info(
            "variant %-24s %9.0f windows/s  overhead %.3f  %s",
            name,
            row["windows_per_s"],
            row["overhead_ratio"],
            row["precision"],
        )
    result["profile"] = profile_steps(data, dataclasses.replace(base, batch_size=1024))
    return result


def profile_steps(data, config: PretrainConfig, steps: int = 12) -> dict:
    """torch.profiler over ``steps`` training steps: the top kernels, and GPU busy time / wall time."""
    from torch.profiler import ProfilerActivity, profile

    trainer = Trainer(config, data, torch.device("cuda"))
    trainer.train_epoch(1)  # warm-up
    order, g_mask = trainer.epoch_plan(2)
    order = order[: steps * config.batch_size]
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        trainer.run_steps(order, g_mask)
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    events = prof.key_averages()
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    device_us = sum(getattr(e, "self_device_time_total", 0) for e in kernels)
    sort = "self_device_time_total" if hasattr(events[0], "self_device_time_total") else "self_cuda_time_total"
    table = events.table(sort_by=sort, row_limit=15)
    log.info(
        "profile of %d steps at batch %d (%s): wall %.1f ms, GPU busy %.1f ms\n%s",
        steps,
        config.batch_size,
        trainer.amp_dtype,
        wall * 1e3,
        device_us / 1e3,
        table,
    )
    return {
        "steps": steps,
        "batch_size": config.batch_size,
        "wall_ms": wall * 1e3,
        "gpu_busy_ms": device_us / 1e3,
        "gpu_busy_fraction": device_us / 1e6 / wall,
        "ms_per_step": wall * 1e3 / steps,
    }


# ---------------------------------------------------------------------------------------------------
# 4. the seed-scale job


def seed_job(out: Path, work: Path, dry: bool, data: PretrainData | None = None) -> dict:
    """The seed guide's job through pretrain(); ``data``: its data when the benchmark loaded it already."""
    config = PretrainConfig.from_dict(DRY_PRETRAIN) if dry else PretrainConfig(device="cuda", progress=False)
    t0 = time.perf_counter()
    results = pretrain(config, work / "seed_job", data=data)
    wall = time.perf_counter() - t0
    shutil.copyfile(work / "seed_job" / "training_results.json", out / "seed_training_results.json")
    refs = results["reference_losses"]["val"]
    best_ref = min(refs["train_mean"]["loss"], refs["interpolation"]["loss"])
    hist = results["history"]
    figures = {
        "wall_seconds": round(wall, 2),
        "goal_seconds": None if dry else GOALS["seed_job_seconds"],
        "bars": results["data"]["bars"],
        "features_seconds": results["data"]["features_seconds"],
        "train_windows": results["data"]["splits"]["train"]["windows"],
        "epochs": results["epochs_completed"],
        "batch_size": config.batch_size,
        "precision": results["environment"]["precision"],
        "train_seconds": round(sum(h["train_seconds"] for h in hist), 2),
        "epoch_seconds_median": sorted(h["seconds"] for h in hist)[len(hist) // 2],
        "windows_per_s_median": sorted(h["windows_per_s"] for h in hist)[len(hist) // 2],
        "best_val_loss": results["best_val_loss"],
        "best_epoch": results["best_epoch"],
        "val_train_mean_loss": refs["train_mean"]["loss"],
        "val_interpolation_loss": refs["interpolation"]["loss"],
        "val_gain_over_best_reference": 1 - results["best_val_loss"] / best_ref,
        # per feature the better of the two references (issue 9); the per-feature table is in
        # seed_training_results.json ("per_feature_losses")
        "val_per_feature_better_reference_loss": refs["better_reference"]["loss"],
        "val_gain_over_per_feature_better_reference": 1 - results["best_val_loss"] / refs["better_reference"]["loss"],
        "test_loss": (results["test"] or {}).get("loss"),
        "peak_memory": results["peak_memory"],
        "encoder": str(work / "seed_job" / "checkpoint_best.pt"),
    }
    log.info("seed job: %s", figures)
    return figures


# ---------------------------------------------------------------------------------------------------


def run_check(out: Path, dry: bool, budget_s: float) -> dict:
    check = Check(out, dry, budget_s)
    check.step("environment", environment)
    check.step("cuda_tests", lambda: cuda_tests(out, timeout=max(60.0, min(300.0, check.left() - 150))))
    loaded = {}  # the seed-scale data: loaded by the benchmark, reused by the seed job (read once)
    check.step("benchmark", lambda: benchmark(dry, loaded))
    with tempfile.TemporaryDirectory(prefix="moola-gpu-check-") as work:
        job = check.step("seed_job", lambda: seed_job(out, Path(work), dry, loaded.get("data")))
        if job is not None:
            check.step("transfer", lambda: transfer(out, job["encoder"], dry, check.left() - 10))
    required = ("environment", "cuda_tests", "benchmark", "seed_job")
    check.summary["passed"] = all(check.summary["steps"][s]["status"] == "ok" for s in required)
    check.summary["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_json(out / "gpu_check.json", check.summary)
    return check.summary


def _setup_logging(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    log.setLevel(logging.INFO)
    log.handlers.clear()
    everything = logging.FileHandler(out / "gpu_check.log")
    everything.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    terminal = logging.StreamHandler(sys.stdout)
    terminal.addFilter(lambda record: getattr(record, "terminal", False))  # the summary lines only
    for handler in (everything, terminal):
        log.addHandler(handler)
    logging.captureWarnings(True)  # warnings (e.g. "tensorboard is not installed") into the log, not the terminal
    warned = logging.getLogger("py.warnings")
    warned.handlers[:] = [everything]
    warned.propagate = False


def main(argv: list[str] | None = None) -> int:
    """The command line (``cli.run`` turns its expected errors into one line and exit status 2): the budget
    and the output folder are checked before any step runs."""
    parser = cli.ArgumentParser(prog="bin/dev gpu-check", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", help="where the results go (default runs/gpu-check-<UTC time>)")
    parser.add_argument("--dry-run", action="store_true", help="toy scale on the CPU (the default without CUDA)")
    parser.add_argument(
        "--budget",
        type=float,
        default=450.0,
        help="seconds for the whole check; the transfer step gets what is left (default 450)",
    )
    parser.add_argument("--transfer-only", metavar="ENCODER", help=argparse.SUPPRESS)  # step 5's subprocess
    args = parser.parse_args(argv)
    if not (math.isfinite(args.budget) and args.budget > 0):
        raise ConfigError(f"--budget takes a number of seconds > 0, got {args.budget}")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = Path(args.out_dir or REPO / "runs" / f"gpu-check-{stamp}")
    check_writable(out / "gpu_check.json")  # OUT_DIR an existing file: refused now, not after the steps
    dry = args.dry_run or not torch.cuda.is_available()
    if args.transfer_only:
        figures = run_transfer_protocol(out, args.transfer_only, dry)
        print(json.dumps(figures, default=str))
        return 0
    _setup_logging(out)
    log.info("moola GPU check%s into %s", " (CPU dry run: no CUDA GPU)" if dry else "", out, extra=TERMINAL)
    summary = run_check(out, dry, args.budget)
    for line in closing_lines(summary, out):
        log.info("%s", line, extra=TERMINAL)
    return 0 if summary["passed"] else 1
