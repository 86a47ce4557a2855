"""Transfer protocol: folds, inner splits, statistics, strict encoder loading, verdict, results file."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

from moola_lib.config import ConfigError, apply_overrides
from moola_lib.io import write_json
from moola_lib.labels import DEFAULT_CLASSES, LabelledSet, exclude_intervals, overlap_groups
from moola_lib.models import JadeEncoder, save_encoder
from moola_lib.notebook.params import TransferParams, transfer_config
from moola_lib.notebook.steps import labelled_from_params
from moola_lib.synthetic import synthetic_ohlcv
from moola_lib.transfer.config import TransferConfig
from moola_lib.transfer.folds import inner_split, make_folds
from moola_lib.transfer.probe import build_classifier, fit_classifier
from moola_lib.transfer.protocol import run_transfer
from moola_lib.transfer.provenance import encoder_feature_options, find_training_results, pretraining_overlap
from moola_lib.transfer.stats import corrected_t, paired_bootstrap, weighted_metrics
from moola_lib.transfer.verdict import verdict

N, L = 36, 105
T0 = pd.Timestamp("2024-01-01", tz="UTC")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny LSTMs run fastest on one thread (and do not fight other processes for the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_set(n=N, seed=0) -> LabelledSet:
    """Random windows with a learnable offset on feature 0; windows 0/1 and 4/5 overlap in time."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, L, 10)).astype(np.float32)
    X[..., 0] += y[:, None]
    valid = np.ones((n, L), dtype=bool)
    valid[:, :5] = False
    starts = np.arange(n) * 150
    starts[1], starts[5] = starts[0] + 50, starts[4] + 100
    index = pd.date_range(T0, periods=n * 150 + L, freq="1min")
    return LabelledSet(X=X, valid=valid, y=y, classes=DEFAULT_CLASSES,
                       window_id=np.array([f"t{i}" for i in range(n)], dtype=object), start=index[starts],
                       end=index[starts + L - 1], expansion=np.full((n, 2), -1), groups=overlap_groups(starts),
                       source={"path": "<tiny>"})


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("encoder")
    torch.manual_seed(0)
    save_encoder(JadeEncoder(hidden_size=8, num_layers=1), d / "encoder.pt")
    # pretraining period covering the first day: windows starting before 2024-01-02 lie inside "train"
    write_json(d / "training_results.json", {"config": {
        "data_path": None, "synthetic_seed": 0, "exclude": [["2024-01-01T00:00", "2024-01-01T03:00"]],
        "splits": {"train": ["2024-01-01", "2024-01-02"], "val": ["2024-01-02", "2024-01-03"]}}})
    return d


CFG = dict(folds=3, repeats=1, epochs=1, batch_size=32, fractions=[0.5, 1.0], n_bootstrap=50, device="cpu",
           progress=False)


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
            assert 4 <= ls.y[row == k].sum() <= 8          # both classes in every test fold
    assert not (assign[0] == assign[1]).all()              # repeats differ
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
            assert (a["repeat"], a["fold"], a["test_idx"], a["fit_idx"], a["val_idx"]) == \
                   (b["repeat"], b["fold"], b["test_idx"], b["fit_idx"], b["val_idx"])
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
    u = t / math.sqrt(1 + t * t / 4)                # Student t CDF for 4 degrees of freedom, closed form
    p = 2 * (1 - (0.5 + 0.375 * u * (1 - u * u / 12)))
    out = corrected_t(d, test_train_ratio=25 / 100)
    assert out["mean"] == pytest.approx(0.026) and out["se"] == pytest.approx(se)
    assert out["t"] == pytest.approx(1.683566, rel=1e-5) and out["df"] == 4
    assert out["p_value"] == pytest.approx(p, rel=1e-6)
    half = 2.776445 * se                              # t(0.975, 4) from tables
    assert out["ci_low"] == pytest.approx(0.026 - half, rel=1e-5)
    assert out["ci_high"] == pytest.approx(0.026 + half, rel=1e-5)
    naive = 0.026 / math.sqrt(0.00053 / 5)
    assert naive > 2.5 > out["t"]                     # the correction widens the interval


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
    cfg = TransferConfig(epochs=5, patience=2, batch_size=12, lr=0.05, unfreeze_epoch=2, device="cpu",
                         progress=False)
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
    with torch.no_grad():   # the restored weights are those of the best epoch
        loss = torch.nn.functional.cross_entropy(m1(data[0][val], data[1][val]), data[2][val],
                                                 weight=torch.tensor([1.0, 1.0]))
    assert float(loss) == pytest.approx(h1["best_val_loss"], rel=1e-5)


