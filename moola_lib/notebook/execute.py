"""Execute a project notebook headlessly into its run directory and render its HTML report.

    python -m moola_lib.run_notebook pretrain -f params/nq_5yr.yaml -p batch_size 1024
    python -m moola_lib.run_notebook sweep -y "grid: {batch_size: [512, 1024]}" --run-dir runs/bs
    python -m moola_lib.run_notebook --report out.ipynb --run-dir runs/pretrain-20250101-120000

Parameters are given as with papermill: ``-f FILE.yaml`` and ``-y YAML`` (applied in that order, later
ones win), then ``-p NAME VALUE`` (VALUE read as papermill does: True/False/None, int, float, else a
string). notebooks/NAME.ipynb is executed (into a scratch folder) and, once the notebook's ``start_run``
has accepted the run, saved as RUN_DIR/NAME.ipynb and rendered to RUN_DIR/report.html with the code
hidden; a run refused by its checks (a resume on other settings, a directory of another kind) changes
nothing of RUN_DIR. RUN_DIR comes from --run-dir, the run_dir parameter, or runs/NAME-<UTC time>.
A mistyped parameter, a bad data file or a run directory holding another run ends the command with one
line on stderr and exit status 2; a failing cell with status 1. The runner claims the run directory
(``moola_lib.util.rundir``) before it writes anything and holds the claim until the report is written: a
second run on the same directory is refused and touches nothing of the first. ``--report`` with
``--run-dir`` checks first that the notebook is one and, in a directory holding a run, that run's own
executed notebook (its output names the run's id), and writes under the directory's claim: it never
replaces another run's record. ``--overwrite`` deletes only the files the earlier run's manifest lists
(``runs.check_run_dir``). A relative --run-dir is taken from the repository root; the paths printed are
absolute.

While the notebook runs, each epoch of a pretraining job under RUN_DIR (a sweep's settings included) is one
line on stderr (epoch, losses, time left), read from its progress.jsonl (``pretraining.feedback``);
--no-progress silences them with the cell progress bar.

The terminal shows only the runner's own lines (and, with --log-output, the notebook's output): the kernel
process's own output (ipykernel's log, its shutdown races, C-level writes it also forwards into the
notebook) goes to RUN_DIR/kernel.log, kept only when not empty. The kernel's channels are encrypted
(CurveZMQ keys from jupyter_client) where the kernel supports it, so ipykernel has no plain-TCP warning
to give either.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from ..pretraining.feedback import follow_progress
from ..util import cli
from ..util.config import ConfigError, check_names
from ..util.paths import ROOT, resolve_path
from ..util.rundir import run_dir_claim
from .report import render_report, report_into
from .runs import HEADLESS_ENV, RUN_ID_ENV, check_run_dir, claim_run, read_manifest, update_manifest, utc_now

NOTEBOOK_DIR = ROOT / "notebooks"
KERNEL_LOG = "kernel.log"  # in the run directory: the kernel process's own output


def notebook_source(name: str) -> Path:
    """notebooks/NAME.ipynb; an unknown name, or an executed copy left in notebooks/, is a ConfigError
    listing the project's notebooks."""
    source = NOTEBOOK_DIR / f"{name}.ipynb"
    known = project_notebooks()
    if source.stem not in known:
        what = f"{source}: an executed copy, not a project notebook" if source.is_file() else f"no notebook {source}"
        raise ConfigError(f"{what}; known: {', '.join(known)}")
    return source


