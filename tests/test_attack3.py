"""Issue 30, the third attack: nothing deleted that moola did not write. ``overwrite`` on a folder that holds
no run, ``--report`` into another run's directory, shared labels files (symlinks, modes, several labellers, a
100 MB file), reversed exclude periods, parquet times, odd names and file names, a text file as an encoder,
out-of-range seeds and sizes, ``..`` in a run directory, a resumed finished run, a curves run without a
non-neural arm. (The command lines' expected errors: tests/test_cli_errors.py.)"""

import json
import os
import stat
import subprocess
import sys
import textwrap

import nbformat
import pandas as pd
import pytest

from moola_lib.labelling import store as store_module
from moola_lib.labelling.store import LabelStore
from moola_lib.labels.sets import read_label_table
from moola_lib.notebook import execute
from moola_lib.notebook.params import EdaParams, PretrainParams
from moola_lib.notebook.runs import start_run
from moola_lib.pretraining.checkpoints import load_encoder
from moola_lib.pretraining.config import PretrainConfig
from moola_lib.util.config import ConfigError, read_parameters
from moola_lib.util.io import CheckpointError, atomic_write_bytes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

T0 = pd.Timestamp("2025-05-01T14:30:00Z")


def listing(directory) -> dict:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _add(store, k: int) -> dict:
    start = T0 + pd.Timedelta(hours=k)
    return store.add(
        start=start, end=start + pd.Timedelta(minutes=104), label="retracement", expansion_start=1, expansion_end=2
    )


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# ----------------------------------------------------------------- 1. overwrite deletes only what a run wrote


def test_overwrite_refuses_a_folder_that_holds_no_run_and_deletes_nothing(tmp_path, capsys):
    data = tmp_path / "mydata"
    (data / ".git").mkdir(parents=True)
    (data / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (data / "prices.csv").write_text("timestamp,open\n")
    before = listing(data)
    with pytest.raises(FileExistsError, match=r"holds \.git/HEAD and 1 more file.*nothing was deleted"):
        start_run("eda", {"run_dir": str(data), "overwrite": True}, EdaParams)
    assert listing(data) == before
    capsys.readouterr()
    assert execute.main(["eda", "--run-dir", str(data), "--overwrite"]) == 2  # refused before any kernel
    assert "which no moola run there recorded writing" in _one_error_line(capsys)
    assert listing(data) == before


def test_overwrite_deletes_exactly_the_files_the_run_listed(tmp_path):
    run_dir = tmp_path / "run"
    run = start_run("eda", {"run_dir": str(run_dir)}, EdaParams)
    run.save_table(pd.DataFrame({"a": [1]}), "table")
    atomic_write_bytes(run_dir / "figures" / "f.png", b"png")
    run.finish()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["files"] == ["figures/f.png", "manifest.json", "params.yaml", "table.csv"]

    (run_dir / "figures" / "notes.txt").write_text("the user's, written after the run")
    before = listing(run_dir)
    with pytest.raises(FileExistsError, match=r"holds figures/notes\.txt, which no moola run"):
        start_run("eda", {"run_dir": str(run_dir), "overwrite": True}, EdaParams)
    assert listing(run_dir) == before

    (run_dir / "figures" / "notes.txt").unlink()
    again = start_run("eda", {"run_dir": str(run_dir), "overwrite": True}, EdaParams)
    assert sorted(listing(run_dir)) == [".moola-lock", "manifest.json", "params.yaml"]  # no table.csv, figures/
    assert not (run_dir / "figures").exists() and again.manifest["files"] == ["manifest.json", "params.yaml"]
    again.release()


# ----------------------------------------------------------------- 2. --report checks first, under the lock


@pytest.fixture
def finished_eda(tmp_path, capsys):
    """A finished eda run, its executed notebook (holding what start_run printed) and report.html."""
    run_dir = tmp_path / "run"
    run = start_run("eda", {"run_dir": str(run_dir)}, EdaParams)
    printed = capsys.readouterr().out
    run.finish()
    capsys.readouterr()
    own = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("start_run(...)")])
    own.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nbformat.write(own, tmp_path / "own.ipynb")
    (run_dir / "eda.ipynb").write_text('{"the": "record"}')
    (run_dir / "report.html").write_text("<p>the record</p>")
    return run_dir, tmp_path / "own.ipynb"


