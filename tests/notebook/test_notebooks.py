"""The notebooks: committed clean, strict literal parameters, executed by nbval and by the papermill CLI.

nbval runs in a subprocess (``pytest --nbval-lax notebooks/NAME.ipynb``) with ``MOOLA_RUNS_DIR`` set to
a temporary folder, so the test suite never writes into the user's runs/.
"""

import ast
import dataclasses
import importlib
import json
import os
import shlex
import subprocess
import sys

import nbformat
import pandas as pd
import papermill
import pytest
import yaml
from helpers import TINY

from moola_lib.bars.synthetic import synthetic_ohlcv
from moola_lib.classifier.model import ArmClassifier
from moola_lib.classifier.scan import scan_detections
from moola_lib.labels.sets import load_labels
from moola_lib.labels.testbed import EMBEDDED_SET
from moola_lib.notebook.params import ClassifyParams, LabelParams
from moola_lib.notebook.steps import label_command, labelling_session_from_params
from moola_lib.pretraining.job import pretrain
from moola_lib.util.config import apply_overrides, papermill_value
from moola_lib.util.io import read_table
from moola_lib.util.paths import ROOT


def project_notebooks() -> list:
    """The project's notebooks: those in notebooks/ that git does not ignore. Executed copies left beside
    them (``cd notebooks && papermill pretrain.ipynb out.ipynb``) are ignored by .gitignore and not tested;
    outside a git checkout, a notebook that carries papermill's metadata is such a copy."""
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "check-ignore", *map(str, paths)], capture_output=True, text=True, timeout=60
        )
    except OSError:
        out = None
    if out is not None and out.returncode in (0, 1):  # 1: none ignored; anything else: no git checkout
        ignored = set(out.stdout.splitlines())
        return [p for p in paths if str(p) not in ignored]
    return [p for p in paths if "papermill" not in nbformat.read(p, as_version=4).metadata]


NOTEBOOKS = project_notebooks()
NAMES = [p.stem for p in NOTEBOOKS]
TINY_PRETRAIN = {
    "synthetic_start": "2024-12-20",
    "synthetic_end": "2025-01-10",
    "warmup_epochs": 0,
    "batch_size": 64,
    "device": "cpu",
    "splits": {"train": ["2024-12-20", "2025-01-01"], "val": ["2025-01-01", "2025-01-11"]},
}


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def params_class(path):
    """The dataclass a notebook hands to start_run(name, globals(), Class), imported from its module."""
    source = "\n".join(
        line for c in code_cells(path) for line in c.source.splitlines() if not line.startswith("%")
    )  # IPython magics are not Python
    tree = ast.parse(source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "start_run"]
    assert len(calls) == 1, f"{path.name}: expected one start_run(...) call"
    cls_name = calls[0].args[2].id
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == cls_name for a in node.names):
            return getattr(importlib.import_module(node.module), cls_name)
    raise AssertionError(f"{path.name}: {cls_name} is not imported from a module")