def test_frozen_arm_leaves_the_encoder_untouched():
    ls = tiny_set()
    data = tuple(torch.as_tensor(a) for a in (ls.X, ls.valid, ls.y))
    encoder = JadeEncoder(hidden_size=8, num_layers=1)
    model = build_classifier("frozen", encoder, 2, 0.3, seed=0)
    fit_classifier(model, "frozen", data, np.arange(24), np.arange(24, 36),
                   TransferConfig(epochs=2, device="cpu", progress=False), seed=0)
    after, before = model.encoder.state_dict(), encoder.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)
    baseline = build_classifier("baseline", encoder, 2, 0.3, seed=0)
    assert baseline.encoder.arch == encoder.arch
    assert not torch.equal(baseline.encoder.lstm.weight_hh_l0, encoder.lstm.weight_hh_l0)
    fresh = build_classifier("frozen", encoder, 2, 0.3, seed=0)
    assert torch.equal(baseline.head.weight, fresh.head.weight)     # same head init in every arm
    control = build_classifier("random_frozen", encoder, 2, 0.3, seed=0)   # random features, same probe
    assert torch.equal(control.encoder.lstm.weight_hh_l0, baseline.encoder.lstm.weight_hh_l0)


def test_strict_encoder_loading(tmp_path):
    save_encoder(JadeEncoder(input_size=11, hidden_size=8, num_layers=1), tmp_path / "enc11.pt")
    with pytest.raises(ValueError, match="input_size=11"):
        run_transfer(tiny_set(), tmp_path / "enc11.pt", CFG)


def test_config_is_strict():
    with pytest.raises(ConfigError, match="Did you mean 'folds'"):
        TransferConfig.from_dict({"fold": 3})
    with pytest.raises(ConfigError, match="baseline"):
        TransferConfig(arms=["frozen"])


# ------------------------------------------------------------------------------------ results

def test_results_file_and_summaries(results):
    res, run_dir = results
    on_disk = json.loads((run_dir / "transfer_results.json").read_text())
    assert on_disk["format"] == "moola.transfer_results.v1" and on_disk["verdict"] == res["verdict"]
    assert set(res["arms"]) == {"baseline", "frozen", "finetune", "random_frozen"}
    assert set(res["comparisons"]) == {"frozen vs baseline", "finetune vs baseline",
                                       "random_frozen vs baseline", "frozen vs random_frozen"}
    for arm in res["arms"].values():
        s = arm["summary"]
        for m in ("accuracy", "balanced_accuracy", "macro_f1", "recall_consolidation", "recall_retracement"):
            assert 0 <= s[m]["ci_low"] <= s[m]["mean"] <= s[m]["ci_high"] <= 1
        assert np.sum(arm["confusion"]) == N
        assert np.mean([f["accuracy"] for f in arm["folds"]]) == pytest.approx(s["accuracy"]["mean"])
    d = res["comparisons"]["finetune vs baseline"]["balanced_accuracy"]
    folds = res["arms"]
    diffs = [a["balanced_accuracy"] - b["balanced_accuracy"]
             for a, b in zip(folds["finetune"]["folds"], folds["baseline"]["folds"])]
    assert d["mean"] == pytest.approx(np.mean(diffs)) and len(d["bootstrap_ci"]) == 2
    curve = res["learning_curve"]["baseline"]
    assert [p["fraction"] for p in curve] == [0.5, 1.0] and curve[0]["n_train"] < curve[1]["n_train"]


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
    assert f"{overlap['seen']} of the {N} labelled windows" in res["verdict"]
    assert pretraining_overlap(ls, encoder_dir / "training_results.json") == overlap


def test_training_results_of_an_exported_encoder(encoder_dir, tmp_path):
    # the sweep exports the best encoder elsewhere and names its checkpoint in the metadata
    save_encoder(JadeEncoder(hidden_size=8, num_layers=1), tmp_path / "best.pt",
                 source=str(encoder_dir / "checkpoint_best.pt"))
    assert find_training_results(tmp_path / "best.pt") == encoder_dir / "training_results.json"
    save_encoder(JadeEncoder(hidden_size=8, num_layers=1), tmp_path / "lonely.pt")
    assert find_training_results(tmp_path / "lonely.pt") is None


