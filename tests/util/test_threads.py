"""The CPU thread policy: one torch thread per core that other processes leave free, re-decided per epoch,
never over torch's default, and a count the user chose always wins."""

import subprocess
import sys
import time

import pytest
import torch

from moola_lib.util import threads
from moola_lib.util.threads import CpuThreads, LoadSample, choose_threads, quota_cores

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "ceiling, cores, others, expected",
    [
        (2, 2, 0.0, 2),  # idle 2-core machine: torch's default, as before
        (2, 2, 0.25, 2),  # background noise does not cost a thread
        (2, 2, 0.67, 1),  # one busy process squeezed by our two spinning threads (2 of 3 runnable on 2 cores)
        (2, 2, 1.0, 1),  # one busy process beside one thread of ours
        (2, 2, 2.0, 1),  # two busy processes: still one thread, never none
        (2, 2, 5.0, 1),
        (8, 16, 0.0, 8),  # never more than torch's default (the physical cores)
        (16, 16, 7.0, 9),  # seven busy processes on 16 cores
        (16, 16, 6.6, 9),
        (16, 16, 6.8, 9),
        (16, 16, 6.71, 9),
        (16, 16, 7.71, 8),
    ],
)
def test_choose_threads(ceiling, cores, others, expected):
    assert choose_threads(ceiling, cores, others) == expected


def test_load_of_other_processes_excludes_our_own():
    earlier = LoadSample(wall=10.0, busy=100.0, own=5.0)
    assert LoadSample(wall=12.0, busy=103.0, own=6.0).others_since(earlier) == pytest.approx(1.0)
    assert LoadSample(wall=12.0, busy=101.0, own=7.0).others_since(earlier) == 0.0  # counter jitter: not < 0


def test_quota_cores(tmp_path):
    path = tmp_path / "cpu.max"
    for text, expected in [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000", 1), ("junk", None)]:
        path.write_text(text)
        assert quota_cores(path) == expected
    assert quota_cores(tmp_path / "missing") is None


@pytest.mark.skipif(threads.cpu_busy_seconds(threads.allowed_cpus()) is None, reason="no /proc/stat")
def test_a_busy_process_shows_as_load_of_others():
    cpus = threads.allowed_cpus()
    loop = "import time\nend = time.time() + 30\nwhile time.time() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", loop])
    try:
        time.sleep(0.3)
        before = LoadSample.now(cpus)
        time.sleep(1.0)
        others = LoadSample.now(cpus).others_since(before)
    finally:
        busy.kill()
        busy.wait()
    assert others >= 0.5  # the busy loop alone is one core's worth on an idle machine, shared on a busy one


@pytest.fixture
def policy_env(monkeypatch):
    """torch's count as it is now taken as its default; the thread variables unset; the count restored."""
    count = torch.get_num_threads()
    for name in threads.USER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "_AT_IMPORT", 4)
    monkeypatch.setattr(threads, "_latest", None)
    torch.set_num_threads(4)
    yield monkeypatch
    torch.set_num_threads(count)


def scripted_load(monkeypatch, others_per_call):
    """LoadSample.now returns samples 1 s apart in which other processes used the given CPUs' worth."""
    clock = {"wall": 0.0, "busy": 0.0}

    def now(cpus):
        clock["wall"] += 1.0
        clock["busy"] += others_per_call.pop(0) if clock["wall"] > 1 else 0.0
        return LoadSample(clock["wall"], clock["busy"], 0.0)

    monkeypatch.setattr(LoadSample, "now", staticmethod(now))
    monkeypatch.setattr(threads, "allowed_cpus", lambda: frozenset(range(4)))
    monkeypatch.setattr(threads, "quota_cores", lambda: None)


def test_the_policy_follows_the_load_per_epoch(policy_env):
    scripted_load(policy_env, [0.0, 2.0, 0.2, 3.5, 0.0])
    policy = CpuThreads(CPU)
    assert policy.active
    assert [policy.adapt() for _ in range(4)] == [4, 2, 4, 1]
    assert torch.get_num_threads() == 1
    policy.restore()  # the job's end: the count it found, so the next job's policy is on again
    assert torch.get_num_threads() == 4 and not policy.active and CpuThreads(CPU).active


def test_a_user_count_equal_to_the_policys_last_is_still_the_users(policy_env):
    # CI failed on this once: a job's policy left 1 thread, a test module then chose 1 thread itself, and
    # the next job's policy took that for its own, ran on 2 threads and summed its losses in another order
    scripted_load(policy_env, [3.5, 0.0, 0.0])
    policy = CpuThreads(CPU)
    assert policy.adapt() == 1
    policy.restore()
    torch.set_num_threads(1)
    job = CpuThreads(CPU)
    assert not job.active and job.adapt() == 1 and torch.get_num_threads() == 1
    job.restore()
    assert torch.get_num_threads() == 1


