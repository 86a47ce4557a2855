"""The transfer protocol's fits on worker processes (``moola_lib.transfer.parallel``): the results of
``n_jobs`` 2 are those of the serial run bit for bit, the progress bar counts every fit, and the number of
workers follows the machine."""

import dataclasses
import gc
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CFG as TINY
from helpers import tiny_set
from joblib import delayed

from moola_lib.labels.provenance import EncoderSource
from moola_lib.pretraining.checkpoints import save_encoder
from moola_lib.pretraining.model import JadeEncoder
from moola_lib.transfer import parallel
from moola_lib.transfer.config import TransferConfig
from moola_lib.transfer.fits import Inputs
from moola_lib.transfer.folds import make_folds
from moola_lib.transfer.protocol import evaluate_arms, run_transfer
from moola_lib.util.config import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = {  # the tiny protocol of test_transfer, with two repeats and every kind of arm but rocket
    **TINY,
    "arms": ["baseline", "frozen", "finetune", "random_frozen", "simple"],
    "repeats": 2,
    "epochs": 2,
    "unfreeze_epoch": 1,
    "seeds_per_fold": 2,
}


def _without_timings(x):
    """``x`` with every "seconds" entry and the config's n_jobs removed (all that may differ)."""
    if isinstance(x, dict):
        return {k: _without_timings(v) for k, v in x.items() if k not in ("seconds", "n_jobs")}
    if isinstance(x, list):
        return [_without_timings(v) for v in x]
    return x