def project_notebooks() -> list[str]:
    """Names of the notebooks in notebooks/, without the executed copies papermill or JupyterLab may leave
    there (they carry papermill metadata, outputs or execution counts; the project's are committed clean)."""
    import nbformat

    names = []
    for path in sorted(NOTEBOOK_DIR.glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except (OSError, ValueError):
            continue
        executed = "papermill" in nb.metadata or any(
            cell.get("outputs") or cell.get("execution_count") for cell in nb.cells if cell.cell_type == "code"
        )
        if not executed:
            names.append(path.stem)
    return names


def check_parameter_names(source: Path, params: dict) -> None:
    """Reject parameters the notebook's ``parameters`` cell does not define (papermill only warns)."""
    import papermill

    check_names(params, papermill.inspect_notebook(str(source)), source.name, noun="parameter")


def execute(
    name: str,
    params: dict,
    *,
    run_dir: str | None = None,
    overwrite: bool = False,
    progress_bar: bool = True,
    log_output: bool = False,
) -> Path:
    """Run notebooks/NAME.ipynb into its run directory and render report.html; returns the run dir.

    Raises papermill.PapermillExecutionError when a cell fails. The executed notebook and report.html go
    into the run directory only once the notebook's ``start_run`` accepted the run (all its checks
    passed): a run refused there (a resume on other settings, a directory of another kind) changes
    nothing of the directory it was pointed at."""
    source = notebook_source(name)
    check_parameter_names(source, params)
    overwrite = overwrite or bool(params.get("overwrite"))
    claim = claim_run(name, run_dir or params.get("run_dir"))  # another live run there: refused, untouched
    try:
        # fail before starting a kernel when the directory holds another run (start_run checks it again)
        check_run_dir(claim.path, name, overwrite=overwrite, resume=bool(params.get("resume")))
        params = {**params, "run_dir": str(claim.path), **({"overwrite": True} if overwrite else {})}
        with follow_progress(claim.path, enabled=progress_bar):  # the kernel's output never reaches the terminal
            _execute_claimed(source, claim.path, params, claim.env(), progress_bar=progress_bar, log_output=log_output)
    finally:
        claim.release()
    return claim.path


def _execute_claimed(source: Path, run_dir: Path, params: dict, claim_env: dict, **options) -> None:
    """papermill (the kernel inherits the claim) into a scratch folder; the executed notebook, its report.html
    and the kernel process's own output (kernel.log) move into ``run_dir`` if the run was accepted (its
    manifest carries this run's id): a refused run leaves the directory as it was."""
    import papermill

    run_id, started_ns = uuid.uuid4().hex, time.time_ns()
    env = {HEADLESS_ENV: "1", RUN_ID_ENV: run_id, **claim_env}  # Run.finish then says a report follows
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    with tempfile.TemporaryDirectory(prefix="moola-run-") as scratch:
        output, kernel_log = Path(scratch) / source.name, Path(scratch) / KERNEL_LOG
        try:
            papermill.execute_notebook(
                str(source),
                str(output),
                parameters=params,
                cwd=str(ROOT),
                kernel_manager_class=_kernel_manager_class(str(kernel_log)),
                **options,
            )
        except papermill.PapermillExecutionError as e:
            if _accepted(run_dir, run_id):
                update_manifest(
                    run_dir, since_ns=started_ns, status="failed", finished=utc_now(), error=f"{e.ename}: {e.evalue}"
                )
            raise
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            if _accepted(run_dir, run_id):
                _keep_outputs(output, kernel_log, run_dir)
                update_manifest(run_dir, since_ns=started_ns)  # they are the run's files too


def _accepted(run_dir: Path, run_id: str) -> bool:
    return read_manifest(run_dir).get("run_id") == run_id


def _keep_outputs(output: Path, kernel_log: Path, run_dir: Path) -> None:
    """The executed notebook and its report.html into the accepted run's directory, and the kernel process's
    own output (kernel.log) when there is any."""
    if output.exists():
        report_into(output, run_dir)
    if kernel_log.exists() and kernel_log.stat().st_size:
        shutil.copyfile(kernel_log, run_dir / KERNEL_LOG)


def _kernel_manager_class(log_path: str) -> type:
    """The kernel manager of the runner's kernels (a subclass of jupyter_client's AsyncKernelManager).

    ipykernel logs "Kernel is running over TCP without encryption" to its process's stderr unless the
    manager provisions CurveZMQ keys; jupyter_client does that with ``transport_encryption="auto"`` for a
    kernelspec that declares "curve" support (``ipykernel install`` writes it since ipykernel 7), and the
    channels are then encrypted. The kernel process's stdout and stderr, which the terminal would otherwise
    share, go to ``log_path`` (appended; the runner never restarts a kernel, so the file is only needed at
    launch)."""
    import zmq
    from jupyter_client.manager import AsyncKernelManager

    class RunnerKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            if zmq.has("curve") and self.has_trait("transport_encryption"):  # newer jupyter_client only
                self.transport_encryption = "auto"
            # the kernel process holds its own copy of the descriptor (a local file: no await worth having)
            with open(log_path, "ab") as log:
                kw.setdefault("stdout", log)
                kw.setdefault("stderr", log)
                return await super().start_kernel(**kw)

    return RunnerKernelManager


def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m moola_lib.run_notebook",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    names = "eda, pretrain, sweep, transfer, label, classify"
    parser.add_argument("name", nargs="?", help=f"notebook in notebooks/ ({names})")
    cli.add_parameter_flags(parser)
    parser.add_argument("--run-dir", help="run directory (default: the run_dir parameter or runs/NAME-<time>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory's files")
    parser.add_argument("--no-progress", action="store_true", help="no cell progress bar and no epoch lines")
    parser.add_argument(
        "--log-output",
        action="store_true",
        help="also print what the notebook prints (and its text progress) to the terminal",
    )
    parser.add_argument(
        "--report",
        metavar="EXECUTED.ipynb",
        help="only render the HTML report of an executed notebook (into --run-dir if given, "
        "which also receives a copy of the notebook; else beside the notebook)",
    )
    return parser


def main(argv=None) -> int:
    """The command line; expected errors become one line on stderr and exit status 2 (``cli.run``)."""
    return cli.run(_main, argv)


def _main(argv) -> int:
    import sys

    parser = _parser()
    args = parser.parse_args(argv)
    if args.report:
        return _report_only(Path(args.report), args.run_dir)
    if not args.name:
        parser.error("give a notebook name (or --report EXECUTED.ipynb)")
    params = cli.parameters(args)
    if args.log_output:
        _stream_kernel_output()
    import papermill

    try:
        run_dir = execute(
            args.name,
            params,
            run_dir=args.run_dir,
            overwrite=args.overwrite,
            progress_bar=not args.no_progress,
            log_output=args.log_output,
        )
    except papermill.PapermillExecutionError as e:
        # an expected error raised inside the notebook (a bad data file, an invalid value) is the user's
        # to fix, like one raised before the kernel started: same one line, same exit status
        expected = e.ename in cli.expected_error_names()
        print(
            cli.error_line(f"{args.name}.ipynb failed in cell {e.exec_count}: {e.ename}: {e.evalue}"), file=sys.stderr
        )
        return cli.USAGE_ERROR if expected else 1
    print(f"run directory: {run_dir}\nreport:        {run_dir / 'report.html'}")
    return 0


def _stream_kernel_output() -> None:
    """papermill logs the kernel's output at INFO level: print it as it comes."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("papermill")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _report_only(notebook: Path, run_dir: str | None) -> int:
    """--report: render an executed notebook's report.html beside it or, with ``run_dir``, into that run
    directory with a copy of the notebook. Everything is checked before anything is written: a notebook
    file, and in a directory holding a run that run's own executed notebook (its output names the run's
    id); all under the directory's claim, so that a live run there is refused."""
    nb = _read_notebook(notebook)
    if run_dir is None:
        html = render_report(notebook, notebook.with_suffix(".html"))
        print(f"report: {os.path.abspath(html)}")
        return 0
    with run_dir_claim(resolve_path(run_dir)) as claim:
        started_ns = time.time_ns()
        _check_record(nb, notebook, claim.path, claim.path / notebook.name)
        html = report_into(notebook, claim.path)
        if (claim.path / "manifest.json").exists():
            update_manifest(claim.path, since_ns=started_ns)
    print(f"report: {html}")
    return 0


