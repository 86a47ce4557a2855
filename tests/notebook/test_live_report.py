"""A run started in JupyterLab gets its report.html at the notebook's next save (no kernel or browser needed:
JupyterLab's save is a write of the notebook file, done here by hand), and headless runs start no watch."""

import threading
import time

import nbformat
import pytest

from moola_lib.notebook import live_report
from moola_lib.notebook import runs as runs_module
from moola_lib.notebook.live_report import report_when_saved, saved_marker
from moola_lib.notebook.params import EdaParams
from moola_lib.notebook.runs import HEADLESS_ENV, start_run
from moola_lib.util.progress import TEXT_PROGRESS_ENV


def save(path, printed: str) -> None:
    """What JupyterLab's save writes: the notebook with the last cell's output so far."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("run.finish()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [nbformat.v4.new_markdown_cell("# A live run"), cell]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def live(tmp_path, monkeypatch):
    """A JupyterLab kernel's environment: its notebook in JPY_SESSION_NAME, no runner; quick polls."""
    notebook = tmp_path / "work" / "eda.ipynb"
    save(notebook, "")
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    monkeypatch.delenv(HEADLESS_ENV, raising=False)
    monkeypatch.setattr(live_report, "POLL_SECONDS", 0.05)
    return notebook


def test_a_live_run_gets_its_report_at_the_save_that_holds_its_last_output(live, tmp_path, capsys):
    run = start_run("eda", {"run_dir": str(tmp_path / "r")}, EdaParams)
    assert run.live == live
    run.finish()
    printed = capsys.readouterr().out
    assert saved_marker(run.dir) in printed
    save(live, "eda: run directory ...\n")  # an autosave while the run went on: not the finished run
    time.sleep(0.5)
    assert not (run.dir / "report.html").exists()
    save(live, printed)  # the save after the last cell printed its lines
    assert wait_for(lambda: "Report: " in capsys.readouterr().out)
    assert (run.dir / "eda.ipynb").read_bytes() == live.read_bytes()  # the record beside its report
    html = (run.dir / "report.html").read_text()
    assert "A live run" in html and "run.finish()" not in html


def test_a_new_finish_replaces_the_watch_of_the_same_notebook(live, tmp_path, capsys):
    first = report_when_saved(live, tmp_path / "r1", "eda", interval=0.02)
    second = report_when_saved(live, tmp_path / "r2", "eda", interval=0.02)
    first.join(5)
    assert not first.is_alive() and second.is_alive()
    save(live, saved_marker(tmp_path / "r2"))
    second.join(20)
    assert (tmp_path / "r2" / "report.html").exists() and not (tmp_path / "r1").exists()


def test_a_save_before_the_watch_first_runs_is_still_reported(live, tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "r"

    class Late(threading.Thread):  # the watch's thread runs only after the save (a busy machine)
        def start(self):
            save(live, saved_marker(run_dir))
            super().start()

    monkeypatch.setattr(live_report.threading, "Thread", Late)
    report_when_saved(live, run_dir, "eda", interval=0.02).join(20)
    assert (run_dir / "report.html").exists()


def test_without_a_save_the_watch_gives_up_and_says_how(live, tmp_path, capsys):
    report_when_saved(live, tmp_path / "r", "eda", timeout=0.2, interval=0.02).join(5)
    out = capsys.readouterr().out
    assert f"--report {live} --run-dir {tmp_path / 'r'}" in out and "no report" in out
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("how", ["runner", "papermill"])
def test_headless_runs_start_no_watch_even_with_an_inherited_session_name(live, tmp_path, monkeypatch, capsys, how):
    monkeypatch.setattr(runs_module, "report_when_saved", lambda *a, **k: pytest.fail("a watch was started"))
    monkeypatch.setenv(TEXT_PROGRESS_ENV, "")  # start_run sets it under papermill: restored afterwards
    namespace = {"run_dir": str(tmp_path / "r")}
    if how == "runner":
        monkeypatch.setenv(HEADLESS_ENV, "1")
    else:
        namespace |= {"In": ["# Parameters\nseed = 0\n"], "seed": 0}
    run = start_run("eda", namespace, EdaParams)
    assert run.live is None
    run.finish()
    out = capsys.readouterr().out
    expected = "when this notebook ends" if how == "runner" else "--report EXECUTED.ipynb --run-dir"
    assert expected in out and not (run.dir / "report.html").exists()
