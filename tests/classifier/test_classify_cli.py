"""``python -m moola_lib.classify``: fit reads the labels as transfer.ipynb does, saves the model and says
what it did; bad inputs are one ``error: ...`` line and exit status 2, with nothing written; scan hands the
saved model to ``scan.scan_to_files``."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.classifier.cli import main
from moola_lib.classifier.model import ArmClassifier
from moola_lib.features.options import resolve_feature_options
from moola_lib.pretraining.checkpoints import save_encoder
from moola_lib.pretraining.model import JadeEncoder
from moola_lib.util import cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two weeks of bars, 40 timestamped labelled windows on them and a tiny encoder (default options)."""
    folder = tmp_path_factory.mktemp("classify")
    bars = synthetic_ohlcv("2025-06-02", "2025-06-13", seed=3)
    bars.to_parquet(folder / "bars.parquet")
    starts = np.arange(40) * 300 + 200
    labels = pd.DataFrame({"start": bars.index[starts], "label": ["consolidation", "retracement"] * 20})
    labels.to_csv(folder / "labels.csv", index=False)
    labels.assign(label="consolidation").to_csv(folder / "one_class.csv", index=False)
    labels.iloc[:0].to_csv(folder / "empty.csv", index=False)
    torch.manual_seed(0)
    encoder = JadeEncoder(hidden_size=8, num_layers=1)
    encoder.feature_options = resolve_feature_options()
    save_encoder(encoder, folder / "encoder.pt")
    return folder


def fit_args(files, run_dir, *extra) -> list[str]:
    return ["fit", str(run_dir), "--labels", str(files / "labels.csv"), "--data", str(files / "bars.parquet"), *extra]


def test_fit_saves_the_model_and_says_what_it_did(files, tmp_path, capsys):
    assert cli.run(main, fit_args(files, tmp_path / "clf", "--arm", "simple_logistic")) == 0
    out = capsys.readouterr().out
    assert "arm: simple_logistic" in out and "calibration: temperature" in out and "ECE" in out
    assert f"saved: {tmp_path / 'clf' / 'model.json'}" in out and "unknown (no transfer run" in out
    model = ArmClassifier.load(tmp_path / "clf")
    assert model.meta["labels"]["n_windows"] == 40 and len(model.meta["labels"]["sha256"]) == 64
    assert model.feature_options == resolve_feature_options() and model.meta["class_definitions"] is None
    assert sorted(p.name for p in (tmp_path / "clf").iterdir()) == ["model.json", "model.pt"]


def test_auto_fits_the_transfer_runs_best_arm_and_says_how_sure(files, tmp_path, capsys):
    arms = {"simple_boosting": 0.7, "simple_logistic": 0.6, "baseline": 0.5}
    results = {
        "format": "moola.transfer_results.v2",
        "config": {"epochs": 2, "group_by_session": False, "device": "cpu"},
        "encoder": {"path": str(files / "encoder.pt")},
        "arms": {
            a: {
                "summary": {"balanced_accuracy": {"mean": m, "ci_low": m - 0.05, "ci_high": m + 0.05}},
                "folds": [
                    {"repeat": r, "fold": k, "n_train": 20, "n_test": 20, "balanced_accuracy": m + 0.02 * k}
                    for r in (0, 1)
                    for k in (0, 1)
                ],
            }
            for a, m in arms.items()
        },
        "protocol": {"primary_metric": "balanced_accuracy"},
    }
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "transfer_results.json").write_text(json.dumps(results))
    assert cli.run(main, fit_args(files, tmp_path / "clf", "--transfer-run", str(tmp_path / "run"))) == 0
    out = capsys.readouterr().out
    assert "arm: simple_boosting" in out and "P(best): simple_boosting 1.00" in out
    assert "cross-validated balanced accuracy: 0.700 [0.650, 0.750]" in out
    assert ArmClassifier.load(tmp_path / "clf").meta["recipe"]["config"]["epochs"] == 2  # the run's recipe


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--arm", "frozn"], "error: unknown arm 'frozn': choose 'auto' or an arm. Did you mean 'frozen'?"),
        ([], "error: arm 'auto' takes the best arm of a transfer run"),
        (["--arm", "frozen"], "error: arm 'frozen' reads an encoder"),
        (["--arm", "simple_logistic", "--labels", "one_class.csv"], "need at least two classes"),
        (["--arm", "simple_logistic", "--labels", "empty.csv"], "the labels table is empty"),
        (["--arm", "baseline", "--transfer-run", "nowhere"], "no transfer_results.json there"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(files, tmp_path, capsys, extra, message):
    extra = [str(files / e) if e.endswith(".csv") else e for e in extra]
    if "--labels" in extra:
        args = ["fit", str(tmp_path / "clf"), "--data", str(files / "bars.parquet"), *extra]
    else:
        args = fit_args(files, tmp_path / "clf", *extra)
    assert cli.run(main, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "clf").exists()  # a refused fit leaves no run directory behind


def test_a_run_directory_that_holds_anything_is_refused_before_any_work(files, tmp_path, capsys):
    (tmp_path / "clf").mkdir()
    (tmp_path / "clf" / "notes.txt").write_text("mine")
    assert cli.run(main, fit_args(files, tmp_path / "clf", "--arm", "simple_logistic")) == 2
    assert "already holds notes.txt; nothing was overwritten" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "clf").iterdir()) == ["notes.txt"]


def test_fit_then_scan_new_bars_from_the_command_line(files, tmp_path, capsys):
    """fit, then scan a later file written the way vendors write it (naive UTC times, capitalised columns):
    refused without --data-timezone, scored with it; scores and detections beside each other."""
    assert cli.run(main, fit_args(files, tmp_path / "clf", "--arm", "simple_logistic")) == 0
    later = synthetic_ohlcv("2025-06-16", "2025-06-18", seed=3)
    later.index = later.index.tz_localize(None)
    later.rename(columns=str.capitalize).rename_axis("Timestamp").to_csv(tmp_path / "new.csv")
    args = ["scan", str(tmp_path / "clf"), "--data", str(tmp_path / "new.csv"), "--out", str(tmp_path / "hits.csv")]
    capsys.readouterr()
    assert cli.run(main, args) == 2
    assert "data_timezone" in capsys.readouterr().err and not (tmp_path / "hits.csv").exists()
    assert cli.run(main, [*args, "--data-timezone", "UTC", "--threshold", "0.8", "--start", "2025-06-17"]) == 0
    out = capsys.readouterr().out
    scores = pd.read_csv(tmp_path / "hits.csv")
    assert f"scanned {len(scores):,} windows" in out and "hits.detections.csv" in out
    assert list(scores.columns) == ["start", "end", "predicted", "p_consolidation", "p_retracement"]
    assert pd.to_datetime(scores["start"]).min() >= pd.Timestamp("2025-06-17", tz="UTC")
    assert (tmp_path / "hits.detections.csv").exists()
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--threshold", "1.5"])
    assert exit_.value.code == 2


def test_the_entry_module_exits_2_with_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "moola_lib.classify", "fit", str(tmp_path / "clf")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: arm 'auto' takes the best arm of a transfer run: give the run (--transfer-run DIR, or "
        "transfer_run=...) or name an arm (baseline, frozen, finetune, lpft, random_frozen, simple_logistic, "
        "simple_boosting, rocket_minirocket, rocket_multirocket)"
    ]
