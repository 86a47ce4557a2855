"""Masks, the masked Huber loss and the reference predictors of the pretext objectives: the tensor
primitives that ``moola_lib.pretraining.objectives`` assembles (DESIGN.md section 4).

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


def random_mask(valid: torch.Tensor, ratio: float = 0.15, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """bool [B, T]: exactly n_masked(T, ratio) steps per row, drawn uniformly among the valid steps
    (every valid step where a row has fewer)."""
    valid = valid.bool()
    k = n_masked(valid.shape[1], ratio)
    scores = torch.rand(valid.shape, generator=generator, device=valid.device)
    scores = scores.masked_fill(~valid, 2.0)  # invalid steps rank after every valid one
    chosen = scores.topk(k, dim=1, largest=False).indices
    mask = torch.zeros_like(valid).scatter_(1, chosen, True)
    return mask & valid


def span_mask(
    valid: torch.Tensor, ratio: float = 0.15, mean_span: float = 3.0, *, generator: torch.Generator | None = None
) -> torch.Tensor:
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
    lengths = torch.stack([first, second], dim=2).reshape(b, 2 * t)  # alternating spans
    ends = lengths.cumsum(dim=1)
    steps = torch.arange(t, device=dev, dtype=ends.dtype).expand(b, t).contiguous()
    span_index = torch.searchsorted(ends, steps, right=True)  # which span holds each step
    in_second_kind = span_index % 2 == 1
    mask = torch.where(starts_masked, ~in_second_kind, in_second_kind)
    return mask & valid


def last_steps_mask(valid: torch.Tensor, n: int) -> torch.Tensor:
    """bool [B, T]: the last ``n`` valid steps of each row, but never the row's first valid step (a row
    with at most ``n`` valid steps keeps that one step as its context); invalid steps are never masked."""
    if n < 1:
        raise ValueError(f"the number of masked last steps must be >= 1, got {n}")
    valid = valid.bool()
    at_or_after = valid.flip(1).cumsum(dim=1).flip(1)  # valid steps at or after each step
    return valid & (at_or_after <= n) & (at_or_after < valid.sum(dim=1, keepdim=True))


def _masked_mean(elementwise: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(elementwise.dtype)
    count = m.sum() * elementwise.shape[-1]
    return (elementwise * m).sum() / count.clamp_min(1.0)


def masked_huber(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber loss (fp32) averaged over masked positions x features (0 if nothing is masked)."""
    loss = F.huber_loss(pred.float(), target.float(), reduction="none", delta=delta)
    return _masked_mean(loss, mask)


def _previous_seen(seen: torch.Tensor) -> torch.Tensor:
    """long [B, T]: the index of the nearest seen step at or before each step (-1 where there is none)."""
    steps = torch.arange(seen.shape[1], device=seen.device).expand_as(seen)
    return torch.where(seen, steps, -1).cummax(dim=1).values


def _at(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, T, F] at the steps ``index`` [B, T] (clamped into the window)."""
    b, t, f = x.shape
    return x.gather(1, index.clamp(0, t - 1).unsqueeze(-1).expand(b, t, f))


def interpolation_baseline(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill masked steps of x [B, T, F] by linear interpolation between the nearest unmasked steps
    along time; at the edges the nearest unmasked value; a row with no unmasked step gets 0."""
    t = x.shape[1]
    steps = torch.arange(t, device=x.device).expand(x.shape[0], t)
    seen = ~mask.bool()
    prev = _previous_seen(seen)
    nxt = (t - 1) - _previous_seen(seen.flip(1)).flip(1)  # t where there is no later seen step
    has_prev, has_next = prev >= 0, nxt < t
    x_prev, x_next = _at(x, prev), _at(x, nxt)
    weight = ((steps - prev) / (nxt - prev).clamp_min(1)).to(x.dtype).unsqueeze(-1)
    both = x_prev + weight * (x_next - x_prev)
    pred = torch.where((has_prev & has_next).unsqueeze(-1), both, torch.where(has_prev.unsqueeze(-1), x_prev, x_next))
    return torch.where((has_prev | has_next).unsqueeze(-1), pred, torch.zeros_like(x))


def persistence_baseline(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill masked steps of x [B, T, F] with the last unmasked value before them (carried forward: it
    never looks ahead); a masked step with no unmasked step before it gets 0."""
    prev = _previous_seen(~mask.bool())
    return torch.where((prev >= 0).unsqueeze(-1), _at(x, prev), torch.zeros_like(x))
