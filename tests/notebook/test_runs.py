"""Run directories, strict notebook parameters, params files and HTML reports (no kernel needed)."""

import dataclasses
import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from moola_lib.notebook.params import EdaParams, PretrainParams, SweepParams, pretrain_config
from moola_lib.notebook.report import render_report
from moola_lib.notebook.runs import injected_names, notebook_params, start_run, update_manifest
from moola_lib.notebook.sweep import sweep_base, sweep_settings
from moola_lib.pretraining.config import PretrainConfig
from moola_lib.pretraining.job import pretrain
from moola_lib.run_notebook import main
from moola_lib.util.config import ConfigError, papermill_value, read_parameters
from moola_lib.util.paths import ROOT

PARAMS_DIR = ROOT / "params"


def injected(source: str, **values) -> dict:
    """A notebook namespace as papermill leaves it: the injected cell in In, its values in globals."""
    return {"In": ["", "epochs = 3", "# Parameters\n" + source, "run = start_run(...)"], **values}


def test_injected_names_reads_the_latest_papermill_cell():
    history = ["# Parameters\nepochs = 1\n", "x = 1", "# Parameters\nbatch_size = 2\nlr = 0.1\n", "y = 2"]
    assert injected_names(history) == ["batch_size", "lr"]
    assert injected_names(["epochs = 3", "# a comment\nx = 1"]) == []
    assert injected_names([]) == []


def test_notebook_params_uses_namespace_values_and_defaults():
    p = notebook_params(injected("batch_size = 64\n", batch_size=64, epochs=2, unrelated=object()), PretrainParams)
    assert (p.batch_size, p.epochs) == (64, 2)
    assert p.hidden_size == PretrainConfig().hidden_size  # not in the namespace: the dataclass default


def test_unknown_injected_parameter_is_rejected_with_valid_names():
    with pytest.raises(ConfigError) as e:
        notebook_params(
            injected("batchsize = 1024\n", batchsize=1024, batch_size=256),
            PretrainParams,
            what="pretrain.ipynb parameters",
        )
    msg = str(e.value)
    assert "'batchsize'" in msg and "Did you mean 'batch_size'" in msg
    assert "Valid names:" in msg and "mask_ratio" in msg and "run_dir" in msg


def test_wrong_parameter_type_is_rejected():
    with pytest.raises(ConfigError, match=r"batch_size: expected int, got str \('abc'\)"):
        notebook_params(injected("batch_size = 'abc'\n", batch_size="abc"), PretrainParams)
    with pytest.raises(ConfigError, match="mask_mode"):
        notebook_params({"mask_mode": "spans"}, PretrainParams)


def test_pretrain_params_mirror_the_config():
    params = {f.name for f in dataclasses.fields(PretrainParams)}
    config = {f.name for f in dataclasses.fields(PretrainConfig)}
    assert config - params == {"input_size", "progress"}
    assert params - config == {"run_dir", "overwrite", "labels_path"}  # labels_path: the overlap warning
    p = dataclasses.replace(PretrainParams(), epochs=2, batch_size=32, mask_mode="span", run_dir="x")
    cfg = pretrain_config(p)
    assert isinstance(cfg, PretrainConfig)
    assert (cfg.epochs, cfg.batch_size, cfg.mask_mode, cfg.input_size) == (2, 32, "span", 10)
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        pretrain_config(dataclasses.replace(p, batch_size=0))


