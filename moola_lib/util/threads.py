"""How many torch CPU threads a training job uses when other processes compete for the cores.

torch starts one OpenMP thread per physical core. On cores that other processes want too, those threads
thrash: every parallel region ends at a barrier that waits (spinning) for the thread the scheduler has
just taken off its core, and a CPU epoch of the small LSTM is thousands of such regions. On a 2-core
machine with one busy single-threaded process beside it the CPU demo took 183 s with two threads and
70 s with one; with two busy processes it had not finished after 16 minutes.

``CpuThreads`` is the policy of one CPU job. ``adapt()``, called before each epoch, sets torch's count from
the load other processes put on this process's cores since the previous call: the busy time of the CPUs in
``os.sched_getaffinity`` (from /proc/stat) less this process's own CPU time. ``choose_threads`` is the rule:
one thread per core the others leave free, where a core counts as free when they use less than
``1 - SLACK`` of it; at least one thread, and never more than torch had when this module was imported (its
default: the physical cores) or the cgroup's CPU quota allows. Re-deciding every epoch follows load that
comes and goes during a run. The first decision of a job looks at the load since this module was imported
(or since the process's previous decision) when that was less than ``MAX_AGE_S`` ago, so it typically sees
the seconds of data loading before training; it waits until ``MIN_SAMPLE_S`` of load have been seen.

A count the user chose wins: the policy changes nothing when ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is
set, when torch's count differs from the one it had at import at the start of the job, or once it differs
during the job (``torch.set_num_threads`` called meanwhile). It also changes nothing on a GPU job, and where
/proc/stat cannot be read (not Linux). ``restore()``, at the end of the job, gives back the count the job
started with: a count the policy left behind would read as the user's to the next job, and a user's own
count that happens to equal it would read as the policy's (a seeded rerun then ran on other thread counts
and summed its float32 losses in another order).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

USER_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
SLACK = 0.3  # a core that others use for less than 0.7 of the time still takes a thread
MIN_SAMPLE_S = 0.25  # the first decision of a job looks at the load of at least this long
MAX_AGE_S = 60.0  # ... and of at most about this long (longer ago: a fresh sample)
_AT_IMPORT = torch.get_num_threads()


def choose_threads(ceiling: int, cores: int, others: float) -> int:
    """torch threads for a job that may run on ``cores`` CPUs while other processes keep ``others`` CPUs'
    worth of them busy: one per core they leave free (``SLACK``), between 1 and ``ceiling``."""
    return max(1, min(ceiling, math.floor(cores - others + SLACK)))


def user_chose_threads() -> bool:
    """Whether the thread count is the user's: set in the environment, or by torch.set_num_threads."""
    return any(os.environ.get(name) for name in USER_ENV) or torch.get_num_threads() != _AT_IMPORT


@dataclass(frozen=True)
class LoadSample:
    """Cumulative counters at one moment: wall clock, busy seconds of ``cpus``, this process's CPU seconds."""

    wall: float
    busy: float
    own: float

    @classmethod
    def now(cls, cpus: frozenset[int]) -> LoadSample | None:
        busy = cpu_busy_seconds(cpus)
        return None if busy is None else cls(time.perf_counter(), busy, time.process_time())

    def others_since(self, earlier: LoadSample) -> float:
        """CPUs' worth of work other processes did on the cpus between ``earlier`` and this sample."""
        return max(0.0, (self.busy - earlier.busy) - (self.own - earlier.own)) / max(self.wall - earlier.wall, 1e-9)


def cpu_busy_seconds(cpus: frozenset[int]) -> float | None:
    """Seconds ``cpus`` have spent busy (everything but idle and iowait) since boot, from /proc/stat; None where
    that cannot be read."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines:
        name, *fields = line.split()
        if name[3:].isdigit() and name.startswith("cpu") and int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
            ticks += user + nice + system + irq + softirq + steal
    return ticks / os.sysconf("SC_CLK_TCK")


def allowed_cpus() -> frozenset[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return frozenset(range(os.cpu_count() or 1))


def quota_cores(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """The CPUs' worth a cgroup v2 CPU quota allows (rounded up); None without a quota."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))


class CpuThreads:
    """The thread policy of one job on ``device`` (module docstring); ``adapt()`` before each epoch."""

    def __init__(self, device: torch.device):
        self.cpus = allowed_cpus()
        self.ceiling = min(_AT_IMPORT, quota_cores() or _AT_IMPORT)
        self.count = self.initial = torch.get_num_threads()
        self.sample = None if device.type != "cpu" or user_chose_threads() else _recent_sample(self.cpus)

    @property
    def active(self) -> bool:
        return self.sample is not None

    def adapt(self) -> int:
        """Set and return torch's thread count for the next epoch (unchanged when the policy is off)."""
        global _latest
        if self.sample is None:
            return torch.get_num_threads()
        if torch.get_num_threads() != self.count:  # set by the user during the job: theirs from now on
            self.sample = None
            return torch.get_num_threads()
        time.sleep(max(0.0, MIN_SAMPLE_S - (time.perf_counter() - self.sample.wall)))
        now = LoadSample.now(self.cpus)
        if now is None:
            self.sample = None
            return self.count
        self.count = choose_threads(self.ceiling, len(self.cpus), now.others_since(self.sample))
        self.sample = _latest = now
        if self.count != torch.get_num_threads():
            torch.set_num_threads(self.count)
        return self.count

    def restore(self) -> None:
        """End the job: give back the count it started with, unless the user set one meanwhile (theirs stays)."""
        if self.sample is not None and torch.get_num_threads() == self.count:
            torch.set_num_threads(self.initial)
        self.sample = None


def _recent_sample(cpus: frozenset[int]) -> LoadSample | None:
    """The process's latest sample if it is younger than MAX_AGE_S, else a fresh one."""
    if _latest is not None and time.perf_counter() - _latest.wall < MAX_AGE_S:
        return _latest
    return LoadSample.now(cpus)


_latest = LoadSample.now(allowed_cpus())  # taken at import: a job's first decision sees the load from here on


@contextlib.contextmanager
def cpu_threads_block(cpu_threads: int | None):
    """``cpu_threads`` torch and BLAS threads for a block (None: as they are), restored after it: the
    protocol's policy (``TransferConfig.cpu_threads``); small LSTMs run fastest on one, and on busy cores a
    second thread made predictions 5-8x slower."""
    if cpu_threads is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_threads)
    try:
        with threadpool_limits(limits=cpu_threads, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(threads)
