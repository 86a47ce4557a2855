"""The CUDA path of the pretraining engine, on a real GPU (skipped without one).

Run by the GPU check (``bin/dev gpu-check``, which calls ``pytest -m cuda``). Tolerances:
- CPU vs CUDA in fp32 (TF32 off, dropout 0, identical batches): per-step losses agree to 1e-4 relative.
  Both sides compute the same fp32 arithmetic in a different reduction order (cuDNN vs oneDNN), so each
  op differs by a few ulps (~1e-7); a handful of AdamW steps amplify that to ~1e-6, well inside 1e-4.
- bf16 autocast vs CPU fp32: the epoch's mean loss agrees to 2e-2 relative. bf16 keeps 8 significant
  bits (3e-3 relative per value); a loss averaged over thousands of masked values is far closer.
- resume: bit-identical where two uninterrupted CUDA runs are bit-identical to each other (cuDNN
  deterministic); otherwise no further from the uninterrupted run than a second uninterrupted run is.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from moola_lib.pretraining.checkpoints import load_encoder
from moola_lib.pretraining.config import PretrainConfig
from moola_lib.pretraining.job import load_pretrain_data, load_pretrainer, pretrain
from moola_lib.pretraining.trainer import Trainer
from moola_lib.tools.gpu_subprocesses import child_env

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

REPO = Path(__file__).resolve().parents[2]
TINY = dict(
    synthetic_start="2024-12-01",
    synthetic_end="2025-01-20",
    stride=52,
    splits={
        "train": ["2024-12-01", "2024-12-29"],
        "val": ["2024-12-29", "2025-01-10"],
        "test": ["2025-01-10", "2025-01-21"],
    },
    hidden_size=32,
    epochs=3,
    batch_size=64,
    warmup_epochs=1,
    device="cuda",
    progress=False,
    seed=7,
)


@pytest.fixture(scope="module")
def data():
    return load_pretrain_data(TINY)


@pytest.fixture
def no_tf32():
    """fp32 means fp32: cuDNN and cuBLAS may otherwise round matmul inputs to TF32 (10-bit mantissa)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _trainer(data, device="cuda", **overrides):
    config = PretrainConfig.from_dict({**TINY, "device": device, **overrides})
    return Trainer(config, data, torch.device(device))


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _max_diff(a, b):
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_autocast_is_bf16_where_cudnn_supports_it_and_the_loss_is_finite(data):
    trainer = _trainer(data)
    if torch.cuda.is_bf16_supported() and torch.backends.cudnn.version() >= 91300:
        assert trainer.amp_dtype == torch.bfloat16
    else:
        assert trainer.amp_dtype in (torch.bfloat16, torch.float16)
    stats = trainer.train_epoch(1)
    assert torch.isfinite(torch.tensor(stats["train_loss"])) and stats["train_loss"] > 0
    assert trainer.optimizer.defaults["fused"] is True  # fused AdamW on CUDA


