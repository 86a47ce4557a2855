"""Pretext objectives of pretraining: which steps of a window are hidden, how the prediction of them is
scored, and which simple predictors a model has to beat (DESIGN.md section 4).

Every objective trains the same model (``models.JadePretrainer``: hidden steps are replaced by a learned
mask vector before the BiLSTM encoder, a linear head predicts every step), so encoders pretrained under
any objective have the same architecture and load with ``models.load_encoder``. An objective owns

- ``draw(valid, generator)``: the hidden steps (bool [B, T], True = hidden) of a batch of windows, drawn
  on the device of ``valid``; the trainer draws the epoch's training masks and, once, the fixed masks of
  the evaluation splits with it;
- ``loss(pred, x, hidden)``: the training loss, Huber (delta ``huber_delta``) on the hidden steps;
- ``eval_sums`` / ``metrics``: what evaluation adds up over batches and ranks, and the loss, MAE and
  per-feature losses it reports (the loss is the mean of the per-feature losses);
- ``reference_predictors(train_mean)``: the simple predictors scored on the same hidden steps, by name,
  and ``reference_titles``: the names in words for tables and figures.

and it owns its options: ``Options``, a dataclass of the ``PretrainConfig`` fields only it reads (with their
defaults), and ``checks(config)``, their validity checks. ``PretrainConfig`` takes its allowed objectives
from ``OBJECTIVES``, inherits every objective's ``Options`` and runs every objective's ``checks``.

The trainer and the results call only these. A new objective is one subclass here and its line in
``OBJECTIVES`` (plus its test and docs/DESIGN.md section 4.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..features.relativity import FEATURE_NAMES
from .masking import interpolation_baseline, last_steps_mask, masked_huber, persistence_baseline, random_mask, span_mask

Predictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x [B, T, F], hidden [B, T]) -> [B, T, F]


class Objective:
    """The part every objective shares: Huber loss on the hidden steps, its evaluation, and the train-mean
    reference. Subclasses say which steps are hidden and which other references apply."""

    name: ClassVar[str] = ""
    reference_titles: ClassVar[dict[str, str]] = {}  # reference predictor -> its name in words

    @dataclass
    class Options:  # the PretrainConfig fields only this objective reads
        pass

    @staticmethod
    def checks(config: Any) -> list[tuple[bool, str]]:
        """(ok, message) of each check of this objective's options on a PretrainConfig."""
        return []

    def __init__(self, config: Any):  # a PretrainConfig
        self.config = config

    def draw(self, valid: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, pred: torch.Tensor, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The training loss (fp32 scalar): Huber averaged over hidden steps x features."""
        return masked_huber(pred, x, hidden, self.config.huber_delta)

    def eval_sums(self, pred: torch.Tensor, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """float64 [F + 2]: per-feature Huber sums, the absolute-error sum and the number of hidden steps,
        over the hidden steps of one batch (sums add up over batches and ranks)."""
        pred, target, m = pred.float(), x.float(), hidden.unsqueeze(-1).float()
        huber = F.huber_loss(pred, target, reduction="none", delta=self.config.huber_delta)
        return torch.cat(
            [
                (huber * m).sum(dim=(0, 1)).double(),
                ((pred - target).abs() * m).sum().double()[None],
                hidden.sum().double()[None],
            ]
        )

    @staticmethod
    def metrics(sums: torch.Tensor) -> dict:
        """``loss`` (mean over features), ``mae`` and ``per_feature`` losses from the summed ``eval_sums``."""
        n_features = len(sums) - 2
        steps = sums[n_features + 1].clamp_min(1)
        per_feature = (sums[:n_features] / steps).tolist()
        return {
            "loss": float(np.mean(per_feature)),
            "mae": (sums[n_features] / steps / n_features).item(),
            "per_feature": dict(zip(FEATURE_NAMES, per_feature)),
        }

    def reference_predictors(self, train_mean: torch.Tensor) -> dict[str, Predictor]:
        """Name -> predictor of every reference, in the order of ``reference_titles``."""
        return {"train_mean": lambda x, hidden: train_mean.expand_as(x)}


class MaskedReconstruction(Objective):
    """Reconstruct hidden steps anywhere in the window from both sides: ``mask_ratio`` of the steps (16
    of 105), drawn uniformly among the valid ones (``mask_mode`` "random") or as geometric spans of mean
    ``mean_span`` ("span"). Reference: linear interpolation between the nearest seen neighbours; a model
    that does not beat it has learned nothing beyond smoothing."""

    name = "masked"
    reference_titles: ClassVar = {"train_mean": "predict the train mean", "interpolation": "linear interpolation"}

    @dataclass
    class Options:
        mask_ratio: float = 0.15  # share of the steps hidden
        mask_mode: Literal["random", "span"] = "random"
        mean_span: float = 3.0  # "span": mean length of the hidden spans

    @staticmethod
    def checks(config: Any) -> list[tuple[bool, str]]:
        return [
            (0.0 < config.mask_ratio < 1.0, "mask_ratio must be in (0, 1)"),
            (config.mean_span >= 1.0, "mean_span must be >= 1"),
        ]

    def draw(self, valid: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        c = self.config
        if c.mask_mode == "span":
            return span_mask(valid, c.mask_ratio, c.mean_span, generator=generator)
        return random_mask(valid, c.mask_ratio, generator=generator)

    def reference_predictors(self, train_mean: torch.Tensor) -> dict[str, Predictor]:
        return {**super().reference_predictors(train_mean), "interpolation": interpolation_baseline}


class Forecast(Objective):
    """Forecast the next bars from a causal context: the last ``forecast_bars`` valid steps of each window
    (16 of 105) are hidden, so the (bidirectional) encoder sees only the bars before them, and are
    predicted. The features of a bar are computed from its past only, so nothing of the hidden bars leaks
    into the context. Deterministic (``generator`` is not used): the fixed evaluation masks equal the
    training ones. Reference: persistence (the last seen bar carried forward); interpolation would need
    the future."""

    name = "forecast"
    reference_titles: ClassVar = {"train_mean": "predict the train mean", "persistence": "persistence (last seen bar)"}

    @dataclass
    class Options:
        forecast_bars: int = 16  # the last bars of a window hidden, round(0.15 * 105)

    @staticmethod
    def checks(config: Any) -> list[tuple[bool, str]]:
        return [
            (
                1 <= config.forecast_bars < config.window_length,
                "forecast_bars must be >= 1 and below window_length",
            )
        ]

    def draw(self, valid: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return last_steps_mask(valid, self.config.forecast_bars)

    def reference_predictors(self, train_mean: torch.Tensor) -> dict[str, Predictor]:
        return {**super().reference_predictors(train_mean), "persistence": persistence_baseline}


OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in (MaskedReconstruction, Forecast)}
OBJECTIVE_NAMES: tuple[str, ...] = tuple(OBJECTIVES)


def make_objective(config: Any) -> Objective:
    """The objective ``config.objective`` names."""
    return OBJECTIVES[config.objective](config)
