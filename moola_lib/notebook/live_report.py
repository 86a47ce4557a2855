"""The report of a run started in JupyterLab, written when JupyterLab next saves the notebook.

A kernel cannot read its notebook's outputs: they live in the browser until JupyterLab saves the file
(Ctrl+S, or its autosave, every 120 s by default), and JupyterLab 4 runs no JavaScript from outputs, so the
kernel cannot ask for a save either; executing the notebook again would be another run. So ``run.finish()``
in a live JupyterLab kernel (``live_notebook``: the file jupyter_server names in ``JPY_SESSION_NAME``; never
under the headless runner or papermill, which write or explain their own report) calls
``report_when_saved``. It prints one line naming the report and the save it waits for (``saved_marker``),
then a daemon thread watches the notebook file: at the first save whose content holds that line in a cell's
output -- the save of the finished run, outputs up to its last cell -- it copies the saved notebook into the
run directory as NOTEBOOK.ipynb, renders report.html from it (``report.report_into``) and prints where. A
later ``finish`` for the same notebook replaces the watch; without a save within ``timeout`` (an hour) it
stops and says how to render the report by hand.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from .report import report_into

POLL_SECONDS = 1.0
TIMEOUT_SECONDS = 3600.0
_watches: dict[Path, threading.Event] = {}  # notebook -> the stop signal of its watch (one watch per notebook)


def live_notebook() -> Path | None:
    """The notebook file of this JupyterLab kernel, or None outside one. jupyter_server gives the kernel
    the file's path in JPY_SESSION_NAME (absolute; older servers: relative to their root, while the kernel
    runs in the notebook's folder, so its name there)."""
    name = os.environ.get("JPY_SESSION_NAME")
    if not name:
        return None
    path = Path(name)
    return path if path.is_absolute() else Path.cwd() / path.name


def saved_marker(run_dir: Path) -> str:
    return (
        f"The report goes to {run_dir / 'report.html'} at the next save of this notebook "
        "(Ctrl+S, or JupyterLab's autosave within 2 minutes)."
    )


def holds_marker(notebook: Path, marker: str) -> bool:
    """Whether a code cell's output in the saved ``notebook`` contains ``marker`` (False while unreadable)."""
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError):  # not there, or caught mid-write by a saver that does not write atomically
        return False
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = output.get("text", "")
            if marker in ("".join(text) if isinstance(text, list) else text):
                return True
    return False


def report_when_saved(
    notebook: Path,
    run_dir: Path,
    name: str,
    *,
    timeout: float | None = None,
    interval: float | None = None,
) -> threading.Thread:
    """Print the marker line and start the watch (see the module's docstring); returns its thread.
    ``timeout`` and ``interval``: None = TIMEOUT_SECONDS and POLL_SECONDS."""
    timeout, interval = timeout or TIMEOUT_SECONDS, interval or POLL_SECONDS
    marker = saved_marker(run_dir)
    print(marker)
    previous = _watches.pop(notebook, None)
    if previous is not None:
        previous.set()
    stop = _watches[notebook] = threading.Event()
    # the notebook as it is now, read here and not in the thread: a save before the thread first runs (a
    # busy machine) would otherwise be taken for the state before the run finished, and never reported
    seen = _file_state(notebook)
    thread = threading.Thread(
        target=_watch, args=(notebook, run_dir, name, marker, stop, seen, timeout, interval), daemon=True
    )
    thread.start()
    return thread


def _watch(notebook: Path, run_dir: Path, name: str, marker: str, stop: threading.Event, *timing) -> None:
    """``_wait_and_report`` (``timing``: the notebook's state before, the timeout, the poll interval), then the
    watch's entry removed unless a newer watch replaced it."""
    try:
        _wait_and_report(notebook, run_dir, name, marker, stop, *timing)
    finally:
        if _watches.get(notebook) is stop:
            del _watches[notebook]


def _wait_and_report(notebook, run_dir, name, marker, stop: threading.Event, seen, timeout, interval) -> None:
    deadline = time.monotonic() + timeout
    while not stop.wait(interval):
        if time.monotonic() > deadline:
            print(
                f"No save of {notebook} with this run's output within {timeout / 60:.0f} min: no report. "
                f"Save it, then: python -m moola_lib.run_notebook --report {notebook} --run-dir {run_dir}"
            )
            return
        now = _file_state(notebook)
        if now == seen:
            continue
        seen = now  # a save: is it the finished run's?
        if holds_marker(notebook, marker):
            try:
                print(f"Report: {report_into(notebook, run_dir, f'{name}.ipynb')}")
            except Exception as e:  # a thread's traceback would land in some later cell's output
                print(f"The report could not be written ({type(e).__name__}: {e})")
            return


def _file_state(path: Path) -> tuple[int, int] | None:
    """(mtime, size): a save within the file system's timestamp tick still changes the size, mostly."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
