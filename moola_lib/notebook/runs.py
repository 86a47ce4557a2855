"""Run directories for the notebooks: strict parameters, params.yaml, manifest.json, artifacts.

A notebook has one cell tagged ``parameters`` (literal values) and then calls

    run = start_run("pretrain", globals(), PretrainParams)

``start_run`` checks the parameters strictly. papermill only warns about a name the notebook does not
define (``-p batchsize 1024`` would silently run with the defaults), so the cell papermill injects is
read back from IPython's input history (``In``): every name assigned there must be a field of the
params dataclass, and every value must have the field's type (``moola_lib.pretraining.config.apply_overrides``).
Then the run directory is claimed (``moola_lib.util.rundir``: one writer per directory; a directory another
live run holds is refused before anything in it is touched; under ``python -m moola_lib.run_notebook``
the runner's claim is inherited) and created (never reusing one that holds a previous run unless
``overwrite=True``; ``resume=True`` continues one), and ``params.yaml`` and ``manifest.json`` are written.
``run.finish(**artifacts)`` records the artifacts, marks the run finished and releases the claim; a cell
that raises marks it failed and releases it too. In a live JupyterLab kernel ``finish`` also has the report
written at the notebook's next save (``live_report``); under the headless runner the runner writes it, and
after plain papermill ``finish`` prints the command that does. ``device="cuda"`` without a GPU is refused here, before
any data is loaded.

Relative paths (``run_dir``, ``data_path``, the runs root) are taken from the repository root, so a
notebook behaves the same in JupyterLab (working directory notebooks/), papermill and nbval. The runs
root is ``runs/`` unless the environment variable ``MOOLA_RUNS_DIR`` names another folder.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import os
import platform
import shutil
import sys
import typing
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..pretraining.devices import resolve_device
from ..util.config import apply_overrides
from ..util.io import atomic_write_bytes, atomic_write_text, read_json, write_json
from ..util.paths import resolve_path
from ..util.progress import TEXT_PROGRESS_ENV
from ..util.rundir import LOCK_NAME, Claim, RunDirBusyError, claim_run_dir
from .live_report import live_notebook, report_when_saved
from .manifest import data_info, device_info, git_state, package_versions

HEADLESS_ENV = "MOOLA_RUN_NOTEBOOK"  # set by moola_lib.run_notebook for the kernel it starts
RUN_ID_ENV = "MOOLA_RUN_ID"  # the runner's id for the run; start_run records it once the run is accepted


def runs_root() -> Path:
    return resolve_path(os.environ.get("MOOLA_RUNS_DIR", "runs"))


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------------
# notebook parameters, read back from the kernel


def injected_cell(history: typing.Sequence[str]) -> str | None:
    """The latest papermill-injected cell ("# Parameters" ...) of IPython's ``In``; None if none."""
    for source in reversed(list(history)):
        if source.lstrip().startswith("# Parameters"):
            return source
    return None


def injected_names(history: typing.Sequence[str]) -> list[str]:
    """Names assigned in the papermill-injected cell of IPython's ``In``."""
    source = injected_cell(history)
    if source is None:
        return []
    return [
        t.id
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    ]


def notebook_params(namespace: typing.Mapping, params_cls: type, *, what: str = "parameters"):
    """Build ``params_cls`` from a notebook's globals, rejecting unknown injected names and bad types."""
    names = [f.name for f in dataclasses.fields(params_cls)]
    values = {n: namespace[n] for n in names if n in namespace}
    for n in injected_names(namespace.get("In", ())):  # an unknown name makes apply_overrides fail
        values[n] = namespace.get(n)
    return apply_overrides(params_cls(), values, what=what)


# ----------------------------------------------------------------------------------------------------
# the run directory


