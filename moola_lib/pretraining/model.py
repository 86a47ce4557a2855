"""The Jade BiLSTM encoder, its masked-reconstruction pretrainer and its classifier (their files:
``checkpoints``).

An encoder carries the feature options it was pretrained with (``JadeEncoder.feature_options``, every
option with its value; None for a fresh encoder): its file stores them, and an encoder file that stores
none or only some was made before they were recorded, so the missing ones are the original's
(``stored_feature_options``). Transfer computes the labelled windows' features with them. Likewise
``JadeEncoder.objective`` names the pretext objective it was pretrained under (``moola_lib.pretraining.objectives``;
"masked" for files that record none: they were all made by masked reconstruction). The architecture is
the same under every objective.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..bars.constants import WINDOW_LENGTH


class JadeEncoder(nn.Module):
    """Bidirectional LSTM over [B, T, input_size] -> [B, T, 2 * hidden_size]."""

    def __init__(self, input_size: int = 10, hidden_size: int = 128, num_layers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.arch = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout)
        self.output_size = 2 * hidden_size
        self.feature_options: dict | None = None  # set by pretraining and load_encoder
        self.objective: str | None = None  # the pretext objective; set by pretraining and load_encoder
        self.lstm = nn.LSTM(
            input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return out

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's output [B, T, 2H], first to last, without dropout between layers (as in eval mode).

        ``nn.LSTM`` returns only the last layer's states; here each layer runs as a one-layer bidirectional
        LSTM holding that layer's weights (both directions), on the previous layer's output: the same
        arithmetic, so the last entry equals ``forward`` in eval mode (tests/transfer/test_readouts.py)."""
        out = x
        outputs = []
        for layer in range(self.lstm.num_layers):
            single = nn.LSTM(out.shape[-1], self.lstm.hidden_size, 1, batch_first=True, bidirectional=True)
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    for suffix in ("", "_reverse"):
                        getattr(single, f"{name}_l0{suffix}").copy_(getattr(self.lstm, f"{name}_l{layer}{suffix}"))
            out, _ = single.to(device=x.device, dtype=x.dtype)(out)
            outputs.append(out)
        return outputs


def _encoder(encoder: JadeEncoder | None, arch: dict) -> JadeEncoder:
    if encoder is None:
        return JadeEncoder(**arch)
    if arch:
        raise TypeError(f"pass either an encoder or architecture arguments, not both (got {sorted(arch)})")
    return encoder