def run(cmd, env=None, cwd=ROOT, timeout=900):
    return subprocess.run(
        cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def test_all_notebooks_are_present():
    assert {"classify", "compare", "eda", "label", "pretrain", "sweep", "transfer"} <= set(NAMES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {i} has outputs"
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_one_literal_parameters_cell_matching_the_params_class(path):
    cells = [c for c in code_cells(path) if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    for stmt in ast.parse(cells[0].source).body:
        assert isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name), ast.unparse(stmt)
        ast.literal_eval(stmt.value)  # literal values only
    names = list(papermill.inspect_notebook(str(path)))  # also: papermill can parse every line
    fields = [f.name for f in dataclasses.fields(params_class(path))]
    assert sorted(names) == sorted(fields)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_nbval_runs_the_notebook_with_its_defaults(path, tmp_path):
    if path.stem == "compare":  # it compares the runs under the runs root: two tiny ones to find
        for seed in (1, 2):
            pretrain({**TINY, "seed": seed, "hidden_size": 4 * seed}, tmp_path / f"pretrain-tiny-{seed}")
    out = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", str(path)],
        env={"MOOLA_RUNS_DIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    manifests = list(tmp_path.glob(f"{path.stem}-*/manifest.json"))
    assert len(manifests) == 1, list(tmp_path.iterdir())
    assert json.loads(manifests[0].read_text())["status"] == "finished"
    if path.stem == "compare":
        compared = pd.read_csv(manifests[0].parent / "comparison.csv", index_col="run")
        assert list(compared.index) == ["pretrain-tiny-1", "pretrain-tiny-2"]


@pytest.mark.slow
def test_papermill_cli_with_overrides_and_params_file(tmp_path):
    run_dir = tmp_path / "run"
    params = tmp_path / "tiny.yaml"
    params.write_text(yaml.safe_dump({**TINY_PRETRAIN, "run_dir": str(run_dir), "epochs": 5}))
    out_nb = tmp_path / "out.ipynb"
    out = run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(ROOT / "notebooks" / "pretrain.ipynb"),
            str(out_nb),
            "-f",
            str(params),
            "-p",
            "epochs",
            "2",
            "-p",
            "hidden_size",
            "8",
            "-p",
            "lr",
            "2e-3",
        ],
        cwd=tmp_path,
    )  # any working directory: relative paths are taken from the repository root
    assert out.returncode == 0, out.stderr[-4000:]

    resolved = yaml.safe_load((run_dir / "params.yaml").read_text())
    assert (resolved["epochs"], resolved["hidden_size"], resolved["lr"]) == (2, 8, 2e-3)  # -p wins over -f
    assert resolved["synthetic_end"] == "2025-01-10" and resolved["splits"] == TINY_PRETRAIN["splits"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["data"]["synthetic"]["end"] == "2025-01-10"
    results = json.loads((run_dir / "training_results.json").read_text())
    assert results["epochs_completed"] == 2 and results["best_val_loss"] > 0
    assert results["config"]["hidden_size"] == 8
    for name in (
        "checkpoint_best.pt",
        "checkpoint_last.pt",
        "figures/loss_curves.png",
        "figures/reconstructions.png",
        "reference_losses.csv",
    ):
        assert (run_dir / name).exists(), name
    assert not (run_dir / "report.html").exists()  # plain papermill: the notebook says how to render it
    executed = nbformat.read(out_nb, as_version=4)
    outputs = [o for c in executed.cells for o in c.get("outputs", [])]
    # headless: a text progress bar that reached the end, no widget that would stay "0/N" in the record
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert any(o.get("name") == "stderr" and "pretrain" in o["text"] and "2/2" in o["text"] for o in outputs)
    last_output = executed.cells[-1].outputs[0]["text"]
    assert "python -m moola_lib.run_notebook --report EXECUTED.ipynb --run-dir" in last_output

    out = run([sys.executable, "-m", "moola_lib.run_notebook", "--report", str(out_nb), "--run-dir", str(run_dir)])
    assert out.returncode == 0, out.stderr
    html = (run_dir / "report.html").read_text()
    assert "Pretraining the Jade encoder" in html and "Best val loss" in html
    assert "start_run(" not in html and "load_pretrain_data(" not in html  # code cells hidden
    assert (run_dir / "out.ipynb").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "batchsize", "1024"], "unknown option 'batchsize'. Did you mean 'batch_size'? Valid names: "),
        (["-p", "batch_size", "abc"], "batch_size: expected int, got str ('abc')"),
    ],
    ids=["unknown-name", "wrong-type"],
)
def test_papermill_cli_rejects_bad_parameters(tmp_path, args, message):
    out_nb = tmp_path / "out.ipynb"
    out = run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(ROOT / "notebooks" / "pretrain.ipynb"),
            str(out_nb),
            "-p",
            "run_dir",
            str(tmp_path / "run"),
            *args,
        ]
    )
    assert out.returncode != 0
    errors = [
        o for c in nbformat.read(out_nb, as_version=4).cells for o in c.get("outputs", []) if o.output_type == "error"
    ]
    assert errors and errors[0]["ename"] == "ConfigError"
    assert message in errors[0]["evalue"]
    assert not (tmp_path / "run" / "checkpoint_last.pt").exists()


@pytest.mark.slow
def test_label_notebook_headless_writes_suggestions_and_a_gallery(tmp_path):
    run_dir, labels = tmp_path / "run", tmp_path / "labels.csv"
    pd.DataFrame({"start": ["2025-05-02T10:00:00+00:00"], "label": ["retracement"]}).to_csv(labels, index=False)
    out = run(
        [
            sys.executable,
            "-m",
            "moola_lib.run_notebook",
            "label",
            "--run-dir",
            str(run_dir),
            "-p",
            "labels_path",
            str(labels),
            "-p",
            "strategy",
            "random",
            "-p",
            "n_suggestions",
            "6",
        ]
    )
    assert out.returncode == 0, out.stderr[-4000:]
    table = pd.read_csv(run_dir / "suggestions.csv")
    assert len(table) == 6 and (table["strategy"] == "random").all()
    labelled = pd.Timestamp("2025-05-02T10:00:00Z")
    starts = pd.to_datetime(table["start"], utc=True)
    assert (abs(starts - labelled) >= pd.Timedelta(minutes=105)).all()  # no overlap with the labelled one
    table["label"] = ["consolidation", "retracement"] * 3  # a user fills in the labels ...
    table.to_csv(tmp_path / "filled.csv", index=False)
    bars = synthetic_ohlcv(EMBEDDED_SET.history_start, EMBEDDED_SET.end, seed=EMBEDDED_SET.market_seed)
    assert len(load_labels(tmp_path / "filled.csv", bars)) == 6  # ... and the file loads for transfer
    assert (run_dir / "figures" / "suggestions.png").stat().st_size > 10_000
    assert pd.read_csv(labels).shape == (1, 2)  # headless: the labels file is only read
    html = (run_dir / "report.html").read_text()
    assert "Headless run: no labelling widget" in html and "VBox(children=" not in html