def test_exclude_intervals(tmp_path):
    ls = tiny_set(6)
    spans = exclude_intervals(ls, margin_minutes=10)
    first = [T0 - pd.Timedelta("10min"), T0 + pd.Timedelta(minutes=50 + 104 + 10)]
    assert spans[0] == [t.isoformat() for t in first]
    assert len(spans) == 4                                        # windows 0/1 and 4/5 merged
    frame = pd.DataFrame({"start": ls.start.tz_localize(None), "label": ls.labels})
    frame.to_csv(tmp_path / "l.csv", index=False)
    assert exclude_intervals(tmp_path / "l.csv", margin_minutes=10) == spans


def _fake(p, mean, lo, hi, seen=0):
    stat = {"mean": mean, "ci_low": lo, "ci_high": hi, "p_value": p, "bootstrap_ci": [lo + 0.005, hi - 0.005]}
    base = {"balanced_accuracy": {"mean": 0.6, "ci_low": 0.55, "ci_high": 0.65}}
    return {"arms": {"baseline": {"summary": base}, "finetune": {"summary": {"balanced_accuracy": {
                "mean": 0.6 + mean, "ci_low": 0.5, "ci_high": 0.7}}}},
            "comparisons": {"finetune vs baseline": {"arm": "finetune", "reference": "baseline",
                                                     "balanced_accuracy": stat}},
            "data": {"n_windows": 174, "cold_start": False}, "protocol": {"folds": 5, "repeats": 5},
            "encoder": {"pretraining_overlap": {"seen": seen}}}


def test_verdict_reflects_the_numbers():
    good = verdict(_fake(0.01, 0.041, 0.012, 0.070))
    assert "+4.1 pp balanced accuracy, 95% CI [+1.2, +7.0], p = 0.01" in good
    assert "significantly better" in good and "64.1%" in good and "None of the labelled windows" in good
    null = verdict(_fake(0.4, 0.01, -0.03, 0.05, seen=12))
    assert "no significant difference" in null and "includes zero" in null and "p = 0.4" in null
    assert "Caution: 12 of the 174" in null
    worse = verdict(_fake(0.002, -0.08, -0.12, -0.04))
    assert "significantly worse" in worse and "-8.0 pp" in worse
    single = verdict(_fake(math.nan, 0.02, math.nan, math.nan))
    assert "cannot test" in single and "significant" not in single


def test_notebook_parameters_load_a_labels_file(tmp_path):
    bars = synthetic_ohlcv("2025-06-02", "2025-06-04", seed=3)
    starts = [300, 1000, 1800, 2500]
    pd.DataFrame({"start": bars.index[starts], "label": ["consolidation", "retracement"] * 2}).to_csv(
        tmp_path / "labels.csv", index=False)
    bars.to_parquet(tmp_path / "bars.parquet")   # timestamps point into a data file (issue 11, item 1)
    params = TransferParams(labels_path=str(tmp_path / "labels.csv"), data_path=str(tmp_path / "bars.parquet"))
    ls = labelled_from_params(params)
    assert list(ls.start) == list(bars.index[starts]) and not ls.cold_start
    assert transfer_config(params).folds == params.folds
    with pytest.raises(ConfigError, match="Did you mean 'folds'"):
        apply_overrides(params, {"fold": 3})   # what start_run does with papermill's parameters


def test_labelled_features_follow_the_encoders_feature_options(encoder_dir, tmp_path):
    from moola_lib.features import ORIGINAL_FEATURE_OPTIONS as ORIGINAL, resolve_feature_options

    # neither the encoder nor its run records options: an encoder made before they were: the original's
    assert encoder_feature_options(encoder_dir / "encoder.pt") == resolve_feature_options(ORIGINAL)
    torch.save({"config": {"feature_options": {"hybrid_max_age": -1}}}, tmp_path / "checkpoint_best.pt")
    assert encoder_feature_options(tmp_path / "checkpoint_best.pt") == resolve_feature_options(
        {**ORIGINAL, "hybrid_max_age": -1})
