import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import TINY

import moola_lib.pretraining.objectives as objectives_module
from moola_lib.features.options import FEATURE_OPTION_DEFAULTS
from moola_lib.features.relativity import FEATURE_NAMES, relativity_features
from moola_lib.pretraining.checkpoints import load_encoder
from moola_lib.pretraining.config import PretrainConfig
from moola_lib.pretraining.job import load_pretrain_data, load_pretrainer, pretrain
from moola_lib.pretraining.model import JadePretrainer
from moola_lib.pretraining.trainer import EVAL_MASK_SEED, Trainer, _seed, lr_factor
from moola_lib.util.config import ConfigError
from moola_lib.util.io import file_sha256

REPO = Path(__file__).resolve().parents[2]
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_load_pretrain_data_summary():
    data = load_pretrain_data(TINY)
    assert data.X.shape == (len(data.bars), 10) and data.X.dtype.name == "float32"
    splits = data.summary["splits"]
    assert set(splits) == {"train", "val", "test"}
    for name, info in splits.items():
        assert info["windows"] == len(data.starts[name]) > 20
        assert info["bars"] == data.slices[name].stop - data.slices[name].start
    assert data.summary["source"] == {
        "kind": "synthetic",
        "generator": "moola_lib.bars.synthetic.synthetic_ohlcv",
        "start": "2024-12-01",
        "end": "2025-01-20",
        "seed": 0,
    }
    # excluding a period (with a margin) removes the windows that overlap it
    excluded = load_pretrain_data({**TINY, "exclude": [["2024-12-10", "2024-12-12"]], "exclude_margin_bars": 105})
    kept = excluded.starts["train"]
    index = excluded.bars.index
    assert 0 < len(kept) < len(data.starts["train"])
    lo = index.searchsorted(pd.Timestamp("2024-12-10", tz="UTC")) - 105
    hi = index.searchsorted(pd.Timestamp("2024-12-12", tz="UTC"), side="right") - 1 + 105
    assert not ((kept <= hi) & (kept + 104 >= lo)).any()


def test_load_pretrain_data_from_a_file_records_its_hash(tmp_path):
    bars = load_pretrain_data(TINY).bars
    path = tmp_path / "bars.csv"
    bars.to_csv(path)
    data = load_pretrain_data({**TINY, "data_path": str(path)})
    assert data.summary["source"] == {"kind": "file", "path": str(path.resolve()), "sha256": file_sha256(path)}
    assert data.summary["bars"] == len(bars)
    assert data.summary["splits"] == load_pretrain_data(TINY).summary["splits"]


