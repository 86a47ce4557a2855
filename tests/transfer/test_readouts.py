"""Read-outs of a frozen encoder (pooling x layer), their choice on the inner split, and LP-FT's start."""

import numpy as np
import pytest
import torch
from helpers import tiny_set

from moola_lib.pretraining.model import JadeEncoder
from moola_lib.transfer import fits, readouts
from moola_lib.transfer.config import TransferConfig
from moola_lib.transfer.folds import make_folds
from moola_lib.transfer.linear import fit_logistic
from moola_lib.transfer.probe import (
    _optimizer,
    build_classifier,
    head_from_probe,
    pooled,
    predict_proba,
)
from moola_lib.transfer.protocol import Inputs, evaluate_arms
from moola_lib.util.config import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_layer_outputs_reproduce_the_lstm(layers):
    torch.manual_seed(0)
    encoder = JadeEncoder(hidden_size=6, num_layers=layers, dropout=0.5).eval()
    x = torch.randn(4, 30, 10)
    outputs = encoder.layer_outputs(x)
    assert len(outputs) == layers and all(o.shape == (4, 30, 12) for o in outputs)
    torch.testing.assert_close(outputs[-1], encoder(x), rtol=0, atol=1e-6)  # nn.LSTM's own last layer
    one = torch.nn.LSTM(10, 6, 1, batch_first=True, bidirectional=True)  # the first layer on its own
    one.load_state_dict({k: v for k, v in encoder.lstm.state_dict().items() if "_l0" in k})
    torch.testing.assert_close(outputs[0], one(x)[0], rtol=0, atol=1e-6)


def _states():
    """States [2, 6, 4] (H = 2) whose values name their step and feature; window 1 has invalid first steps."""
    h = torch.arange(6.0)[None, :, None] * 10 + torch.arange(4.0)[None, None, :]
    h = torch.cat([h, -h])
    valid = torch.tensor([[True] * 6, [False, False, True, True, True, False]])
    return h, valid


def test_poolings_read_the_steps_they_document():
    h, valid = _states()
    followup = torch.tensor([[False] * 4 + [True] * 2, [False] * 3 + [True] * 2 + [False]])
    torch.testing.assert_close(readouts.pool(h, valid, "mean", followup)[1], -torch.tensor([30.0, 31, 32, 33]))
    torch.testing.assert_close(
        readouts.pool(h, valid, "max", followup), torch.tensor([[50.0, 51, 52, 53], [-20, -21, -22, -23]])
    )
    # forward half (features 0, 1) at the last valid step, backward half (2, 3) at the first valid step
    torch.testing.assert_close(
        readouts.pool(h, valid, "last", followup), torch.tensor([[50.0, 51, 2, 3], [-40, -41, -22, -23]])
    )
    torch.testing.assert_close(
        readouts.pool(h, valid, "span", followup), torch.tensor([[45.0, 46, 47, 48], [-35, -36, -37, -38]])
    )


def test_followup_span_falls_back_to_the_whole_window_when_offsets_are_missing():
    valid = np.ones((3, 8), bool)
    valid[:, 7] = False
    mask, fallback = readouts.followup_mask(valid, np.array([[1, 3], [-1, -1], [2, 6]]))
    assert mask[0].tolist() == [False] * 4 + [True] * 3 + [False]  # the bars after the leg's end
    assert mask[1].tolist() == valid[1].tolist() and mask[2].tolist() == valid[2].tolist()  # none after
    assert fallback == 2
    ls = tiny_set()  # no offsets at all: span = mean, and a warning says so
    X, V = torch.as_tensor(ls.X), torch.as_tensor(ls.valid)
    with pytest.warns(UserWarning, match="36 of 36 labelled windows carry no expansion offsets"):
        Z = readouts.readout_features(
            JadeEncoder(hidden_size=4, num_layers=1), X, V, ls.expansion, ["span:last", "mean:last"]
        )
    np.testing.assert_array_equal(Z["span:last"], Z["mean:last"])


def test_readout_features_default_is_todays_pooling_and_layers_concatenate():
    ls = tiny_set()
    torch.manual_seed(1)
    encoder = JadeEncoder(hidden_size=4, num_layers=2)
    X, V = torch.as_tensor(ls.X), torch.as_tensor(ls.valid)
    Z = readouts.readout_features(encoder, X, V, ls.expansion, ["mean:last", "mean:first", "mean:both", "max:both"])
    np.testing.assert_array_equal(Z["mean:last"], pooled(encoder, X, V))  # exactly today's numbers
    assert Z["mean:both"].shape == (36, 16) and Z["max:both"].shape == (36, 16)
    np.testing.assert_array_equal(Z["mean:both"], np.hstack([Z["mean:first"], Z["mean:last"]]))
    first = encoder.eval().layer_outputs(X)[0].detach()
    np.testing.assert_allclose(
        Z["mean:first"], ((first * V[..., None]).sum(1) / V.sum(1, keepdim=True)).numpy(), rtol=1e-5
    )
    assert not np.allclose(Z["mean:first"], Z["mean:last"])
    shallow = readouts.readout_features(
        JadeEncoder(hidden_size=4, num_layers=1), X, V, ls.expansion, ["mean:both", "mean:last"]
    )
    np.testing.assert_array_equal(shallow["mean:both"], shallow["mean:last"])  # one layer: first = last


