import pytest
import torch

from moola_lib.pretraining.masking import (
    interpolation_baseline,
    last_steps_mask,
    masked_huber,
    n_masked,
    persistence_baseline,
    random_mask,
    span_mask,
)


def test_n_masked_default_is_16_of_105():
    assert n_masked(105, 0.15) == 16
    assert n_masked(10, 0.01) == 1
    with pytest.raises(ValueError):
        n_masked(105, 0.0)


def test_random_mask_exact_count_only_valid_steps():
    g = torch.Generator().manual_seed(0)
    valid = torch.ones(64, 105, dtype=torch.bool)
    valid[:8, :60] = False  # 45 valid steps: still 16 masked
    valid[8:12, :95] = False  # 10 valid steps: all of them masked
    mask = random_mask(valid, 0.15, generator=g)
    assert mask.dtype == torch.bool and mask.shape == valid.shape
    assert not (mask & ~valid).any()
    counts = mask.sum(1)
    assert (counts[:8] == 16).all() and (counts[8:12] == 10).all() and (counts[12:] == 16).all()
    assert mask[8:12].equal(valid[8:12])
    # positions are spread (not always the same steps) and reproducible with the seed
    assert mask[12:].float().mean(0).gt(0).sum() > 90
    assert random_mask(valid, generator=torch.Generator().manual_seed(0)).equal(mask)


def test_span_mask_ratio_spans_and_validity():
    g = torch.Generator().manual_seed(1)
    valid = torch.ones(4000, 105, dtype=torch.bool)
    valid[:, :5] = False
    mask = span_mask(valid, 0.15, mean_span=3.0, generator=g)
    assert not (mask & ~valid).any()
    assert abs(mask[:, 5:].float().mean().item() - 0.15) < 0.02
    m = mask[:, 5:].int()
    starts = ((m[:, 1:] == 1) & (m[:, :-1] == 0)).sum()
    mean_span = m.sum() / (starts + m[:, 0].sum())
    assert 2.4 < mean_span.item() < 3.3  # geometric spans of mean 3 (truncated at the end)


def test_masked_losses_only_count_masked_positions():
    target = torch.zeros(2, 6, 3)
    pred = torch.zeros(2, 6, 3)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, 1] = True
    pred[0, 1] = 4.0  # masked error: huber(4, delta 1) = 3.5
    pred[1, 2] = 100.0  # unmasked error: ignored
    assert masked_huber(pred, target, mask, delta=1.0).item() == pytest.approx(3.5)
    pred[0, 1] = 0.5
    assert masked_huber(pred, target, mask, delta=1.0).item() == pytest.approx(0.125)
    assert masked_huber(pred, target, torch.zeros_like(mask)).item() == 0.0


def test_interpolation_baseline():
    x = torch.tensor([[0.0, 10.0, 20.0, 30.0, 40.0, 50.0]]).unsqueeze(-1).repeat(1, 1, 2)
    x[0, :, 1] *= -1
    mask = torch.tensor([[True, False, True, True, False, True]])
    corrupted = torch.where(mask.unsqueeze(-1), torch.full_like(x, 999.0), x)
    pred = interpolation_baseline(corrupted, mask)
    expected = torch.tensor([10.0, 10.0, 20.0, 30.0, 40.0, 40.0])  # edges: nearest unmasked value
    assert torch.allclose(pred[0, :, 0], expected) and torch.allclose(pred[0, :, 1], -expected)
    assert interpolation_baseline(x, torch.ones(1, 6, dtype=torch.bool)).eq(0).all()


def test_last_steps_mask_hides_the_last_valid_steps_and_keeps_a_context():
    valid = torch.ones(4, 10, dtype=torch.bool)
    valid[1, 8:] = False  # invalid tail: the last valid steps are 5..7
    valid[2, :7] = False  # 3 valid steps: all but the first one hidden
    valid[3] = False
    mask = last_steps_mask(valid, 3)
    assert mask[0].tolist() == [False] * 7 + [True] * 3
    assert mask[1].tolist() == [False] * 5 + [True] * 3 + [False] * 2
    assert mask[2].tolist() == [False] * 8 + [True] * 2
    assert not mask[3].any() and not (mask & ~valid).any()
    with pytest.raises(ValueError):
        last_steps_mask(valid, 0)


def test_persistence_baseline_carries_the_last_seen_value_forward():
    x = torch.arange(6.0).view(1, 6, 1).repeat(2, 1, 2)
    x[..., 1] *= -1
    mask = torch.tensor([[False, False, True, False, True, True], [True, False, False, False, False, True]])
    pred = persistence_baseline(torch.where(mask.unsqueeze(-1), torch.full_like(x, 999.0), x), mask)
    assert pred[0, :, 0].tolist() == [0.0, 1.0, 1.0, 3.0, 3.0, 3.0]  # never looks ahead
    assert pred[1, :, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 4.0]  # nothing seen before step 0: 0
    assert pred[0, :, 1].tolist() == [-0.0, -1.0, -1.0, -3.0, -3.0, -3.0]
    # hiding the last steps, persistence is interpolation's edge rule (the nearest seen value)
    tail = last_steps_mask(torch.ones(2, 6, dtype=torch.bool), 2)
    assert persistence_baseline(x, tail).equal(interpolation_baseline(x, tail))
