"""compare.ipynb's library: finding and reading runs, the config fields that differ, the results table, the
overlaid curves."""

import json

import pytest
from helpers import TINY

from moola_lib.notebook.compare import (
    RunsError,
    best_run_line,
    config_differences,
    find_runs,
    load_runs,
    results_table,
)
from moola_lib.pretraining.job import pretrain
from moola_lib.pretraining.plots import run_curves
from moola_lib.util.config import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, one_torch_thread):
    """Two tiny runs (hidden size and seed differ), one of them inside a sweep's folder."""
    root = tmp_path_factory.mktemp("runs")
    pretrain({**TINY, "epochs": 2}, root / "pretrain-a")
    pretrain({**TINY, "epochs": 2, "hidden_size": 4, "seed": 8}, root / "sweep-x" / "hidden_size-4")
    (root / "eda-b").mkdir()  # not a pretraining run
    return root


def test_every_pretraining_run_under_the_root_is_found_and_named_by_its_path(runs_root, monkeypatch):
    assert find_runs(runs_root) == [runs_root / "pretrain-a", runs_root / "sweep-x" / "hidden_size-4"]
    monkeypatch.setenv("MOOLA_RUNS_DIR", str(runs_root))
    assert list(load_runs([])) == ["pretrain-a", "sweep-x/hidden_size-4"]
    assert list(load_runs([str(runs_root / "sweep-x" / "hidden_size-4")])) == ["sweep-x/hidden_size-4"]


def test_no_run_or_a_directory_without_results_is_one_line(runs_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MOOLA_RUNS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=f"no pretraining runs under {tmp_path}.*give run_dirs"):
        load_runs([])
    with pytest.raises(RunsError, match="eda-b: no training_results.json .*not a finished pretraining run"):
        load_runs([str(runs_root / "eda-b")])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "training_results.json").write_text("{")
    with pytest.raises(RunsError, match="not readable JSON"):
        load_runs([str(tmp_path / "broken")])


def test_only_the_fields_that_differ_are_shown(runs_root, monkeypatch):
    monkeypatch.setenv("MOOLA_RUNS_DIR", str(runs_root))
    runs = load_runs([])
    table = config_differences(runs)
    assert list(table.index) == ["hidden_size", "seed"] and list(table.columns) == list(runs)
    assert table.loc["hidden_size"].tolist() == [8, 4]
    first = dict(runs)
    second = json.loads(json.dumps(first["pretrain-a"]))
    second["config"]["splits"]["val"] = ["2024-12-29", "2025-01-11"]
    second["environment"]["device_name"] = "NVIDIA H100"
    table = config_differences({"a": first["pretrain-a"], "b": second})
    assert list(table.index) == ["splits.val", "environment.device_name"]
    assert table.loc["splits.val", "b"] == '["2024-12-29", "2025-01-11"]'
    assert config_differences({"a": first["pretrain-a"], "b": first["pretrain-a"]}).empty


def test_the_results_table_sets_each_run_against_its_references_and_its_time(runs_root, monkeypatch):
    monkeypatch.setenv("MOOLA_RUNS_DIR", str(runs_root))
    runs = load_runs([])
    table = results_table(runs)
    assert list(table.index) == list(runs)
    row, results = table.loc["pretrain-a"], runs["pretrain-a"]
    val = results["reference_losses"]["val"]
    assert row["best_val_loss"] == results["best_val_loss"] and row["epochs"] == 2
    assert row["val: linear interpolation"] == val["interpolation"]["loss"]
    assert row["best / better reference"] == pytest.approx(results["best_val_loss"] / val["better_reference"]["loss"])
    assert row["s_per_epoch"] > 0 and row["total_s"] == results["total_seconds"]
    best = table["best_val_loss"].idxmin()
    assert best_run_line(table).startswith(f"Lowest best val loss: {best} (")
    fig = run_curves(runs)
    assert [line.get_label() for line in fig.axes[1].lines] == list(runs)