@dataclass
class Run:
    notebook: str
    dir: Path
    params: Any
    manifest: dict
    claim: Claim | None = None
    live: Path | None = None  # the notebook file of a live JupyterLab kernel (never under papermill or the runner)

    def path(self, name: str) -> Path:
        return self.dir / name

    def save_figure(self, fig, name: str, *, dpi: int = 110) -> None:
        """Save a matplotlib figure as figures/<name>.png in the run directory (atomic).

        Returns None so that a notebook cell ending with this call shows only the figure."""
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        atomic_write_bytes(self.dir / "figures" / f"{name}.png", buf.getvalue())

    def save_table(self, frame, name: str) -> None:
        """Save a pandas DataFrame as <name>.csv in the run directory (atomic)."""
        atomic_write_text(self.dir / f"{name}.csv", frame.to_csv())

    def release(self) -> None:
        """Give up the claim on the run directory (once; finish() and a failing cell call this)."""
        if self.claim is not None:
            self.claim.release()
            self.claim = None

    def finish(self, **artifacts) -> None:
        """Record artifacts (name -> path), mark the run finished and say where the report goes."""
        files = {k: _relative(v, self.dir) for k, v in artifacts.items()}
        self.manifest = update_manifest(
            self.dir,
            status="finished",
            finished=utc_now(),
            error=None,
            artifacts={**self.manifest.get("artifacts", {}), **files},
        )
        self.release()
        print(f"Run directory: {self.dir}")
        for name, rel in sorted(files.items()):
            print(f"  {name}: {rel}")
        if os.environ.get(HEADLESS_ENV):
            print(f"The HTML report is written to {self.dir / 'report.html'} when this notebook ends.")
        elif self.live is not None:  # the kernel cannot see the outputs before JupyterLab saves them
            report_when_saved(self.live, self.dir, self.notebook)
        else:  # plain papermill: the executed notebook is wherever its OUTPUT argument said
            print(
                "To render the HTML report (code hidden) into the run directory:\n"
                f"  python -m moola_lib.run_notebook --report EXECUTED.ipynb --run-dir {self.dir}"
            )


def start_run(
    notebook: str, namespace: typing.MutableMapping, params_cls: type, *, root: str | os.PathLike | None = None
) -> Run:
    """Validate the notebook parameters, create the run directory, write params.yaml and manifest.json."""
    params = notebook_params(namespace, params_cls, what=f"{notebook}.ipynb parameters")
    resolve_device(params.device)  # ConfigError for a GPU that is not there, before any work
    papermill = injected_cell(namespace.get("In", ())) is not None
    if papermill:
        os.environ[TEXT_PROGRESS_ENV] = "1"  # executed by papermill: no widget front end, text progress bars
    # papermill and the runner are headless even with an inherited JPY_SESSION_NAME (a sweep started in JupyterLab)
    live = None if papermill or os.environ.get(HEADLESS_ENV) else live_notebook()
    claim = claim_run(notebook, params.run_dir, root)
    run_dir = claim.path
    params = dataclasses.replace(
        params, run_dir=str(run_dir), data_path=params.data_path and str(resolve_path(params.data_path))
    )
    try:
        # every check first (the directory's kind and content, the notebook's own, e.g. a resume's config):
        # a refused run changes nothing of the run directory it was pointed at
        resume = bool(getattr(params, "resume", False))
        old = check_run_dir(run_dir, notebook, overwrite=params.overwrite, resume=resume)
        if hasattr(params, "check_run_dir") and not params.overwrite:
            params.check_run_dir(run_dir)
        _remove(old if params.overwrite else [])
        run = Run(notebook, run_dir, params, _write_run_files(notebook, run_dir, params), claim, live)
    except BaseException:
        claim.release()
        raise
    _mark_failures(run)
    print(f"{notebook}: run directory {run_dir}")
    return run


def _write_run_files(notebook: str, run_dir: Path, params) -> dict:
    """Write params.yaml and a "running" manifest.json (keeping an earlier run's artifacts); return it."""
    previous = read_json(run_dir / "manifest.json") if (run_dir / "manifest.json").exists() else None
    atomic_write_text(run_dir / "params.yaml", yaml.safe_dump(dataclasses.asdict(params), sort_keys=False))
    manifest = {
        "notebook": notebook,
        "run_dir": str(run_dir),
        "status": "running",
        "started": utc_now(),
        "finished": None,
        "error": None,
        "run_id": os.environ.get(RUN_ID_ENV) or uuid.uuid4().hex,  # the runner's, so it knows this run began
        "resumed_from": previous and {k: previous.get(k) for k in ("started", "finished", "status")},
        "git": git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device_info(params.device),
        "data": data_info(params),
        "artifacts": previous.get("artifacts", {}) if previous else {},
    }
    write_json(run_dir / "manifest.json", manifest)
    return manifest


