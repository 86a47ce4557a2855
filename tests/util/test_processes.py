"""util.processes.spawn_pool: spawned workers of one torch thread, each initialised once."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from moola_lib.util.processes import spawn_pool


def test_spawned_workers_run_one_thread_after_their_initializer(tmp_path):
    # builtins only: a spawned worker imports what it runs by name (a test module is not importable, and the
    # suite's fixtures wrap some of torch's functions)
    with spawn_pool(2, os.chdir, (str(tmp_path),)) as pool:
        threads = {f.result() for f in [pool.submit(torch.get_num_threads) for _ in range(4)]}
        places = {f.result() for f in [pool.submit(os.getcwd) for _ in range(4)]}
        pids = {f.result() for f in [pool.submit(os.getpid) for _ in range(4)]}
    assert threads == {1} and places == {str(tmp_path)} and os.getcwd() != str(tmp_path)
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


STOPPED_STUDY = """
import os, time
from moola_lib.util.processes import spawn_pool
if __name__ == "__main__":
    pool = spawn_pool(1)
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(time.sleep, 120)  # the job a stopped study's worker would go on with
    time.sleep(120)
"""


def _running(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()  # a zombie has ended


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_a_worker_ends_soon_after_its_parent_is_killed(tmp_path):
    script = tmp_path / "study.py"
    script.write_text(STOPPED_STUDY)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env) as parent:
        worker = int(parent.stdout.readline())
        assert _running(worker)
        parent.kill()
    deadline = time.monotonic() + 60  # seconds on an idle machine; the suite may share the cores
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(worker)
