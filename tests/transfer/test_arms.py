"""The arm table (one source per arm), the same training windows for every arm, and each artefact of a
transfer run read once."""

import dataclasses

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import tiny_set

from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.notebook.params import TransferParams, transfer_config
from moola_lib.pretraining.checkpoints import save_encoder
from moola_lib.pretraining.model import JadeEncoder
from moola_lib.transfer import arms, figures, fits, probe, simple
from moola_lib.transfer.config import TransferConfig
from moola_lib.transfer.folds import make_folds
from moola_lib.transfer.protocol import Inputs, evaluate_arms
from moola_lib.util.config import ConfigError
from moola_lib.util.io import write_json

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_table_is_the_one_source_of_the_arms():
    names = [a.name for a in arms.TABLE]
    assert len(set(names)) == len(names)
    assert TransferConfig().arms == list(arms.OPTIONS)  # every arm runs by default
    assert arms.result_arms(arms.OPTIONS) == names
    assert arms.result_arms(["simple"]) == ["simple_logistic", "simple_boosting"]
    assert arms.result_arms(["rocket"]) == ["rocket_minirocket", "rocket_multirocket"]
    for row in arms.TABLE:
        assert row.kind in fits.KINDS, row  # every kind has its class (fit, predict, state)
        assert fits.KINDS[row.kind].fit_cost > 0, row  # ... and its relative cost (parallel.longest_first)
        assert matplotlib.colors.is_color_like(row.colour) and row.title
        assert (row.kind in ("trained", "probe")) == (row.encoder is not None), row
    assert TransferParams().arms == list(arms.OPTIONS)  # the notebook's default too
    with pytest.raises(KeyError, match="known: baseline"):
        arms.arm("nope")


def _results(arm_names):
    stat = {"mean": 0.6, "ci_low": 0.5, "ci_high": 0.7}
    summary = dict.fromkeys(("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss"), stat)
    return {
        "arms": {a: {"summary": summary, "confusion": [[3, 1], [1, 3]]} for a in arm_names},
        "data": {"classes": ["a", "b"]},
        "learning_curve": {a: [{"n_train": 10, **summary}, {"n_train": 20, **summary}] for a in arm_names},
    }


def test_a_new_row_is_all_the_figures_need(monkeypatch):
    new = arms.Arm(
        "shapelets", "shapelets", "summaries", "non_neural", "shapelet transform", "#123456", model="logistic"
    )
    monkeypatch.setitem(arms.BY_NAME, new.name, new)
    res = _results(["baseline", "shapelets"])
    fig = figures.metrics_bars(res)
    assert matplotlib.colors.to_hex(fig.axes[0].patches[-1].get_facecolor()) == "#123456"
    assert "shapelet transform" in figures.metrics_table(res).index
    assert [line.get_label() for line in figures.learning_curve(res).axes[0].lines[:2]] == [
        "random init (baseline)",
        "shapelet transform",
    ]


def test_the_trained_arms_optimiser_and_encoder_come_from_their_rows(monkeypatch):
    encoder = JadeEncoder(hidden_size=8, num_layers=1)
    cfg = TransferConfig(device="cpu", progress=False, encoder_lr_scale=0.25)
    model = probe.build_classifier("finetune", encoder, 2, 0.3, seed=0)
    assert torch.equal(model.encoder.lstm.weight_hh_l0, encoder.lstm.weight_hh_l0)  # pretrained weights
    lrs = [g["lr"] for g in probe._optimizer(model, "finetune", cfg).param_groups]
    assert lrs == pytest.approx([cfg.lr, cfg.lr * 0.25])
    monkeypatch.setitem(arms.BY_NAME, "finetune", dataclasses.replace(arms.arm("finetune"), scaled_encoder_lr=False))
    assert [g["lr"] for g in probe._optimizer(model, "finetune", cfg).param_groups] == pytest.approx([cfg.lr] * 2)


