"""TensorBoard event files of a pretraining job, when the ``tensorboard`` package is there (DESIGN.md section 4.9).

``TensorBoardLog(run_dir, config, start_epoch)`` writes RUN_DIR/tb/ through torch's own
``torch.utils.tensorboard.SummaryWriter``: the config once as text (YAML) with the first epoch; per epoch
(global step = the epoch) ``loss/train``, ``loss/val``, ``lr``, ``throughput/windows_per_s`` and
``time/epoch_seconds``, flushed, so ``tensorboard --logdir runs/`` follows running jobs; at the end the
config as hyperparameters with the best val loss and its ratio to the per-feature better reference (the
HParams dashboard: one row per run). A resumed run purges the steps after its checkpoint
(``purge_step``), so an epoch repeated after a kill shows once.

Without the package (a GPU box set up without network) ``status`` is ``"not installed"``, nothing is
written, and one warning line per process says so: training goes on either way. The job records the
status in training_results.json (``"tensorboard"``).
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import yaml

from .config import PretrainConfig

TB_DIR = "tb"  # in the run directory
NOT_INSTALLED = "not installed"


@functools.cache
def summary_writer_class() -> type | None:
    """torch's SummaryWriter, or None (with one warning per process) when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn(
            "tensorboard is not installed: this run writes no TensorBoard event files (training goes on; "
            "bin/dev setup installs it)",
            stacklevel=2,
        )
        return None
    return SummaryWriter


class TensorBoardLog:
    """The TensorBoard side of one job (rank 0): a SummaryWriter on RUN_DIR/tb, or nothing. The writer (and
    with it tb/) is made at the first epoch's end: a job that fails before leaves no empty run in TensorBoard."""

    def __init__(self, run_dir: Path, config: PretrainConfig, start_epoch: int):
        self.writer_class = summary_writer_class()  # without tensorboard: the warning now, at the job's start
        self.status = NOT_INSTALLED if self.writer_class is None else TB_DIR
        self.run_dir, self.config, self.start_epoch = run_dir, config, start_epoch
        self.writer = None

    def _open(self):
        self.writer = self.writer_class(log_dir=str(self.run_dir / TB_DIR), purge_step=self.start_epoch + 1)
        config = yaml.safe_dump(self.config.to_dict(), sort_keys=False)
        self.writer.add_text("config", f"```\n{config}```", self.start_epoch)

    def epoch(self, row: Mapping) -> None:
        """One epoch's history row (``job``: epoch, train_loss, val_loss, lr, seconds, windows_per_s)."""
        if self.writer_class is None:
            return
        if self.writer is None:
            self._open()
        step = row["epoch"]
        for tag, key in SCALARS.items():
            self.writer.add_scalar(tag, row[key], step)
        self.writer.flush()  # a live view, not the writer's default two minutes behind

    def finish(self, results: Mapping) -> None:
        """The run's config as hyperparameters, with its best val loss and that loss relative to the
        per-feature better reference (below 1: the model beats both simple rules)."""
        if self.writer is None:
            return
        better = results["reference_losses"]["val"]["better_reference"]["loss"]
        metrics = {
            "hparam/best_val_loss": results["best_val_loss"],
            "hparam/val_loss_over_better_reference": results["best_val_loss"] / better,
        }
        # run_name ".": the hyperparameters go into the run's own folder, so TensorBoard shows one run
        self.writer.add_hparams(hparam_values(results["config"]), metrics, run_name=".")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


SCALARS = {  # TensorBoard tag -> key of the job's history row
    "loss/train": "train_loss",
    "loss/val": "val_loss",
    "lr": "lr",
    "throughput/windows_per_s": "windows_per_s",
    "time/epoch_seconds": "seconds",
}


def hparam_values(config: Mapping) -> dict:
    """The config with the values TensorBoard's hyperparameters take (bool, int, float, str) as they are, and
    the others (None, the splits, exclude, feature_options) as JSON text."""
    return {
        name: value if isinstance(value, bool | int | float | str) else json.dumps(value, sort_keys=True)
        for name, value in config.items()
    }