def test_pretrain_writes_results_and_checkpoints(tmp_path):
    results = pretrain(TINY, tmp_path)
    on_disk = json.loads((tmp_path / "training_results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    hist = results["history"]
    assert [h["epoch"] for h in hist] == [1, 2]
    assert results["best_val_loss"] == min(h["val_loss"] for h in hist)
    assert hist[results["best_epoch"] - 1]["val_loss"] == results["best_val_loss"]
    for h in hist:
        assert h["train_loss"] > 0 and h["seconds"] > 0 and h["windows_per_s"] > 0 and h["lr"] > 0
        assert isinstance(h["cpu_threads"], int) and h["cpu_threads"] >= 1  # what the thread policy chose
    assert hist[-1]["cpu_threads"] == results["environment"]["cpu_threads"]
    for split in ("val", "test"):
        refs = results["reference_losses"][split]
        assert refs["train_mean"]["loss"] > 0 and refs["interpolation"]["loss"] > 0
        assert refs["train_mean"]["mae"] > 0 and refs["interpolation"]["mae"] > 0
        # per feature: the model and the three references; the third is the better of the first two
        table = results["per_feature_losses"][split]
        assert list(table) == list(FEATURE_NAMES)
        for row in table.values():
            assert set(row) == {"model", "train_mean", "interpolation", "better_reference"}
            assert row["better_reference"] == min(row["train_mean"], row["interpolation"]) > 0
        better = refs["better_reference"]["loss"]
        assert better == pytest.approx(np.mean([row["better_reference"] for row in table.values()]))
        assert better <= min(refs["train_mean"]["loss"], refs["interpolation"]["loss"])
        for kind in ("train_mean", "interpolation"):  # the overall loss is the mean over features
            assert refs[kind]["loss"] == pytest.approx(np.mean([row[kind] for row in table.values()]))
    val_model = np.mean([row["model"] for row in results["per_feature_losses"]["val"].values()])
    assert val_model == pytest.approx(results["best_val_loss"], rel=1e-6)
    assert results["test"]["loss"] == pytest.approx(
        np.mean([row["model"] for row in results["per_feature_losses"]["test"].values()]), rel=1e-6
    )
    assert results["test"]["loss"] > 0 and results["test"]["windows"] == results["data"]["splits"]["test"]["windows"]
    assert results["config"]["hidden_size"] == 8 and results["config"]["epochs"] == 2
    assert results["data"]["splits"]["train"]["windows"] > 20
    env = results["environment"]
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and env["precision"] == "float32"
    assert results["total_seconds"] > 0 and results["peak_memory"]["host_max_rss_bytes"] > 0

    # checkpoints: weights-only, encoder loadable, pretrainer rebuilt, config as plain dict
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        ckpt = torch.load(tmp_path / name, weights_only=True)
        assert {"encoder", "model", "config", "optimizer", "scheduler", "rng"} <= set(ckpt)
        assert ckpt["config"] == results["config"]
        # every checkpoint's encoder stores the fully resolved feature options
        assert (
            ckpt["encoder"]["feature_options"]
            == results["data"]["feature_options"]
            == ckpt["config"]["feature_options"]
        )
        assert set(ckpt["encoder"]["feature_options"]) == set(FEATURE_OPTION_DEFAULTS)
    last = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)
    assert last["epoch"] == 2
    enc = load_encoder(tmp_path / "checkpoint_best.pt", hidden_size=8)
    model = load_pretrainer(tmp_path / "checkpoint_best.pt")
    assert isinstance(model, JadePretrainer) and not model.training
    x = torch.randn(2, 105, 10)
    with torch.no_grad():
        assert enc.eval()(x).equal(model.encoder(x))
    with pytest.raises(ValueError, match="hidden_size=8"):
        load_encoder(tmp_path / "checkpoint_best.pt")  # default requires 128

    # a second run into the same directory is refused, nothing overwritten
    before = (tmp_path / "checkpoint_last.pt").read_bytes()
    with pytest.raises(FileExistsError, match="resume=True"):
        pretrain(TINY, tmp_path)
    assert (tmp_path / "checkpoint_last.pt").read_bytes() == before
    # resuming a finished run re-evaluates and does not train further
    again = pretrain({**TINY, "resume": True}, tmp_path)
    assert again["history"] == hist and again["best_val_loss"] == results["best_val_loss"]
    assert again["test"] == results["test"]
    # resuming with a different config is refused
    with pytest.raises(ConfigError, match="lr"):
        pretrain({**TINY, "resume": True, "lr": 0.01}, tmp_path)


def test_same_seed_same_results_and_span_masks(tmp_path):
    cfg = {**TINY, "epochs": 1, "mask_mode": "span"}
    a = pretrain(cfg, tmp_path / "a")
    b = pretrain(cfg, tmp_path / "b")
    c = pretrain({**cfg, "seed": 8}, tmp_path / "c")
    keys = ("train_loss", "val_loss", "val_mae")
    assert [[h[k] for k in keys] for h in a["history"]] == [[h[k] for k in keys] for h in b["history"]]
    wa, wb = _weights(tmp_path / "a/checkpoint_last.pt"), _weights(tmp_path / "b/checkpoint_last.pt")
    assert all(wa[k].equal(wb[k]) for k in wa)
    assert a["history"][0]["train_loss"] != c["history"][0]["train_loss"]
    # validation masks have their own fixed seed: the reference losses depend neither on training
    # nor on the training seed
    assert a["reference_losses"] == b["reference_losses"] == c["reference_losses"]


def test_lr_warmup_then_cosine():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)  # first step: small, not the peak
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(99, 10, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert lr_factor(0, 0, 100) == pytest.approx(1.0)
    factors = [lr_factor(s, 10, 100) for s in range(100)]
    assert factors[:10] == sorted(factors[:10]) and factors[10:] == sorted(factors[10:], reverse=True)


def test_nonfinite_loss_stops_with_epoch_and_step(tmp_path, monkeypatch):
    real = objectives_module.masked_huber
    calls = {"n": 0}
    steps_per_epoch = math.ceil(load_pretrain_data(TINY).summary["splits"]["train"]["windows"] / 32)

    def poisoned(pred, target, mask, delta=1.0):
        loss = real(pred, target, mask, delta)
        if pred.requires_grad:  # training steps only
            calls["n"] += 1
            if calls["n"] == steps_per_epoch + 2:  # epoch 2, step 2
                return loss * float("nan")
        return loss

    monkeypatch.setattr(objectives_module, "masked_huber", poisoned)
    with pytest.raises(FloatingPointError, match="epoch 2, step 2"):
        pretrain(TINY, tmp_path)
    last = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    assert not (tmp_path / "training_results.json").exists()


def _run(cfg, run_dir, procs):
    code = "import json, sys; from moola_lib.pretrain import pretrain; pretrain(json.loads(sys.argv[1]), sys.argv[2])"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(cfg), str(run_dir)],
        env=CHILD_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    procs.append(proc)
    return proc


