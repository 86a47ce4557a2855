"""util.processes.spawn_pool: spawned workers of one torch thread, each initialised once."""

import os

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
