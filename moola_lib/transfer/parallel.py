"""The protocol's independent fits on several processes: ``run_fits``, results identical to the serial run
(DESIGN.md section 5.10).

A fit (``Fit``) is one arm on one split of one learning-curve fraction: ``fits.arm_probabilities`` with the
split's seed. Every source of randomness in a fit is seeded from that seed alone (``fits.fit_seed`` of the
run seed, repeat, fold and fraction; a trained arm's further seeds from it and the seed index; arms of one
fold share it on purpose: their heads start alike), so a fit's result does not depend on which process runs
it or when. ``run_fits`` returns the results in the order of the fits whatever the order of completion, and
the caller assembles them as the serial loop did: the fold scores and out-of-fold probabilities of
``n_jobs`` 1 and N are identical bit for bit (tests/transfer/test_parallel.py), on the CPU.

Engine: joblib's loky processes (reused between calls), fed the expected longest fits first
(``longest_first``). ``n_jobs`` 1 runs every fit in this process, as before. ``start_workers`` starts the
processes in the background before the fits are known (``run_transfer`` calls it first; the transfer notebook
in its first cell), so their start (imports, aeon's kernels: seconds) overlaps the caller's preparation
instead of delaying the first fits; ``run_fits`` waits for them. The shared ``Inputs`` (tensors,
encoder, fixed features) are written once per call to a temporary file that each worker reads once and keeps
(``_WORKER_INPUTS``); each task carries only its indices. Each worker runs ``cpu_threads`` torch and BLAS
threads (the serial run's setting, so the arithmetic is the same; None: the usable cores divided among the
workers) and numba / OpenMP as loky limits them (cores / workers). With a GPU device the workers share it:
each holds its own CUDA context and its fits' small tensors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed, parallel_config
from threadpoolctl import threadpool_limits

from ..util.threads import allowed_cpus, quota_cores
from .arms import arm as arm_row
from .arms import result_arms
from .config import TransferConfig
from .fits import KINDS, Inputs, arm_probabilities
from .rocket import load_kernels

_WORKER_INPUTS: tuple[str, Inputs] | None = None  # in a worker: the inputs file it read last, and its contents
_STARTING: threading.Thread | None = None  # in the caller: start_workers's thread until run_fits joins it


@dataclasses.dataclass(frozen=True)
class Fit:
    """One arm on one split: (fit, early-stopping, test) window indices and the split's seed."""

    arm: str
    split: tuple
    seed: int


def usable_cores() -> int:
    """The CPUs this process may run on (affinity), at most what a cgroup CPU quota allows."""
    cores = len(allowed_cpus())
    return max(1, min(cores, quota_cores() or cores))


def resolve_jobs(n_jobs: int | None, n_fits: int) -> int:
    """Worker processes for ``n_fits`` fits: ``n_jobs`` (None: the usable cores), at most one per fit."""
    return max(1, min(n_jobs or usable_cores(), n_fits))


def longest_first(fits: list[Fit]) -> list[int]:
    """Indices of ``fits``, the expected longest first: the last fits to start are short ones, so no worker
    idles at the end while another finishes a long fit (results do not depend on the order)."""
    cost = [KINDS[arm_row(f.arm).kind].fit_cost * len(f.split[0]) for f in fits]  # per training window
    return sorted(range(len(fits)), key=lambda i: -cost[i])


def _worker_start(aeon: bool) -> None:
    """In each new worker process, once, before its first task: what the fits need loaded (the imports
    come with this function's module; aeon's kernels when arms of a kind that ``needs_aeon`` run: compiling
    them on a machine's first use takes ~35 s), then all of it left out of the cyclic collector:
    without psutil, loky runs gc.collect() in its workers every second between tasks, and over the ~300k
    objects of torch, scikit-learn and aeon each took ~0.2 s, ~15% of a worker's time (BENCHMARKS.md).
    Frozen objects are still freed by reference counting."""
    if aeon:
        load_kernels()
    gc.freeze()


def _parallel(n_jobs: int, cfg: TransferConfig, **kwargs) -> Parallel:
    """joblib's Parallel on the fit workers of a run with ``cfg``. joblib keeps (reuses) its worker processes
    while their configuration stays the same, so every call for the same run finds the same processes."""
    aeon = any(KINDS[arm_row(a).kind].needs_aeon for a in result_arms(cfg.arms))
    with parallel_config("loky", initializer=_worker_start, initargs=(aeon,)):
        return Parallel(n_jobs=n_jobs, **kwargs)  # the backend and its configuration are fixed here