@pytest.fixture
def procs():
    """Child processes (each in its own process group) that are killed if a test leaves them running."""
    started = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path, procs):
    cfg = {**TINY, "epochs": 4}
    reference = _run(cfg, tmp_path / "ref", procs)
    victim = _run(cfg, tmp_path / "killed", procs)
    last = tmp_path / "killed" / "checkpoint_last.pt"
    deadline = time.time() + 120
    while not last.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, victim.stderr.read().decode()[-2000:]
    killed_at = torch.load(last, weights_only=True)["epoch"]
    assert 1 <= killed_at < 4
    assert not (tmp_path / "killed" / "training_results.json").exists()

    resumed = _run({**cfg, "resume": True}, tmp_path / "killed", procs)
    assert resumed.wait(timeout=180) == 0, resumed.stderr.read().decode()[-2000:]
    assert reference.wait(timeout=180) == 0, reference.stderr.read().decode()[-2000:]
    a, b = _weights(tmp_path / "ref/checkpoint_last.pt"), _weights(last)
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    ra = json.loads((tmp_path / "ref/training_results.json").read_text())
    rb = json.loads((tmp_path / "killed/training_results.json").read_text())
    assert rb["resumed_from_epoch"] == killed_at and ra["resumed_from_epoch"] is None
    assert [h["val_loss"] for h in ra["history"]] == [h["val_loss"] for h in rb["history"]]
    assert ra["test"] == rb["test"] and ra["best_epoch"] == rb["best_epoch"]


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path, procs):
    cfg = {**TINY, "epochs": 1}
    code = (
        "import json, sys; from moola_lib.pretrain import pretrain; "
        "r = pretrain(json.loads(sys.argv[1]), sys.argv[2]); "
        "sys.stdout.write(f\"WORLD {r['environment']['world_size']}\\n\")"
    )  # one write: ranks share stdout
    script = tmp_path / "job.py"
    script.write_text(code)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            str(script),
            json.dumps(cfg),
            str(tmp_path / "run"),
        ],
        env=CHILD_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    procs.append(proc)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert out.count("WORLD 2") == 2
    results = json.loads((tmp_path / "run/training_results.json").read_text())
    assert results["environment"]["world_size"] == 2
    hist = results["history"][0]
    train_windows = results["data"]["splits"]["train"]["windows"]
    assert hist["windows_per_s"] > 0 and math.isfinite(hist["val_loss"])
    # the val loss covers every val window once (shared between the ranks, then all-reduced)
    single = pretrain(cfg, tmp_path / "single")
    for split, refs in single["reference_losses"].items():
        for kind, metrics in refs.items():
            got = results["reference_losses"][split][kind]
            assert got["per_feature"] == pytest.approx(metrics.pop("per_feature"), rel=1e-5)
            assert {k: v for k, v in got.items() if k != "per_feature"} == pytest.approx(metrics, rel=1e-5)
    assert train_windows == single["data"]["splits"]["train"]["windows"]
    assert load_encoder(tmp_path / "run/checkpoint_best.pt", hidden_size=8) is not None


def test_early_stopping_keeps_the_best_checkpoint(tmp_path, monkeypatch):
    scripted = iter([1.0, 0.9, 0.95, 0.97, 0.5, 0.4])
    real = Trainer.evaluate

    def scripted_val(self, split, predict=None):
        result = real(self, split, predict)
        if split == "val" and predict is None:  # the per-epoch model validation
            result["loss"] = next(scripted)
        return result

    monkeypatch.setattr(Trainer, "evaluate", scripted_val)
    results = pretrain({**TINY, "epochs": 6, "patience": 2}, tmp_path)
    assert results["epochs_completed"] == 4 and results["stopped_early"]
    assert results["best_epoch"] == 2 and results["best_val_loss"] == 0.9
    assert [h["val_loss"] for h in results["history"]] == [1.0, 0.9, 0.95, 0.97]
    assert torch.load(tmp_path / "checkpoint_best.pt", weights_only=True)["epoch"] == 2
    last = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)
    assert last["epoch"] == 4 and last["finished"]
    best_weights = _weights(tmp_path / "checkpoint_best.pt")
    assert not all(best_weights[k].equal(last["model"][k]) for k in best_weights)


