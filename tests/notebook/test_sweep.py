"""Sweep mechanics: grid, shared parameters, scheduling over GPUs, failures, best-encoder export."""

import dataclasses
import threading
import time

import pytest
import torch

from moola_lib.notebook import sweep
from moola_lib.notebook.params import SweepParams
from moola_lib.notebook.sweep import (
    best_row,
    export_best_encoder,
    run_setting,
    run_sweep,
    setting_name,
    settings_table,
    sweep_base,
    sweep_settings,
)
from moola_lib.pretraining.checkpoints import encoder_state, load_encoder
from moola_lib.pretraining.model import JadeEncoder
from moola_lib.util.config import ConfigError
from moola_lib.util.io import atomic_torch_save, read_json

# a tiny pretraining job (about 200 train windows, 8 hidden units, one epoch)
TINY = {
    "synthetic_start": "2024-12-20",
    "synthetic_end": "2025-01-10",
    "hidden_size": 8,
    "epochs": 1,
    "batch_size": 64,
    "warmup_epochs": 0,
    "device": "cpu",
    "splits": {"train": ["2024-12-20", "2025-01-01"], "val": ["2025-01-01", "2025-01-11"]},
}


def test_grid_expands_to_every_combination():
    assert sweep_settings({"batch_size": [1, 2], "lr": [0.1, 0.2]}) == [
        {"batch_size": 1, "lr": 0.1},
        {"batch_size": 1, "lr": 0.2},
        {"batch_size": 2, "lr": 0.1},
        {"batch_size": 2, "lr": 0.2},
    ]
    assert setting_name({"batch_size": 512, "lr": 0.001}) == "batch_size-512_lr-0.001"
    assert setting_name({"splits": {"a": ["2020-01-01"]}}) == "splits-a2020-01-01"


def test_grid_and_base_are_checked():
    with pytest.raises(ConfigError, match="unknown pretrain parameter 'batchsize'. Did you mean 'batch_size'"):
        sweep_settings({"batchsize": [1]})
    with pytest.raises(ConfigError, match="non-empty list"):
        sweep_settings({"batch_size": 512})
    with pytest.raises(ConfigError, match="unknown pretrain parameter"):
        sweep_base(SweepParams(base={"epoch": 2}))
    with pytest.raises(ConfigError, match="data_path"):
        sweep_base(SweepParams(base={"data_path": "x.parquet"}))
    with pytest.raises(ConfigError, match="swept by the grid"):
        sweep_base(SweepParams(base={"batch_size": 2}))
    base = sweep_base(SweepParams(seed=5, device="cpu", data_timezone="UTC", base={"epochs": 2}))
    read = {"timestamp_column": None, "data_timezone": "UTC", "resample_to_1min": False}  # how data_path is read
    assert base == {"data_path": None, **read, "seed": 5, "device": "cpu", "epochs": 2}
    with pytest.raises(ConfigError, match="data_timezone"):
        sweep_base(SweepParams(base={"data_timezone": "UTC"}))


def test_cpu_runs_one_setting_at_a_time():
    assert sweep.sweep_devices("cpu") == [None]
    assert sweep.sweep_devices("auto", parallel=False) == [None]


def test_settings_run_in_parallel_one_per_gpu(tmp_path, monkeypatch):
    active, seen, lock = set(), [], threading.Lock()

    def fake_run(setting, base, run_dir, log_path, gpu=None):
        with lock:
            assert gpu not in active  # never two settings on one GPU
            active.add(gpu)
            seen.append((setting["batch_size"], gpu, len(active)))
        time.sleep(0.2)
        with lock:
            active.discard(gpu)
        if setting["batch_size"] == 2:
            return {"name": setting_name(setting), "status": "failed", "error": "boom", "run_dir": str(run_dir)}
        return {
            "name": setting_name(setting),
            "status": "finished",
            "error": None,
            "run_dir": str(run_dir),
            "best_val_loss": 1.0 / setting["batch_size"],
            "wall_s": 0.2,
        }

    monkeypatch.setattr(sweep, "sweep_devices", lambda device, parallel=True: ["0", "1"])
    monkeypatch.setattr(sweep, "run_setting", fake_run)
    rows = run_sweep({"batch_size": [1, 2, 3, 4]}, {}, tmp_path, progress=False)
    assert [r["name"] for r in rows] == [f"batch_size-{b}" for b in (1, 2, 3, 4)]  # grid order
    assert {gpu for _, gpu, _ in seen} == {"0", "1"} and max(n for *_, n in seen) == 2
    assert rows[1]["status"] == "failed" and rows[1]["error"] == "boom"
    assert best_row(rows)["name"] == "batch_size-4"
    assert [r["name"] for r in read_json(tmp_path / "sweep_results.json")] == [r["name"] for r in rows]
    table = settings_table(rows)
    assert table.loc["batch_size-2", "status"] == "failed" and table.loc["batch_size-2", "error"] == "boom"


def test_best_row_ignores_failed_and_non_finite():
    rows = [
        {"name": "a", "status": "failed", "best_val_loss": None},
        {"name": "b", "status": "finished", "best_val_loss": float("nan")},
        {"name": "c", "status": "finished", "best_val_loss": 0.5},
    ]
    assert best_row(rows)["name"] == "c"
    assert best_row(rows[:2]) is None


def test_best_encoder_is_exported(tmp_path):
    encoder = JadeEncoder(hidden_size=8, num_layers=1)
    run_dir = tmp_path / "batch_size-512"
    atomic_torch_save({"encoder": encoder_state(encoder)}, run_dir / "checkpoint_best.pt")
    row = {"name": "batch_size-512", "run_dir": str(run_dir), "best_val_loss": 0.25}
    path = export_best_encoder(row, tmp_path / "encoders" / "best.pt")
    loaded = load_encoder(path, hidden_size=8, num_layers=1)
    for a, b in zip(loaded.state_dict().values(), encoder.state_dict().values()):
        assert torch.equal(a, b)
    meta = torch.load(path, weights_only=True)["metadata"]
    assert meta["setting"] == "batch_size-512" and meta["best_val_loss"] == 0.25


@pytest.mark.slow
def test_one_setting_runs_and_a_bad_one_fails_with_its_error(tmp_path):
    ok = run_setting(
        {"batch_size": 64},
        {k: v for k, v in TINY.items() if k != "batch_size"},
        tmp_path / "ok",
        tmp_path / "logs" / "ok.log",
    )
    assert ok["status"] == "finished", ok
    assert ok["best_val_loss"] > 0 and ok["epochs"] == 1 and ok["windows_per_s"] > 0 and ok["peak_memory_mb"] > 0
    assert (tmp_path / "ok" / "report.html").exists() and (tmp_path / "ok" / "checkpoint_best.pt").exists()

    bad = run_setting(
        {"batch_size": 0},
        {k: v for k, v in TINY.items() if k != "batch_size"},
        tmp_path / "bad",
        tmp_path / "logs" / "bad.log",
    )
    assert bad["status"] == "failed"
    assert "batch_size must be >= 1" in bad["error"]
    assert read_json(tmp_path / "bad" / "manifest.json")["status"] == "failed"


def test_sweep_params_defaults_match_the_seed_guide():
    assert SweepParams().grid == {"batch_size": [512, 768, 1024]}
    assert {f.name for f in dataclasses.fields(SweepParams)} >= {"data_path", "run_dir", "seed", "device"}
