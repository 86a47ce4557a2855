"""Helpers shared by several test files (test files never import each other: tests/test_architecture.py)."""

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd

from moola_lib.labels.sets import DEFAULT_CLASSES, LabelledSet, overlap_groups
from moola_lib.util.paths import ROOT


def hold_claim(run_dir, *, then="sleep"):
    """A separate process that claims ``run_dir`` and then sleeps (a live run) or SIGKILLs itself."""
    code = textwrap.dedent(f"""
        import os, signal, sys, time
        from moola_lib.util.rundir import claim_run_dir
        claim_run_dir({str(run_dir)!r})
        print("claimed", flush=True)
        if {then!r} == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "claimed"
    return proc


def run_command(module, *args):
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


def assert_one_line_error(proc, *expected):
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    # no traceback: a notebook's kernel writes its own output (shutdown races included) to kernel.log
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for text in expected:
        assert text in errors[0], errors[0]


# ~7 weeks of synthetic bars, windows every 210 bars: ~130 train / ~60 val / ~45 test windows
TINY = dict(
    synthetic_start="2024-12-01",
    synthetic_end="2025-01-20",
    stride=210,
    splits={
        "train": ["2024-12-01", "2024-12-29"],
        "val": ["2024-12-29", "2025-01-10"],
        "test": ["2025-01-10", "2025-01-21"],
    },
    hidden_size=8,
    epochs=2,
    batch_size=32,
    warmup_epochs=1,
    device="cpu",
    progress=False,
    seed=7,
)

N, L = 36, 105

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def tiny_set(n=N, seed=0) -> LabelledSet:
    """Random windows with a learnable offset on feature 0; windows 0/1 and 4/5 overlap in time."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, L, 10)).astype(np.float32)
    X[..., 0] += y[:, None]
    valid = np.ones((n, L), dtype=bool)
    valid[:, :5] = False
    starts = np.arange(n) * 150
    starts[1], starts[5] = starts[0] + 50, starts[4] + 100
    index = pd.date_range(T0, periods=n * 150 + L, freq="1min")
    return LabelledSet(
        X=X,
        valid=valid,
        y=y,
        classes=DEFAULT_CLASSES,
        window_id=np.array([f"t{i}" for i in range(n)], dtype=object),
        start=index[starts],
        end=index[starts + L - 1],
        expansion=np.full((n, 2), -1),
        groups=overlap_groups(starts),
        source={"path": "<tiny>"},
    )


# the tiny set spans four sessions: grouping by session is tested on its own
CFG = dict(
    folds=3,
    repeats=1,
    epochs=1,
    batch_size=32,
    fractions=[0.5, 1.0],
    n_bootstrap=50,
    device="cpu",
    progress=False,
    group_by_session=False,
)


def bar_frame(index, seed=0, volume=True) -> pd.DataFrame:
    """Valid bars for the timestamps ``index`` (naive or aware, kept as given): a random walk near 100 in
    columns open, high, low, close (+ volume); tests write it out in a vendor's layout."""
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.1, len(index)))
    open_ = np.r_[close[:1], close[:-1]]
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + 0.05,
            "low": np.minimum(open_, close) - 0.05,
            "close": close,
        },
        index=index,
    )
    if volume:
        frame["volume"] = rng.integers(1, 100, len(index)).astype(float)
    return frame