def test_classify_parameters_cell_holds_the_params_defaults():
    """classify.ipynb's cell is where a user reads the defaults: they are ClassifyParams' own (the scan period
    included: the two weeks after the embedded labelled set)."""
    cells = code_cells(ROOT / "notebooks" / "classify.ipynb")
    (cell,) = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    values = {s.targets[0].id: ast.literal_eval(s.value) for s in ast.parse(cell.source).body}
    assert values == dataclasses.asdict(ClassifyParams())
    assert values["scan_start"] > EMBEDDED_SET.end


def test_classify_label_command_names_the_scanned_file_with_its_read_options():
    params = ClassifyParams(data_path="/data/nq.parquet", scan_data_path="data/new bars.csv", data_timezone="UTC")
    assert label_command(params, "/runs/clf/scores.parquet") == (
        f"python -m moola_lib.run_notebook label -p data_path '{ROOT / 'data' / 'new bars.csv'}' "
        "-p data_timezone UTC -p candidates_path /runs/clf/scores.parquet"
    )
    embedded = label_command(ClassifyParams(scan_end="2025-11-30"), "/runs/clf/detections.parquet")
    assert embedded.endswith("label -p synthetic_end 2025-11-30 -p candidates_path /runs/clf/detections.parquet")


@pytest.mark.slow
def test_classify_notebook_headless_writes_the_model_the_scan_and_a_report(tmp_path):
    run_dir = tmp_path / "run"
    out = run([sys.executable, "-m", "moola_lib.run_notebook", "classify", "--run-dir", str(run_dir)])
    assert out.returncode == 0, out.stderr[-4000:]
    model = ArmClassifier.load(run_dir / "model")  # one folder: what `python -m moola_lib.classify scan` takes
    assert model.meta["arm"] == "simple_boosting" and model.meta["labels"]["n_windows"] == EMBEDDED_SET.n
    scores, found = read_table(run_dir / "scores.parquet"), read_table(run_dir / "detections.parquet")
    first, last = pd.to_datetime(scores["start"], utc=True).agg(["min", "max"])
    assert f"{first:%Y-%m-%d}" >= ClassifyParams.scan_start and f"{last:%Y-%m-%d}" <= ClassifyParams.scan_end
    assert len(scores) > 5000 and 0 < len(found) < len(scores) and (found["p"] >= ClassifyParams.threshold).all()
    # the saved model scores the scanned bars as the notebook did (the embedded market up to scan_end)
    bars = synthetic_ohlcv(EMBEDDED_SET.history_start, ClassifyParams.scan_end, seed=EMBEDDED_SET.market_seed)
    again, again_found = scan_detections(model, bars, ClassifyParams.scan_start, ClassifyParams.scan_end, 0.8)
    pd.testing.assert_frame_equal(again, scores)
    pd.testing.assert_frame_equal(again_found, found)
    for figure in ("reliability", "top_detections", "detections_per_day", "scores"):
        assert (run_dir / "figures" / f"{figure}.png").stat().st_size > 10_000, figure
    html = (run_dir / "report.html").read_text()
    assert "Calibration" in html and "calibration: temperature" in html and "start_run(" not in html
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["artifacts"]["detections"] == "detections.parquet"
    # the printed label.ipynb command finds the scanned windows in its bars
    executed = nbformat.read(run_dir / "classify.ipynb", as_version=4)
    printed = [o.get("text", "") for c in executed.cells for o in c.get("outputs", [])]
    command = shlex.split(next(t for t in printed if "run_notebook label" in t).splitlines()[-1])
    assert command[:4] == ["python", "-m", "moola_lib.run_notebook", "label"]
    pairs = {command[i + 1]: papermill_value(command[i + 2]) for i in range(4, len(command), 3)}
    assert pairs["candidates_path"] == str(run_dir / "detections.parquet")
    params = apply_overrides(LabelParams(), {**pairs, "labels_path": str(tmp_path / "labels.csv")})
    assert len(labelling_session_from_params(params).candidates) > len(found) // 2