def test_probe_and_trained_arms_learn_from_the_same_windows(monkeypatch):
    """Every arm fits its parameters on the fit windows; the inner validation windows only choose (the
    epoch, C). A probe refitted on fit + validation windows, a trained arm whose gradient steps see the
    validation windows, or boosting trained on both, fails here (the rocket arm: tests/transfer/test_rocket.py)."""
    ls = tiny_set()
    cfg = TransferConfig(
        arms=["baseline", "frozen", "simple"],
        folds=3,
        repeats=1,
        epochs=2,
        fractions=[1.0],
        group_by_session=False,
        n_bootstrap=0,
        device="cpu",
        progress=False,
        n_jobs=1,  # the spies below record calls in this process
    )
    inputs = Inputs.build(ls, JadeEncoder(hidden_size=8, num_layers=1), cfg)
    stepped, probes = [], []
    real_epoch, real_logistic = probe._epoch, fits.fit_logistic

    def epoch(model, opt, loss_fn, data, fit_t, *args):
        stepped.append(set(fit_t.tolist()))
        return real_epoch(model, opt, loss_fn, data, fit_t, *args)

    def logistic(Z, y, fit_idx, val_idx, class_weighting=True):
        model = real_logistic(Z, y, fit_idx, val_idx, class_weighting)
        scaler = model[0]
        probes.append((scaler.n_samples_seen_, scaler.mean_, Z, set(fit_idx.tolist())))
        return model

    boosted = []

    class Boosting(simple.GradientBoostingClassifier):
        def fit(self, X, y, sample_weight=None):
            boosted.append(X)
            return super().fit(X, y, sample_weight=sample_weight)

    monkeypatch.setattr(probe, "_epoch", epoch)
    monkeypatch.setattr(fits, "fit_logistic", logistic)
    monkeypatch.setattr(simple, "fit_logistic", logistic)
    monkeypatch.setattr(simple, "GradientBoostingClassifier", Boosting)
    assign = make_folds(ls.y, ls.groups, 3, 1, 0)
    out = evaluate_arms(ls, inputs, cfg, assign, ls.groups)
    fold_fit = [set(f["fit_idx"]) for f in out["baseline"]["folds"]]
    assert fold_fit == [set(f["fit_idx"]) for f in out["frozen"]["folds"]]
    assert all(len(f["val_idx"]) > 0 for f in out["baseline"]["folds"])
    assert len(stepped) == 3 * cfg.epochs and all(s == fold_fit[i // cfg.epochs] for i, s in enumerate(stepped))
    assert len(probes) == 6  # frozen and simple_logistic, per fold
    for i, (n_seen, mean, Z, fit_idx) in enumerate(probes):
        assert fit_idx == fold_fit[i // 2] and n_seen == len(fit_idx)
        np.testing.assert_allclose(mean, Z[sorted(fit_idx)].mean(0))  # exactly the fit windows
    summaries = inputs.fixed["simple"]
    assert [X.tolist() for X in boosted] == [summaries[sorted(f)].tolist() for f in fold_fit]


# ------------------------------------------------------------------------------ each artefact read once


def _labels_run(tmp_path):
    bars = synthetic_ohlcv("2025-06-02", "2025-06-06", seed=3)
    starts = np.arange(24) * 200 + 200
    pd.DataFrame({"start": bars.index[starts], "label": ["consolidation", "retracement"] * 12}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    bars.to_parquet(tmp_path / "bars.parquet")
    torch.manual_seed(0)
    save_encoder(JadeEncoder(hidden_size=8, num_layers=1), tmp_path / "encoder.pt")
    write_json(
        tmp_path / "training_results.json",
        {
            "config": {
                "data_path": None,
                "synthetic_seed": 0,
                "exclude": [],
                "feature_options": {},
                "splits": {"train": ["2025-01-01", "2025-02-01"], "val": ["2025-02-01", "2025-03-01"]},
            }
        },
    )
    return TransferParams(
        labels_path=str(tmp_path / "labels.csv"),
        data_path=str(tmp_path / "bars.parquet"),
        encoder_path=str(tmp_path / "encoder.pt"),
        arms=["baseline", "frozen", "random_frozen"],
        folds=2,
        repeats=1,
        epochs=1,
        fractions=[1.0],
        n_bootstrap=0,
        group_by_session=False,
        device="cpu",
    )


def test_a_transfer_run_reads_the_encoder_and_the_labels_once(tmp_path, monkeypatch):
    """The steps transfer.ipynb runs, in its order: the encoder file, its training_results.json and the
    labels file are each read once."""
    from moola_lib.labels import provenance
    from moola_lib.labels import sets as labels
    from moola_lib.notebook import steps
    from moola_lib.transfer.protocol import run_transfer

    params = _labels_run(tmp_path)
    reads = {"torch.load": 0, "labels": 0, "labels sha256": 0, "training_results": 0}
    real_load, real_table, real_sha, real_json = (
        torch.load,
        labels.read_label_table,
        labels.file_sha256,
        provenance.read_json,
    )

    def counting(key, real):
        def wrapper(*args, **kwargs):
            reads[key] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(torch, "load", counting("torch.load", real_load))
    monkeypatch.setattr(labels, "read_label_table", counting("labels", real_table))
    monkeypatch.setattr(labels, "file_sha256", counting("labels sha256", real_sha))
    monkeypatch.setattr(provenance, "read_json", counting("training_results", real_json))
    encoder = steps.encoder_source_from_params(params)
    labelled = steps.labelled_from_params(params, encoder)
    encoder = steps.encoder_from_params(params, labelled, tmp_path / "run", encoder)
    results = run_transfer(labelled, encoder, transfer_config(params))
    steps.encoder_embeddings(encoder, labelled, seed=0)
    assert reads == {"torch.load": 1, "labels": 1, "labels sha256": 1, "training_results": 1}
    assert results["data"]["source"]["sha256"] == real_sha(tmp_path / "labels.csv")
    assert results["encoder"]["pretraining_overlap"]["period_known"]
    assert results["encoder"]["training_results"] == str(tmp_path / "training_results.json")
    reads.update(dict.fromkeys(reads, 0))
    run_transfer(labelled, tmp_path / "encoder.pt", transfer_config(params))  # a path still works: read once
    assert reads["torch.load"] == 1 and reads["training_results"] == 1


def test_a_loaded_encoder_must_fit_the_features(tmp_path):
    from moola_lib.labels.provenance import EncoderSource
    from moola_lib.transfer.protocol import run_transfer

    save_encoder(JadeEncoder(input_size=11, hidden_size=8, num_layers=1), tmp_path / "enc11.pt")
    with pytest.raises(ValueError, match="input_size=11"):
        run_transfer(tiny_set(), EncoderSource.load(tmp_path / "enc11.pt"), {"device": "cpu"})
    with pytest.raises(ConfigError, match="Did you mean 'random_frozen'"):
        TransferConfig(arms=["baseline", "frozen", "random-frozen"])
