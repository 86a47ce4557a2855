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
``overwrite=True``; ``resume=True`` continues an unfinished one), and ``params.yaml`` and ``manifest.json``
are written. ``run.finish(**artifacts)`` records the artifacts, marks the run finished and releases the
claim; a cell that raises marks it failed and releases it too. In a live JupyterLab kernel ``finish`` also
has the report written at the notebook's next save (``live_report``); under the headless runner the runner
writes it, and after plain papermill ``finish`` prints the command that does. ``device="cuda"`` without a
GPU is refused here, before any data is loaded.

Nothing is deleted that moola did not write. The manifest lists the files the run wrote (``files``:
relative paths, recorded when the run finishes or fails, by the kernel and by the notebook runner for the
notebook, report.html and kernel.log it adds): every file created or changed in the run directory while
the run held it. ``overwrite`` deletes exactly the listed files of the earlier run and refuses, naming
it, a directory that holds anything else: a folder that holds no run (``$HOME/data``, ``.git`` and all),
a file of the user's, or files of a run killed before it could list them. A run directory's executed
notebooks and report.html are never deleted (the new run replaces them).

Relative paths (``run_dir``, ``data_path``, the runs root) are taken from the repository root, so a
notebook behaves the same in JupyterLab (working directory notebooks/), papermill and nbval. The runs
root is ``runs/`` unless the environment variable ``MOOLA_RUNS_DIR`` names another folder.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import datetime as dt
import os
import platform
import sys
import time
import typing
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..pretraining.checkpoints import LAST
from ..pretraining.devices import resolve_device
from ..transfer.fit_store import FOLDER as TRANSFER_FITS
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
    started_ns: int = dataclasses.field(default_factory=time.time_ns)  # files changed since are the run's
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
            since_ns=self.started_ns,
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
        started_ns = time.time_ns()
        old = check_run_dir(run_dir, notebook, overwrite=params.overwrite, resume=resume)
        if hasattr(params, "check_run_dir") and not params.overwrite:
            params.check_run_dir(run_dir)
        if resume and not params.overwrite:
            _check_unfinished(run_dir)
        _remove(run_dir, old if params.overwrite else [])
        run_files = _write_run_files(notebook, run_dir, params)
        run = Run(notebook, run_dir, params, run_files, claim, started_ns=started_ns, live=live)
    except BaseException:
        claim.release()
        raise
    _mark_failures(run)
    # the run id names this run in its executed notebook: --report accepts only this run's record there
    print(f"{notebook}: run directory {run_dir} (run {run.manifest['run_id']})")
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
        "files": sorted({"params.yaml", "manifest.json", *(previous.get("files", []) if previous else [])}),
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
    that ``overwrite`` deletes. A directory holding files of an earlier run is refused, unless ``resume``
    (kept) or ``overwrite``; one holding another notebook's run (manifest.json) is refused even with
    ``resume``: a run directory holds one kind of run. ``overwrite`` deletes only the files its manifest
    lists as the run's and refuses a directory holding any other (see the module docstring). Executed
    notebooks, report.html and the claim's lock file do not count as a run's files."""
    if not run_dir.is_dir():
        return []
    old = [p for p in run_dir.iterdir() if p.suffix != ".ipynb" and p.name not in ("report.html", LOCK_NAME)]
    if overwrite and old:
        return _listed_files(run_dir, old)
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
            + (" (or resume=True to continue it)" if _resumable(run_dir) else "")
        )
    return old


DEFAULT_ENCODER_DIR = "encoder"  # a transfer run's default encoder is pretrained there (``steps.encoder_from_params``)


def _resumable(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run that ``resume`` continues: a pretraining's last checkpoint (its own, or
    a transfer run's default encoder's) or a transfer run's finished fits."""
    return any((run_dir / p).exists() for p in (LAST, f"{DEFAULT_ENCODER_DIR}/{LAST}", TRANSFER_FITS))


def _listed_files(run_dir: Path, entries: list[Path]) -> list[Path]:
    """The files under ``entries`` (of ``run_dir``), when the run's manifest lists every one of them as
    written by it; else FileExistsError naming the first that is not: ``overwrite`` deletes nothing else."""
    listed = set(read_manifest(run_dir).get("files") or [])
    files = [p for entry in sorted(entries) for p in _files_under(entry)]
    foreign = [p for p in files if p.relative_to(run_dir).as_posix() not in listed]
    if foreign:
        raise FileExistsError(
            f"run directory {run_dir} holds {foreign[0].relative_to(run_dir)}"
            + (f" and {len(foreign) - 1} more file(s)" if len(foreign) > 1 else "")
            + ", which no moola run there recorded writing (a run's manifest.json lists its files once it "
            "finishes or fails); overwrite deletes only those, so nothing was deleted. Move it away or "
            "choose another run_dir"
        )
    return files


def _files_under(path: Path) -> list[Path]:
    """``path`` itself, or for a folder every file and symlink under it (a symlink is not followed)."""
    if path.is_symlink() or not path.is_dir():
        return [path]
    return [p for p in sorted(path.rglob("*")) if p.is_symlink() or not p.is_dir()]


def _remove(run_dir: Path, files: list[Path]) -> None:
    """Delete ``files``, then the folders of ``run_dir`` they leave empty."""
    for p in files:
        p.unlink()
    for folder in sorted({q for p in files for q in p.parents if run_dir in q.parents}, reverse=True):
        with contextlib.suppress(OSError):  # not empty: holds what overwrite does not delete
            folder.rmdir()


def written_files(run_dir: Path, since_ns: int) -> list[str]:
    """The files of ``run_dir`` (relative paths, the claim's lock file aside) created or changed since
    ``since_ns`` (``time.time_ns()``), less a second: file times come from a coarser clock."""
    since = since_ns - 1_000_000_000
    return sorted(
        p.relative_to(run_dir).as_posix()
        for p in _files_under(run_dir)
        if p.name != LOCK_NAME and p.lstat().st_mtime_ns >= since
    )


def _check_unfinished(run_dir: Path) -> None:
    """Refuse to resume a run that finished: there is nothing to continue, and its record (manifest,
    executed notebook, report) would be replaced by one of a run that did nothing."""
    manifest = read_manifest(run_dir)
    if manifest.get("status") == "finished":
        raise FileExistsError(
            f"run directory {run_dir} holds a run that finished ({manifest.get('finished')}): there is "
            "nothing to resume and its record stays as it is. Choose another run_dir (or overwrite=True "
            "to replace it)"
        )


def _run_kind(run_dir: Path) -> str | None:
    """The notebook whose run ``run_dir`` holds (manifest.json), None when it records none."""
    return read_manifest(run_dir).get("notebook")


def read_manifest(run_dir: Path) -> dict:
    """``run_dir``'s manifest.json; {} when there is none or it is no JSON object."""
    try:
        manifest = read_json(run_dir / "manifest.json")
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def update_manifest(run_dir: str | os.PathLike, *, since_ns: int | None = None, **fields) -> dict:
    """Update ``fields`` of the run's manifest.json; with ``since_ns`` (when the run started) also add the
    files it wrote since to its ``files`` (``written_files``)."""
    path = Path(run_dir) / "manifest.json"
    manifest = {**read_json(path), **fields}
    if since_ns is not None:
        manifest["files"] = sorted({*manifest.get("files", []), *written_files(Path(run_dir), since_ns)})
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
            err, when = result.error_in_exec, utc_now()
            update_manifest(
                run.dir, since_ns=run.started_ns, status="failed", finished=when, error=f"{type(err).__name__}: {err}"
            )
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