def test_report_never_replaces_another_runs_record(finished_eda, tmp_path, capsys):
    run_dir, own = finished_eda
    other = tmp_path / "other" / "eda.ipynb"
    other.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("another run")]), other)
    (tmp_path / "other" / "manifest.json").write_text('{"notebook": "eda"}')
    before = listing(run_dir)
    assert execute.main(["--report", str(other), "--run-dir", str(run_dir)]) == 2
    assert "is not the executed notebook of the eda run" in _one_error_line(capsys)
    assert execute.main(["--report", str(tmp_path / "other" / "manifest.json"), "--run-dir", str(run_dir)]) == 2
    assert "not a notebook" in _one_error_line(capsys)
    assert listing(run_dir) == before  # the manifest, the notebook and the report as they were

    assert execute.main(["--report", str(own), "--run-dir", str(run_dir)]) == 0  # the run's own record
    assert (run_dir / "own.ipynb").exists() and "<p>the record</p>" != (run_dir / "report.html").read_text()
    assert {"own.ipynb", "report.html"} <= set(json.loads((run_dir / "manifest.json").read_text())["files"])


def test_report_waits_for_no_live_run_and_prints_absolute_paths(finished_eda, tmp_path, capsys, monkeypatch):
    run_dir, own = finished_eda
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import time
                from moola_lib.util.rundir import claim_run_dir
                claim_run_dir({str(run_dir)!r})
                print("held", flush=True)
                time.sleep(120)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = listing(run_dir)
        assert execute.main(["--report", str(own), "--run-dir", str(run_dir)]) == 2
        assert "in use by another run" in _one_error_line(capsys)
        assert listing(run_dir) == before
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.chdir(tmp_path)
    assert execute.main(["--report", "own.ipynb"]) == 0
    assert capsys.readouterr().out.strip() == f"report: {tmp_path / 'own.html'}"


# ----------------------------------------------------------------- 3., 5., 8. shared labels files


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_symlinked_labels_file_is_written_through_and_locked_at_its_target(tmp_path, suffix):
    shared = tmp_path / "shared" / f"labels{suffix}"
    shared.parent.mkdir()
    links = [tmp_path / who / f"labels{suffix}" for who in ("ann", "bob")]
    for link in links:
        link.parent.mkdir()
        link.symlink_to(shared)
    ann, bob = LabelStore(links[0], user="ann"), LabelStore(links[1], user="bob")
    _add(ann, 1)
    _add(bob, 2)
    _add(ann, 3)
    assert all(link.is_symlink() for link in links)
    assert list(read_label_table(shared)[0]["labelled_by"]) == ["ann", "bob", "ann"]
    assert (shared.parent / f".labels{suffix}.lock").exists()
    assert not any((link.parent / f".labels{suffix}.lock").exists() for link in links)
    assert ann.undo()["labelled_by"] == "ann" and all(link.is_symlink() for link in links)
    bob.refresh()
    assert list(bob.frame["labelled_by"]) == ["ann", "bob"]


def test_atomic_writes_keep_the_mode_and_new_files_follow_the_umask(tmp_path):
    for mode in (0o600, 0o664):
        path = tmp_path / f"file{mode:o}"
        path.write_bytes(b"old")
        path.chmod(mode)
        atomic_write_bytes(path, b"new")
        assert stat.S_IMODE(path.stat().st_mode) == mode and path.read_bytes() == b"new"
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "new", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o640


