"""Options of the transfer protocol and the names of its arms and metrics."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import StrictConfig

ARMS = ("baseline", "frozen", "finetune", "random_frozen")
ARM_TITLES = {"baseline": "random init (baseline)", "frozen": "pretrained, frozen encoder",
              "finetune": "pretrained, fine-tuned encoder",
              "random_frozen": "random init, frozen encoder (probe control)"}
RANDOM_INIT = ("baseline", "random_frozen")   # arms whose encoder is randomly initialised
FROZEN = ("frozen", "random_frozen")          # arms that train the head only
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
RESULTS_FORMAT = "moola.transfer_results.v1"


@dataclass
class TransferConfig(StrictConfig):
    """Options of the transfer protocol."""

    arms: list[Literal["baseline", "frozen", "finetune", "random_frozen"]] = field(
        default_factory=lambda: list(ARMS))
    folds: int = 5
    repeats: int = 5
    epochs: int = 60
    batch_size: int = 32
    lr: float = 3e-3                   # head (and baseline encoder) learning rate
    encoder_lr_scale: float = 0.1      # finetune: encoder lr = lr * encoder_lr_scale
    unfreeze_epoch: int = 10           # finetune: encoder frozen for the first N epochs (head first)
    weight_decay: float = 1e-2
    dropout: float = 0.3               # classifier head dropout
    patience: int | None = 15          # early stopping on the inner validation loss; None = all epochs
    inner_val_fraction: float = 0.2    # of the training folds, held out for early stopping
    class_weighting: bool = True       # loss weights n / (n_classes * count) from the training windows
    fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])  # learning curve
    n_bootstrap: int = 2000
    cpu_threads: int | None = 1        # torch threads on the CPU (tiny LSTMs run fastest on one); None = as is
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        checks = [
            ("baseline" in self.arms, "arms must include 'baseline' (every comparison is against it)"),
            (len(set(self.arms)) == len(self.arms), "arms must not repeat"),
            (self.folds >= 2 and self.repeats >= 1, "folds must be >= 2 and repeats >= 1"),
            (self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1"),
            (self.lr > 0 and self.encoder_lr_scale > 0, "lr and encoder_lr_scale must be > 0"),
            (self.unfreeze_epoch >= 0 and self.weight_decay >= 0,
             "unfreeze_epoch and weight_decay must be >= 0"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.patience is None or self.patience >= 1, "patience must be >= 1 or None"),
            (0 < self.inner_val_fraction <= 0.5, "inner_val_fraction must be in (0, 0.5]"),
            (all(0 < f <= 1 for f in self.fractions), "fractions must lie in (0, 1]"),
            (self.n_bootstrap >= 0, "n_bootstrap must be >= 0"),
            (self.cpu_threads is None or self.cpu_threads >= 1, "cpu_threads must be >= 1 or None"),
        ]
        self.require(checks)
