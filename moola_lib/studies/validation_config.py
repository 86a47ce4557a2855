"""The sizes of a validation run and what every experiment derives from them (``transfer.validate``).

Contract: ``ValidationConfig`` (strict; defaults: the documented 30-minute run, VALIDATION.md) and
``QUICK`` (the seconds-long run of ``--quick`` and the tests); ``labelled_set`` is the one place the
validation draws a labelled set (market seeds: ``LABELLED_MARKET_SEED`` + replicate for the replicates,
``LABEL_ENCODER_MARKET_SEED`` + seed for the label-carrying encoder; ``replicate_offset`` shifts the
replicates to fresh sets, the truth unchanged); ``transfer_config`` is the
protocol's ``TransferConfig`` at these sizes (CPU, no bootstrap unless overridden).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..labels.testbed import EMBEDDED_SET, synthetic_labelled_set
from ..transfer.config import TransferConfig
from ..util.config import StrictConfig

LABELLED_MARKET_SEED = 1_000_000
LABEL_ENCODER_MARKET_SEED = 4_000_000


@dataclass
class ValidationConfig(StrictConfig):
    """Sizes of the validation run (defaults: about 20 minutes on 2 idle CPU cores, VALIDATION.md)."""

    experiments: list[str] = dataclasses.field(default_factory=lambda: ["pairs", "real"])
    replicates: int = 80  # labelled sets of the pair experiment (coverage CI about +-5 pp)
    sgd_replicates: int = 60  # of those, how many also train the baseline (primary_null, positive)
    replicate_offset: int = 0  # replicate r is the labelled set (market, draw, folds) r + offset: fresh sets
    n_labelled: int = EMBEDDED_SET.n
    difficulty: float = EMBEDDED_SET.difficulty  # of every market the run draws (testbed: 0 easy .. 1 chance)
    folds: int = 5
    repeats: int = 5
    epochs: int = 60  # transfer training epochs (baseline)
    hidden_size: int = 32  # encoder architecture of the probes and the baseline
    num_layers: int = 1
    truth_draws: int = 100  # fresh training sets per arm for the true differences
    sgd_truth_draws: int = 40  # of those, how many also train the baseline
    pool_markets: int = 8  # held-out pool: windows from this many independent markets
    pool_per_market: int = 250
    n_bootstrap: int = 1000  # the test-window bootstrap (test noise only), per replicate and pair
    positive_windows: int = 2000
    positive_epochs: int = 20
    pretrain_hidden_size: int = 64  # the real question's encoder
    pretrain_num_layers: int = 1
    pretrain_epochs: int = 6
    pretrain_start: str = "2024-04-01"
    real_repeats: int = 5
    real_fractions: list[float] = dataclasses.field(default_factory=lambda: [0.25, 0.5, 1.0])
    labels_multiples: list[int] = dataclasses.field(default_factory=lambda: [2, 4])  # labels check: set sizes
    labels_replicates: int = 10
    labels_fractions: list[float] = dataclasses.field(default_factory=lambda: [0.25, 0.5, 1.0])
    labels_check_period: list[str] = dataclasses.field(default_factory=lambda: ["2025-01-01", "2025-09-30"])
    seeds_per_fold: int = 1
    labels_period: list[str] = dataclasses.field(default_factory=lambda: [EMBEDDED_SET.start, EMBEDDED_SET.end])
    history_start: str = EMBEDDED_SET.history_start
    workers: int = 2  # processes (1: everything in this process)
    n_jobs: int | None = None  # with workers 1: each protocol run's worker processes (TransferConfig.n_jobs)
    seed: int = 0

    def __post_init__(self) -> None:
        known = ("pairs", "real", "labels")
        self.require(
            [
                (set(self.experiments) <= set(known), f"experiments must be among {known}"),
                (self.replicates >= 2 and self.truth_draws >= 2, "replicates and truth_draws must be >= 2"),
                (self.workers >= 1, "workers must be >= 1"),
            ]
        )


QUICK = dict(
    replicates=3,
    sgd_replicates=2,
    n_labelled=40,
    folds=3,
    repeats=1,
    epochs=3,
    hidden_size=8,
    truth_draws=3,
    sgd_truth_draws=2,
    pool_markets=2,
    pool_per_market=30,
    n_bootstrap=100,
    positive_windows=80,
    positive_epochs=2,
    pretrain_hidden_size=8,
    pretrain_epochs=1,
    pretrain_start="2025-03-01",
    real_repeats=1,
    real_fractions=[0.5, 1.0],
    labels_multiples=[2],
    labels_replicates=2,
    labels_fractions=[0.5, 1.0],
    labels_check_period=["2025-07-01", "2025-08-31"],
    labels_period=["2025-07-01", "2025-07-14"],
    history_start="2025-06-24",
    workers=1,
    n_jobs=1,  # its protocol runs take seconds: starting worker processes costs more (BENCHMARKS.md)
)


def labelled_set(vc: ValidationConfig, n: int, seed: int, market_seed: int, period=None):
    """The one place the validation draws a labelled set: ``n`` windows of the embedded testbed from the
    market ``market_seed`` (every replicate, draw and pool its own), in ``period`` (default labels_period),
    at the run's ``difficulty``."""
    lo, hi = period or vc.labels_period
    history = vc.history_start if period is None else str(np.datetime64(lo, "D") - 30)
    return synthetic_labelled_set(
        n, seed=seed, start=lo, end=hi, history_start=history, market_seed=market_seed, difficulty=vc.difficulty
    )


def transfer_config(vc: ValidationConfig, **overrides) -> TransferConfig:
    return TransferConfig(
        **{
            **dict(
                folds=vc.folds,
                repeats=vc.repeats,
                epochs=vc.epochs,
                fractions=[1.0],
                n_bootstrap=0,
                device="cpu",
                progress=False,
                seeds_per_fold=vc.seeds_per_fold,
                seed=vc.seed,
                n_jobs=1 if vc.workers > 1 else vc.n_jobs,  # parallel over replicates already: no nested workers
            ),
            **overrides,
        }
    )
