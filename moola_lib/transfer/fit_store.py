"""A protocol run's finished fits on disk, so that an interrupted run continues where it stopped.

``run_transfer`` with a run directory keeps one ``FitStore`` in ``run_dir/transfer_fits/``: each fit's
result (its seeds' test-window probabilities, what it chose, its seconds) is written there, atomically, as
``<arm>-<seed>.npz`` the moment it completes (not flushed to disk one by one: a file a crash leaves
empty or cut short reads as missing), by the process that called ``run_fits`` (the workers only
return results: one writer). A rerun on the same run directory (the transfer notebook's ``resume=True``; the
truth study's verdicts, which take hours on a CPU) reads the stored fits instead of fitting them again, and
its results equal the uninterrupted run's: a fit depends on its seed, its split and the run's inputs alone
(``parallel``'s contract), and each file holds the SHA-256 of its split, so a fit stored for other windows is
fitted anew, never reused.

``fingerprint.json`` holds what the fits depend on: the configuration less ``FIT_FREE`` (options that change
what is summarised or run, never a fit's result: another arm list or fraction reuses the fits both runs
share), the device, the labelled windows' and the encoder's SHA-256, torch's and moola's versions. A rerun
that differs in any of them is refused in one line naming what changed (``FitStoreError``): its fits would
not be the stored ones. The folder is removed (its own files only) once ``transfer_results.json`` is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

import moola_lib

from ..util.errors import ExpectedError
from ..util.io import atomic_write_bytes, json_default, read_json, write_json
from .config import TransferConfig

FOLDER = "transfer_fits"
FINGERPRINT = "fingerprint.json"
FIT_FREE = ("arms", "fractions", "n_jobs", "progress", "n_bootstrap", "alpha", "power", "primary")
_FIT_FILE = re.compile(r"^[a-z0-9_]+-[0-9]+\.npz$")


class FitStoreError(ExpectedError):
    """A run directory holds the fits of a run with other settings, windows or encoder."""


def _sha256(*arrays) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a)
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def fingerprint(labelled, encoder, cfg: TransferConfig, device: str) -> dict:
    """What every fit of a run depends on (see the module docstring)."""
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in FIT_FREE}
    state = [] if encoder is None else [t for _, t in sorted(encoder.state_dict().items())]
    return {
        "config": json.loads(json.dumps(config)),  # as read back from the file: tuples are lists
        "device": device,
        "labelled_windows": _sha256(labelled.X, labelled.valid, labelled.y, labelled.start.asi8, labelled.end.asi8)
        + json.dumps(list(labelled.classes)),
        "encoder": "none" if encoder is None else _sha256(*state) + json.dumps(dict(encoder.arch), sort_keys=True),
        "torch": torch.__version__,
        "moola": moola_lib.__version__,
    }


def _changed(stored: dict, current: dict) -> str:
    """The first part of ``current`` that ``stored`` records otherwise, in words."""
    for key, value in current.items():
        if key == "config":
            field = next((k for k in value if stored.get("config", {}).get(k, object()) != value[k]), None)
            if field is not None:
                return f"the option {field} ({stored['config'].get(field)!r} there, {value[field]!r} now)"
        elif stored.get(key) != value:
            return {"labelled_windows": "the labelled windows", "encoder": "the encoder"}.get(key, key)
    return "the options"  # a stored option this run does not have (another moola version's file)


class FitStore:
    """The finished fits of one run (see the module docstring): ``get`` a fit's stored result (None: not
    stored, or stored for another split), ``put`` one, ``remove`` the folder."""

    def __init__(self, run_dir: str | Path, fingerprint: dict):
        self.folder = Path(run_dir) / FOLDER
        path = self.folder / FINGERPRINT
        if path.exists():
            try:
                stored = read_json(path)
            except (OSError, ValueError) as e:
                raise FitStoreError(
                    f"{path} cannot be read ({e}): move {self.folder} away to fit this run anew, "
                    "or choose another run_dir"
                ) from None
            if stored != fingerprint:
                raise FitStoreError(
                    f"{self.folder} holds the fits of a run with other settings ({_changed(stored, fingerprint)}): "
                    "this run cannot continue it. Choose another run_dir (or overwrite=True to replace that run)"
                )
        else:
            write_json(path, fingerprint)
        self.read = 0  # fits ``get`` returned: those this run did not fit (its results' fits_resumed)

    @staticmethod
    def _name(fit) -> str:
        return f"{fit.arm}-{fit.seed}.npz"

    @staticmethod
    def _split_sha(fit) -> str:
        return _sha256(*(np.asarray(part, dtype=np.int64) for part in fit.split))

    def get(self, fit):
        """(probabilities of each seed, what the fit chose, seconds) as stored, or None."""
        try:
            with np.load(self.folder / self._name(fit), allow_pickle=False) as f:
                if str(f["split_sha256"]) != self._split_sha(fit):
                    return None
                result = list(f["probas"]), json.loads(str(f["chosen"])), float(f["seconds"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):  # missing, or cut short by a crash
            return None
        self.read += 1
        return result

    def put(self, fit, result) -> None:
        """Write one fit's result (``run_fits``' tuple), atomically."""
        probas, chosen, seconds = result
        buffer = io.BytesIO()
        np.savez(
            buffer,
            probas=np.stack(probas),
            chosen=np.array(json.dumps(chosen, default=json_default)),
            seconds=np.array(seconds),
            split_sha256=np.array(self._split_sha(fit)),
        )
        # not flushed to disk one by one (hundreds a run): a file a power cut leaves empty is fitted again
        atomic_write_bytes(self.folder / self._name(fit), buffer.getvalue(), durable=False)

    def remove(self) -> None:
        """Delete the stored fits and the fingerprint, then the folder if that leaves it empty (a file moola
        did not write there stays, and so does the folder)."""
        for p in self.folder.iterdir():
            if _FIT_FILE.match(p.name) or p.name == FINGERPRINT:
                p.unlink()
        if not any(self.folder.iterdir()):
            self.folder.rmdir()
