"""The files of pretraining: encoder files (the format every encoder is saved and read in), checkpoints
(what they hold, how they are read back) and the checks before a job resumes from one.

Encoder files hold plain types and tensors only (``encoder_state``), so they load with
``torch.load(..., weights_only=True)``: no pickled code runs. ``load_encoder`` checks the architecture
against what the caller requires and names both shapes on a mismatch. An encoder file stores the feature
options and the pretext objective of its pretraining; one that stores none or only some was made before
they were recorded (``stored_feature_options``: the missing options are the original's; the objective is
"masked").

A checkpoint (``checkpoint_best.pt``, ``checkpoint_last.pt``) holds plain types and tensors only (format
CHECKPOINT_FORMAT): the encoder (``encoder_state``), model, optimiser, scheduler, scaler and RNG
states, the config, the progress of the job and where its bars came from (the data file's SHA-256).
Before any data is loaded a job checks what it would resume from: a resume on other settings or a
changed data file, or from a run directory that lost its checkpoint_last.pt, is refused. A config field
that a checkpoint does not record (written before the field existed) counts as its default, which by
the project's rule is the behaviour of that time (a checkpoint without ``objective`` is "masked").
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

from ..bars.sources import bars_source
from ..features.options import ORIGINAL_FEATURE_OPTIONS, resolve_feature_options
from ..util.config import ConfigError
from ..util.io import CheckpointError, atomic_torch_save, load_torch_file
from .config import PretrainConfig
from .data import as_config
from .model import JadeEncoder, JadePretrainer

ENCODER_FORMAT = "moola.jade_encoder.v1"
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


# ---------------------------------------------------------------------------------------------------
# encoder files


def encoder_state(encoder: JadeEncoder) -> dict:
    """Plain, weights_only-loadable description of an encoder: format, arch, feature options and pretext
    objective (if known) and CPU tensors."""
    state = {
        "format": ENCODER_FORMAT,
        "arch": dict(encoder.arch),
        "state_dict": {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()},
    }
    if encoder.feature_options is not None:
        state["feature_options"] = dict(encoder.feature_options)
    if encoder.objective is not None:
        state["objective"] = encoder.objective
    return state


def recorded_feature_options(obj: Mapping) -> Mapping | None:
    """The feature options an encoder file or a pretraining checkpoint records (None if none): the
    encoder's own, else (older checkpoints) the options of the checkpoint's config."""
    if not isinstance(obj, Mapping):
        return None
    encoder = obj.get("encoder") if obj.get("format") != ENCODER_FORMAT else obj
    if isinstance(encoder, Mapping) and isinstance(encoder.get("feature_options"), Mapping):
        return encoder["feature_options"]
    config = obj.get("config")
    return config.get("feature_options") if isinstance(config, Mapping) else None


def _recorded_objective(obj) -> str:
    """The pretext objective an encoder file or a pretraining checkpoint records: the encoder's own, else
    the checkpoint config's, else "masked" (files written before objectives were recorded)."""
    if not isinstance(obj, Mapping):
        return "masked"
    encoder = obj.get("encoder") if obj.get("format") != ENCODER_FORMAT else obj
    config = obj.get("config")
    for source in (encoder, config):
        if isinstance(source, Mapping) and isinstance(source.get("objective"), str):
            return source["objective"]
    return "masked"


def stored_feature_options(stored: Mapping | None) -> dict:
    """Every feature option with its value, from options an encoder file or a pretraining config stored:
    missing ones (all of them for encoders made before options were recorded) are the original's."""
    return resolve_feature_options(stored or {}, base=ORIGINAL_FEATURE_OPTIONS)


def save_encoder(encoder: JadeEncoder, path: str | os.PathLike, **metadata) -> None:
    """Atomically write ``encoder_state(encoder)`` plus ``metadata`` (plain values only)."""
    atomic_torch_save({**encoder_state(encoder), "metadata": metadata}, path)


def load_encoder(
    path: str | os.PathLike,
    *,
    input_size: int | None = 10,
    hidden_size: int | None = 128,
    num_layers: int | None = 2,
    map_location="cpu",
) -> JadeEncoder:
    """Load an encoder file or a pretraining checkpoint (key "encoder") without running pickled code.

    A file that is missing, empty, truncated, holds pickled code or is no moola encoder raises
    CheckpointError (a ValueError) naming it and the problem. Each of ``input_size``, ``hidden_size``,
    ``num_layers`` is the value required (None = any); the architecture is read from the tensor shapes, and a
    mismatch, missing weights or weights of another shape are CheckpointError too, naming both."""
    name = os.fspath(path)
    obj = load_torch_file(name, map_location=map_location)  # CheckpointError: empty, truncated, unsafe
    return encoder_from_file_object(obj, name, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)


def encoder_from_file_object(
    obj, name: str, *, input_size: int | None = 10, hidden_size: int | None = 128, num_layers: int | None = 2
) -> JadeEncoder:
    """``load_encoder`` for the object an encoder file or checkpoint holds, already read (``name``: the
    file, for messages), so that a caller who needs the file's other contents reads it once."""
    recorded = recorded_feature_options(obj)
    objective = _recorded_objective(obj)
    if isinstance(obj, dict) and obj.get("format") != ENCODER_FORMAT and isinstance(obj.get("encoder"), dict):
        obj = obj["encoder"]
    if not isinstance(obj, dict) or obj.get("format") != ENCODER_FORMAT:
        keys = sorted(map(str, obj))[:8] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{name}: not a moola encoder file or pretraining checkpoint "
            f"(expected format {ENCODER_FORMAT!r}; found {keys})"
        )
    state = obj.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{name}: a moola encoder without its weights (no 'state_dict'); incomplete or altered, it cannot be used"
        )
    found = _arch_from_state(state, name)
    for key, required in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if required is not None and found[key][0] != required:
            value, evidence = found[key]
            raise CheckpointError(f"{name}: encoder expects {key}={value} ({evidence}) but {required} was required")
    arch = {k: v for k, (v, _) in found.items()}
    encoder = JadeEncoder(**arch, dropout=float(obj.get("arch", {}).get("dropout", 0.2)))
    encoder.feature_options = stored_feature_options(recorded)
    encoder.objective = objective
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{name}: encoder weights do not match the architecture {arch}: {e}") from e
    return encoder


def _arch_from_state(state: dict, name: str) -> dict:
    """(value, evidence) for input_size, hidden_size, num_layers from the LSTM weight shapes."""
    try:
        w_ih, w_hh = state["lstm.weight_ih_l0"], state["lstm.weight_hh_l0"]
    except KeyError as e:
        raise CheckpointError(f"{name}: encoder state has no {e.args[0]!r} (keys: {sorted(state)[:6]}...)") from None
    layers = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"lstm\.weight_ih_l(\d+)", k)))
    last = f"lstm.weight_ih_l{layers[-1]}"
    return {
        "input_size": (int(w_ih.shape[1]), f"lstm.weight_ih_l0 {list(w_ih.shape)}"),
        "hidden_size": (int(w_hh.shape[1]), f"lstm.weight_hh_l0 {list(w_hh.shape)}"),
        "num_layers": (len(layers), f"{len(layers)} layers, last {last} {list(state[last].shape)}"),
    }


# ---------------------------------------------------------------------------------------------------
# checkpoints


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
