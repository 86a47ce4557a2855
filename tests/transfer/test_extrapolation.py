"""The "how many labels?" variance model of the transfer learning curve (moola_lib.transfer.extrapolation)."""

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from moola_lib.transfer.config import METRICS, TransferConfig
from moola_lib.transfer.extrapolation import (
    fit_training_exponent,
    labels_for,
    labels_needed,
    labels_needed_sentence,
    se_model,
)
from moola_lib.transfer.intervals import OVERLAP_SHARE, compare_methods

K, R, N = 5, 8, 200
CFG = TransferConfig(
    arms=["baseline", "frozen"], primary="frozen vs baseline", primary_metric="log_loss", folds=K, repeats=R
)


def _runs(effect=0.02, tau_sd=0.08, exponent=-1.0, w_sd=0.2, fractions=(0.25, 0.5, 1.0), seed=0):
    """Per fraction, runs whose per-window log-loss difference is effect + a fixed per-window term (sd
    ``w_sd``, the test windows: the same at every fraction) + one shift per model (sd ``tau_sd`` at the full
    training size, variance scaling as n_train^exponent: the training sets)."""
    rng = np.random.default_rng(seed)
    y = np.arange(N) % 2
    assign = np.stack([rng.permutation(np.arange(N) % K) for _ in range(R)])
    window = rng.normal(0, w_sd, N)
    runs = {}
    for f in fractions:
        shifts = rng.normal(0, tau_sd * math.sqrt(f**exponent), (R, K))
        loss_arm = 1.0 + effect + window + shifts[np.arange(R)[:, None], assign]
        runs[f] = {"baseline": _arm(np.ones((R, N)), y, assign, f), "frozen": _arm(loss_arm, y, assign, f)}
    return runs, y, np.arange(N)


def _arm(loss, y, assign, f):
    p = np.exp(-loss)  # probability of the true class
    oof = np.where(y[None, :, None] == np.arange(2), p[..., None], (1 - p)[..., None])
    n_train = round(N * (K - 1) / K * f)
    folds = [
        {
            "repeat": r,
            "n_test": int((assign[r] == k).sum()),
            "n_train": n_train,
            "test_idx": np.flatnonzero(assign[r] == k).tolist(),
            **dict.fromkeys(METRICS, 0.5),
            "log_loss": float(loss[r, assign[r] == k].mean()),
            "roc_auc": float(loss[r, assign[r] == k].mean()),
        }
        for r in range(R)
        for k in range(K)
    ]
    return {"folds": folds, "oof": oof}


def test_the_model_passes_through_the_measured_standard_error_and_fits_the_planted_exponent():
    runs, y, groups = _runs(exponent=-1.0)
    x = labels_needed(runs, CFG, y, groups)
    full = compare_methods(runs[1.0]["frozen"], runs[1.0]["baseline"], y, groups)["log_loss"]
    assert x["predicted_se"][str(N)] == pytest.approx(full["se"]) and x["mde"] == pytest.approx(full["mde"])
    assert x["exponent_fitted"] and x["training_exponent"] == pytest.approx(-1.0, abs=0.45)
    assert x["predicted_se"][str(2 * N)] < full["se"] and x["predicted_se"][str(8 * N)] < x["predicted_se"][str(4 * N)]
    assert [p["n_test"] for p in x["points"]] == [40.0] * 3  # the test folds keep their size
    flat = labels_needed(_runs(exponent=0.0)[0], CFG, y, groups)  # training variance that does not shrink
    assert flat["training_exponent"] > -0.5 > x["training_exponent"]  # the fit reads the data, not the fold sizes
    assert flat["predicted_se"][str(8 * N)] / flat["mde"] > x["predicted_se"][str(8 * N)] / x["mde"]


def test_power_curve_and_the_range_over_the_effects_interval():
    runs, y, groups = _runs(effect=0.1, tau_sd=0.03)
    x = labels_needed(runs, CFG, y, groups)
    labels = [p["labels"] for p in x["power_curve"]]
    assert [p["effect"] for p in x["power_curve"]] == [0.01, 0.02, 0.05]
    assert all(n is None or n > 0 for n in labels)
    assert labels[2] <= (labels[1] or math.inf) <= (labels[0] or math.inf)
    df = x["points"][-1]["df"]
    factor = stats.t.ppf(0.975, df) + stats.t.ppf(0.8, df)
    assert x["mde"] == pytest.approx(factor * x["predicted_se"][str(N)])
    assert x["ci"][0] > 0  # a clear effect
    far, near = x["over_interval"]
    assert far <= x["observed"] <= near
    sentence = labels_needed_sentence(x)
    assert f"{far:,} to {near:,} labels" in sentence and "0.050 nats" in sentence and "power 80%" in sentence


def test_labels_for_is_the_smallest_sufficient_count():
    def se_of_n(n):
        return 1.0 / math.sqrt(n)

    n = labels_for(0.1, se_of_n, 2.8, 100)
    assert 2.8 * se_of_n(n) <= 0.1 < 2.8 * se_of_n(n - 1) and n == math.ceil(2.8**2 / 0.01)
    assert labels_for(0.0, se_of_n, 2.8, 100) is None
    assert labels_for(0.001, se_of_n, 2.8, 100) is None  # beyond 100x today's labels


def test_untrustworthy_answers_say_why():
    runs, y, groups = _runs(effect=0.0)
    x = labels_needed(runs, CFG, y, groups)
    lo, hi = x["ci"]
    assert lo <= 0 <= hi and x["over_interval"][1] is None
    assert "includes 0" in labels_needed_sentence(x)
    assert any("smaller than its standard error" in c for c in x["caveats"])
    one = labels_needed(_runs(fractions=(1.0,))[0], CFG, y, groups)
    assert not one["exponent_fitted"] and one["training_exponent"] == -1.0
    assert any("could not fit" in c for c in one["caveats"]) and "assumed" in labels_needed_sentence(one)
    assert fit_training_exponent([{"n_train": 10, "sigma_tau2": 0.0}, {"n_train": 20, "sigma_tau2": 0.1}]) == (
        -1.0,
        False,
    )
    auc = labels_needed(runs, dataclasses.replace(CFG, primary_metric="roc_auc"), y, groups)
    assert auc["interval"] == "corrected_t" and any("not a mean of per-window scores" in c for c in auc["caveats"])
    assert auc["predicted_se"][str(N)] > auc["predicted_se"][str(4 * N)] > 0  # all variance as training variance


def test_each_per_window_interval_extrapolates_with_its_own_count_of_the_training_term():
    full = {"n_train": 160.0, "n_test": 40.0, "sigma_w2": 0.04 * 200, "sigma_w2_fold": 0.2, "sigma_tau2": 0.02}
    full |= {"sd2": 0.03, "se": 0.05}
    J, ratio = K * R, 1 / (K - 1)
    for interval, share in OVERLAP_SHARE.items():
        se = se_model(full, 0.0, K, R, interval)  # a training variance that does not shrink with more labels
        assert se(200) == pytest.approx(0.05)
        by_hand = math.sqrt(0.04 * 200 / 800 + (1 / J + share * ratio) * 0.02)
        assert se(800) / se(200) == pytest.approx(by_hand / math.sqrt(0.04 + (1 / J + share * ratio) * 0.02))
    calibrated, full_count = se_model(full, 0.0, K, R, "calibrated"), se_model(full, 0.0, K, R, "hierarchical")
    assert calibrated(800) < full_count(800)  # less of the variance stays when the labels grow