def test_fp16_with_grad_scaler_runs(data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    trainer = _trainer(data)
    assert trainer.amp_dtype == torch.float16 and trainer.scaler.is_enabled()
    first, second = trainer.train_epoch(1), trainer.train_epoch(2)
    assert 0 < second["train_loss"] < first["train_loss"] * 1.5


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_training_steps_never_sync_with_the_host(data, monkeypatch, precision):
    """After the epoch's first step no step waits for the device. The first one may: after epoch_plan's
    manual_seed, cuDNN reseeds its LSTM dropout state with a seed it reads back from the GPU (one sync
    an epoch, the price of reproducible dropout)."""
    if precision == "fp16":
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    trainer = _trainer(data, mixed_precision=precision != "fp32")
    trainer.train_epoch(1)  # warm-up: allocator, cuDNN plans, lazy inits
    order, g_mask = trainer.epoch_plan(2)
    trainer.run_steps(order[: trainer.config.batch_size], g_mask)
    _assert_sync_free(trainer, order[trainer.config.batch_size :], g_mask)


def test_without_dropout_the_whole_epoch_is_sync_free(data):
    trainer = _trainer(data, dropout=0.0)
    trainer.train_epoch(1)
    _assert_sync_free(trainer, *trainer.epoch_plan(2))


def _assert_sync_free(trainer, order, g_mask):
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        sums, first_bad, _ = trainer.run_steps(order, g_mask)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert int(first_bad) == len(order.split(trainer.config.batch_size)) + 1 and sums[1].item() > 0


def _same_batches(cpu, steps):
    order, g_mask = cpu.epoch_plan(1)
    batches = []
    for batch in order.split(cpu.config.batch_size)[:steps]:
        starts = cpu.starts["train"][batch]
        batches.append((cpu.windows(cpu.X, starts), cpu.objective.draw(cpu.windows(cpu.valid, starts), g_mask)))
    return batches


def test_an_epoch_on_cuda_matches_the_cpu(data, no_tf32):
    cpu = _trainer(data, "cpu", dropout=0.0)
    fp32 = _trainer(data, dropout=0.0, mixed_precision=False)
    bf16 = _trainer(data, dropout=0.0)
    batches = _same_batches(cpu, cpu.steps_per_epoch)
    cpu.model.train(), fp32.model.train(), bf16.model.train()
    losses = {"cpu": [], "fp32": [], "amp": []}
    for xb, mask in batches:
        losses["cpu"].append(cpu.step(xb, mask).item())
        losses["fp32"].append(fp32.step(xb.cuda(), mask.cuda()).item())
        losses["amp"].append(bf16.step(xb.cuda(), mask.cuda()).item())
    rel = [abs(a - b) / b for a, b in zip(losses["fp32"], losses["cpu"])]
    mean = {k: sum(v) / len(v) for k, v in losses.items()}
    print(
        f"cpu vs cuda fp32: max per-step relative difference {max(rel):.2e} over {len(rel)} steps; "
        f"epoch mean loss cpu {mean['cpu']:.6f} fp32 {mean['fp32']:.6f} {bf16.amp_dtype} {mean['amp']:.6f}"
    )
    assert max(rel) < 1e-4
    assert abs(mean["amp"] - mean["cpu"]) / mean["cpu"] < 2e-2


def _interrupted(monkeypatch, at_epoch):
    """Make Trainer.train_epoch raise KeyboardInterrupt once, at ``at_epoch`` (as if the job was killed)."""
    real = Trainer.train_epoch
    state = {"armed": True}

    def train_epoch(self, epoch):
        if epoch == at_epoch and state["armed"]:
            state["armed"] = False
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


def test_resume_on_cuda_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    a = pretrain(TINY, tmp_path / "a")
    pretrain(TINY, tmp_path / "b")
    _interrupted(monkeypatch, at_epoch=3)
    with pytest.raises(KeyboardInterrupt):
        pretrain(TINY, tmp_path / "r")
    assert torch.load(tmp_path / "r/checkpoint_last.pt", weights_only=True)["epoch"] == 2
    r = pretrain({**TINY, "resume": True}, tmp_path / "r")
    wa, wb, wr = (_weights(tmp_path / n / "checkpoint_last.pt") for n in "abr")
    run_to_run, resumed = _max_diff(wa, wb), _max_diff(wa, wr)
    print(f"resume on cuda: max weight difference {resumed:.3e} (two uninterrupted runs: {run_to_run:.3e})")
    if run_to_run == 0:
        assert resumed == 0 and [h["val_loss"] for h in a["history"]] == [h["val_loss"] for h in r["history"]]
    else:
        assert resumed <= 2 * run_to_run
    assert r["resumed_from_epoch"] == 2 and a["resumed_from_epoch"] is None


def test_checkpoints_move_between_cuda_and_cpu(tmp_path, monkeypatch, no_tf32):
    on_cuda = pretrain({**TINY, "epochs": 1}, tmp_path / "cuda")
    assert on_cuda["environment"]["device"].startswith("cuda")
    encoder = load_encoder(tmp_path / "cuda/checkpoint_best.pt", hidden_size=32)
    gpu_model = load_pretrainer(tmp_path / "cuda/checkpoint_best.pt").cuda()
    x = torch.randn(4, 105, 10)
    with torch.no_grad():
        assert torch.allclose(encoder.eval()(x), gpu_model.encoder(x.cuda()).cpu(), atol=1e-5)
    # the reverse: a CPU run interrupted after epoch 1 resumes on CUDA (optimizer state moves along)
    _interrupted(monkeypatch, at_epoch=2)
    cpu_cfg = {**TINY, "epochs": 2, "device": "cpu"}
    with pytest.raises(KeyboardInterrupt):
        pretrain(cpu_cfg, tmp_path / "cpu")
    resumed = pretrain({**cpu_cfg, "device": "cuda", "resume": True}, tmp_path / "cpu")
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs_completed"] == 2
    assert resumed["environment"]["device"].startswith("cuda")
    optimizer = torch.load(tmp_path / "cpu/checkpoint_last.pt", weights_only=True)["optimizer"]
    assert all(group["fused"] for group in optimizer["param_groups"])  # fused AdamW after the move
    assert load_encoder(tmp_path / "cpu/checkpoint_last.pt", hidden_size=32, map_location="cuda") is not None


def test_ddp_with_nccl_in_one_process(tmp_path):
    params = tmp_path / "tiny.yaml"
    params.write_text(yaml.safe_dump({**TINY, "epochs": 1}))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=1",
            "-m",
            "moola_lib.pretrain",
            str(tmp_path / "run"),
            "-f",
            str(params),
        ],
        env=child_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run/training_results.json").read_text())
    env_info = results["environment"]
    assert env_info["world_size"] == 1 and env_info["distributed_backend"] == "nccl"
    assert env_info["device"] == "cuda:0" and results["epochs_completed"] == 1
