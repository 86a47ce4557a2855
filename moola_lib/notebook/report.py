"""The HTML report of an executed notebook: outputs only (code cells, prompts and parameter cells hidden).

Widget views (ipywidgets: the EDA window browser, the labelling widget, live progress bars) are dropped
unless the notebook saved their state: JupyterLab does not, and nbconvert would then print the widget's
text form (``VBox(children=(IntSlider(value=0, ...``). The notebooks draw a static stand-in beside
each widget (a gallery, a text progress line), so the report loses nothing it could show.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..util.io import atomic_write_bytes, atomic_write_text


def render_report(notebook_path: str | os.PathLike, html_path: str | os.PathLike) -> Path:
    """HTML rendering of an executed notebook with code cells, prompts and the injected cell hidden."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    nb = nbformat.read(notebook_path, as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.register_preprocessor(_drop_tagged, enabled=True)
    exporter.register_preprocessor(drop_widget_views, enabled=True)
    # one stream per output area, "\r" updates (text progress bars) reduced to their final state
    exporter.register_preprocessor(CoalesceStreamsPreprocessor, enabled=True)
    html, _ = exporter.from_notebook_node(nb)
    return atomic_write_text(html_path, html)


def report_into(notebook_path: str | os.PathLike, run_dir: str | os.PathLike, name: str | None = None) -> Path:
    """Copy an executed notebook into ``run_dir`` as ``name`` (default: its own file name; no copy when it
    is that file already) and render ``run_dir/report.html`` from the copy; returns the report's path."""
    source, run_dir = Path(notebook_path), Path(run_dir)
    copy = run_dir / (name or source.name)
    if source.resolve() != copy.resolve():
        atomic_write_bytes(copy, source.read_bytes())
    return render_report(copy, run_dir / "report.html")


def _drop_tagged(nb, resources):
    """nbconvert preprocessor: remove the parameter cells (their values are in params.yaml)."""
    nb.cells = [c for c in nb.cells if not {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))]
    return nb, resources


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def drop_widget_views(nb, resources):
    """nbconvert preprocessor: remove outputs that are widget views whose state the notebook lacks."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if _renders_offline(o, state)]
    return nb, resources


def _renders_offline(output, state) -> bool:
    view = output.get("data", {}).get(WIDGET_VIEW)
    return view is None or view.get("model_id") in state