@pytest.mark.parametrize("mode", [0o600, 0o660])
def test_a_labels_file_and_its_lock_keep_the_labels_files_mode(tmp_path, mode):
    path = tmp_path / "labels.parquet"  # parquet: every click rewrites the whole file
    _add(LabelStore(path), 1)
    path.chmod(mode)
    (tmp_path / ".labels.parquet.lock").unlink()
    old = os.umask(0o022)
    try:
        store = LabelStore(path)
        _add(store, 2)
        store.undo()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / ".labels.parquet.lock").stat().st_mode) == mode


def test_the_stale_temp_files_of_one_labels_file_are_not_another_ones(tmp_path):
    from moola_lib.util.io import temp_files

    stale = tmp_path / ".a.csv.x1y2.tmp"  # a killed writer of a.csv left it
    busy = tmp_path / ".a.csv.b.csv.k3j4m5n6.tmp"  # a.csv.b.csv's writer is between writing and replacing
    stale.write_bytes(b"half")
    busy.write_bytes(b"in progress")
    assert temp_files(tmp_path / "a.csv") == [stale] and temp_files(tmp_path / "a.csv.b.csv") == [busy]
    _add(LabelStore(tmp_path / "a.csv"), 1)
    assert not stale.exists() and busy.read_bytes() == b"in progress"


# ----------------------------------------------------------------- 6., 7., 12. what the labels file holds


def test_undo_in_a_parquet_file_that_stores_labelled_at_as_times(tmp_path):
    path = tmp_path / "labels.parquet"
    eve = {
        "window_id": ["w1"],
        "start": ["2020-01-02T14:30:00+00:00"],
        "end": ["2020-01-02T16:14:00+00:00"],
        "label": ["consolidation"],
        "expansion_start": [1],
        "expansion_end": [2],
        "labelled_by": ["eve"],
        "labelled_at": pd.to_datetime(["2020-01-03T00:00:00Z"]),  # pandas' natural type
    }
    pd.DataFrame(eve).to_parquet(path)
    store = LabelStore(path, user="ann")
    row = _add(store, 1)
    assert len(read_label_table(path)[0]) == 2
    assert store.undo() == row
    assert list(read_label_table(path)[0]["labelled_by"]) == ["eve"]


def test_a_carriage_return_in_the_labellers_name_stays_in_its_row(tmp_path):
    path = tmp_path / "labels.csv"
    store = LabelStore(path, user="ann\rlee")
    _add(store, 1)
    _add(store, 2)
    frame = read_label_table(path)[0]
    assert len(frame) == 2 and list(frame["labelled_by"]) == ["ann\rlee", "ann\rlee"]
    assert len(LabelStore(path)) == 2 and store.undo() is not None and len(read_label_table(path)[0]) == 1


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_click_and_its_undo_append_and_truncate_in_place(tmp_path, monkeypatch, suffix):
    """What a click costs does not grow with the file: no rewrite, no re-read of all the rows."""
    path = tmp_path / f"labels{suffix}"
    store = LabelStore(path, user="bob")
    for k in range(3):
        _add(store, k)
    original, inode = path.read_bytes(), path.stat().st_ino

    def never(*args, **kwargs):
        raise AssertionError("the whole labels file was rewritten or re-read")

    monkeypatch.setattr(store_module, "atomic_write_bytes", never)
    monkeypatch.setattr(store_module, "read_label_table", never)
    row = _add(store, 10)
    assert path.read_bytes().startswith(original) and path.stat().st_ino == inode and len(store) == 4
    assert store.counts() == {"retracement": 4}
    assert store.undo() == row and path.read_bytes() == original and len(store) == 3


# ----------------------------------------------------------------- 4., 9., 10. inputs checked before any work


def test_an_exclude_period_written_end_first_is_refused():
    with pytest.raises(ConfigError, match=r"exclude\[1\] \['2025-03-01', '2025-02-01'\] ends before it starts"):
        PretrainConfig.from_dict({"exclude": [["2025-01-01", "2025-01-02"], ["2025-03-01", "2025-02-01"]]})


def test_a_text_file_is_no_encoder(tmp_path):
    for text in ("abc", "hello world\n", "0 1 2\n"):
        (tmp_path / "enc.pt").write_text(text)
        with pytest.raises(CheckpointError, match="enc.pt: "):
            load_encoder(tmp_path / "enc.pt")


