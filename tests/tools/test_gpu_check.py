"""The prepared GPU check: its CPU dry run (what CI can run) and its step bookkeeping."""

import json
import os
import subprocess
from pathlib import Path

from moola_lib.tools.gpu_check import Check
from moola_lib.tools.gpu_check_summary import closing_lines, step_line

REPO = Path(__file__).resolve().parents[2]


def test_dry_run_of_the_documented_command_writes_every_step(tmp_path):
    out = tmp_path / "check"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(REPO / "bin" / "dev"), "gpu-check", str(out), "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "gpu_check.json").read_text())
    assert summary["dry_run"] and summary["passed"]
    steps = summary["steps"]
    assert list(steps) == ["environment", "cuda_tests", "benchmark", "seed_job", "transfer"]
    assert all(s["status"] == "ok" for s in steps.values()), steps
    assert steps["environment"]["torch"] and steps["cuda_tests"]["counts"]["skipped"] >= 8
    assert steps["benchmark"]["overhead_ratio"] > 0 and steps["seed_job"]["epochs"] == 1
    assert steps["seed_job"]["best_val_loss"] > 0 and steps["seed_job"]["val_interpolation_loss"] > 0
    assert 0 < steps["seed_job"]["val_per_feature_better_reference_loss"] <= steps["seed_job"]["val_interpolation_loss"]
    assert "verdict" in steps["transfer"] and (out / "transfer_results.json").exists()
    for name in ("gpu_check.log", "cuda_tests.xml", "seed_training_results.json"):
        assert (out / name).stat().st_size > 0
    assert "GPU check passed" in (out / "gpu_check.log").read_text()
    # the terminal: a header, one line per step with its headline figure, the verdict and where the files are
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 + len(steps) + 3 and proc.stderr == "", proc.stdout + proc.stderr
    assert [line.split()[:2] for line in lines[1:6]] == [[name, "ok"] for name in steps]
    assert "windows/s at batch" in lines[3] and "per-feature better reference" in lines[4]
    assert lines[-3:] == [
        "GPU check passed",
        f"every figure: {out / 'gpu_check.json'}",
        f"full log:     {out / 'gpu_check.log'}",
    ]


def test_the_terminal_line_of_a_failed_step_is_its_error_and_a_missing_figure_no_failure():
    failed = {"status": "failed", "seconds": 1.25, "error": "RuntimeError: cuDNN\nsaid no"}
    assert step_line("benchmark", failed) == "benchmark    failed    1.2 s  RuntimeError: cuDNN said no"
    child = {"status": "failed", "seconds": 3.0, "_status": "failed", "error": ["ValueError: bad encoder"]}
    assert step_line("transfer", child).endswith("s  ValueError: bad encoder")
    assert step_line("seed_job", {"status": "ok", "seconds": 2.0}) == "seed_job     ok        2.0 s"
    gpu = {"name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.1, "count": 1, "bf16_supported": True, "driver": "570.1"}
    env = {
        "status": "ok",
        "seconds": 0.4,
        "torch": "2.13.0",
        "cuda": "12.8",
        "cudnn": 91002,
        "cpu_count": 16,
        "gpu": gpu,
    }
    assert step_line("environment", env).endswith(
        "1 x NVIDIA H100 80GB HBM3 (79.1 GiB), driver 570.1, torch 2.13.0, CUDA 12.8, cuDNN 91002, bf16"
    )
    job = {"status": "ok", "seconds": 19.0, "epochs": 50, "wall_seconds": 17.2, "goal_seconds": 30.0}
    job |= {"best_val_loss": 0.0412, "val_gain_over_per_feature_better_reference": 0.21}
    assert step_line("seed_job", job).endswith(
        "50 epoch(s) in 17.2 s (goal 30 s), best val loss 0.0412, 21.0% below the per-feature better reference"
    )
    summary = {"passed": False, "steps": {"environment": {"status": "ok"}, "cuda_tests": {"status": "failed"}}}
    assert closing_lines(summary, Path("/o"))[0] == "GPU check FAILED (cuda_tests failed: see the log)"


def test_a_failing_step_is_recorded_and_the_next_one_runs(tmp_path):
    check = Check(tmp_path, dry=True, budget_s=60)

    def broken():
        raise RuntimeError("cuDNN said no")

    assert check.step("first", broken) is None
    assert check.step("second", lambda: {"figure": 1}) == {"figure": 1}
    assert check.step("third", lambda: {"_status": "failed", "exit_code": 1}) is None
    saved = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    assert saved["first"]["status"] == "failed" and "cuDNN said no" in saved["first"]["error"]
    assert saved["second"] == {"status": "ok", "seconds": saved["second"]["seconds"], "figure": 1}
    assert saved["third"]["status"] == "failed" and saved["third"]["exit_code"] == 1
    assert 0 < check.left() <= 60
