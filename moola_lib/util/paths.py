"""Where relative paths are taken from: the repository root.

A notebook runs with notebooks/ as its working directory in JupyterLab, the repository root under
papermill and nbval, and anything under ``python -m``; taking relative paths from the repository root
(``resolve_path``) makes ``data_path``, ``run_dir`` and encoder paths mean the same file in all of them.
Outside a checkout (an installed package) the root is the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # moola_lib/
ROOT = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "notebooks").is_dir() else Path.cwd()


def resolve_path(path: str | os.PathLike) -> Path:
    """An absolute path; a relative one is taken from the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else ROOT / path
