"""A saved classifier: one run directory holding ``model.json`` (what the model is, human-readable) and
``model.pt`` (its weights), written once and read back without running any pickled code.

``model.json`` (format ``FORMAT``): the arm, its kind, the classes and their definitions, the feature options
and window length the model reads, what the fit chose, the recipe (TransferConfig, seed, split sizes), the
encoder and labels file with their SHA-256, the transfer run it came from with that arm's cross-validated
balanced accuracy, the calibration, the package versions, and ``weights``: the weights file's name and
SHA-256. ``model.pt``: a weights-only torch file (``util.io.load_torch_file``) holding ``{"format":
WEIGHTS_FORMAT, "arm": ..., "state": ...}``, the fitted arm's ``state()`` (``transfer.fits``) with every numpy
array stored as a tensor: plain tensors, numbers, strings, lists and dicts only.

``read_model`` refuses, each with one ``ClassifierFileError`` line: a folder without model.json, a
model.json that is not JSON or not a moola classifier's, one written by a newer moola (a higher format
version), missing keys, weights whose SHA-256 differs from the recorded one (altered, damaged, or another
model's), and weights that are not a weights-only torch file of this model.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np
import torch

from ..util.io import CheckpointError, atomic_torch_save, file_sha256, load_torch_file, read_json, write_json
from ..util.rundir import LOCK_NAME, run_dir_claim
from .errors import ClassifierFileError

FORMAT_NAME, FORMAT_VERSION = "moola.classifier", 1
FORMAT = f"{FORMAT_NAME}.v{FORMAT_VERSION}"
WEIGHTS_FORMAT = "moola.classifier_weights.v1"
META, WEIGHTS = "model.json", "model.pt"
REQUIRED = (
    "arm",
    "kind",
    "classes",
    "feature_options",
    "window_length",
    "n_features",
    "chosen",
    "recipe",
    "calibration",
)


def as_tensors(state):
    """``state`` with every numpy array as a CPU tensor (a weights-only torch file holds no numpy objects)."""
    if isinstance(state, dict):
        return {k: as_tensors(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return [as_tensors(v) for v in state]
    return torch.from_numpy(np.ascontiguousarray(state)) if isinstance(state, np.ndarray) else state


def check_new_run_dir(path: Path) -> None:
    """FileExistsError unless ``path`` is missing or empty (its run lock aside): one model per run directory."""
    held = sorted(p.name for p in path.iterdir() if p.name != LOCK_NAME) if path.is_dir() else []
    if held:
        raise FileExistsError(
            f"run directory {path} already holds {', '.join(held[:5])}; nothing was overwritten. Save the "
            "classifier into a new or empty run directory"
        )


def write_model(run_dir, meta: dict, state: dict) -> dict:
    """Write the model into the new run directory ``run_dir`` (claimed for the write: one writer); returns
    the model.json written (``meta`` plus its ``format`` and ``weights``)."""
    path = Path(run_dir)
    with run_dir_claim(path):
        check_new_run_dir(path)
        atomic_torch_save({"format": WEIGHTS_FORMAT, "arm": meta["arm"], "state": as_tensors(state)}, path / WEIGHTS)
        weights = {"file": WEIGHTS, "sha256": file_sha256(path / WEIGHTS), "bytes": (path / WEIGHTS).stat().st_size}
        written = {"format": FORMAT, **meta, "weights": weights}
        write_json(path / META, written)
    return written


def read_meta(path: Path) -> dict:
    """model.json of the saved classifier in folder ``path``, its format and keys checked."""
    file = path / META
    if not file.is_file():
        raise ClassifierFileError(f"{path}: no {META}, not a saved classifier (python -m moola_lib.classify fit)")
    try:
        meta = read_json(file)
    except (ValueError, UnicodeDecodeError):
        raise ClassifierFileError(f"{file}: truncated or corrupt (not JSON); copy the model directory again") from None
    found = meta.get("format") if isinstance(meta, dict) else None
    match = re.fullmatch(rf"{re.escape(FORMAT_NAME)}\.v(\d+)", str(found))
    if match is None:
        raise ClassifierFileError(f"{file}: not a moola classifier (format {found!r}, expected {FORMAT!r})")
    if int(match.group(1)) > FORMAT_VERSION:
        raise ClassifierFileError(
            f"{file}: written by a newer moola (format {found}; this moola reads up to {FORMAT}): upgrade moola"
        )
    missing = [k for k in (*REQUIRED, "weights") if k not in meta]
    if missing:
        raise ClassifierFileError(f"{file}: a classifier without {', '.join(missing)}; altered or incomplete")
    return meta


def read_model(path) -> tuple[dict, dict]:
    """(model.json, the weights' state) of the saved classifier in folder ``path`` (see the module docstring)."""
    path = Path(path)
    meta = read_meta(path)
    weights = path / str(meta["weights"].get("file", WEIGHTS))
    if not weights.is_file():
        raise ClassifierFileError(f"{weights}: missing; a saved classifier needs its {META} and its weights file")
    if file_sha256(weights) != meta["weights"].get("sha256"):
        raise ClassifierFileError(
            f"{weights}: its SHA-256 differs from the one {META} records: altered, damaged or another model's "
            "weights; nothing was loaded. Copy the model directory again"
        )
    try:
        obj = load_torch_file(weights)
    except CheckpointError as e:
        raise ClassifierFileError(str(e)) from None
    if not isinstance(obj, dict) or obj.get("format") != WEIGHTS_FORMAT or obj.get("arm") != meta["arm"]:
        raise ClassifierFileError(f"{weights}: not the weights of this classifier (format {WEIGHTS_FORMAT!r})")
    return meta, obj["state"]


@contextlib.contextmanager
def state_errors(path):
    """Turn an error while a stored state becomes a model into a ClassifierFileError naming the folder."""
    try:
        yield
    except ClassifierFileError:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as e:
        raise ClassifierFileError(f"{path}: the stored model does not load ({type(e).__name__}: {e})") from None
