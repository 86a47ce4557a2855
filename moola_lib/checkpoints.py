"""The files of a pretraining run directory: checkpoints (what they hold, how they are read back) and
the checks before a job resumes from one.

A checkpoint (``checkpoint_best.pt``, ``checkpoint_last.pt``) holds plain types and tensors only (format
CHECKPOINT_FORMAT): the encoder (``models.encoder_state``), model, optimiser, scheduler, scaler and RNG
states, the config, the progress of the job and where its bars came from (the data file's SHA-256).
Before any data is loaded a job checks what it would resume from: a resume on other settings or a
changed data file, or from a run directory that lost its checkpoint_last.pt, is refused. A config field
that a checkpoint does not record (written before the field existed) counts as its default, which by
the project's rule is the behaviour of that time (a checkpoint without ``objective`` is "masked").
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .config import ConfigError, PretrainConfig
from .models import JadePretrainer
from .pretrain_data import as_config
from .sources import bars_source
from .util.io import CheckpointError, atomic_torch_save, load_torch_file

CHECKPOINT_FORMAT = "moola.pretrain_checkpoint.v1"
BEST, LAST, RESULTS = "checkpoint_best.pt", "checkpoint_last.pt", "training_results.json"
CHECKPOINT_KEYS = (
    "epoch",
    "encoder",
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "rng",
    "config",
    "history",
    "best_val_loss",
    "best_epoch",
    "epochs_since_best",
    "finished",
    "elapsed_seconds",
)
RESUMABLE_CHANGES = ("resume", "progress", "device")  # options that may differ on resume


def save_checkpoints(state: dict, run_dir: Path, improved: bool) -> None:
    """Write ``state`` as checkpoint_last.pt and, if the val loss ``improved``, checkpoint_best.pt; best
    first: a kill between the two writes only repeats this epoch on resume."""
    state = {"format": CHECKPOINT_FORMAT, **state}
    if improved:
        atomic_torch_save(state, run_dir / BEST)
    atomic_torch_save(state, run_dir / LAST)


def load_pretrainer(checkpoint_path, *, map_location="cpu") -> JadePretrainer:
    """The JadePretrainer (eval mode) stored in a pretraining checkpoint; no pickled code runs."""
    ckpt = load_checkpoint(Path(checkpoint_path), map_location)
    model = JadePretrainer(**ckpt["encoder"]["arch"])
    model.load_state_dict(ckpt["model"])
    return model.eval()


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """A pretraining checkpoint; anything else (broken, unsafe, another kind of file) is CheckpointError."""
    ckpt = load_torch_file(path, map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path}: not a moola pretraining checkpoint (expected format {CHECKPOINT_FORMAT!r}, found {found!r})"
        )
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"{path}: a pretraining checkpoint without {', '.join(missing)}; incomplete or "
            "altered, it cannot be used. Use another checkpoint or a new run_dir"
        )
    return ckpt


def check_resume(config, run_dir) -> None:
    """Raise (ConfigError, FileExistsError, CheckpointError) unless ``pretrain(config, run_dir)`` may start
    or resume there; reads only (start_run calls it before it writes the run's files)."""
    resume_checkpoint(as_config(config), Path(run_dir))


def resume_checkpoint(config: PretrainConfig, run_dir: Path) -> dict | None:
    """The checkpoint to resume from (None = fresh start); refuses to overwrite an existing run, to
    resume on other settings or another data file, and to restart a run whose last checkpoint is gone."""
    existing = [name for name in (LAST, BEST, RESULTS) if (run_dir / name).exists()]
    if not config.resume:
        if existing:
            raise FileExistsError(
                f"{run_dir} already holds {', '.join(existing)}; nothing was overwritten. "
                "Pass resume=True to continue that run, or use a new run_dir."
            )
        return None
    if not (run_dir / LAST).exists():
        if existing:  # starting over would replace the best checkpoint of the earlier run
            raise ConfigError(
                f"cannot resume {run_dir}: it holds {', '.join(existing)} but no {LAST} to "
                f"continue from; nothing was changed. Move those files away or use a new run_dir."
            )
        return None  # nothing completed yet: start from scratch
    if not (run_dir / BEST).exists():  # the results are the best checkpoint's: found now, not after the work
        raise ConfigError(
            f"cannot resume {run_dir}: it holds {LAST} but no {BEST}, which the results are "
            f"computed from; nothing was changed. Restore {BEST} or use a new run_dir."
        )
    ckpt = load_checkpoint(run_dir / LAST)
    now = config.to_dict()
    saved = {**PretrainConfig().to_dict(), **ckpt["config"]}  # fields added since: their defaults
    changed = [f"{k}: {saved[k]!r} -> {now[k]!r}" for k in now if k not in RESUMABLE_CHANGES and saved[k] != now[k]]
    if changed:
        raise ConfigError(
            f"cannot resume {run_dir / LAST}: the config differs from the checkpoint's "
            f"({'; '.join(changed)}). Use the original settings or a new run_dir."
        )
    _check_same_data(ckpt.get("data_source"), bars_source(config), run_dir / LAST)
    return ckpt


def _check_same_data(saved: dict | None, now: dict, checkpoint: Path) -> None:
    """Refuse to resume on a data file whose content differs from the one the checkpoint trained on."""
    if not saved:
        warnings.warn(
            f"{checkpoint} does not record its data file's SHA-256 (written by an older moola); "
            "resuming without checking that the data is unchanged",
            stacklevel=3,
        )
        return
    if saved.get("kind") != "file":
        return  # the embedded market: a pure function of the config, compared above
    if now.get("exists") is False:
        raise ConfigError(f"cannot resume {checkpoint}: its data file {now['path']} is missing")
    if now.get("sha256") != saved.get("sha256"):
        raise ConfigError(
            f"cannot resume {checkpoint}: the data file {now['path']} changed since the checkpoint "
            f"was written (SHA-256 {saved.get('sha256', '?')[:12]}... then, {now['sha256'][:12]}... "
            f"now; trained on {saved.get('path')}). Restore that file or start a new run_dir."
        )
