"""Parameter sweeps of pretraining: pretrain.ipynb once per setting, each in its own process and run dir.

``grid`` maps pretrain parameter names to lists of values; every combination is one setting. Each
setting runs ``python -m moola_lib.run_notebook pretrain`` in a subprocess (so it gets a fresh kernel,
its own run directory and report). With several CUDA GPUs the settings run in parallel, one per GPU
(``CUDA_VISIBLE_DEVICES`` per worker); otherwise one after another. A failed setting is recorded with
its error and the others go on.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import math
import os
import queue
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from ..bars.sources import READ_OPTIONS
from ..util.config import ConfigError, check_names
from ..util.io import read_json, write_json
from ..util.paths import resolve_path
from ..util.progress import progress_bar
from .params import PretrainParams, SweepParams

SHARED = ("data_path", *READ_OPTIONS, "seed", "device")  # sweep parameters handed to every setting
_NOT_SWEPT = ("run_dir", "overwrite")


def _check_pretrain_names(names, what: str) -> None:
    valid = [f.name for f in dataclasses.fields(PretrainParams) if f.name not in _NOT_SWEPT]
    check_names(names, valid, what, noun="pretrain parameter")


def sweep_settings(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, in order (the last name varies fastest)."""
    _check_pretrain_names(grid, "sweep grid")
    for name, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"sweep grid: {name!r} needs a non-empty list of values, got {values!r}")
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]


def sweep_base(params: SweepParams) -> dict:
    """The pretrain parameters every setting shares: data_path and how it is read, seed, device, then
    ``params.base``."""
    _check_pretrain_names(params.base, "sweep base")
    clash = [k for k in SHARED if k in params.base]
    if clash:
        raise ConfigError(f"sweep base: set {', '.join(clash)} as sweep parameters, not inside base")
    swept = [k for k in params.grid if k in params.base]
    if swept:
        raise ConfigError(f"sweep base: {', '.join(swept)} is swept by the grid; remove it from base")
    return {**{k: getattr(params, k) for k in SHARED}, **params.base}


def setting_name(setting: dict) -> str:
    """A directory-safe name such as ``batch_size-512`` or ``batch_size-512_lr-0.001``."""
    return "_".join(f"{k}-{re.sub(r'[^A-Za-z0-9.+-]+', '', str(v)) or 'x'}" for k, v in setting.items())


