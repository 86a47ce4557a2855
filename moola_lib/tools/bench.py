"""Throughput benchmark of the feature pipeline and the pretraining engine (and, with ``--scan``, of a fitted
classifier scanning a month of bars: ``scan_bench``).

    python -m moola_lib.bench [--quick] [--json PATH] [--device auto|cpu|cuda]
    python -m moola_lib.bench --scan [--arms ARM ...] [--threads N] [--quick] [--json PATH]

Measures, on synthetic bars:
- features_bars_per_s: relativity_features over 1.8M bars (numba compiled beforehand);
- train_windows_per_s by batch size (512 / 768 / 1024): the engine's own training pass
  (Trainer.train_epoch: shuffle, gather, mask, forward, loss, backward, clip, step, schedule) on
  ``steps`` batches of the full-size model;
- overhead_ratio: that pass's time / the time of the bare forward + backward + optimizer step on the
  very same (pre-gathered, pre-masked) batches; reported at batch 1024, and per batch size;
- peak memory; on CUDA (without --quick) also the wall time of the full seed-scale job
  (1.8M bars, 50 epochs, batch 1024) through ``pretrain``.
Timings are the best of ``repeats`` runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import resource
import tempfile
import time

import torch

from ..bars.synthetic import synthetic_ohlcv
from ..features.relativity import relativity_features
from ..pretraining.config import PretrainConfig
from ..pretraining.data import PretrainData, load_pretrain_data
from ..pretraining.devices import resolve_device
from ..pretraining.job import pretrain
from ..pretraining.trainer import Trainer
from ..transfer.arms import BY_NAME
from ..util import cli
from ..util.config import ConfigError
from ..util.io import check_writable, write_json
from . import scan_bench

BATCH_SIZES = (512, 768, 1024)
SEED_RANGE = ("2020-09-01", "2025-09-30")  # ~1.8M synthetic bars

# steps per measurement, repeats, model size, batch sizes, synthetic range
PRESETS = {
    "full": dict(steps=6, repeats=2, hidden_size=128, batch_sizes=BATCH_SIZES, range=SEED_RANGE),
    "quick": dict(steps=1, repeats=1, hidden_size=128, batch_sizes=BATCH_SIZES, range=SEED_RANGE),
    # a seconds-long smoke run for the tests: tiny model, small batches, seven weeks of bars
    "tiny": dict(
        steps=2,
        repeats=1,
        hidden_size=8,
        batch_sizes=(32, 48, 64),
        range=("2024-12-01", "2025-01-20"),
        splits={"train": ["2024-12-01", "2025-01-01"], "val": ["2025-01-01", "2025-01-21"]},
    ),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_features(start: str, end: str) -> dict:
    bars = synthetic_ohlcv(start, end)
    relativity_features(bars.iloc[:2000])  # compile the numba scan outside the timing
    t0 = time.perf_counter()
    relativity_features(bars)
    seconds = time.perf_counter() - t0
    return {"bars": len(bars), "seconds": seconds, "bars_per_s": len(bars) / seconds, "range": [start, end]}


def bench_training(data: PretrainData, config: PretrainConfig, steps: int, repeats: int, device: torch.device) -> dict:
    """Engine training pass vs bare forward/backward/step over the same ``steps`` batches."""
    n = steps * config.batch_size
    train = data.starts["train"]
    if len(train) < n:
        raise ValueError(f"benchmark needs {n} train windows, the data has {len(train)}")
    trainer = Trainer(config, dataclasses.replace(data, starts={**data.starts, "train": train[:n]}), device)
    order, g_mask = trainer.epoch_plan(1)
    batches = []
    for batch in order.split(config.batch_size):
        starts = trainer.starts["train"][batch]
        batches.append(
            (trainer.windows(trainer.X, starts), trainer.objective.draw(trainer.windows(trainer.valid, starts), g_mask))
        )

    def bare() -> float:
        trainer.model.train()
        _sync(device)
        t0 = time.perf_counter()
        for xb, mask in batches:
            loss = trainer.objective.loss(trainer.predict(xb, mask), xb, mask)
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.optimizer.step()
        _sync(device)
        return time.perf_counter() - t0

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    bare()  # warm-up: allocator, kernels, cuDNN plans
    engine_s, bare_s = [], []
    for epoch in range(1, repeats + 1):
        engine_s.append(trainer.train_epoch(epoch)["train_seconds"])
        bare_s.append(bare())
    trainer.cpu_threads.restore()
    row = {
        "batch_size": config.batch_size,
        "steps": steps,
        "windows": n,
        "engine_seconds": min(engine_s),
        "bare_seconds": min(bare_s),
        "windows_per_s": n / min(engine_s),
        "bare_windows_per_s": n / min(bare_s),
        "overhead_ratio": min(engine_s) / min(bare_s),
        "precision": str(trainer.amp_dtype or torch.float32).replace("torch.", ""),
    }
    if device.type == "cuda":
        row["peak_device_bytes"] = torch.cuda.max_memory_allocated(device)
    return row


def bench_full_job(device: torch.device) -> dict:
    """The seed-guide job: 1.8M synthetic bars, 50 epochs, batch 1024, through pretrain()."""
    config = PretrainConfig(device=device.type, progress=False)
    with tempfile.TemporaryDirectory() as run_dir:
        t0 = time.perf_counter()
        results = pretrain(config, run_dir)
        wall = time.perf_counter() - t0
    return {
        "wall_seconds": wall,
        "epochs": results["epochs_completed"],
        "batch_size": config.batch_size,
        "train_windows": results["data"]["splits"]["train"]["windows"],
        "bars": results["data"]["bars"],
        "best_val_loss": results["best_val_loss"],
        "test_loss": (results["test"] or {}).get("loss"),
        "interpolation_val_loss": results["reference_losses"]["val"]["interpolation"]["loss"],
        "precision": results["environment"]["precision"],
        "peak_memory": results["peak_memory"],
    }


def run(
    preset: str = "full",
    device: str = "auto",
    threads: int | None = None,
    full_job: bool = True,
    data: PretrainData | None = None,
) -> dict:
    """The benchmark as a dict (see the module docstring); ``full_job=False`` leaves out the 50-epoch job.
    ``data``: the preset's pretraining data when the caller has already loaded it (the GPU check does)."""
    p = PRESETS[preset]
    dev = resolve_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    features = bench_features(*p["range"])
    base = PretrainConfig(
        device=dev.type,
        hidden_size=p["hidden_size"],
        progress=False,
        warmup_epochs=0,
        synthetic_start=p["range"][0],
        synthetic_end=p["range"][1],
    )
    if "splits" in p:
        base = dataclasses.replace(base, splits=p["splits"])
    data = data if data is not None else load_pretrain_data(base)
    steps = p["steps"]
    if dev.type == "cuda" and preset == "full":  # a whole epoch of the seed-scale job per measurement
        steps = len(data.starts["train"]) // max(p["batch_sizes"])
    rows = [
        bench_training(data, dataclasses.replace(base, batch_size=bs), steps, p["repeats"], dev)
        for bs in p["batch_sizes"]
    ]
    result = {
        "preset": preset,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(),
        "model": {"hidden_size": base.hidden_size, "num_layers": base.num_layers, "window_length": base.window_length},
        "features_bars_per_s": features["bars_per_s"],
        "features": features,
        "train_windows_per_s": {str(r["batch_size"]): r["windows_per_s"] for r in rows},
        "bare_windows_per_s": {str(r["batch_size"]): r["bare_windows_per_s"] for r in rows},
        "overhead_ratio": rows[-1]["overhead_ratio"],
        "overhead_ratio_by_batch_size": {str(r["batch_size"]): r["overhead_ratio"] for r in rows},
        "training": rows,
        "peak_memory": {"host_max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024},
    }
    if dev.type == "cuda":
        result["peak_memory"]["device_max_allocated_bytes"] = max(r["peak_device_bytes"] for r in rows)
        if preset == "full" and full_job:
            result["full_job"] = bench_full_job(dev)
    return result


def format_table(r: dict) -> str:
    f = r["features"]
    lines = [
        f"moola bench ({r['preset']}) on {r['device']} [{r['device_name']}], torch {r['torch']}, "
        f"{r['cpu_threads']} CPU threads, hidden {r['model']['hidden_size']}",
        f"features: {f['bars']:,} bars in {f['seconds']:.2f} s = {f['bars_per_s']:,.0f} bars/s",
        f"{'batch':>6} {'windows':>8} {'engine win/s':>13} {'bare win/s':>11} {'overhead':>9} {'precision':>10}",
    ]
    for row in r["training"]:
        lines.append(
            f"{row['batch_size']:>6} {row['windows']:>8} {row['windows_per_s']:>13,.0f} "
            f"{row['bare_windows_per_s']:>11,.0f} {row['overhead_ratio']:>9.3f} {row['precision']:>10}"
        )
    mem = ", ".join(f"{k} {v / 2**20:,.0f} MiB" for k, v in r["peak_memory"].items())
    lines.append(f"peak memory: {mem}")
    if "full_job" in r:
        j = r["full_job"]
        lines.append(
            f"full job: {j['bars']:,} bars, {j['train_windows']:,} train windows, {j['epochs']} epochs, "
            f"batch {j['batch_size']}: {j['wall_seconds']:.1f} s wall, best val {j['best_val_loss']:.4f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """The command line (``cli.run`` turns its expected errors into one line and exit status 2); checks
    its options and the --json path before the minutes of work."""
    parser = cli.ArgumentParser(prog="python -m moola_lib.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, no full job (~1 min on 2 CPU cores)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; --scan: 1)")
    parser.add_argument("--scan", action="store_true", help="a fitted classifier scanning a month of bars, per arm")
    parser.add_argument(
        "--arms", nargs="+", choices=list(BY_NAME), metavar="ARM", help=f"--scan: default {' '.join(scan_bench.ARMS)}"
    )
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # seconds-long smoke test
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads takes a count >= 1, got {args.threads}")
    if args.json:
        check_writable(args.json)
    preset = "tiny" if args.tiny else "quick" if args.quick else "full"
    if args.scan:
        result = scan_bench.run(preset, args.arms, args.threads or 1)
        print(scan_bench.format_table(result))
    else:
        result = run(preset, args.device, args.threads)
        print(format_table(result))
    if args.json:
        write_json(args.json, result)
    return result
