"""What manifest.json records about a run besides its status: the code (git commit, dirty flag), the
package versions, the device and the data (file + SHA-256, or the embedded market's arguments)."""

from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path

from ..bars.sources import bars_source
from ..util.paths import PACKAGE_DIR

_PACKAGES = ("moola", "torch", "numpy", "pandas", "numba", "scikit-learn", "matplotlib", "papermill", "ipykernel")


def git_state() -> dict:
    """Commit and dirty flag of the repository holding the code (None outside a git checkout)."""

    def git(*args):
        out = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(PACKAGE_DIR), *args], capture_output=True, text=True, timeout=20
        )
        return out.stdout.strip() if out.returncode == 0 else None

    try:
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    except (OSError, subprocess.TimeoutExpired):
        commit = status = None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions() -> dict:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info(requested: str) -> dict:
    """The device a run uses; ``start_run`` has already refused one that is not there."""
    import torch

    from ..pretraining.devices import resolve_device

    info = {
        "requested": requested,
        "torch_cuda": torch.version.cuda,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    device = resolve_device(requested)
    info["resolved"] = str(device)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def data_info(params) -> dict:
    """The data file (path, size, SHA-256) or the arguments of the embedded synthetic data
    (``sources.bars_source`` in the manifest's layout)."""
    source = bars_source(params)
    if source["kind"] == "synthetic":
        return {"synthetic": {k: source[k] for k in ("start", "end", "seed") if source[k] is not None}}
    if source.get("exists") is False:
        return {"path": source["path"], "exists": False}
    return {"path": source["path"], "bytes": Path(source["path"]).stat().st_size, "sha256": source["sha256"]}
