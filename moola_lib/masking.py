"""Masks, masked losses and the interpolation reference for masked reconstruction.

All functions are vectorised torch and run on the device of their inputs. A ``generator`` must live
on that device too (``torch.Generator(device=valid.device)``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def n_masked(length: int, ratio: float) -> int:
    """Masked steps per window: round(ratio * length), at least 1 (16 for 105 steps at 0.15)."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"mask ratio must be in (0, 1], got {ratio}")
    return max(1, round(ratio * length))


def random_mask(valid: torch.Tensor, ratio: float = 0.15, *, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """bool [B, T]: exactly n_masked(T, ratio) steps per row, drawn uniformly among the valid steps
    (every valid step where a row has fewer)."""
    valid = valid.bool()
    k = n_masked(valid.shape[1], ratio)
    scores = torch.rand(valid.shape, generator=generator, device=valid.device)
    scores = scores.masked_fill(~valid, 2.0)  # invalid steps rank after every valid one
    chosen = scores.topk(k, dim=1, largest=False).indices
    mask = torch.zeros_like(valid).scatter_(1, chosen, True)
    return mask & valid


def span_mask(valid: torch.Tensor, ratio: float = 0.15, mean_span: float = 3.0, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """bool [B, T]: alternating unmasked / masked spans with geometric lengths (masked mean
    ``mean_span``, unmasked mean ``mean_span * (1 - ratio) / ratio``), so about ``ratio`` of the
    steps are masked (TST / tsai MVP style); invalid steps are never masked."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"span mask ratio must be in (0, 1), got {ratio}")
    if mean_span < 1.0:
        raise ValueError(f"mean_span must be >= 1, got {mean_span}")
    valid = valid.bool()
    b, t = valid.shape
    dev = valid.device
    p_masked = 1.0 / mean_span
    p_unmasked = min(1.0, ratio / (mean_span * (1.0 - ratio)))
    # t spans of each kind always cover t steps (every span is >= 1 long)
    masked_len = torch.empty(b, t, device=dev).geometric_(p_masked, generator=generator)
    unmasked_len = torch.empty(b, t, device=dev).geometric_(p_unmasked, generator=generator)
    starts_masked = torch.rand(b, 1, generator=generator, device=dev) < ratio
    first = torch.where(starts_masked, masked_len, unmasked_len)
    second = torch.where(starts_masked, unmasked_len, masked_len)
    lengths = torch.stack([first, second], dim=2).reshape(b, 2 * t)   # alternating spans
    ends = lengths.cumsum(dim=1)
    steps = torch.arange(t, device=dev, dtype=ends.dtype).expand(b, t).contiguous()
    span_index = torch.searchsorted(ends, steps, right=True)           # which span holds each step
    in_second_kind = span_index % 2 == 1
    mask = torch.where(starts_masked, ~in_second_kind, in_second_kind)
    return mask & valid


def _masked_mean(elementwise: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(elementwise.dtype)
    count = m.sum() * elementwise.shape[-1]
    return (elementwise * m).sum() / count.clamp_min(1.0)


def masked_huber(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, delta: float = 1.0
                 ) -> torch.Tensor:
    """Huber loss (fp32) averaged over masked positions x features (0 if nothing is masked)."""
    loss = F.huber_loss(pred.float(), target.float(), reduction="none", delta=delta)
    return _masked_mean(loss, mask)


def interpolation_baseline(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill masked steps of x [B, T, F] by linear interpolation between the nearest unmasked steps
    along time; at the edges the nearest unmasked value; a row with no unmasked step gets 0."""
    b, t, f = x.shape
    steps = torch.arange(t, device=x.device).expand(b, t)
    seen = ~mask.bool()
    prev = torch.where(seen, steps, -1).cummax(dim=1).values
    nxt = torch.where(seen, steps, t).flip(1).cummin(dim=1).values.flip(1)
    has_prev, has_next = prev >= 0, nxt < t
    x_prev = x.gather(1, prev.clamp(0, t - 1).unsqueeze(-1).expand(b, t, f))
    x_next = x.gather(1, nxt.clamp(0, t - 1).unsqueeze(-1).expand(b, t, f))
    weight = ((steps - prev) / (nxt - prev).clamp_min(1)).to(x.dtype).unsqueeze(-1)
    both = x_prev + weight * (x_next - x_prev)
    pred = torch.where((has_prev & has_next).unsqueeze(-1), both,
                       torch.where(has_prev.unsqueeze(-1), x_prev, x_next))
    return torch.where((has_prev | has_next).unsqueeze(-1), pred, torch.zeros_like(x))