@pytest.mark.parametrize(
    "bad, message",
    [("mean", "must be 'POOLING:LAYER'"), ("avg:last", "unknown pooling"), ("mean:lst", "Did you mean 'last'")],
)
def test_readouts_are_checked(bad, message):
    with pytest.raises(ConfigError, match=message):
        TransferConfig(readouts=[bad])
    with pytest.raises(ConfigError, match="none twice"):
        TransferConfig(readouts=["mean:last", "mean:last"])
    assert TransferConfig().readouts == ["mean:last"]


def _small_config(**options) -> TransferConfig:
    """3 folds x 1 repeat on the tiny set, no learning curve, CPU, quiet."""
    return TransferConfig(
        folds=3, repeats=1, fractions=[1.0], group_by_session=False, device="cpu", progress=False, **options
    )


def test_the_probe_chooses_its_readout_on_the_inner_split_and_records_it(monkeypatch):
    ls = tiny_set()
    signal = np.c_[ls.y + 0.3 * np.random.default_rng(0).normal(size=len(ls.y)), np.zeros(len(ls.y))]
    noise = np.random.default_rng(1).normal(size=(len(ls.y), 2))
    cfg = _small_config(arms=["baseline", "frozen", "random_frozen"], readouts=["max:last", "mean:last"])
    inputs = Inputs.build(ls, JadeEncoder(hidden_size=4, num_layers=1), cfg)
    assert set(inputs.fixed["frozen"]) == set(inputs.fixed["random_frozen"]) == {"max:last", "mean:last"}
    inputs.fixed["frozen"] = {"max:last": noise, "mean:last": signal}
    out = evaluate_arms(
        ls, inputs, cfg, make_folds(ls.y, ls.groups, 3, 1, 0), ls.groups, arms=["frozen", "random_frozen"]
    )
    for fold in out["frozen"]["folds"]:
        losses = fold["readout_val_log_loss"]
        assert fold["readout"] == "mean:last" == min(losses, key=losses.get)
        model = fit_logistic(signal, ls.y, np.array(fold["fit_idx"]), np.array(fold["val_idx"]))
        np.testing.assert_allclose(
            out["frozen"]["oof"][0, fold["test_idx"]], model.predict_proba(signal[fold["test_idx"]])
        )
    assert all(f["readout"] in cfg.readouts for f in out["random_frozen"]["folds"])
    assert readouts.choose({"a": 0.5, "b": 0.5 + 1e-12, "c": 0.7}) == "a"  # ties: the first listed


@pytest.mark.parametrize("n_classes", [2, 3])
def test_lpft_starts_from_the_probes_decision(n_classes):
    ls = tiny_set()
    y = np.arange(len(ls.y)) % n_classes
    torch.manual_seed(0)
    encoder = JadeEncoder(hidden_size=4, num_layers=2)
    X, V = torch.as_tensor(ls.X), torch.as_tensor(ls.valid)
    Z = pooled(encoder, X, V)
    fit, val, test = np.arange(0, 24), np.arange(24, 30), np.arange(30, 36)
    probe = fit_logistic(Z + 5 * np.eye(n_classes, Z.shape[1])[y], y, fit, val)  # a probe with real weights
    model = build_classifier("lpft", encoder, n_classes, 0.3, seed=0)
    before = predict_proba(model, X, V, test)
    head_from_probe(model, probe)
    np.testing.assert_allclose(predict_proba(model, X, V, np.arange(36)), probe.predict_proba(Z), atol=1e-5)
    assert not np.allclose(before, probe.predict_proba(Z[test]), atol=1e-3)


def test_lpft_arm_fine_tunes_everything_at_the_lower_rate():
    ls = tiny_set()
    cfg = _small_config(arms=["baseline", "lpft"], primary="lpft vs baseline", epochs=2, encoder_lr_scale=0.25)
    encoder = JadeEncoder(hidden_size=4, num_layers=1)
    model = build_classifier("lpft", encoder, 2, 0.3, seed=0)
    assert [g["lr"] for g in _optimizer(model, "lpft", cfg).param_groups] == pytest.approx([cfg.lr * 0.25] * 2)
    inputs = Inputs.build(ls, encoder, cfg)
    np.testing.assert_array_equal(inputs.fixed["lpft"], pooled(encoder, inputs.data[0], inputs.data[1]))
    probas, info = fits.arm_probabilities(
        "lpft", inputs, ls.y, (np.arange(24), np.arange(24, 30), np.arange(30, 36)), cfg, seed=3
    )
    assert len(probas) == 1 and probas[0].shape == (6, 2) and np.isfinite(probas[0]).all()
    assert info["probe_C"] > 0 and info["epochs_run"] == [2]