def _assert_identical(a, b, where="results"):
    """Equal bit for bit (NaN equals NaN), naming the first place that differs."""
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_identical(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b and type(a) is type(b), f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("enc") / "encoder.pt"
    save_encoder(JadeEncoder(hidden_size=8, num_layers=1), path)
    return EncoderSource.load(path, input_size=10)


# the rocket arms (aeon, numba threads inside the workers) on a smaller protocol: their fits take seconds
ROCKET = {**CFG, "arms": ["baseline", "rocket"], "primary": "rocket_minirocket vs baseline", "repeats": 1}


@pytest.mark.parametrize("cfg", [CFG, {**ROCKET, "fractions": [1.0]}], ids=["neural_and_simple", "rocket"])
def test_two_workers_give_the_serial_results_bit_for_bit(encoder, cfg):
    serial = run_transfer(tiny_set(), encoder, {**cfg, "n_jobs": 1})
    two = run_transfer(tiny_set(), encoder, {**cfg, "n_jobs": 2})
    assert serial["config"]["n_jobs"] == 1 and two["config"]["n_jobs"] == 2
    for arm, result in serial["arms"].items():  # the fold scores and out-of-fold probabilities first
        scores = [{k: v for k, v in f.items() if k != "seconds"} for f in result["folds"]]
        assert scores == [{k: v for k, v in f.items() if k != "seconds"} for f in two["arms"][arm]["folds"]], arm
        oof = np.asarray(result["oof_probabilities"])
        assert np.isfinite(oof).all() and np.array_equal(oof, np.asarray(two["arms"][arm]["oof_probabilities"]))
    assert len({tuple(f["seed_scores"]["log_loss"]) for f in serial["arms"]["baseline"]["folds"]}) > 1
    _assert_identical(_without_timings(serial), _without_timings(two))  # and everything derived from them


def test_progress_counts_every_fit_as_it_completes(encoder):
    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    ls = tiny_set()
    cfg = TransferConfig(
        **{**CFG, "arms": ["baseline", "simple"], "primary": "simple_logistic vs baseline", "n_jobs": 2}
    )
    bar = Bar()
    out = evaluate_arms(
        ls, Inputs.build(ls, encoder.encoder, cfg), cfg, make_folds(ls.y, ls.groups, 3, 2, 0), ls.groups, 0.5, bar
    )
    assert bar.n == 3 * 2 * 3  # folds x repeats x result arms
    assert [(f["repeat"], f["fold"]) for f in out["simple_boosting"]["folds"]] == [
        (r, k) for r in range(2) for k in range(3)
    ]


def test_workers_follow_the_machine(monkeypatch):
    monkeypatch.setattr(parallel, "allowed_cpus", lambda: frozenset({0, 3, 5}))
    monkeypatch.setattr(parallel, "quota_cores", lambda: None)
    assert parallel.resolve_jobs(None, 100) == 3  # the CPUs this process may use
    assert parallel.resolve_jobs(None, 2) == 2 and parallel.resolve_jobs(8, 5) == 5  # never more than the fits
    monkeypatch.setattr(parallel, "quota_cores", lambda: 2)
    assert parallel.resolve_jobs(None, 100) == 2  # a cgroup quota of two CPUs
    assert TransferConfig().n_jobs is None
    with pytest.raises(ConfigError, match="n_jobs must be >= 1"):
        TransferConfig(n_jobs=0)


def test_the_longest_fits_are_submitted_first():
    small, large = (np.arange(10), [], []), (np.arange(100), [], [])
    arms = [("frozen", large), ("baseline", small), ("rocket_multirocket", large), ("simple_boosting", large)]
    fits = [parallel.Fit(arm, split, 0) for arm, split in arms]
    # expected cost per fit window: MultiRocket on 100 (100), the trained arm on 10 and boosting on 100 (10 each,
    # kept in their order), the probe on 100 (5)
    assert parallel.longest_first(fits) == [2, 1, 3, 0]


def test_an_error_in_a_worker_reaches_the_caller(encoder):
    ls = tiny_set()
    cfg = TransferConfig(**{**CFG, "arms": ["baseline", "frozen"], "n_jobs": 2})
    inputs = Inputs.build(ls, encoder.encoder, cfg)
    inputs.fixed.pop("frozen")  # the probe's features are missing: its fits fail in the workers
    with pytest.raises(KeyError, match="frozen"):
        evaluate_arms(ls, inputs, cfg, make_folds(ls.y, ls.groups, 3, 1, 0), ls.groups)


def _worker_state(barrier: str) -> tuple[int, tuple[int, bool]]:
    """This worker's pid and state, once two tasks have reached the barrier folder: a worker busy with one
    task cannot take the other, so the two tasks run on two workers (a sleep only made that likely)."""
    folder = Path(barrier)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + 120
    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid(), (gc.get_freeze_count(), "aeon.transformations.collection.convolution_based" in sys.modules)


def _workers(cfg: TransferConfig) -> dict[int, tuple[int, bool]]:
    """{pid: (objects frozen, aeon's transforms loaded)} of the two workers the fits of a run with ``cfg`` use."""
    with tempfile.TemporaryDirectory() as barrier:
        return dict(parallel._parallel(2, cfg)(delayed(_worker_state)(barrier) for _ in range(2)))


def test_started_workers_are_loaded_and_the_fits_run_on_them(encoder):
    cfg = TransferConfig(**{**CFG, "arms": ["baseline", "simple"], "primary": "simple_logistic vs baseline"})
    parallel.start_workers(TransferConfig(**{**CFG, "n_jobs": 1}))
    assert parallel._STARTING is None  # one job: no workers
    parallel.start_workers(TransferConfig(**{**CFG, "n_jobs": 2}))
    assert parallel._STARTING is not None  # returned at once, the start under way
    parallel._started()
    started = _workers(cfg)
    assert len(started) == 2 and all(n > 0 and not aeon for n, aeon in started.values())  # ran _worker_start
    serial = run_transfer(tiny_set(), encoder, {**dataclasses.asdict(cfg), "n_jobs": 1})
    two = run_transfer(tiny_set(), encoder, {**dataclasses.asdict(cfg), "n_jobs": 2})
    _assert_identical(_without_timings(serial), _without_timings(two))
    assert _workers(cfg).keys() == started.keys()  # the same processes: the fits did not start new ones
    two_jobs = TransferConfig(**{**dataclasses.asdict(cfg), "n_jobs": 2})
    parallel.start_workers(two_jobs)
    first = parallel._STARTING
    first.join()  # finished but never joined by run_fits, as when a notebook cell is re-run with new settings
    parallel.start_workers(two_jobs)
    assert parallel._STARTING is not first  # a new start, not skipped
    parallel._started()
    rocket = TransferConfig(**{**CFG, "arms": ["baseline", "rocket"], "primary": "rocket_minirocket vs baseline"})
    assert all(aeon for _, aeon in _workers(rocket).values())  # rocket arms: each worker loaded aeon's kernels