def start_workers(cfg: TransferConfig) -> None:
    """Start the worker processes of a protocol run with ``cfg`` (``resolve_jobs`` of its fits) in the
    background and return at once; nothing with one job or while a start is under way. ``run_fits`` for the
    same configuration (jobs, arms) then finds them running: joblib reuses them."""
    global _STARTING
    n_jobs = resolve_jobs(cfg.n_jobs, cfg.n_fits)
    if n_jobs == 1 or (_STARTING is not None and _STARTING.is_alive()):
        return  # a finished start that run_fits never joined (a cell re-run with new settings) is replaced
    _STARTING = threading.Thread(target=_start, args=(n_jobs, cfg), name="moola-start-workers", daemon=True)
    _STARTING.start()


def _start(n_jobs: int, cfg: TransferConfig) -> None:
    # One task starts all of them, each running _worker_start first. A start that fails here fails again in
    # run_fits, which reports it: this thread has no one to tell.
    with contextlib.suppress(Exception):
        _parallel(n_jobs, cfg)([delayed(int)()])


def _started() -> None:
    """Wait for ``start_workers``'s processes, if it was called."""
    global _STARTING
    if _STARTING is not None:
        _STARTING.join()
        _STARTING = None


def _one_fit(inputs: Inputs, y: np.ndarray, fit: Fit, cfg: TransferConfig, threads: int | None):
    """The fit with ``threads`` BLAS threads (None: as they are): the probes' and ridge's small matrices gain
    nothing from more, and on busy cores two BLAS threads made the serial probes 15x slower (BENCHMARKS.md)."""
    t0 = time.perf_counter()
    with threadpool_limits(limits=threads, user_api="blas"):
        probas, info = arm_probabilities(fit.arm, inputs, y, fit.split, cfg, fit.seed)
    return probas, info, time.perf_counter() - t0


def _worker_fit(path: str, index: int, y: np.ndarray, fit: Fit, cfg: TransferConfig, threads: int):
    """In a worker: the fit on the inputs of ``path`` (read on first use), with ``threads`` torch threads."""
    global _WORKER_INPUTS
    if _WORKER_INPUTS is None or _WORKER_INPUTS[0] != path:
        _WORKER_INPUTS = (path, torch.load(path, weights_only=False))
        gc.freeze()  # the inputs too (see _worker_start)
    torch.set_num_threads(threads)
    return index, _one_fit(_WORKER_INPUTS[1], y, fit, cfg, threads)


def run_fits(fits: list[Fit], inputs: Inputs, y: np.ndarray, cfg: TransferConfig, progress=None, store=None) -> list:
    """(probabilities of each seed, what the fit chose, seconds) of every fit, in the order of ``fits``, on
    ``resolve_jobs(cfg.n_jobs)`` processes; ``progress`` (a bar) advances as each fit completes. ``store`` (a
    ``fit_store.FitStore``): the fits it holds are read, not fitted, and each fit is written to it as it
    completes, so that a rerun after an interruption fits only the rest."""
    results = [None if store is None else store.get(fit) for fit in fits]
    todo = [i for i, result in enumerate(results) if result is None]
    if progress is not None and len(todo) < len(fits):
        progress.update(len(fits) - len(todo))
    for i, result in _completed([fits[i] for i in todo], inputs, y, cfg):
        results[todo[i]] = result
        if store is not None:
            store.put(fits[todo[i]], result)
        if progress is not None:
            progress.update(1)
    return results


def _completed(fits: list[Fit], inputs: Inputs, y: np.ndarray, cfg: TransferConfig):
    """(index in ``fits``, result) of each fit as it completes: in this process with one job, else on the
    workers (the expected longest fits first)."""
    n_jobs = resolve_jobs(cfg.n_jobs, len(fits))
    if n_jobs == 1:
        for i, fit in enumerate(fits):
            yield i, _one_fit(inputs, y, fit, cfg, cfg.cpu_threads)
        return
    threads = cfg.cpu_threads or max(1, usable_cores() // n_jobs)
    _started()
    folder = tempfile.mkdtemp(prefix="moola-transfer-")
    try:
        path = str(Path(folder) / f"inputs-{uuid.uuid4().hex}.pt")  # unique: a worker's cache key
        torch.save(inputs, path)
        tasks = (delayed(_worker_fit)(path, i, y, fits[i], cfg, threads) for i in longest_first(fits))
        yield from _parallel(n_jobs, cfg, return_as="generator_unordered")(tasks)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