def claim_run(notebook: str, run_dir: str | os.PathLike | None = None, root: str | os.PathLike | None = None) -> Claim:
    """Claim ``run_dir`` (``rundir.claim_run_dir``), or when None a new runs/<notebook>-<UTC time>: if
    another run started in the same second took that name first, the next free name."""
    if run_dir is not None:
        return claim_run_dir(resolve_path(run_dir))
    for _ in range(100):
        try:
            return claim_run_dir(new_run_dir(notebook, root))
        except RunDirBusyError:
            continue  # taken between new_run_dir's look and our claim: the next name is free
    raise RunDirBusyError(f"no free run directory for {notebook} under {root or runs_root()}; pass run_dir")


def new_run_dir(notebook: str, root: str | os.PathLike | None = None) -> Path:
    """runs/<notebook>-<UTC time>, with a suffix if that name is taken."""
    base = resolve_path(root) if root is not None else runs_root()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path, k = base / f"{notebook}-{stamp}", 1
    while path.exists():
        k += 1
        path = base / f"{notebook}-{stamp}-{k}"
    return path


def check_run_dir(
    run_dir: Path, notebook: str | None = None, *, overwrite: bool = False, resume: bool = False
) -> list[Path]:
    """Raise unless a ``notebook`` run may use ``run_dir``; change nothing. Returns the earlier run's files
    that ``overwrite`` replaces. A directory holding files of an earlier run is refused, unless ``resume``
    (kept) or ``overwrite``; one holding another notebook's run (manifest.json) is refused even with
    ``resume``: a run directory holds one kind of run. Executed notebooks, report.html and the claim's
    lock file do not count as a run's files."""
    if not run_dir.is_dir():
        return []
    old = [p for p in run_dir.iterdir() if p.suffix != ".ipynb" and p.name not in ("report.html", LOCK_NAME)]
    kind = _run_kind(run_dir)
    if notebook and kind not in (None, notebook) and not overwrite:
        raise FileExistsError(
            f"run directory {run_dir} holds a {kind} run, not a {notebook} run; a run directory "
            "holds one kind of run: choose another run_dir (or overwrite=True to replace it)"
        )
    if old and not (resume or overwrite):
        raise FileExistsError(
            f"run directory {run_dir} already holds a run ({', '.join(sorted(p.name for p in old)[:5])}); "
            "choose another run_dir, or pass overwrite=True to replace it"
            + (" (or resume=True to continue it)" if (run_dir / "checkpoint_last.pt").exists() else "")
        )
    return old


def _remove(paths) -> None:
    for p in paths:
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _run_kind(run_dir: Path) -> str | None:
    """The notebook whose run ``run_dir`` holds (manifest.json), None when it records none."""
    try:
        return read_json(run_dir / "manifest.json").get("notebook")
    except (OSError, ValueError, AttributeError):
        return None


def update_manifest(run_dir: str | os.PathLike, **fields) -> dict:
    path = Path(run_dir) / "manifest.json"
    manifest = {**read_json(path), **fields}
    write_json(path, manifest)
    return manifest


def _mark_failures(run: Run) -> None:
    """In IPython, mark the manifest failed and release the run directory when a later cell raises (the
    last such hook wins)."""
    try:
        ip = get_ipython()  # defined inside IPython only (NameError elsewhere)
    except NameError:
        return

    def hook(result):
        if result.error_in_exec is not None and run.claim is not None:  # never a run it no longer holds
            err = result.error_in_exec
            update_manifest(run.dir, status="failed", finished=utc_now(), error=f"{type(err).__name__}: {err}")
            run.release()

    for old in [h for h in ip.events.callbacks["post_run_cell"] if getattr(h, "_moola_run", False)]:
        ip.events.unregister("post_run_cell", old)
    hook._moola_run = True
    ip.events.register("post_run_cell", hook)


def _relative(path, base: Path) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
