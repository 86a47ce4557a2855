"""One run directory, one writer (issue 11, items 2 and 4): a run claims its directory before any work, a
second run on it is refused and touches nothing, a killed run's lock is recognisably stale, and a run_dir
that cannot be written (or a missing GPU) stops the job before any data is loaded, leaving no directory."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import assert_one_line_error, hold_claim, run_command

import moola_lib.pretraining.job as pretrain_module
from moola_lib.util.config import ConfigError
from moola_lib.util.paths import ROOT
from moola_lib.util.rundir import LOCK_NAME, RunDirBusyError, RunDirError, claim_run_dir, run_dir_claim

TINY = {
    "synthetic_start": "2024-12-01",
    "synthetic_end": "2024-12-20",
    "stride": 13,
    "splits": {"train": ["2024-12-01", "2024-12-12"], "val": ["2024-12-12", "2024-12-20"]},
    "hidden_size": 16,
    "num_layers": 1,
    "epochs": 2,
    "batch_size": 16,
    "warmup_epochs": 1,
    "device": "cpu",
    "progress": False,
}


def wait_for(path, timeout=120.0):
    t0 = time.monotonic()
    while not path.exists() and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    return path.exists()


def listing(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_a_held_directory_is_refused_and_left_untouched(tmp_path):
    run_dir = tmp_path / "run"
    holder = hold_claim(run_dir)
    try:
        (run_dir / "pretrain.ipynb").write_text("{}")  # what the first run's papermill is writing
        before = listing(run_dir)
        with pytest.raises(RunDirBusyError, match=f"pid {holder.pid}.*nothing in it was touched"):
            claim_run_dir(run_dir)
        assert listing(run_dir) == before
    finally:
        holder.kill()
        holder.wait()


def test_claims_nest_within_a_process_and_release_removes_the_lock(tmp_path):
    run_dir = tmp_path / "a" / "run"
    with run_dir_claim(run_dir) as outer:
        assert (run_dir / LOCK_NAME).exists()
        with run_dir_claim(run_dir) as inner:  # pretrain() inside a notebook that claimed the directory
            assert inner is outer
        assert (run_dir / LOCK_NAME).exists()
        (run_dir / "result.txt").write_text("kept")
    assert not (run_dir / LOCK_NAME).exists() and (run_dir / "result.txt").exists()


def test_a_refused_or_failed_run_leaves_no_empty_directory(tmp_path):
    run_dir = tmp_path / "new" / "run"
    with pytest.raises(ZeroDivisionError), run_dir_claim(run_dir):
        1 / 0
    assert not (tmp_path / "new").exists()


def test_a_killed_runs_lock_is_stale_and_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    holder = hold_claim(run_dir, then="kill")
    assert holder.wait(timeout=60) == -signal.SIGKILL
    assert json.loads((run_dir / LOCK_NAME).read_text())["pid"] == holder.pid  # left behind
    with pytest.warns(UserWarning, match=f"stale lock.*pid {holder.pid}"):
        claim = claim_run_dir(run_dir)
    claim.release()
    assert not (run_dir / LOCK_NAME).exists()


def test_a_file_in_the_way_is_a_run_dir_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="cannot be created"):
        claim_run_dir(tmp_path / "file" / "run")


def test_two_pretrain_commands_on_one_run_dir(tmp_path):
    """The second command is refused while the first runs; the first ends with its own files."""
    run_dir = tmp_path / "run"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "moola_lib.pretrain",
            str(run_dir),
            "-y",
            json.dumps(TINY),
            "-p",
            "seed",
            "1",
            "-p",
            "epochs",
            "4",
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        wait_for(run_dir / LOCK_NAME, timeout=60.0)  # the claim comes within seconds of the start (on busy cores)
        second = run_command("moola_lib.pretrain", run_dir, "-y", json.dumps(TINY), "-p", "seed", "2")
        assert first.poll() is None, "the first run ended before the second started: make it longer"
        assert_one_line_error(second, "is in use by another run", f"pid {first.pid}")
    finally:
        _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    results = json.loads((run_dir / "training_results.json").read_text())
    assert results["config"]["seed"] == 1 and not (run_dir / LOCK_NAME).exists()


@pytest.mark.slow
def test_run_notebook_refused_while_another_run_holds_the_directory(tmp_path):
    """The refused runner touches nothing of the running one: no manifest marked failed, no notebook or
    report overwritten (the first run's kernel has not written its manifest yet)."""
    run_dir = tmp_path / "run"
    holder = hold_claim(run_dir)
    try:
        (run_dir / "pretrain.ipynb").write_text('{"the first run": "writing"}')
        before = listing(run_dir)
        proc = run_command(
            "moola_lib.run_notebook", "pretrain", "--no-progress", "--run-dir", run_dir, "-p", "epochs", "0"
        )  # fails at once should its kernel start at all
        assert_one_line_error(proc, "is in use by another run")
        assert listing(run_dir) == before
    finally:
        holder.kill()
        holder.wait()


def test_an_unwritable_run_dir_stops_the_command_before_any_data_is_loaded(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")

    def never(*args, **kwargs):
        raise AssertionError("data was loaded although the run directory cannot be written")

    monkeypatch.setattr(pretrain_module, "load_pretrain_data", never)
    with pytest.raises(RunDirError, match="file/run: cannot be created"):
        pretrain_module.main([str(tmp_path / "file" / "run"), "-y", json.dumps(TINY)])
    proc = run_command("moola_lib.pretrain", tmp_path / "file" / "run", "-y", json.dumps(TINY))
    assert_one_line_error(proc, "cannot be created")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_a_gpu_is_refused_before_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrain_module, "load_pretrain_data", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        pretrain_module.pretrain({**TINY, "device": "cuda"}, tmp_path / "run")
    proc = run_command("moola_lib.pretrain", tmp_path / "run", "-y", json.dumps(TINY), "-p", "device", "cuda")
    assert_one_line_error(proc, "device='cuda'", "no CUDA GPU")
    assert not (tmp_path / "run").exists()


def test_parameter_errors_found_late_today_stop_before_the_data(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrain_module, "load_pretrain_data", lambda *a, **k: pytest.fail("data loaded"))
    bad = {**TINY, "splits": {"train": ["2024-12-12", "2024-12-01"], "val": ["2024-12-12", "2024-12-20"]}}
    with pytest.raises(ConfigError, match="start 2024-12-12 must be before end 2024-12-01"):
        pretrain_module.pretrain(bad, tmp_path / "run")
    overlap = {**TINY, "splits": {"train": ["2024-12-01", "2024-12-13"], "val": ["2024-12-12", "2024-12-20"]}}
    with pytest.raises(ConfigError, match="overlap"):
        pretrain_module.pretrain(overlap, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert os.listdir(tmp_path) == []


RUNNER = """
import subprocess, sys
from moola_lib.util.rundir import claim_run_dir
claim = claim_run_dir(sys.argv[1])   # the notebook runner
import os
kernel = subprocess.run([sys.executable, sys.argv[2], *sys.argv[1:]], env={**os.environ, **claim.env()})
sys.exit(kernel.returncode)
"""
KERNEL = """
import subprocess, sys
from moola_lib.util.rundir import claim_run_dir
claim = claim_run_dir(sys.argv[1])   # start_run in the kernel: runs under the runner's claim
print("kernel inherited", getattr(claim, "inherited", claim.fd is None), flush=True)
if len(sys.argv) > 3:                # a subprocess the notebook starts while its run is live
    child = subprocess.run(sys.argv[3:], capture_output=True, text=True)
    print("child", child.returncode, child.stderr.strip().splitlines()[-1:], flush=True)
claim.release()
"""


def run_tree(tmp_path, run_dir, *child):
    (tmp_path / "runner.py").write_text(RUNNER)
    (tmp_path / "kernel.py").write_text(KERNEL)
    return subprocess.run(
        [sys.executable, tmp_path / "runner.py", str(run_dir), tmp_path / "kernel.py", *map(str, child)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_a_claim_is_inherited_by_one_process_of_its_tree_at_a_time(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_tree(tmp_path, run_dir, sys.executable, "-m", "moola_lib.pretrain", run_dir, "-y", json.dumps(TINY))
    assert proc.returncode == 0, proc.stderr
    assert "kernel inherited True" in proc.stdout
    assert "child 2 ['error: run directory" in proc.stdout and "under the same claim" in proc.stdout
    assert not (run_dir / "checkpoint_last.pt").exists()  # the second writer never started


def test_a_run_dir_with_a_colon_is_inherited(tmp_path):
    proc = run_tree(tmp_path, tmp_path / "a:b" / "run")
    assert proc.returncode == 0 and "kernel inherited True" in proc.stdout, proc.stderr


def test_a_token_read_from_the_lock_file_admits_no_one(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    holder = hold_claim(run_dir)
    try:
        token = json.loads((run_dir / LOCK_NAME).read_text())["token"]  # the file is world-readable
        monkeypatch.setenv("MOOLA_RUN_CLAIMS", json.dumps({str(run_dir): token}))
        with pytest.raises(RunDirBusyError, match=f"in use by another run \\(pid {holder.pid}"):
            claim_run_dir(run_dir)
        monkeypatch.setenv("MOOLA_RUN_CLAIMS", f"{run_dir}={token}")  # the old format: not a claim either
        with pytest.raises(RunDirBusyError):
            claim_run_dir(run_dir)
    finally:
        holder.kill()
        holder.wait()
