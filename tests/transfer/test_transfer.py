"""Transfer protocol: folds, inner splits, statistics, strict encoder loading, verdict, results file."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import CFG, T0, L, N, tiny_set
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.labels.provenance import encoder_feature_options, find_training_results, pretraining_overlap
from moola_lib.labels.spans import exclude_intervals
from moola_lib.notebook.params import TransferParams, transfer_config
from moola_lib.notebook.steps import labelled_from_params
from moola_lib.pretraining.checkpoints import save_encoder
from moola_lib.pretraining.model import JadeEncoder
from moola_lib.transfer.config import TransferConfig
from moola_lib.transfer.folds import config_groups, embargo, fold_groups, inner_split, make_folds, session_ids
from moola_lib.transfer.linear import C_GRID, fit_logistic
from moola_lib.transfer.probe import build_classifier, fit_classifier, pooled, predict_proba
from moola_lib.transfer.protocol import Inputs, run_transfer
from moola_lib.transfer.simple import window_summaries
from moola_lib.transfer.stats import (
    corrected_t,
    holm,
    minimal_detectable_effect,
    paired_bootstrap,
    probability_metrics,
    weighted_metrics,
)
from moola_lib.transfer.verdict import verdict
from moola_lib.util.config import ConfigError, apply_overrides
from moola_lib.util.io import write_json

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("encoder")
    torch.manual_seed(0)
    save_encoder(JadeEncoder(hidden_size=8, num_layers=1), d / "encoder.pt")
    # pretraining period covering the first day: windows starting before 2024-01-02 lie inside "train"
    write_json(
        d / "training_results.json",
        {
            "config": {
                "data_path": None,
                "synthetic_seed": 0,
                "exclude": [["2024-01-01T00:00", "2024-01-01T03:00"]],
                "splits": {"train": ["2024-01-01", "2024-01-02"], "val": ["2024-01-02", "2024-01-03"]},
            }
        },
    )
    return d


@pytest.fixture(scope="module")
def results(encoder_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    res = run_transfer(tiny_set(), encoder_dir / "encoder.pt", CFG, run_dir)
    return res, run_dir


# ------------------------------------------------------------------------------------ folds


def test_folds_keep_overlapping_windows_together_and_stratify():
    ls = tiny_set()
    assign = make_folds(ls.y, ls.groups, 3, 4, seed=1)
    assert assign.shape == (4, N) and set(np.unique(assign)) == {0, 1, 2}
    assert (assign[:, 0] == assign[:, 1]).all() and (assign[:, 4] == assign[:, 5]).all()
    for row in assign:
        for k in range(3):
            assert 4 <= ls.y[row == k].sum() <= 8  # both classes in every test fold
    assert not (assign[0] == assign[1]).all()  # repeats differ
    np.testing.assert_array_equal(assign, make_folds(ls.y, ls.groups, 3, 4, seed=1))


def test_inner_split_is_disjoint_and_group_aware():
    ls = tiny_set()
    train = np.flatnonzero(make_folds(ls.y, ls.groups, 3, 1, 0)[0] != 0)
    fit, val = inner_split(train, ls.y, ls.groups, 0.2, seed=3)
    assert set(fit) | set(val) == set(train) and not set(fit) & set(val)
    assert not set(ls.groups[fit]) & set(ls.groups[val])
    assert 0 < ls.y[val].sum() < len(val)


def test_identical_folds_and_no_early_stopping_on_the_test_fold(results):
    res, _ = results
    assign = np.array(res["protocol"]["fold_assignment"])
    arms = res["arms"]
    base = arms["baseline"]["folds"]
    for arm in ("frozen", "finetune", "random_frozen"):
        for a, b in zip(arms[arm]["folds"], base):
            assert (a["repeat"], a["fold"], a["test_idx"], a["fit_idx"], a["val_idx"]) == (
                b["repeat"],
                b["fold"],
                b["test_idx"],
                b["fit_idx"],
                b["val_idx"],
            )
    for f in base:
        test = set(f["test_idx"])
        assert test == set(np.flatnonzero(assign[f["repeat"]] == f["fold"]))
        assert not test & set(f["fit_idx"]) and not test & set(f["val_idx"])
        assert set(f["fit_idx"]) | set(f["val_idx"]) | test == set(range(N))
    assert len(base) == 3 and all(len(a["folds"]) == 3 for a in arms.values())


# ------------------------------------------------------------------------------------ statistics


def test_corrected_t_matches_hand_computation():
    d = [0.02, 0.05, -0.01, 0.04, 0.03]
    # mean 0.026; sum of squared deviations 0.00212 -> s^2 = 0.00053; (1/5 + 25/100) * s^2 = 0.0002385
    se = math.sqrt(0.0002385)
    t = 0.026 / se
    u = t / math.sqrt(1 + t * t / 4)  # Student t CDF for 4 degrees of freedom, closed form
    p = 2 * (1 - (0.5 + 0.375 * u * (1 - u * u / 12)))
    out = corrected_t(d, test_train_ratio=25 / 100)
    assert out["mean"] == pytest.approx(0.026) and out["se"] == pytest.approx(se)
    assert out["t"] == pytest.approx(1.683566, rel=1e-5) and out["df"] == 4
    assert out["p_value"] == pytest.approx(p, rel=1e-6)
    half = 2.776445 * se  # t(0.975, 4) from tables
    assert out["ci_low"] == pytest.approx(0.026 - half, rel=1e-5)
    assert out["ci_high"] == pytest.approx(0.026 + half, rel=1e-5)
    naive = 0.026 / math.sqrt(0.00053 / 5)
    assert naive > 2.5 > out["t"]  # the correction widens the interval


def test_corrected_t_degenerate_cases():
    same = corrected_t([0.0] * 6, 0.5)
    assert same["mean"] == 0 and same["p_value"] == 1.0 and same["ci_low"] == same["ci_high"] == 0
    shift = corrected_t([0.1] * 6, 0.5)
    assert shift["p_value"] == 0.0 and shift["ci_low"] == pytest.approx(0.1)
    one = corrected_t([0.3], 0.5)
    assert one["mean"] == 0.3 and math.isnan(one["p_value"]) and math.isnan(one["ci_low"])


def test_weighted_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 3, 60), rng.integers(0, 3, 60)
    m = weighted_metrics(y, pred, 3)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    np.testing.assert_allclose(m["recall"], recall_score(y, pred, average=None))
    w = rng.integers(0, 4, 60)
    mw = weighted_metrics(y, pred, 3, np.stack([w, np.ones(60)]))
    repeated = balanced_accuracy_score(np.repeat(y, w), np.repeat(pred, w))
    assert mw["balanced_accuracy"][0] == pytest.approx(repeated)
    assert mw["macro_f1"][1] == pytest.approx(m["macro_f1"])


def test_bootstrap_of_identical_arms_is_zero():
    ls = tiny_set()
    pred = np.random.default_rng(0).integers(0, 2, (2, N))
    boot = paired_bootstrap(ls.y, pred, pred.copy(), ls.groups, 2, 200, seed=0)
    assert all(b == {"ci_low": 0.0, "ci_high": 0.0} for b in boot.values())
    better = paired_bootstrap(ls.y, np.tile(ls.y, (2, 1)), pred, ls.groups, 2, 200, seed=0)
    assert better["accuracy"]["ci_low"] > 0


# ------------------------------------------------------------------------------------ training


def test_fit_is_deterministic_and_keeps_the_best_inner_epoch():
    ls = tiny_set()
    data = tuple(torch.as_tensor(a) for a in (ls.X, ls.valid, ls.y))
    cfg = TransferConfig(epochs=5, patience=2, batch_size=12, lr=0.05, unfreeze_epoch=2, device="cpu", progress=False)
    fit, val = np.arange(0, 24), np.arange(24, 36)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_classifier("finetune", JadeEncoder(hidden_size=8, num_layers=1), 2, 0.3, seed=7)
        runs.append((model, fit_classifier(model, "finetune", data, fit, val, cfg, seed=7)))
    (m1, h1), (m2, h2) = runs
    assert h1["history"] == h2["history"]
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    losses = [h["val_loss"] for h in h1["history"]]
    assert h1["best_epoch"] == int(np.argmin(losses)) and h1["best_val_loss"] == min(losses)
    assert h1["epochs_run"] == 5 or h1["epochs_run"] == h1["best_epoch"] + 3
    with torch.no_grad():  # the restored weights are those of the best epoch
        loss = torch.nn.functional.cross_entropy(
            m1(data[0][val], data[1][val]), data[2][val], weight=torch.tensor([1.0, 1.0])
        )
    assert float(loss) == pytest.approx(h1["best_val_loss"], rel=1e-5)


def test_frozen_arms_are_deterministic_linear_probes_on_pooled_features():
    ls = tiny_set()
    encoder = JadeEncoder(hidden_size=8, num_layers=1)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    cfg = TransferConfig(arms=["baseline", "frozen", "random_frozen"], device="cpu", progress=False)
    inputs = Inputs.build(ls, encoder, cfg)
    assert all(torch.equal(v, before[k]) for k, v in encoder.state_dict().items())
    Z = inputs.fixed["frozen"]["mean:last"]  # the default read-out: today's pooling
    np.testing.assert_allclose(Z, pooled(encoder, torch.as_tensor(ls.X), torch.as_tensor(ls.valid)))
    assert not np.allclose(Z, inputs.fixed["random_frozen"]["mean:last"])  # the control has its own random encoder
    fit, val, test = np.arange(0, 20), np.arange(20, 28), np.arange(28, 36)
    a, b = (fit_logistic(Z, ls.y, fit, val) for _ in range(2))
    np.testing.assert_array_equal(a.predict_proba(Z[test]), b.predict_proba(Z[test]))  # no training noise
    assert a.chosen_C in C_GRID
    baseline = build_classifier("baseline", encoder, 2, 0.3, seed=0)
    assert baseline.encoder.arch == encoder.arch
    assert not torch.equal(baseline.encoder.lstm.weight_hh_l0, encoder.lstm.weight_hh_l0)
    fresh = build_classifier("finetune", encoder, 2, 0.3, seed=0)
    assert torch.equal(baseline.head.weight, fresh.head.weight)  # same head init in every arm
    data = tuple(torch.as_tensor(a) for a in (ls.X, ls.valid, ls.y))
    with pytest.raises(ValueError, match="not trained by SGD"):
        fit_classifier(fresh, "frozen", data, fit, val, cfg, seed=0)


def test_linear_probe_picks_the_regularisation_on_the_inner_split():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    Z = rng.normal(size=(200, 30))
    Z[:, 0] += 3 * y  # one strong feature: weak regularisation wins
    assert fit_logistic(Z, y, np.arange(120), np.arange(120, 160)).chosen_C >= 0.1
    noise = rng.normal(size=(200, 30))  # pure noise: the strongest regularisation wins
    assert fit_logistic(noise, y, np.arange(120), np.arange(120, 160)).chosen_C <= 1e-2


def test_baseline_learns_a_learnable_task_on_every_fold():
    """A task the classifier can learn (a mean shift of one feature, a few hundred steps): no fold of the
    baseline may collapse to chance (the first version sometimes did, at 49-62%)."""
    ls = tiny_set(60, seed=3)
    ls.X[..., 0] += 0.5 * ls.y[:, None]  # a clear but not trivial signal after mean pooling
    data = tuple(torch.as_tensor(a) for a in (ls.X, ls.valid, ls.y))
    cfg = TransferConfig(epochs=25, patience=10, device="cpu", progress=False)
    assign = make_folds(ls.y, ls.groups, 3, 1, seed=0)[0]
    for k in range(3):
        test, train = np.flatnonzero(assign == k), np.flatnonzero(assign != k)
        fit, val = inner_split(train, ls.y, ls.groups, 0.2, seed=k)
        model = build_classifier("baseline", JadeEncoder(hidden_size=8, num_layers=1), 2, 0.3, seed=k)
        fit_classifier(model, "baseline", data, fit, val, cfg, seed=k)
        pred = predict_proba(model, data[0], data[1], test).argmax(-1)
        assert weighted_metrics(ls.y[test], pred, 2)["balanced_accuracy"] >= 0.8, k


def test_window_summaries():
    X = np.arange(2 * 5 * 10, dtype=np.float32).reshape(2, 5, 10)
    valid = np.ones((2, 5), dtype=bool)
    valid[0, 3:] = False  # window 0: bars 0-2 only
    Z = window_summaries(X, valid)
    assert Z.shape == (2, 50)
    np.testing.assert_allclose(Z[0, :10], X[0, :3].mean(0))
    np.testing.assert_allclose(Z[0, 10:20], X[0, :3].std(0))
    np.testing.assert_allclose(Z[0, 20:30], X[0, 0])
    np.testing.assert_allclose(Z[0, 30:40], X[0, 2])
    np.testing.assert_allclose(Z[0, 40:50], X[0, 2])  # the last valid bar
    np.testing.assert_allclose(Z[1, 40:50], X[1, 4])


def test_strict_encoder_loading(tmp_path):
    save_encoder(JadeEncoder(input_size=11, hidden_size=8, num_layers=1), tmp_path / "enc11.pt")
    with pytest.raises(ValueError, match="input_size=11"):
        run_transfer(tiny_set(), tmp_path / "enc11.pt", CFG)


def test_config_is_strict():
    with pytest.raises(ConfigError, match="Did you mean 'folds'"):
        TransferConfig.from_dict({"fold": 3})
    with pytest.raises(ConfigError, match="baseline"):
        TransferConfig(arms=["frozen"])
    with pytest.raises(ConfigError, match="unknown arm 'rockets' in arms. Did you mean 'rocket'"):
        TransferConfig.from_dict({"arms": ["baseline", "frozen", "rockets"]})
    params = TransferParams(arms=["baseline", "frozen", "fine_tune"])  # the notebook's parameters too
    with pytest.raises(ConfigError, match="Did you mean 'finetune'"):
        transfer_config(params)


# ------------------------------------------------------------------------------------ results


def test_results_file_and_summaries(results):
    res, run_dir = results
    on_disk = json.loads((run_dir / "transfer_results.json").read_text())
    assert on_disk["format"] == "moola.transfer_results.v2" and on_disk["verdict"] == res["verdict"]
    assert set(res["arms"]) == {
        "baseline",
        "frozen",
        "finetune",
        "lpft",
        "random_frozen",
        "simple_logistic",
        "simple_boosting",
        "rocket_minirocket",
        "rocket_multirocket",
    }
    assert (
        next(iter(res["comparisons"])) == "frozen vs baseline" and res["comparisons"]["frozen vs baseline"]["primary"]
    )
    assert {
        "finetune vs baseline",
        "random_frozen vs baseline",
        "frozen vs random_frozen",
        "baseline vs simple_logistic",
        "frozen vs simple_boosting",
        "finetune vs rocket_multirocket",
        "frozen vs rocket_minirocket",
        "lpft vs baseline",
        "lpft vs simple_boosting",
    } <= set(res["comparisons"])
    assert "The best non-neural arm" in res["verdict"] and "Do the pretrained arms beat it?" in res["verdict"]
    for arm in res["arms"].values():
        s = arm["summary"]
        for m in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "recall_consolidation"):
            assert 0 <= s[m]["ci_low"] <= s[m]["mean"] <= s[m]["ci_high"] <= 1
        assert s["log_loss"]["mean"] > 0
        assert np.sum(arm["confusion"]) == N
        assert np.mean([f["accuracy"] for f in arm["folds"]]) == pytest.approx(s["accuracy"]["mean"])
        proba = np.array(arm["oof_probabilities"])
        assert proba.shape == (1, N, 2) and np.allclose(proba.sum(-1), 1, atol=1e-5)
    d = res["comparisons"]["finetune vs baseline"]["balanced_accuracy"]
    folds = res["arms"]
    diffs = [
        a["balanced_accuracy"] - b["balanced_accuracy"]
        for a, b in zip(folds["finetune"]["folds"], folds["baseline"]["folds"])
    ]
    assert d["mean"] == pytest.approx(np.mean(diffs)) and len(d["test_noise_only_ci"]) == 2
    assert d["mde"] == pytest.approx(minimal_detectable_effect(d["se"], d["df"]))
    secondary = [c for c in res["comparisons"].values() if not c["primary"]]
    assert [c["log_loss"]["p_holm"] for c in secondary] == pytest.approx(
        holm([c["log_loss"]["p_value"] for c in secondary]), nan_ok=True
    )
    curve = res["learning_curve"]["baseline"]
    assert [p["fraction"] for p in curve] == [0.5, 1.0] and curve[0]["n_train"] < curve[1]["n_train"]
    primary = res["comparisons"]["frozen vs baseline"]["balanced_accuracy"]
    assert "Primary comparison (named before the run), frozen vs baseline" in res["verdict"]
    if primary["p_value"] >= 0.05:
        assert f"effects smaller than {100 * primary['mde']:.1f} pp could not have been detected" in res["verdict"]


def test_seeds_per_fold_average_the_trained_arms(encoder_dir):
    cfg = {**CFG, "arms": ["baseline", "frozen"], "fractions": [1.0], "seeds_per_fold": 2, "n_bootstrap": 0}
    res = run_transfer(tiny_set(), encoder_dir / "encoder.pt", cfg)
    for f in res["arms"]["baseline"]["folds"]:
        seeds = f["seed_scores"]["log_loss"]
        assert len(seeds) == 2 and seeds[0] != seeds[1] and f["log_loss"] == pytest.approx(np.mean(seeds))
        assert len(f["best_epoch"]) == 2
    assert "seed_scores" not in res["arms"]["frozen"]["folds"][0]  # the probe is deterministic
    one = run_transfer(tiny_set(), encoder_dir / "encoder.pt", {**cfg, "seeds_per_fold": 1})
    first = [f["seed_scores"]["log_loss"][0] for f in res["arms"]["baseline"]["folds"]]
    assert first == pytest.approx([f["log_loss"] for f in one["arms"]["baseline"]["folds"]])


def test_primary_comparison_is_checked():
    assert TransferConfig(primary="finetune vs random_frozen").primary_pair() == ("finetune", "random_frozen")
    for bad in ("frozen vs frozen", "frozen vs nothing", "frozen baseline"):
        with pytest.raises(ConfigError, match="primary"):
            TransferConfig(primary=bad)
    with pytest.raises(ConfigError, match="primary"):
        TransferConfig(arms=["baseline", "finetune"])  # the default primary needs the frozen arm


# ------------------------------------------------------------------------------------ sessions, embargo


def test_session_ids_follow_the_17h_new_york_halt():
    times = pd.DatetimeIndex(
        ["2025-07-01 20:59", "2025-07-01 22:00", "2025-07-02 20:59", "2025-01-06 21:59", "2025-01-06 23:00", None],
        tz="UTC",
    )  # July: EDT (halt 21:00 UTC); January: EST
    ids = session_ids(times)
    assert ids[0] + 1 == ids[1] == ids[2] and ids[3] + 1 == ids[4] and ids[5] == -1


def test_fold_groups_join_sessions_and_overlaps():
    times = pd.DatetimeIndex(
        ["2025-07-01 10:00", "2025-07-01 12:00", "2025-07-02 10:00", "2025-07-03 10:00", None, None], tz="UTC"
    )
    overlap = np.array([0, 1, 2, 3, 4, 4])  # windows 4 and 5 (no timestamps) share bars
    assert fold_groups(overlap, times, times).tolist() == [0, 0, 1, 2, 3, 3]
    assert fold_groups(overlap, times, times, by_session=False).tolist() == [0, 1, 2, 3, 4, 4]
    ls = synthetic_labelled_set_small()
    groups = fold_groups(ls.groups, ls.start, ls.end)
    sessions = session_ids(ls.start)
    for g in np.unique(groups):
        assert len(np.unique(sessions[groups == g])) >= 1
    for s in np.unique(sessions):  # a session never spans two groups
        assert len(np.unique(groups[sessions == s])) == 1


def test_fold_blocks_join_the_sessions_of_a_block_of_days():
    ls = synthetic_labelled_set_small()  # July 2025: sessions 20,270 .. 20,300 days after the epoch
    sessions, weekly = session_ids(ls.start), fold_groups(ls.groups, ls.start, ls.end, block_days=7)
    assert len(np.unique(weekly)) < len(np.unique(fold_groups(ls.groups, ls.start, ls.end)))
    for g in np.unique(weekly):  # a group spans at most one block of 7 days (two, where a window crosses a block)
        assert np.ptp(sessions[weekly == g]) < 14
    for block in np.unique(sessions // 7):  # a block never spans two groups
        assert len(np.unique(weekly[sessions // 7 == block])) == 1
    times = pd.DatetimeIndex(["2025-07-01 10:00", "2025-07-02 10:00", None], tz="UTC")
    assert fold_groups(np.arange(3), times, times, block_days=30).tolist() == [0, 0, 1]  # no timestamp: own group
    cfg = TransferConfig(fold_block_days=7)
    assert config_groups(ls, cfg).tolist() == weekly.tolist()
    for bad in ({"fold_block_days": 0}, {"fold_block_days": 7, "group_by_session": False}):
        with pytest.raises(ConfigError, match="fold_block_days"):
            TransferConfig(**bad)


def synthetic_labelled_set_small():
    from moola_lib.labels.testbed import synthetic_labelled_set

    return synthetic_labelled_set(40, start="2025-07-01", end="2025-07-31", history_start="2025-06-24")


def test_embargo_drops_training_windows_near_a_test_window(encoder_dir):
    start = pd.DatetimeIndex(["2025-07-01 10:00", "2025-07-01 12:00", "2025-07-01 14:00", None], tz="UTC")
    end = start + pd.Timedelta(minutes=104)
    test = np.array([1])
    train = np.array([0, 2, 3])
    # window 0 ends 11:44, 15 bars before window 1; window 2 starts 14:00, 15 bars after it ends (13:44)
    assert embargo(train, test, start, end, 0).tolist() == [0, 2, 3]
    assert embargo(train, test, start, end, 15).tolist() == [0, 2, 3]  # 15 bars apart: far enough
    assert embargo(train, test, start, end, 16).tolist() == [3]  # unknown times are kept
    ls = synthetic_labelled_set_small()
    cfg = {**CFG, "arms": ["baseline", "frozen"], "fractions": [1.0], "n_bootstrap": 0}
    plain = run_transfer(ls, encoder_dir / "encoder.pt", cfg)
    res = run_transfer(ls, encoder_dir / "encoder.pt", {**cfg, "embargo_bars": 300})
    for f, g in zip(res["arms"]["frozen"]["folds"], plain["arms"]["frozen"]["folds"]):
        assert f["test_idx"] == g["test_idx"] and f["n_train"] < g["n_train"]
        gaps = [
            abs(ls.start[i] - ls.start[j]) - pd.Timedelta(minutes=L)
            for i in f["fit_idx"] + f["val_idx"]
            for j in f["test_idx"]
        ]
        assert min(gaps) >= pd.Timedelta(minutes=300)  # at least 300 bars (minutes) between train and test
    with pytest.raises(ValueError, match="lower embargo_bars"):
        run_transfer(ls, encoder_dir / "encoder.pt", {**cfg, "embargo_bars": 5000})


def test_pretraining_overlap_is_reported(results, encoder_dir):
    res, _ = results
    overlap = res["encoder"]["pretraining_overlap"]
    ls = tiny_set()
    day1 = ls.start < pd.Timestamp("2024-01-02", tz="UTC")
    day2 = (ls.end >= pd.Timestamp("2024-01-02", tz="UTC")) & (ls.start < pd.Timestamp("2024-01-03", tz="UTC"))
    excluded = ls.start <= pd.Timestamp("2024-01-01T03:00", tz="UTC")
    assert overlap["inside_split"] == {"train": int(day1.sum()), "val": int(day2.sum())}
    assert overlap["excluded"] == int(excluded.sum()) > 0
    assert overlap["seen"] == int(((day1 | day2) & ~excluded).sum())
    assert f"{overlap['seen']} of the {N} labelled windows with timestamps" in res["verdict"]
    assert overlap["status"] == "known" and overlap["without_timestamps"] == 0
    assert pretraining_overlap(ls, encoder_dir / "training_results.json") == overlap


def test_training_results_of_an_exported_encoder(encoder_dir, tmp_path):
    # the sweep exports the best encoder elsewhere and names its checkpoint in the metadata
    save_encoder(
        JadeEncoder(hidden_size=8, num_layers=1), tmp_path / "best.pt", source=str(encoder_dir / "checkpoint_best.pt")
    )
    assert find_training_results(tmp_path / "best.pt") == encoder_dir / "training_results.json"
    save_encoder(JadeEncoder(hidden_size=8, num_layers=1), tmp_path / "lonely.pt")
    assert find_training_results(tmp_path / "lonely.pt") is None


def test_exclude_intervals(tmp_path):
    ls = tiny_set(6)
    spans = exclude_intervals(ls, margin_minutes=10)
    first = [T0 - pd.Timedelta("10min"), T0 + pd.Timedelta(minutes=50 + 104 + 10)]
    assert spans[0] == [t.isoformat() for t in first]
    assert len(spans) == 4  # windows 0/1 and 4/5 merged
    frame = pd.DataFrame({"start": ls.start, "label": ls.labels})
    frame.to_csv(tmp_path / "l.csv", index=False)
    assert exclude_intervals(tmp_path / "l.csv", margin_minutes=10) == spans


def _fake(p, mean, lo, hi, seen=0, mde=0.12, overlap_status="known", without=0):
    stat = {
        "mean": mean,
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p,
        "mde": mde,
        "mde_range": [0.8 * mde, 1.4 * mde],
        "test_noise_only_ci": [lo + 0.005, hi - 0.005],
    }
    base = {"balanced_accuracy": {"mean": 0.6, "ci_low": 0.55, "ci_high": 0.65}}
    overlap = {"status": overlap_status, "period_known": True, "seen": seen, "without_timestamps": without}
    spread = 0.05 * np.sin(np.arange(25))  # fold records: the decision the verdict opens with reads them

    def folds(level):
        return [
            {"repeat": i // 5, "fold": i % 5, "n_train": 139, "n_test": 35, "balanced_accuracy": level + v}
            for i, v in enumerate(spread)
        ]

    return {
        "arms": {
            "baseline": {"summary": base, "folds": folds(0.6)},
            "frozen": {
                "summary": {"balanced_accuracy": {"mean": 0.6 + mean, "ci_low": 0.5, "ci_high": 0.7}},
                "folds": folds(0.6 + mean),
            },
        },
        "comparisons": {
            "frozen vs baseline": {
                "arm": "frozen",
                "reference": "baseline",
                "primary": True,
                "balanced_accuracy": stat,
            },
            "finetune vs baseline": {
                "arm": "finetune",
                "reference": "baseline",
                "primary": False,
                "balanced_accuracy": {**stat, "p_holm": min(1, 3 * p) if p == p else p},
            },
        },
        "data": {"n_windows": 174, "cold_start": False},
        "protocol": {"folds": 5, "repeats": 5, "primary_metric": "balanced_accuracy", "alpha": 0.05, "power": 0.8},
        "encoder": {"pretraining_overlap": overlap},
    }


def test_verdict_reflects_the_numbers():
    good = verdict(_fake(0.01, 0.041, 0.012, 0.070))
    assert "Primary comparison (named before the run), frozen vs baseline" in good
    assert "+4.1 pp balanced accuracy, 95% CI [+1.2, +7.0], p = 0.01" in good
    assert "significantly better" in good and "p = 0.03 (Holm-corrected)" in good
    assert "the run detects effects of 12.0 pp or more with 80% power" in good
    assert "None of the 174 labelled windows with timestamps" in good
    null = verdict(_fake(0.4, 0.01, -0.03, 0.05, seen=12, mde=0.118))
    assert "no significant difference" in null and "p = 0.4" in null
    assert "effects smaller than 11.8 pp could not have been detected (power 80%, alpha 0.05)" in null
    assert "itself an estimate from this run's spread (95% range 9.4-16.5 pp), and errs on the large side" in null
    assert "interval: corrected resampled t (Nadeau-Bengio)" in null
    assert "bootstrap" not in null and "noise" not in null  # test noise only: never next to the CI
    assert "Caution: 12 of the 174" in null
    worse = verdict(_fake(0.002, -0.08, -0.12, -0.04))
    assert "significantly worse" in worse and "-8.0 pp" in worse
    assert good.startswith("1. Use pretrained, frozen encoder") and worse.startswith("1. Use random init (baseline)")
    single = verdict(_fake(math.nan, 0.02, math.nan, math.nan))
    assert "cannot test" in single and "significant" not in single


def test_verdict_says_when_overlap_is_unknown():
    none = verdict(_fake(0.4, 0.01, -0.03, 0.05, overlap_status="unknown", without=174))
    assert "carry no timestamps" in none and "unknown" in none and "None of the" not in none
    some = verdict(_fake(0.4, 0.01, -0.03, 0.05, overlap_status="partial", without=24))
    assert "None of the 150 labelled windows with timestamps" in some and "For the 24 windows without" in some
    ls = tiny_set()
    ls.start = pd.DatetimeIndex([pd.NaT] * N, tz="UTC")
    ls.end = ls.start
    overlap = pretraining_overlap(ls, {"config": {"splits": {"train": ["2024-01-01", "2024-01-02"]}}})
    assert overlap["status"] == "unknown" and overlap["seen"] is None and overlap["without_timestamps"] == N


def test_probability_metrics_minimal_detectable_effect_and_holm():
    from scipy import stats as st
    from sklearn.metrics import log_loss, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    p1 = np.clip(0.3 * y + rng.uniform(0.2, 0.6, 50), 0.01, 0.99)
    proba = np.stack([1 - p1, p1], axis=1)
    m = probability_metrics(y, proba)
    assert m["log_loss"] == pytest.approx(log_loss(y, proba)) and m["roc_auc"] == pytest.approx(roc_auc_score(y, p1))
    assert math.isnan(probability_metrics(np.zeros(5, dtype=int), proba[:5])["roc_auc"])
    # MDE: the effect the test finds with 80% power; check by the noncentral t power at the MDE
    se, df = 0.04, 24
    mde = minimal_detectable_effect(se, df)
    crit = st.t.ppf(0.975, df)
    power = st.nct.sf(crit, df, mde / se) + st.nct.cdf(-crit, df, mde / se)
    assert mde == pytest.approx((crit + st.t.ppf(0.8, df)) * se) and power == pytest.approx(0.8, abs=0.01)
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_notebook_parameters_load_a_labels_file(tmp_path):
    bars = synthetic_ohlcv("2025-06-02", "2025-06-04", seed=3)
    starts = [300, 1000, 1800, 2500]
    pd.DataFrame({"start": bars.index[starts], "label": ["consolidation", "retracement"] * 2}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    bars.to_parquet(tmp_path / "bars.parquet")  # timestamps point into a data file (issue 11, item 1)
    params = TransferParams(labels_path=str(tmp_path / "labels.csv"), data_path=str(tmp_path / "bars.parquet"))
    ls = labelled_from_params(params)
    assert list(ls.start) == list(bars.index[starts]) and not ls.cold_start
    assert transfer_config(params).folds == params.folds
    with pytest.raises(ConfigError, match="Did you mean 'folds'"):
        apply_overrides(params, {"fold": 3})  # what start_run does with papermill's parameters


def test_labelled_features_follow_the_encoders_feature_options(encoder_dir, tmp_path):
    from moola_lib.features.options import ORIGINAL_FEATURE_OPTIONS as ORIGINAL
    from moola_lib.features.options import resolve_feature_options

    # neither the encoder nor its run records options: an encoder made before they were: the original's
    assert encoder_feature_options(encoder_dir / "encoder.pt") == resolve_feature_options(ORIGINAL)
    torch.save({"config": {"feature_options": {"hybrid_max_age": -1}}}, tmp_path / "checkpoint_best.pt")
    assert encoder_feature_options(tmp_path / "checkpoint_best.pt") == resolve_feature_options(
        {**ORIGINAL, "hybrid_max_age": -1}
    )


def test_pretraining_warns_about_labelled_windows_in_its_splits(tmp_path, capsys):
    from moola_lib.notebook.steps import labels_in_pretraining
    from moola_lib.pretraining.config import PretrainConfig

    starts = ["2024-12-10 14:00Z", "2024-12-20 14:00Z", "2025-01-20 14:00Z", "2025-03-01 14:00Z"]
    pd.DataFrame({"start": starts, "label": ["consolidation", "retracement"] * 2}).to_csv(
        tmp_path / "l.csv", index=False
    )
    cfg = PretrainConfig(
        splits={
            "train": ["2024-12-01", "2025-01-01"],
            "val": ["2025-01-01", "2025-02-01"],
            "test": ["2025-02-01", "2025-04-01"],
        },
        exclude=[["2024-12-20T13:00", "2024-12-20T18:00"]],
    )
    message = labels_in_pretraining(tmp_path / "l.csv", cfg)
    assert message.startswith("WARNING: 2 of the 4 labelled windows") and "exclude" in message
    assert message in capsys.readouterr().out
    cfg.exclude += [["2024-12-10", "2024-12-11"], ["2025-01-20", "2025-01-21"]]
    assert labels_in_pretraining(tmp_path / "l.csv", cfg) is None
    assert "none of the 4 labelled windows" in capsys.readouterr().out
    assert labels_in_pretraining(None, cfg) is None
    pd.DataFrame({"window_id": ["a"], "label": ["consolidation"], "features": ["[]"]}).to_json(
        tmp_path / "w.json", orient="records"
    )
    assert "unknown" in labels_in_pretraining(tmp_path / "w.json", cfg)