class JadePretrainer(nn.Module):
    """Masked reconstruction: masked steps are replaced by a learned vector, then every step is
    reconstructed by a linear head on the encoder output."""

    def __init__(self, encoder: JadeEncoder | None = None, **arch):
        super().__init__()
        self.encoder = _encoder(encoder, arch)
        input_size = self.encoder.arch["input_size"]
        self.mask_token = nn.Parameter(torch.zeros(input_size))
        self.head = nn.Linear(self.encoder.output_size, input_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, F], mask bool [B, T] (True = hidden) -> reconstruction [B, T, F]."""
        x = torch.where(mask.unsqueeze(-1), self.mask_token.to(x.dtype), x)
        return self.head(self.encoder(x))


class JadeClassifier(nn.Module):
    """Encoder, mean pooling over valid steps, normalisation, dropout, linear head.

    ``norm`` (BatchNorm1d over the pooled features) is part of the model and saved with it: mean-pooled
    LSTM outputs differ by ~1e-2 between windows, too little for a linear head to separate in a few dozen
    steps, so the head needs standardised inputs; as a layer the statistics follow the encoder while it
    trains (a baseline's encoder changes a lot), where statistics frozen from the initial encoder went
    stale and let some folds collapse to chance. ``arch`` holds the encoder's arguments; the encoder's own
    dropout is ``encoder_dropout`` (``dropout`` is the head's)."""

    def __init__(self, encoder: JadeEncoder | None = None, n_classes: int = 2, dropout: float = 0.3, **arch):
        super().__init__()
        if "encoder_dropout" in arch:
            arch["dropout"] = arch.pop("encoder_dropout")
        self.encoder = _encoder(encoder, arch)
        self.norm = nn.BatchNorm1d(self.encoder.output_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.output_size, n_classes)

    def embed(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features [B, 2H]: mean of the encoder output over valid steps (all if None)."""
        h = self.encoder(x)
        if valid is None:
            return h.mean(dim=1)
        w = valid.to(h.dtype).unsqueeze(-1)
        return (h * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits from pooled features (normalisation, dropout, head)."""
        return self.head(self.dropout(self.norm(pooled)))

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return self.classify(self.embed(x, valid))


# ---------------------------------------------------------------------------------------------------
# inference (predictions, pooled features; figures draw what these return)

# Windows per forward pass of a model that only predicts. On one CPU thread a small batch keeps the LSTM's states
# in the cache: a 2 x 128 encoder scores 1.7x the windows a second at 64 as at 1,024 (16-64 alike; BENCHMARKS.md,
# "Scanning new bars"), with identical outputs. With more threads each step's work is split among them and small
# steps leave them waiting on each other (2 threads on a busy 2-core machine: 155 windows/s at 64, 484 at 1,024);
# a GPU wants few, large launches.
INFERENCE_BATCH = {"one_cpu_thread": 64, "other": 1024}


def inference_batch_size(device) -> int:
    """Windows per forward pass of a model that only predicts on ``device`` with torch's current thread count
    (``INFERENCE_BATCH``)."""
    one_thread = torch.device(device).type == "cpu" and torch.get_num_threads() == 1
    return INFERENCE_BATCH["one_cpu_thread" if one_thread else "other"]


@torch.no_grad()
def pooled_features(
    model: JadeClassifier, X: torch.Tensor, valid: torch.Tensor, batch_size: int | None = None
) -> torch.Tensor:
    """Pooled encoder features [N, 2H] of every window of X [N, T, F] (eval mode: no encoder dropout), ``batch_size``
    windows at a time (None: ``inference_batch_size`` of X's device)."""
    model.eval()
    batch_size = batch_size or inference_batch_size(X.device)
    return torch.cat(
        [model.embed(X[i : i + batch_size], valid[i : i + batch_size]) for i in range(0, len(X), batch_size)]
    )


def embed_windows(encoder: JadeEncoder, X, valid, device="cpu", batch_size: int | None = None):
    """Mean-pooled features (numpy [N, 2H]) of windows X [N, T, F] under ``encoder`` (the classifier's
    pooling over the valid steps); the encoder itself is left untouched."""
    model = JadeClassifier(copy.deepcopy(encoder)).to(device)
    X, valid = torch.as_tensor(X, device=device), torch.as_tensor(valid, device=device)
    return pooled_features(model, X, valid, batch_size).cpu().numpy()


def reconstruct_examples(
    model: JadePretrainer,
    X,
    valid,
    starts,
    *,
    n: int = 3,
    ratio: float = 0.15,
    seed: int = 0,
    length: int = WINDOW_LENGTH,
    draw=None,
):
    """Reconstruct ``n`` windows (starts chosen with ``seed``) of the series X [T, F] with hidden steps
    from ``draw(valid [n, T], generator)`` (a pretext objective's ``draw``; default: seeded random masks
    of ``ratio``). Returns numpy (x [n, T, F], mask [n, T], reconstruction [n, T, F])."""
    from ..bars.windows import gather_windows
    from .masking import random_mask

    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(np.asarray(starts), size=min(n, len(starts)), replace=False))
    x = torch.from_numpy(gather_windows(X, chosen, length))
    v = torch.from_numpy(gather_windows(valid, chosen, length))
    g = torch.Generator().manual_seed(seed)
    mask = draw(v, g) if draw is not None else random_mask(v, ratio, generator=g)
    device = next(model.parameters()).device
    with torch.no_grad():
        recon = model(x.to(device), mask.to(device)).float().cpu()
    return x.numpy(), mask.numpy(), recon.numpy()
