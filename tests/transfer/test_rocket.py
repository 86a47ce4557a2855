"""The rocket arm: MiniRocket / MultiRocket features fitted on the fit windows, a ridge classifier with a
temperature for its probabilities, deterministic for its seed, on the protocol's folds."""

import numpy as np
import pytest
import torch
from helpers import tiny_set
from scipy.special import log_softmax

from moola_lib.transfer.config import TransferConfig
from moola_lib.transfer.fits import fit_seed
from moola_lib.transfer.folds import make_folds
from moola_lib.transfer.protocol import Inputs, evaluate_arms
from moola_lib.transfer.rocket import ALPHAS, fit_ridge, rocket_features, rocket_series

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_series_are_the_ten_feature_series_of_each_window():
    X = np.arange(2 * 105 * 10, dtype=np.float32).reshape(2, 105, 10)
    series = rocket_series(X)
    assert series.shape == (2, 10, 105) and series.dtype == np.float64 and series.flags.c_contiguous
    np.testing.assert_array_equal(series[1, 3], X[1, :, 3])
    X[0, 4, 2] = np.nan
    with pytest.raises(ValueError, match="1 non-finite"):
        rocket_series(X)


@pytest.mark.parametrize("model, width", [("minirocket", 9996), ("multirocket", 49728)])
def test_the_transform_is_fitted_on_the_fit_windows_only_and_seeded(model, width):
    series = rocket_series(tiny_set(24).X)
    fit = np.arange(16)
    Z = rocket_features(model, series, fit, seed=3)
    assert Z.shape == (24, width) and np.isfinite(Z).all()
    np.testing.assert_array_equal(Z, rocket_features(model, series, fit, seed=3))  # deterministic
    other = series.copy()
    other[16:] = np.random.default_rng(0).normal(size=other[16:].shape)  # change the other windows
    np.testing.assert_array_equal(rocket_features(model, other, fit, seed=3)[:16], Z[:16])
    assert not np.array_equal(rocket_features(model, series, np.arange(8, 24), seed=3), Z)


def test_ridge_labels_and_calibrated_probabilities():
    rng = np.random.default_rng(0)
    y = np.arange(120) % 2
    Z = rng.normal(size=(120, 300))
    Z[:, :20] += 1.0 * y[:, None]
    fit, val, test = np.arange(70), np.arange(70, 95), np.arange(95, 120)
    model = fit_ridge(Z, y, fit, val)
    proba = model.predict_proba(Z[test])
    np.testing.assert_allclose(proba.sum(1), 1)
    np.testing.assert_array_equal(proba.argmax(1), model.pipeline.predict(Z[test]))  # the ridge's labels
    assert model.pipeline[0].n_samples_seen_ == len(fit) and model.chosen_alpha in ALPHAS
    assert (proba.argmax(1) == y[test]).mean() >= 0.8

    def val_loss(t):
        return -np.mean(log_softmax(t * model.logits(Z[val]), axis=1)[np.arange(len(val)), y[val]])

    assert model.temperature > 0
    assert val_loss(model.temperature) <= min(val_loss(t) for t in (0.1, 1.0, 10.0, model.temperature * 1.5))
    noise = fit_ridge(rng.normal(size=(120, 300)), y, fit, val)  # no signal: probabilities near 1/2
    assert np.abs(noise.predict_proba(Z[test])[:, 1] - 0.5).mean() < 0.2


def test_rocket_arms_on_the_protocols_folds():
    ls = tiny_set(36)
    # the kernels sum to zero, so the tiny set's level shift is invisible to them: class 1 gets a wave
    ls.X[ls.y == 1, :, 0] += 1.5 * np.sin(np.arange(105) / 2.0)
    cfg = TransferConfig(
        arms=["baseline", "rocket"],
        primary="rocket_minirocket vs baseline",
        folds=3,
        repeats=1,
        fractions=[1.0],
        n_bootstrap=0,
        group_by_session=False,
        device="cpu",
        progress=False,
    )
    inputs = Inputs.build(ls, None, cfg)
    assign = make_folds(ls.y, ls.groups, 3, 1, 0)
    arms = ["rocket_minirocket", "rocket_multirocket"]
    threads = torch.get_num_threads()
    out = evaluate_arms(ls, inputs, cfg, assign, ls.groups, arms=arms)
    assert torch.get_num_threads() == threads  # aeon's numba threads leave torch's alone
    again = evaluate_arms(ls, inputs, cfg, assign, ls.groups, arms=arms)
    for arm in arms:
        np.testing.assert_array_equal(out[arm]["oof"], again[arm]["oof"])  # deterministic
        assert not np.isnan(out[arm]["oof"]).any()
        for f in out[arm]["folds"]:
            assert f["alpha"] in ALPHAS and f["temperature"] > 0
        assert np.mean([f["balanced_accuracy"] for f in out[arm]["folds"]]) >= 0.75  # the wave is learnable
    first = out["rocket_minirocket"]["folds"][0]  # the same as transforming the whole set
    fit, val, test = (np.array(first[k]) for k in ("fit_idx", "val_idx", "test_idx"))
    seed = fit_seed(cfg.seed, 0, first["fold"], 1000)
    Z = rocket_features("minirocket", inputs.fixed["series"], fit, seed)
    np.testing.assert_allclose(
        out["rocket_minirocket"]["oof"][0, test], fit_ridge(Z, ls.y, fit, val).predict_proba(Z[test]), atol=1e-6
    )
