"""The pretext-objective interface (moola_lib.pretraining.objectives) and the forecast objective."""

import json
import typing

import numpy as np
import pytest
import torch
from helpers import TINY

from moola_lib.features.relativity import FEATURE_NAMES
from moola_lib.pretraining.checkpoints import load_encoder
from moola_lib.pretraining.config import PretrainConfig
from moola_lib.pretraining.job import load_pretrain_data, pretrain
from moola_lib.pretraining.masking import masked_huber
from moola_lib.pretraining.model import JadePretrainer
from moola_lib.pretraining.objectives import OBJECTIVES, Forecast, MaskedReconstruction, make_objective
from moola_lib.pretraining.trainer import Trainer
from moola_lib.util.config import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_allowed_objective_is_a_class_with_titled_references():
    allowed = typing.get_args(typing.get_type_hints(PretrainConfig)["objective"])
    assert set(allowed) == set(OBJECTIVES) and PretrainConfig().objective == "masked"
    for name, cls in OBJECTIVES.items():
        objective = make_objective(PretrainConfig(objective=name))
        assert type(objective) is cls and objective.name == name
        predictors = objective.reference_predictors(torch.zeros(10))
        assert list(predictors) == list(objective.reference_titles) and next(iter(predictors)) == "train_mean"
    with pytest.raises(ConfigError, match="objective"):
        PretrainConfig.from_dict({"objective": "contrastive"})
    with pytest.raises(ConfigError, match="forecast_bars"):
        PretrainConfig(forecast_bars=105)


def test_eval_sums_add_up_to_the_training_loss():
    objective = MaskedReconstruction(PretrainConfig(huber_delta=0.5))
    g = torch.Generator().manual_seed(0)
    x, pred = torch.randn(6, 105, 10, generator=g), torch.randn(6, 105, 10, generator=g) * 2
    hidden = objective.draw(torch.ones(6, 105, dtype=torch.bool), g)
    sums = objective.eval_sums(pred[:4], x[:4], hidden[:4]) + objective.eval_sums(pred[4:], x[4:], hidden[4:])
    metrics = objective.metrics(sums)
    assert metrics["loss"] == pytest.approx(objective.loss(pred, x, hidden).item(), rel=1e-5)
    assert metrics["loss"] == pytest.approx(masked_huber(pred, x, hidden, 0.5).item(), rel=1e-5)
    assert metrics["mae"] == pytest.approx((pred - x).abs()[hidden].mean().item(), rel=1e-5)
    assert list(metrics["per_feature"]) == list(FEATURE_NAMES)


def test_the_forecast_never_sees_the_bars_it_forecasts():
    objective = Forecast(PretrainConfig(forecast_bars=16))
    hidden = objective.draw(torch.ones(4, 105, dtype=torch.bool), torch.Generator().manual_seed(1))
    assert hidden[:, -16:].all() and not hidden[:, :-16].any()
    torch.manual_seed(0)
    model = JadePretrainer(hidden_size=8).eval()
    x = torch.randn(4, 105, 10)
    future = x.clone()
    future[hidden] = torch.randn(int(hidden.sum()), 10) * 100
    future[0, hidden[0]] = float("nan")
    with torch.no_grad():
        assert model(x, hidden).equal(model(future, hidden))  # at every step, hidden or seen
        past = x.clone()
        past[:, 88] += 1.0  # the last seen bar
        assert not model(x, hidden)[:, 89:].equal(model(past, hidden)[:, 89:])


def test_forecast_pretraining_end_to_end(tmp_path):
    cfg = {**TINY, "objective": "forecast", "forecast_bars": 12}
    data = load_pretrain_data(cfg)
    trainer = Trainer(PretrainConfig.from_dict(cfg), data, torch.device("cpu"))
    for split in ("val", "test"):  # the fixed evaluation masks: the last 12 bars of every window
        masks = trainer.eval_masks[split]
        assert masks[:, -12:].all() and masks.sum(dim=1).eq(12).all()
    results = pretrain(cfg, tmp_path, data=data)
    assert results["objective"] == "forecast" and results["config"]["forecast_bars"] == 12
    assert results["reference_titles"] == {
        "train_mean": "predict the train mean",
        "persistence": "persistence (last seen bar)",
        "better_reference": "per feature the better reference",
    }
    for split in ("val", "test"):
        refs = results["reference_losses"][split]
        assert list(refs) == ["train_mean", "persistence", "better_reference"]
        assert 0 < refs["better_reference"]["loss"] <= min(refs["train_mean"]["loss"], refs["persistence"]["loss"])
        for row in results["per_feature_losses"][split].values():
            assert set(row) == {"model", "train_mean", "persistence", "better_reference"}
            assert row["better_reference"] == min(row["train_mean"], row["persistence"])
    assert json.loads((tmp_path / "training_results.json").read_text())["objective"] == "forecast"
    # the checkpoint's encoder records the objective; the architecture is the masked objective's
    ckpt = torch.load(tmp_path / "checkpoint_best.pt", weights_only=True)
    assert ckpt["encoder"]["objective"] == "forecast" and ckpt["config"]["objective"] == "forecast"
    masked = JadePretrainer(hidden_size=8).state_dict()
    assert {k: v.shape for k, v in ckpt["model"].items()} == {k: v.shape for k, v in masked.items()}
    assert load_encoder(tmp_path / "checkpoint_best.pt", hidden_size=8).objective == "forecast"


def test_figures_and_tables_name_the_objectives_references():
    from moola_lib.pretraining import plots as training_plots

    per_feature = {
        f: {"model": 0.5, "train_mean": 1.0, "persistence": 0.8, "better_reference": 0.8} for f in FEATURE_NAMES
    }
    refs = {"train_mean": {"loss": 1.0}, "persistence": {"loss": 0.8}, "better_reference": {"loss": 0.8}}
    results = {
        "reference_titles": {
            "train_mean": "predict the train mean",
            "persistence": "persistence",
            "better_reference": "per feature the better reference",
        },
        "reference_losses": {"val": refs},
        "per_feature_losses": {"val": per_feature},
        "best_val_loss": 0.9,
        "best_epoch": 1,
        "epochs_completed": 1,
        "stop_reason": "completed all epochs",
    }
    table = training_plots.reference_table(results)
    assert list(table.columns[:3]) == ["model (best epoch)", "predict the train mean", "persistence"]
    text = training_plots.reference_verdict(results)
    assert "beats only one reference (predict the train mean)" in text and "persistence 0.8000" in text
    assert list(training_plots.per_feature_table(results).columns) == [
        "model",
        "train_mean",
        "persistence",
        "better_reference",
        "model / better reference",
    ]
    assert training_plots.reference_curves(results) == {
        "predict the train mean": 1.0,
        "persistence": 0.8,
        "per feature the better": 0.8,
    }
    assert np.allclose(training_plots.per_feature_table(results)["model / better reference"], 0.625)
