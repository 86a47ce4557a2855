"""The torch device a job runs on: "auto" | "cpu" | "cuda" | "cuda:N" -> torch.device."""

from __future__ import annotations


def resolve_device(name: str = "auto"):
    """Map "auto" | "cpu" | "cuda" | "cuda:N" to a torch.device; asking for CUDA without one is a
    ConfigError (the user's to fix, reported before any work is done)."""
    import torch

    from ..util.config import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={name!r} was requested but torch sees no CUDA GPU "
            f"(torch {torch.__version__}); use device='cpu' or 'auto'"
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {name!r}")
    return device
