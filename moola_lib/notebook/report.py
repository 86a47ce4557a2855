"""The HTML report of an executed notebook: outputs only (code cells, prompts and parameter cells hidden)."""
from __future__ import annotations

import os
from pathlib import Path

from ..io import atomic_write_text


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
