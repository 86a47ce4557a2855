"""Read-outs of a frozen encoder: which layer's states the linear probe reads, and how they are pooled.

A read-out is written ``"POOLING:LAYER"`` (``TransferConfig.readouts``; default ``["mean:last"]``, the
classifier's own read-out, identical to ``probe.pooled``):

- pooling (over the window's valid steps): ``mean``; ``max`` (per feature); ``last`` (the last state of
  each direction: the forward direction's state at the last valid step, the backward direction's at the
  first valid step, concatenated); ``span`` (mean over the follow-up bars: after the labelled expansion
  leg's end, ``LabelledSet.expansion[:, 1]``, to the window's end; a window without offsets, or without a
  valid bar after its leg, is pooled over the whole window, and a warning counts them). The offsets are
  part of each labelled window (the labeller marks the leg of test windows too), not of its class;
- layer: ``last`` (what ``nn.LSTM`` returns), ``first``, or ``both`` (first and last concatenated). For a
  one-layer encoder the first layer is the last one (``both`` = ``last``).

``readout_features`` computes every read-out of a set of windows at once, from one pass of the encoder
(``fits.Inputs.build``: once per run, not per fold). When several read-outs are given, ``choose`` picks one
per fold by the probe's log-loss on the inner validation windows (the criterion that chooses the probe's C),
never on the test fold.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch

from ..pretraining.model import JadeEncoder, inference_batch_size
from ..util.names import valid_names_hint

POOLINGS = ("mean", "max", "last", "span")
LAYERS = ("last", "first", "both")
DEFAULT_READOUT = "mean:last"


def parse(readout: str) -> tuple[str, str]:
    """(pooling, layer) of ``"POOLING:LAYER"``; ValueError naming the valid values otherwise."""
    pooling, sep, layer = str(readout).partition(":")
    if not sep:
        raise ValueError(
            f"read-out {readout!r} must be 'POOLING:LAYER', e.g. 'mean:last' (poolings: "
            f"{', '.join(POOLINGS)}; layers: {', '.join(LAYERS)})"
        )
    for part, known, what in ((pooling, POOLINGS, "pooling"), (layer, LAYERS, "layer")):
        if part not in known:
            raise ValueError(f"read-out {readout!r}: unknown {what} {part!r}.{valid_names_hint(part, known)}")
    return pooling, layer


def _masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # the classifier's pooling (JadeClassifier.embed), same arithmetic: "mean:last" equals probe.pooled
    w = mask.to(h.dtype).unsqueeze(-1)
    return (h * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)


def _last_states(h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Forward half at the last valid step, backward half at the first valid step (step 0 / T-1 if none)."""
    half = h.shape[-1] // 2
    steps = torch.arange(h.shape[1], device=h.device)
    first = torch.where(valid, steps, h.shape[1]).min(dim=1).values.clamp_max(h.shape[1] - 1)
    last = torch.where(valid, steps, -1).max(dim=1).values.clamp_min(0)
    rows = torch.arange(len(h), device=h.device)
    return torch.cat([h[rows, last, :half], h[rows, first, half:]], dim=-1)


def pool(h: torch.Tensor, valid: torch.Tensor, pooling: str, followup: torch.Tensor) -> torch.Tensor:
    """Pooled states [B, D] of states ``h`` [B, T, D]; ``followup`` [B, T]: the steps ``span`` pools."""
    if pooling == "mean":
        return _masked_mean(h, valid)
    if pooling == "span":
        return _masked_mean(h, followup)
    if pooling == "last":
        return _last_states(h, valid)
    masked = torch.where(valid.unsqueeze(-1), h, torch.full_like(h, -torch.inf)).max(dim=1).values
    return torch.where(valid.any(dim=1, keepdim=True), masked, h.max(dim=1).values)


def followup_mask(valid: np.ndarray, expansion: np.ndarray) -> tuple[np.ndarray, int]:
    """The steps ``span`` pools ([N, T] bool): valid bars after each window's expansion_end; the whole
    window's valid bars where the offset is unknown (< 0) or no valid bar follows the leg. Also returns how
    many windows fell back."""
    ends = np.asarray(expansion)[:, 1]
    mask = np.asarray(valid, bool) & (np.arange(valid.shape[1])[None, :] > ends[:, None])
    fallback = (ends < 0) | ~mask.any(axis=1)
    mask[fallback] = np.asarray(valid, bool)[fallback]
    return mask, int(fallback.sum())


@torch.no_grad()
def readout_features(
    encoder: JadeEncoder,
    X: torch.Tensor,
    valid: torch.Tensor,
    expansion: np.ndarray,
    readouts,
    batch_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Pooled features (float64 numpy [N, D]) of every read-out in ``readouts`` for windows X [N, T, F] under
    ``encoder`` (a copy in eval mode: no dropout; the encoder itself is untouched), ``batch_size`` windows at a
    time (None: ``inference_batch_size`` of X's device)."""
    batch_size = batch_size or inference_batch_size(X.device)
    parsed = {r: parse(r) for r in readouts}
    model = copy.deepcopy(encoder).to(X.device).eval()
    followup = torch.zeros_like(valid, dtype=torch.bool)
    if any(p == "span" for p, _ in parsed.values()):
        mask, fallback = followup_mask(valid.cpu().numpy(), expansion)
        followup = torch.as_tensor(mask, device=X.device)
        if fallback:
            warnings.warn(
                f"{fallback} of {len(mask)} labelled windows carry no expansion offsets (or no valid "
                "bar after the leg): 'span' read-outs pool them over the whole window",
                stacklevel=2,
            )
    deep = model.lstm.num_layers > 1 and any(layer != "last" for _, layer in parsed.values())
    out: dict[str, list] = {r: [] for r in parsed}
    for i in range(0, len(X), batch_size):
        x, v, f = X[i : i + batch_size], valid[i : i + batch_size], followup[i : i + batch_size]
        last = model(x)
        first = model.layer_outputs(x)[0] if deep else last
        layers = {"last": [last], "first": [first], "both": [first, last] if deep else [last]}
        for r, (pooling, layer) in parsed.items():
            out[r].append(torch.cat([pool(h, v, pooling, f) for h in layers[layer]], dim=-1))
    return {r: torch.cat(parts).cpu().numpy().astype(np.float64) for r, parts in out.items()}


def choose(val_losses: dict[str, float]) -> str:
    """The read-out with the lowest inner-validation log-loss (ties, to 1e-10: the first listed)."""
    names = list(val_losses)
    return names[int(np.argmin(np.round([val_losses[r] for r in names], 10)))]
