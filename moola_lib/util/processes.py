"""Worker processes for the studies' independent jobs: ``spawn_pool``.

The studies run many independent fits (a validation replicate, a truth study's labelled set), each on one
torch thread, so N of them at once use N cores without the thrashing of several multi-threaded jobs on
shared cores (``util.threads``). The workers are spawned, not forked: a forked child inherits the parent's
OpenMP thread pool in whatever state it is in, which can deadlock the child's first parallel region; a
spawned one imports moola afresh. Whatever a worker needs beyond its job's arguments (encoders, a test set)
goes to ``initializer`` once per worker rather than with every job. A worker ends within about a second of
its parent's death (a study stopped with SIGTERM or SIGKILL): left alone it would finish its job on a core
nobody reads (``ProcessPoolExecutor`` notices a dead parent only when the next job is sent).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import torch


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:  # a dead parent's children are handed to another process
        time.sleep(1.0)
    os._exit(1)


def _start_worker(parent: int, initializer, initargs: tuple) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    torch.set_num_threads(1)
    if initializer is not None:
        initializer(*initargs)


def spawn_pool(workers: int, initializer=None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """``workers`` spawned processes, one torch thread each, each having run ``initializer(*initargs)``."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
