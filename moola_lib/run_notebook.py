"""Execute a project notebook headlessly into its run directory and render its HTML report.

    python -m moola_lib.run_notebook pretrain -f params/nq_5yr.yaml -p batch_size 1024
    python -m moola_lib.run_notebook sweep -y "grid: {batch_size: [512, 1024]}" --run-dir runs/bs
    python -m moola_lib.run_notebook --report out.ipynb --run-dir runs/pretrain-20250101-120000

Parameters are given as with papermill: ``-f FILE.yaml`` and ``-y YAML`` (applied in that order, later
ones win), then ``-p NAME VALUE`` (VALUE read as papermill does: True/False/None, int, float, else a
string). notebooks/NAME.ipynb is executed into RUN_DIR/NAME.ipynb and rendered to RUN_DIR/report.html
with the code hidden. RUN_DIR comes from --run-dir, the run_dir parameter, or runs/NAME-<UTC time>.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import yaml

from .config import ConfigError, valid_names_hint
from .io import atomic_write_text
from .runs import HEADLESS_ENV, ROOT, new_run_dir, prepare_run_dir, resolve_path, update_manifest, utc_now

NOTEBOOK_DIR = ROOT / "notebooks"


def papermill_value(text: str):
    """A ``-p`` value the way papermill's CLI reads it."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def collect_parameters(files=(), yamls=(), pairs=()) -> dict:
    params = {}
    for path in files:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise SystemExit(f"{path}: a parameters file must be a YAML mapping of name: value")
        params.update(loaded)
    for text in yamls:
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise SystemExit(f"-y {text!r}: must be a YAML mapping of name: value")
        params.update(loaded)
    params.update({name: papermill_value(value) for name, value in pairs})
    return params


def render_report(notebook_path: str | os.PathLike, html_path: str | os.PathLike) -> Path:
    """HTML rendering of an executed notebook with code cells, prompts and the injected cell hidden."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    nb = nbformat.read(notebook_path, as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.register_preprocessor(_drop_tagged, enabled=True)
    # one stream per output area, "\r" updates (text progress bars) reduced to their final state
    exporter.register_preprocessor(CoalesceStreamsPreprocessor, enabled=True)
    html, _ = exporter.from_notebook_node(nb)
    return atomic_write_text(html_path, html)


def _drop_tagged(nb, resources):
    """nbconvert preprocessor: remove the parameter cells (their values are in params.yaml)."""
    nb.cells = [c for c in nb.cells
                if not {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))]
    return nb, resources


def check_names(source: Path, params: dict) -> None:
    """Reject parameters the notebook's ``parameters`` cell does not define (papermill only warns)."""
    import papermill

    valid = list(papermill.inspect_notebook(str(source)))
    for key in params:
        if key not in valid:
            raise ConfigError(f"{source.name}: unknown parameter {key!r}.{valid_names_hint(key, valid)}")


def execute(name: str, params: dict, *, run_dir: str | None = None, overwrite: bool = False,
            progress_bar: bool = True, log_output: bool = False) -> Path:
    """Run notebooks/NAME.ipynb into its run directory and render report.html; returns the run dir.

    Raises papermill.PapermillExecutionError when a cell fails (report.html is still written)."""
    import papermill

    source = NOTEBOOK_DIR / f"{name}.ipynb"
    if not source.is_file():
        known = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
        raise SystemExit(f"no notebook {source}; known: {', '.join(known)}")
    check_names(source, params)
    run_dir = resolve_path(run_dir or params.get("run_dir") or new_run_dir(name))
    overwrite = overwrite or bool(params.get("overwrite"))
    # fail before starting a kernel when the directory holds another run
    prepare_run_dir(run_dir, overwrite=overwrite, resume=bool(params.get("resume")))
    params = {**params, "run_dir": str(run_dir), **({"overwrite": True} if overwrite else {})}
    output = run_dir / f"{name}.ipynb"
    previous_env = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1"   # the kernel inherits it: Run.finish then says a report follows
    try:
        papermill.execute_notebook(str(source), str(output), parameters=params, cwd=str(ROOT),
                                   progress_bar=progress_bar, log_output=log_output)
    except papermill.PapermillExecutionError as e:
        if (run_dir / "manifest.json").exists():
            update_manifest(run_dir, status="failed", finished=utc_now(), error=f"{e.ename}: {e.evalue}")
        raise
    finally:
        if previous_env is None:
            os.environ.pop(HEADLESS_ENV, None)
        if output.exists():
            render_report(output, run_dir / "report.html")
    return run_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moola_lib.run_notebook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="notebook in notebooks/ (eda, pretrain, sweep, transfer)")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="one parameter (repeatable)")
    parser.add_argument("-f", "--parameters_file", action="append", default=[], metavar="FILE",
                        help="YAML file of parameters (repeatable)")
    parser.add_argument("-y", "--parameters_yaml", action="append", default=[], metavar="YAML",
                        help="YAML string of parameters (repeatable)")
    parser.add_argument("--run-dir", help="run directory (default: the run_dir parameter or runs/NAME-<time>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory's files")
    parser.add_argument("--no-progress", action="store_true", help="no cell progress bar")
    parser.add_argument("--log-output", action="store_true",
                        help="also print what the notebook prints (and its text progress) to the terminal")
    parser.add_argument("--report", metavar="EXECUTED.ipynb",
                        help="only render the HTML report of an executed notebook (into --run-dir if given, "
                             "which also receives a copy of the notebook; else beside the notebook)")
    args = parser.parse_args(argv)

    if args.report:
        return _report_only(Path(args.report), args.run_dir)
    if not args.name:
        parser.error("give a notebook name (or --report EXECUTED.ipynb)")
    params = collect_parameters(args.parameters_file, args.parameters_yaml, args.parameters)
    if args.log_output:   # papermill logs the kernel's output at INFO level
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log = logging.getLogger("papermill")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    import papermill

    try:
        run_dir = execute(args.name, params, run_dir=args.run_dir, overwrite=args.overwrite,
                          progress_bar=not args.no_progress, log_output=args.log_output)
    except (ConfigError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except papermill.PapermillExecutionError as e:
        print(f"error: {args.name}.ipynb failed in cell {e.exec_count}: {e.ename}: {e.evalue}", file=sys.stderr)
        return 1
    print(f"run directory: {run_dir}\nreport:        {run_dir / 'report.html'}")
    return 0


def _report_only(notebook: Path, run_dir: str | None) -> int:
    if run_dir is None:
        html = render_report(notebook, notebook.with_suffix(".html"))
    else:
        run_dir = resolve_path(run_dir)
        copy = run_dir / notebook.name
        if notebook.resolve() != copy.resolve():
            atomic_write_text(copy, notebook.read_text(encoding="utf-8"))
        html = render_report(notebook, run_dir / "report.html")
    print(f"report: {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
