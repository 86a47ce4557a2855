"""Options of the transfer protocol and the names of its metrics.

The arms (``baseline``, ``frozen``, ``finetune``, ``lpft``, ``random_frozen``, ``simple``, ``rocket``) are rows
of the table in ``arms.py``; ``arms`` takes its options (``arms.OPTIONS``), checked with a did-you-mean message.
``readouts``: the frozen encoders' read-outs the probes choose from per fold (``readouts.py``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ..util.config import StrictConfig
from ..util.names import valid_names_hint
from .arms import OPTIONS, REFERENCE, result_arms
from .readouts import DEFAULT_READOUT, parse

ARMS = OPTIONS  # every arm option, the default of TransferConfig.arms
LABEL_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")  # from predicted labels
METRICS = LABEL_METRICS + ("log_loss", "roc_auc")  # log-loss, AUC: from probabilities
LOWER_IS_BETTER = ("log_loss",)
RESULTS_FORMAT = "moola.transfer_results.v2"


def _readout_problem(readouts) -> str | None:
    """The first read-out that does not parse, as its error message (None: all parse)."""
    for readout in readouts:
        try:
            parse(readout)
        except ValueError as e:
            return str(e)
    return None


@dataclass
class TransferConfig(StrictConfig):
    """Options of the transfer protocol."""

    arms: list[str] = field(default_factory=lambda: list(ARMS))  # options of arms.TABLE
    # probe arms (frozen, random_frozen): "POOLING:LAYER" read-outs, one chosen per fold on the inner split
    readouts: list[str] = field(default_factory=lambda: [DEFAULT_READOUT])
    primary: str = "frozen vs baseline"  # the one comparison named before the run; others Holm-corrected
    primary_metric: Literal["accuracy", "balanced_accuracy", "macro_f1", "log_loss", "roc_auc"] = "balanced_accuracy"
    alpha: float = 0.05  # two-sided level of every test
    power: float = 0.8  # for the minimal detectable effect
    folds: int = 5
    repeats: int = 5
    seeds_per_fold: int = 1  # baseline / finetune: training seeds averaged per fold
    group_by_session: bool = True  # windows of one trading session (17:00 New York halt) share a fold
    fold_block_days: int = 1  # > 1: windows of the sessions in one block of N calendar days share a fold
    embargo_bars: int = 0  # drop training windows within this many bars (minutes) of a test window
    epochs: int = 60
    batch_size: int = 32
    lr: float = 3e-3  # head (and baseline encoder) learning rate
    encoder_lr_scale: float = 0.1  # finetune: encoder lr = lr * encoder_lr_scale
    unfreeze_epoch: int = 10  # finetune: encoder frozen for the first N epochs (head first)
    weight_decay: float = 1e-2
    dropout: float = 0.3  # classifier head dropout
    patience: int | None = 15  # early stopping on the inner validation loss; None = all epochs
    inner_val_fraction: float = 0.2  # of the training folds, held out for early stopping
    class_weighting: bool = True  # loss weights n / (n_classes * count) from the training windows
    fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])  # learning curve
    n_bootstrap: int = 2000
    cpu_threads: int | None = 1  # torch threads on the CPU (tiny LSTMs run fastest on one); None = as is
    n_jobs: int | None = None  # processes for the independent fits (each cpu_threads threads); None = usable cores
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = next((a for a in self.arms if a not in OPTIONS), None)
        bad_readout = _readout_problem(self.readouts)
        checks = [
            (unknown is None, f"unknown arm {unknown!r} in arms.{valid_names_hint(unknown, OPTIONS)}"),
            (REFERENCE in self.arms, f"arms must include {REFERENCE!r} (every comparison is against it)"),
            (len(set(self.arms)) == len(self.arms), "arms must not repeat"),
            (bad_readout is None, f"readouts: {bad_readout}"),
            (
                len(self.readouts) >= 1 and len(set(self.readouts)) == len(self.readouts),
                "readouts must name at least one read-out and none twice",
            ),
            (self.folds >= 2 and self.repeats >= 1, "folds must be >= 2 and repeats >= 1"),
            (self.seeds_per_fold >= 1 and self.embargo_bars >= 0, "seeds_per_fold must be >= 1 and embargo_bars >= 0"),
            (
                self.fold_block_days == 1 or (self.fold_block_days > 1 and self.group_by_session),
                "fold_block_days must be >= 1, and > 1 only with group_by_session (it widens the session)",
            ),
            (0 < self.alpha < 0.5 and 0.5 <= self.power < 1, "alpha must be in (0, 0.5), power in [0.5, 1)"),
            (
                self.primary_pair() is not None,
                f"primary must be 'ARM vs ARM' with two different arms of "
                f"{result_arms(self.arms)}, got {self.primary!r}",
            ),
            (self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1"),
            (
                self.lr > 0 and self.encoder_lr_scale > 0 and math.isfinite(self.lr * self.encoder_lr_scale),
                "lr and encoder_lr_scale must be finite and > 0",
            ),
            (0 <= self.seed < 2**31, "seed must be in [0, 2**31) (the fold splitter's random state)"),
            (self.unfreeze_epoch >= 0 and self.weight_decay >= 0, "unfreeze_epoch and weight_decay must be >= 0"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.patience is None or self.patience >= 1, "patience must be >= 1 or None"),
            (0 < self.inner_val_fraction <= 0.5, "inner_val_fraction must be in (0, 0.5]"),
            (all(0 < f <= 1 for f in self.fractions), "fractions must lie in (0, 1]"),
            (self.n_bootstrap >= 0, "n_bootstrap must be >= 0"),
            (self.cpu_threads is None or self.cpu_threads >= 1, "cpu_threads must be >= 1 or None"),
            (self.n_jobs is None or self.n_jobs >= 1, "n_jobs must be >= 1 (1: no worker processes) or None"),
        ]
        self.require(checks)

    @property
    def n_fits(self) -> int:
        """The protocol's fits: (learning-curve fractions and 1.0) x repeats x folds x result arms."""
        return len(set(self.fractions) | {1.0}) * self.repeats * self.folds * len(result_arms(self.arms))

    def primary_pair(self) -> tuple[str, str] | None:
        """(arm, reference) of ``primary``, or None when it does not name two different run arms."""
        parts = [p.strip() for p in self.primary.split(" vs ")]
        arms = result_arms(self.arms)
        ok = len(parts) == 2 and parts[0] != parts[1] and all(p in arms for p in parts)
        return (parts[0], parts[1]) if ok else None
