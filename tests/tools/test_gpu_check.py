"""The prepared GPU check: its CPU dry run (what CI can run) and its step bookkeeping."""

import json
import os
import subprocess
from pathlib import Path

from moola_lib.tools.gpu_check import Check

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