def test_start_run_writes_params_and_manifest(tmp_path):
    ns = {"run_dir": str(tmp_path / "r"), "seed": 3, "synthetic_end": "2025-01-31", "n_windows": 2}
    run = start_run("eda", ns, EdaParams)
    assert run.dir == tmp_path / "r"
    params = yaml.safe_load((run.dir / "params.yaml").read_text())
    assert params == {**dataclasses.asdict(EdaParams()), **ns}
    manifest = json.loads((run.dir / "manifest.json").read_text())
    assert manifest["status"] == "running" and manifest["notebook"] == "eda"
    assert set(manifest["git"]) == {"commit", "dirty"}
    assert manifest["device"]["resolved"] in ("cpu", "cuda:0", "cuda")
    assert manifest["data"] == {"synthetic": {"start": "2024-10-01", "end": "2025-01-31", "seed": 0}}
    assert manifest["packages"]["torch"] and manifest["python"]

    (run.dir / "table.csv").write_text("a\n")
    run.finish(table=run.dir / "table.csv")
    manifest = json.loads((run.dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["finished"] >= manifest["started"]
    assert manifest["artifacts"] == {"table": "table.csv"}


def test_data_file_is_hashed_in_the_manifest(tmp_path):
    data = tmp_path / "bars.csv"
    data.write_text("timestamp,open,high,low,close\n")
    run = start_run("eda", {"run_dir": str(tmp_path / "r"), "data_path": str(data)}, EdaParams)
    info = json.loads((run.dir / "manifest.json").read_text())["data"]
    assert info["path"] == str(data) and info["bytes"] == data.stat().st_size and len(info["sha256"]) == 64


def test_default_run_dir_is_new_and_timestamped(tmp_path, monkeypatch):
    monkeypatch.setenv("MOOLA_RUNS_DIR", str(tmp_path))
    a = start_run("eda", {}, EdaParams)
    b = start_run("eda", {}, EdaParams)
    assert a.dir.parent == tmp_path and a.dir.name.startswith("eda-") and a.dir != b.dir


def test_existing_run_dir_is_never_overwritten_unless_asked(tmp_path):
    ns = {"run_dir": str(tmp_path / "r")}
    run = start_run("eda", ns, EdaParams)
    (run.dir / "old_artifact.pt").write_text("weights")
    (run.dir / "eda.ipynb").write_text("{}")  # papermill may be writing it right now
    run.finish()  # lists the files the run wrote: what overwrite may delete
    before = (run.dir / "manifest.json").read_text()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        start_run("eda", ns, EdaParams)
    assert (run.dir / "manifest.json").read_text() == before
    assert (run.dir / "old_artifact.pt").exists()

    again = start_run("eda", {**ns, "overwrite": True}, EdaParams)
    assert not (again.dir / "old_artifact.pt").exists()
    assert (again.dir / "eda.ipynb").exists() and (again.dir / "manifest.json").exists()


TINY = {
    "synthetic_start": "2024-12-01",
    "synthetic_end": "2024-12-20",
    "stride": 13,
    "splits": {"train": ["2024-12-01", "2024-12-12"], "val": ["2024-12-12", "2024-12-20"]},
    "hidden_size": 8,
    "num_layers": 1,
    "epochs": 1,
    "batch_size": 16,
    "warmup_epochs": 1,
    "device": "cpu",
}


@pytest.fixture
def finished_pretrain(tmp_path):
    """A finished pretrain.ipynb run with its executed notebook and report, as the runner leaves it."""
    ns = {"run_dir": str(tmp_path / "r"), **TINY}
    run = start_run("pretrain", ns, PretrainParams)
    pretrain(dataclasses.replace(pretrain_config(run.params), progress=False), run.dir)
    run.finish()
    (run.dir / "pretrain.ipynb").write_text('{"executed": "the finished run"}')
    (run.dir / "report.html").write_text("<p>the finished run</p>")
    return ns, run.dir


def listing(directory: Path) -> dict:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_resume_keeps_the_run_dir(finished_pretrain):
    ns, run_dir = finished_pretrain
    update_manifest(run_dir, status="running", finished=None)  # as a killed run leaves it: unfinished
    first = json.loads((run_dir / "manifest.json").read_text())
    before = (run_dir / "checkpoint_last.pt").read_bytes()
    with pytest.raises(FileExistsError, match="resume=True"):
        start_run("pretrain", ns, PretrainParams)
    second = start_run("pretrain", {**ns, "resume": True}, PretrainParams)
    assert (second.dir / "checkpoint_last.pt").read_bytes() == before
    assert second.manifest["resumed_from"]["started"] == first["started"]
    second.release()


@pytest.mark.parametrize("change", [{"hidden_size": 16}, {"seed": 5}])
def test_a_refused_resume_changes_nothing_of_the_finished_run(finished_pretrain, change):
    ns, run_dir = finished_pretrain
    before = listing(run_dir)
    with pytest.raises(ConfigError, match="cannot resume .*the config differs"):
        start_run("pretrain", {**ns, "resume": True, **change}, PretrainParams)
    assert listing(run_dir) == before  # params.yaml, manifest.json, the notebook and report as they were


def test_a_run_directory_holds_one_kind_of_run(finished_pretrain, tmp_path):
    ns, run_dir = finished_pretrain
    before = listing(run_dir)
    for notebook, params in (("eda", EdaParams), ("sweep", SweepParams)):
        with pytest.raises(FileExistsError, match=f"holds a pretrain run, not a {notebook} run"):
            start_run(notebook, {"run_dir": ns["run_dir"]}, params)
    assert listing(run_dir) == before
    assert main(["transfer", "--run-dir", ns["run_dir"], "-p", "n_labelled", "8"]) == 2
    assert listing(run_dir) == before


@pytest.mark.slow
def test_run_notebook_refused_resume_leaves_the_finished_run_as_it_was(finished_pretrain, capsys):
    """The command the issue reproduced: the kernel's start_run refuses, the runner keeps its hands off."""
    ns, run_dir = finished_pretrain
    before = listing(run_dir)
    assert (
        main(
            [
                "pretrain",
                "--no-progress",
                "--run-dir",
                ns["run_dir"],
                "-y",
                yaml.safe_dump(TINY),
                "-p",
                "resume",
                "True",
                "-p",
                "hidden_size",
                "16",
            ]
        )
        == 2
    )
    assert "the config differs" in capsys.readouterr().err
    assert listing(run_dir) == before


@pytest.mark.slow
def test_run_notebook_prints_one_line_per_epoch_of_the_kernels_job(tmp_path, capsys):
    """The kernel's output never reaches the terminal: the runner follows the job's progress.jsonl."""
    assert main(["pretrain", "--run-dir", str(tmp_path / "r"), "-y", yaml.safe_dump({**TINY, "epochs": 2})]) == 0
    err = capsys.readouterr().err
    lines = re.split(r"\s*[\r\n]", err)  # papermill's cell bar redraws itself with carriage returns between them
    assert [line[:9] for line in lines if re.fullmatch(r"epoch \d/2  train .* (left|done)", line)] == [
        "epoch 1/2",
        "epoch 2/2",
    ], err[-3000:]
    assert main(["pretrain", "--no-progress", "--run-dir", str(tmp_path / "q"), "-y", yaml.safe_dump(TINY)]) == 0
    assert "epoch 1/1" not in capsys.readouterr().err


def test_relative_paths_are_taken_from_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = start_run("eda", {"run_dir": str(tmp_path / "r"), "data_path": "data/x.parquet"}, EdaParams)
    assert run.params.data_path == str(ROOT / "data" / "x.parquet")


@pytest.mark.parametrize("name", ["nq_5yr.yaml", "synthetic_5yr.yaml"])
def test_pretrain_params_files_are_valid(name):
    values = yaml.safe_load((PARAMS_DIR / name).read_text())
    p = notebook_params(injected("".join(f"{k} = None\n" for k in values), **values), PretrainParams)
    cfg = pretrain_config(p)
    assert (cfg.epochs, cfg.batch_size, cfg.hidden_size, cfg.num_layers, cfg.lr) == (50, 1024, 128, 2, 1e-3)
    assert cfg.splits == PretrainConfig().splits and cfg.mixed_precision
    assert (cfg.data_path is None) == (name == "synthetic_5yr.yaml")


def test_sweep_params_file_is_valid():
    values = yaml.safe_load((PARAMS_DIR / "sweep_batch_size.yaml").read_text())
    p = notebook_params(injected("".join(f"{k} = None\n" for k in values), **values), SweepParams)
    assert sweep_settings(p.grid) == [{"batch_size": b} for b in (512, 768, 1024)]
    base = sweep_base(p)
    cfg = pretrain_config(dataclasses.replace(PretrainParams(), **base, batch_size=512))
    assert cfg.epochs == 50 and cfg.data_path.endswith("nq_ohlcv_1min_2020-09_2025-09_fixed.parquet")


def test_papermill_style_arguments():
    assert [papermill_value(v) for v in ("1024", "1e-3", "True", "None", "abc", "2025-01-01")] == [
        1024,
        1e-3,
        True,
        None,
        "abc",
        "2025-01-01",
    ]


def test_parameter_sources_are_merged_in_papermill_order(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("epochs: 5\nbatch_size: 512\nsplits: {train: ['2020-01-01', '2021-01-01']}\n")
    got = read_parameters([f], ["batch_size: 768\nlr: 0.01"], [("batch_size", "1024")])
    assert got == {"epochs": 5, "batch_size": 1024, "lr": 0.01, "splits": {"train": ["2020-01-01", "2021-01-01"]}}


def test_run_notebook_rejects_unknown_names_before_starting_a_kernel(tmp_path, capsys):
    rc = main(["pretrain", "-p", "batchsize", "1024", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown parameter 'batchsize'" in err and "Did you mean 'batch_size'" in err
    assert not (tmp_path / "r").exists()


def test_run_notebook_refuses_an_existing_run(tmp_path, capsys):
    run = start_run("pretrain", {"run_dir": str(tmp_path / "r")}, PretrainParams)
    before = sorted(p.name for p in run.dir.iterdir())
    assert main(["pretrain", "--run-dir", str(run.dir)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert sorted(p.name for p in run.dir.iterdir()) == before


def test_report_hides_code_and_parameter_cells(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("secret_default = 1")
    params.metadata["tags"] = ["parameters"]
    cell = nbformat.v4.new_code_cell("print(compute_something_visible())")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="THE RESULT 42\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title here"), params, cell]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    html = render_report(path, tmp_path / "report.html").read_text()
    assert "Title here" in html and "THE RESULT 42" in html
    assert "compute_something_visible" not in html and "secret_default" not in html


def test_report_only_command_copies_the_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("hello report")]
    src = tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    assert main(["--report", str(src), "--run-dir", str(tmp_path / "run")]) == 0
    assert "hello report" in (tmp_path / "run" / "report.html").read_text()
    assert (tmp_path / "run" / "out.ipynb").read_text() == src.read_text()
    assert main(["--report", str(src)]) == 0 and Path(tmp_path / "out.html").exists()