def test_feature_options_reach_the_features_and_the_summary():
    from moola_lib.features.options import ORIGINAL_FEATURE_OPTIONS, resolve_feature_options

    default = load_pretrain_data(TINY)
    no_hybrid = load_pretrain_data({**TINY, "feature_options": {"hybrid_max_age": 5}})
    assert no_hybrid.summary["feature_options"]["hybrid_max_age"] == 5
    assert default.summary["feature_options"] == resolve_feature_options({})  # every option, resolved
    assert default.summary["feature_options"]["hybrid_max_age"] == -1
    assert not np.array_equal(default.X, no_hybrid.X)
    original = load_pretrain_data({**TINY, "feature_options": ORIGINAL_FEATURE_OPTIONS})
    np.testing.assert_array_equal(original.X, relativity_features(original.bars, **ORIGINAL_FEATURE_OPTIONS)[0])
    both = default.valid & no_hybrid.valid  # the warm-up waits for the first swings: it differs
    assert both.sum() > 0.99 * len(both)
    assert np.array_equal(default.X[both, :6], no_hybrid.X[both, :6])  # only the zigzag features change


def test_val_masks_are_drawn_on_the_cpu_from_their_own_seed():
    data = load_pretrain_data(TINY)
    a = Trainer(PretrainConfig.from_dict(TINY), data, torch.device("cpu"))
    b = Trainer(PretrainConfig.from_dict({**TINY, "seed": 123}), data, torch.device("cpu"))
    for split in ("val", "test"):
        assert a.eval_masks[split].equal(b.eval_masks[split])  # the training seed does not matter
        assert a.eval_masks[split].sum(dim=1).eq(16).all()
    # what they are: a CPU generator seeded from EVAL_MASK_SEED alone (so any device draws the same)
    from moola_lib.bars.windows import gather_windows
    from moola_lib.pretraining.masking import random_mask

    g = torch.Generator().manual_seed(_seed(EVAL_MASK_SEED, "eval", "val"))
    valid = torch.from_numpy(gather_windows(data.valid, data.starts["val"], 105))
    assert random_mask(valid, 0.15, generator=g).equal(a.eval_masks["val"])

    # evaluate: per-feature masked Huber losses and MAE, over every val window and its fixed mask
    from moola_lib.pretraining.masking import masked_huber

    x = torch.from_numpy(gather_windows(data.X, data.starts["val"], 105))
    pred = torch.full_like(x, 0.25)
    got = a.evaluate("val", lambda xb, mb: torch.full_like(xb, 0.25))
    mask = a.eval_masks["val"]
    for j, name in enumerate(FEATURE_NAMES):
        expected = masked_huber(pred[..., j : j + 1], x[..., j : j + 1], mask).item()
        assert got["per_feature"][name] == pytest.approx(expected, rel=1e-5)
    assert got["loss"] == pytest.approx(masked_huber(pred, x, mask).item(), rel=1e-5)
    abs_error = (pred - x).abs()[mask].mean().item()
    assert got["mae"] == pytest.approx(abs_error, rel=1e-5) and got["windows"] == len(data.starts["val"])


def test_pretrain_takes_the_data_already_loaded_and_refuses_other_data(tmp_path, monkeypatch):
    import moola_lib.pretraining.job as pretrain_module

    cfg = {**TINY, "epochs": 1}
    data = load_pretrain_data(cfg)
    with pytest.raises(ConfigError, match=r"stride: 210 \(data\) vs 105 \(config\)"):
        pretrain({**cfg, "stride": 105}, tmp_path / "other", data=data)
    assert not (tmp_path / "other").exists()  # refused before the run directory is claimed
    monkeypatch.setattr(pretrain_module, "load_pretrain_data", lambda *a, **k: pytest.fail("data loaded again"))
    given = pretrain({**cfg, "lr": 2e-3, "seed": 3}, tmp_path / "given", data=data)  # training fields may differ
    assert given["data"] == data.summary and given["history"][0]["val_loss"] > 0


def test_a_checkpoint_without_an_objective_is_masked_reconstruction(tmp_path):
    cfg = {**TINY, "epochs": 1}
    pretrain(cfg, tmp_path)
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):  # as written before objectives were recorded
        ckpt = torch.load(tmp_path / name, weights_only=True)
        assert ckpt["config"]["objective"] == ckpt["encoder"]["objective"] == "masked"
        for key in ("objective", "forecast_bars"):
            del ckpt["config"][key]
        del ckpt["encoder"]["objective"]
        torch.save(ckpt, tmp_path / name)
    assert load_encoder(tmp_path / "checkpoint_best.pt", hidden_size=8).objective == "masked"
    (tmp_path / "training_results.json").unlink()
    again = pretrain({**cfg, "resume": True}, tmp_path)  # the missing fields count as their defaults
    assert again["objective"] == "masked" and again["epochs_completed"] == 1
    with pytest.raises(ConfigError, match="objective: 'masked' -> 'forecast'"):
        pretrain({**cfg, "resume": True, "objective": "forecast"}, tmp_path)
