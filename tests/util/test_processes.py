"""util.processes.spawn_pool: spawned workers of one torch thread, each initialised once."""

import os

import torch

from moola_lib.util.processes import spawn_pool


def test_spawned_workers_run_one_thread_after_their_initializer():
    # library functions only: a spawned worker imports what it runs by name, and a test module is not importable
    with spawn_pool(2, torch.manual_seed, (1234,)) as pool:
        threads = {f.result() for f in [pool.submit(torch.get_num_threads) for _ in range(4)]}
        seeds = {f.result() for f in [pool.submit(torch.initial_seed) for _ in range(4)]}
        pids = {f.result() for f in [pool.submit(os.getpid) for _ in range(4)]}
    assert threads == {1} and seeds == {1234} and os.getpid() not in pids and 1 <= len(pids) <= 2
