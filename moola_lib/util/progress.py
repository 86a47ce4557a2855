"""Progress bars that read well both in JupyterLab and in headless runs.

In a live notebook ``tqdm.auto`` draws a widget. A headless run (papermill, ``moola_lib.run_notebook``)
has no widget front end: the widget would show as a stale "0/N" in the saved notebook and as nothing in
an offline HTML report, so there a plain text bar is used, updated in place with carriage returns (the
report renderer keeps its final line only).
"""

from __future__ import annotations

import os

TEXT_PROGRESS_ENV = "MOOLA_TEXT_PROGRESS"  # set by start_run in a notebook executed by papermill


def progress_bar(**kwargs):
    """A tqdm bar: text when headless (or outside a notebook), a widget in a live notebook."""
    if os.environ.get(TEXT_PROGRESS_ENV):
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(**kwargs)