def _read_notebook(path: Path):
    """The notebook at ``path``; a file that is none (a manifest.json, broken JSON) is a ConfigError."""
    import nbformat

    if not path.is_file():
        raise FileNotFoundError(f"no executed notebook {path}")
    if path.suffix != ".ipynb":
        raise ConfigError(f"{path}: not a notebook (.ipynb); --report renders an executed notebook")
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError, KeyError, AttributeError) as e:
        raise ConfigError(f"{path}: not a readable notebook ({type(e).__name__}: {e})") from None


def _check_record(nb, notebook: Path, run_dir: Path, copy: Path) -> None:
    """Refuse to put ``notebook`` into ``run_dir`` as its record unless it is the record of the run there
    (``start_run`` printed that run's id); in a folder without a run, refuse to replace a report.html or
    a notebook of the same name."""
    if (run_dir / "manifest.json").exists():
        manifest = read_manifest(run_dir)
        run_id = manifest.get("run_id")
        if not run_id or f"(run {run_id})" not in _stream_text(nb):
            raise FileExistsError(
                f"{notebook} is not the executed notebook of the {manifest.get('notebook', '?')} run in "
                f"{run_dir} (its output does not name run {run_id}); that run's record was left as it was. "
                "Render it without --run-dir (the report goes beside the notebook)"
            )
        return
    taken = [p.name for p in (copy, run_dir / "report.html") if p.exists() and p.resolve() != notebook.resolve()]
    if taken:
        raise FileExistsError(
            f"{run_dir} holds no run (no manifest.json) but already a {' and a '.join(taken)}; nothing was "
            "replaced. Choose another --run-dir, or render without it (the report goes beside the notebook)"
        )


def _stream_text(nb) -> str:
    return "\n".join(
        o.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream"
    )