def test_a_parameters_file_that_is_not_utf8_is_a_config_error(tmp_path):
    (tmp_path / "p.yaml").write_bytes("epochs: 3  # f\xfcr\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"p\.yaml: not UTF-8 text \(byte 0xfc at offset 14\)"):
        read_parameters([tmp_path / "p.yaml"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seed": 2**63}, r"seed must be in \[0, 2\*\*63\)"),
        ({"synthetic_seed": -1}, r"seed must be in \[0, 2\*\*63\)"),
        ({"hidden_size": 10**6}, "hidden_size must be <= 16384"),
        ({"batch_size": 10**9}, "batch_size must be <= 1,048,576"),
    ],
)
def test_seeds_and_sizes_are_bounded(change, message):
    with pytest.raises(ConfigError, match=message):
        PretrainConfig.from_dict(change)


def test_a_job_larger_than_the_memory_is_refused_before_any_data_is_loaded(tmp_path, monkeypatch):
    import moola_lib.pretraining.job as pretrain_module

    def never(*args, **kwargs):
        raise AssertionError("data was loaded for a job that cannot fit")

    monkeypatch.setattr(pretrain_module, "load_pretrain_data", never)
    with pytest.raises(ConfigError, match=r"batch_size 1000000 .* needs about [\d,.]+ GiB to train, more than"):
        pretrain_module.pretrain({"batch_size": 1_000_000, "device": "cpu", "progress": False}, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------- 13. run directories


def test_a_run_dir_with_dot_dot_leaves_no_stray_folder(tmp_path):
    from moola_lib.pretraining.job import pretrain

    tiny = {
        "synthetic_start": "2024-12-01",
        "synthetic_end": "2024-12-14",
        "stride": 52,
        "splits": {"train": ["2024-12-01", "2024-12-10"], "val": ["2024-12-10", "2024-12-15"]},
        "hidden_size": 8,
        "num_layers": 1,
        "epochs": 1,
        "batch_size": 16,
        "warmup_epochs": 0,
        "device": "cpu",
        "progress": False,
    }
    pretrain(tiny, f"{tmp_path}/q/../y/z")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y"]
    assert (tmp_path / "y" / "z" / "training_results.json").exists()


def test_resuming_a_finished_run_is_refused_and_keeps_its_record(tmp_path):
    ns = {"run_dir": str(tmp_path / "run"), "device": "cpu"}
    start_run("pretrain", ns, PretrainParams).finish()
    before = listing(tmp_path / "run")
    with pytest.raises(FileExistsError, match="holds a run that finished .*nothing to resume"):
        start_run("pretrain", {**ns, "resume": True}, PretrainParams)
    assert listing(tmp_path / "run") == before


# ----------------------------------------------------------------- 14. curves without a non-neural arm


def test_curves_summary_without_a_non_neural_arm():
    from moola_lib.studies.curves_report import summary_table
    from moola_lib.transfer.intervals import VERDICT_INTERVAL

    arm = {"mean": 0.6, "ci_low": 0.5, "ci_high": 0.7}
    comparison = {**arm, "interval": VERDICT_INTERVAL, "p_holm_size": 0.5, "mde": 0.1}
    results = {  # arms ["baseline", "frozen"]: no simple or rocket arm, no best non-neural arm
        "encoders": {"a": {"arch": {"num_layers": 1, "hidden_size": 8}}},
        "sizes": {
            "24": {
                "best_non_neural": None,
                "arms": {"shared": {}, "by_arch": {"1x8": {"baseline": arm}}, "by_encoder": {"a": {"frozen": arm}}},
                "comparisons": {"a: frozen vs baseline": comparison},
            }
        },
    }
    row = summary_table(results)[-1].split(" | ")
    assert row[:5] == ["| 24", "a", "60.0", "-", "60.0"] and row[5].startswith("+60.0 [") and row[6] == "- |"