def test_restore_keeps_a_count_the_user_set_during_the_job(policy_env):
    scripted_load(policy_env, [3.5, 0.0])
    policy = CpuThreads(CPU)
    assert policy.adapt() == 1
    torch.set_num_threads(3)  # after the policy's last decision
    policy.restore()
    assert torch.get_num_threads() == 3


def test_a_count_the_user_chose_wins(policy_env):
    scripted_load(policy_env, [3.0, 3.0])
    policy_env.setenv("OMP_NUM_THREADS", "3")
    assert not CpuThreads(CPU).active
    policy_env.delenv("OMP_NUM_THREADS")
    torch.set_num_threads(3)  # before the job
    assert not CpuThreads(CPU).active and CpuThreads(CPU).adapt() == 3
    torch.set_num_threads(4)
    policy = CpuThreads(CPU)
    assert policy.adapt() == 1
    torch.set_num_threads(2)  # during the job
    assert policy.adapt() == 2 and not policy.active and torch.get_num_threads() == 2


def test_no_policy_on_a_gpu_job(policy_env):
    assert not CpuThreads(torch.device("cuda")).active  # the device is only named: no GPU needed


def test_the_first_decision_sees_the_load_since_import(policy_env):
    recent = LoadSample(time.perf_counter() - 5.0, 0.0, 0.0)  # e.g. taken at import, before the data loaded
    policy_env.setattr(threads, "_latest", recent)
    assert CpuThreads(CPU).sample is recent
    policy_env.setattr(threads, "_latest", LoadSample(time.perf_counter() - 2 * threads.MAX_AGE_S, 0.0, 0.0))
    assert CpuThreads(CPU).sample.wall > time.perf_counter() - 1.0  # too old: a fresh one


def test_contention_table_and_demo_parameters():
    from moola_lib.tools.contention import demo_parameters, table

    params = demo_parameters(2, {"hidden_size": 8})
    assert params["epochs"] == 2 and params["hidden_size"] == 8 and params["device"] == "cpu"
    assert params["batch_size"] == 32 and "run_dir" not in params and "labels_path" not in params  # the demo's
    runs = [
        {"threads": "1", "timed_out": False, "train_s": 10.0, "wall_s": 20.0},
        {"threads": "2", "timed_out": True, "wall_s": 600.0},
        {"threads": "policy", "timed_out": False, "train_s": 12.0, "wall_s": 22.0, "final_threads": 1},
    ]
    text = table([{"busy": 2, "background": 0.05, "runs": runs}], ["1", "2", "policy"])
    assert "| 2 | 0.05 | 10.0 s (20 s) | > 600 s (timed out) | 12.0 s (22 s), ended on 1 | 1.20 |" in text
    assert "(not idle)" in table([{"busy": 0, "background": 1.5, "runs": runs}], ["1", "2", "policy"])
    again = [  # a second run of each setting: medians, ranges, and how the policy ended
        {"threads": "1", "timed_out": False, "train_s": 14.0, "wall_s": 24.0},
        {"threads": "2", "timed_out": False, "train_s": 30.0, "wall_s": 40.0},
        {"threads": "policy", "timed_out": False, "train_s": 16.0, "wall_s": 26.0, "final_threads": 2},
    ]
    text = table([{"busy": 1, "background": 0.0, "runs": runs + again}], ["1", "2", "policy"])
    assert "| 12.0 s (22 s) [10.0-14.0, 2 runs] | 315.0 s (320 s) [30.0-600.0, 2 runs, 1 timed out] |" in text
    assert "| 14.0 s (24 s) [12.0-16.0, 2 runs], ended on 1 or 2 | 1.17 |" in text


@pytest.mark.slow
def test_contention_command_runs_the_demo(capsys):
    from moola_lib.tools.contention import main

    args = [
        "--epochs",
        "1",
        "--busy",
        "1",
        "--threads",
        "policy",
        "-p",
        "synthetic_end",
        "2024-10-20",
        "-p",
        "splits",
        "auto",
        "-p",
        "hidden_size",
        "8",
    ]
    assert main(args) == 0
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.startswith("| 1 | ") and "ended on" in row and row.endswith(" 1.00 |")


def test_a_pretraining_job_gives_back_the_thread_count_it_found(policy_env, tmp_path):
    from helpers import TINY

    from moola_lib.pretraining.job import pretrain

    scripted_load(policy_env, [3.5] * 8)  # busy cores: every decision is one thread
    seen = []
    pretrain({**TINY, "epochs": 2}, tmp_path / "run", on_epoch=lambda record: seen.append(torch.get_num_threads()))
    assert seen == [1, 1] and torch.get_num_threads() == 4