def sweep_devices(device: str, parallel: bool = True) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES values, one per worker; [None] (one worker, environment unchanged) on CPU."""
    if not parallel or device == "cpu":
        return [None]
    import torch

    n = torch.cuda.device_count()
    if n < 2:
        return [None]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s.strip() for s in visible.split(",")] if visible else [str(i) for i in range(n)]
    return ids[:n]


def run_setting(setting: dict, base: dict, run_dir: Path, log_path: Path, gpu: str | None = None) -> dict:
    """Execute pretrain.ipynb for one setting in a subprocess; return its summary row."""
    params = {**base, **setting}
    cmd = [
        sys.executable,
        "-m",
        "moola_lib.run_notebook",
        "pretrain",
        "--no-progress",
        "--log-output",
        "-y",
        yaml.safe_dump(params),
        "--run-dir",
        str(run_dir),
    ]
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    row = {
        "name": setting_name(setting),
        **setting,
        "status": "finished" if proc.returncode == 0 else "failed",
        "error": None,
        "gpu": gpu,
        "wall_s": time.perf_counter() - t0,
        "run_dir": str(run_dir),
        "log": str(log_path),
    }
    if proc.returncode != 0:
        row["error"] = _failure(run_dir, log_path)
        return row
    row.update(result_summary(read_json(run_dir / "training_results.json")))
    return row


def run_sweep(
    grid: dict,
    base: dict,
    sweep_dir: str | os.PathLike,
    *,
    device: str = "auto",
    parallel: bool = True,
    progress: bool = True,
) -> list[dict]:
    """Run every setting of ``grid``; return one summary row per setting (in grid order), also written
    to ``sweep_dir/sweep_results.json``."""
    settings = sweep_settings(grid)
    sweep_dir = Path(sweep_dir)
    devices = sweep_devices(device, parallel)
    free: queue.Queue = queue.Queue()
    for d in devices:
        free.put(d)

    def work(setting):
        gpu = free.get()
        try:
            name = setting_name(setting)
            return run_setting(setting, base, sweep_dir / name, sweep_dir / "logs" / f"{name}.log", gpu)
        finally:
            free.put(gpu)

    rows = [None] * len(settings)
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=len(devices)) as pool,
        progress_bar(total=len(settings), desc="settings", unit="run", disable=not progress) as bar,
    ):
        futures = {pool.submit(work, s): i for i, s in enumerate(settings)}
        for future in concurrent.futures.as_completed(futures):
            row = rows[futures[future]] = future.result()
            bar.update()
            bar.write(_one_line(row))
    write_json(sweep_dir / "sweep_results.json", rows)
    return rows


def result_summary(results: dict) -> dict:
    """The comparison columns from a training_results.json."""
    history = results["history"]
    peak = results["peak_memory"]
    device_peak = peak.get("device_max_allocated_bytes")
    return {
        "best_val_loss": results["best_val_loss"],
        "best_epoch": results["best_epoch"],
        "epochs": len(history),
        "train_s": round(sum(h["train_seconds"] for h in history), 1),
        "total_s": results["total_seconds"],
        "windows_per_s": float(np.median([h["windows_per_s"] for h in history])),
        "peak_memory_mb": round((device_peak if device_peak is not None else peak["host_max_rss_bytes"]) / 2**20),
        "peak_memory_of": "gpu" if device_peak is not None else "host rss",
        "history": history,
    }


def settings_table(rows: list[dict]):
    """One row per setting: status, best val loss, time, throughput, peak memory, error."""
    import pandas as pd

    columns = [
        "status",
        "best_val_loss",
        "best_epoch",
        "epochs",
        "train_s",
        "total_s",
        "windows_per_s",
        "peak_memory_mb",
        "peak_memory_of",
        "error",
    ]
    frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], index=[r["name"] for r in rows])
    frame.index.name = "setting"
    return frame.astype({"best_epoch": "Int64", "epochs": "Int64"})  # integers, blank where failed


def best_row(rows: list[dict]) -> dict | None:
    """The finished setting with the lowest best_val_loss (None if none finished)."""
    done = [
        r
        for r in rows
        if r["status"] == "finished" and r.get("best_val_loss") is not None and math.isfinite(r["best_val_loss"])
    ]
    return min(done, key=lambda r: r["best_val_loss"]) if done else None


def export_best_encoder(row: dict, path: str | os.PathLike) -> Path:
    """Copy the best setting's encoder (from its checkpoint_best.pt) to ``path``, atomically."""
    from ..pretraining.checkpoints import load_encoder, save_encoder

    path = resolve_path(path)
    checkpoint = Path(row["run_dir"]) / "checkpoint_best.pt"
    encoder = load_encoder(checkpoint, hidden_size=None, num_layers=None)
    save_encoder(encoder, path, source=str(checkpoint), setting=row["name"], best_val_loss=float(row["best_val_loss"]))
    return path


def _failure(run_dir: Path, log_path: Path) -> str:
    """The error of a failed setting: from its manifest, else the last line of its log."""
    manifest = run_dir / "manifest.json"
    if manifest.exists():
        error = read_json(manifest).get("error")
        if error:
            return error
    lines = [ln for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "failed without output"


def _one_line(row: dict) -> str:
    if row["status"] != "finished":
        return f"{row['name']}: FAILED ({row['error']})"
    return f"{row['name']}: best val loss {row['best_val_loss']:.4f} in {row['wall_s']:.0f} s"
