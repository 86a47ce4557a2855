"""The package root: every public name resolves, and importing it stays cheap."""

import subprocess
import sys
from pathlib import Path

import moola_lib


def test_every_public_name_resolves():
    for name in moola_lib.__all__:
        assert getattr(moola_lib, name) is not None, name


def test_import_does_not_load_torch():
    code = "import sys, moola_lib; moola_lib.load_ohlcv; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_relative_paths_are_taken_from_the_repository_root():
    from moola_lib.util.paths import ROOT, resolve_path

    assert ROOT == Path(moola_lib.__file__).resolve().parents[1]
    assert resolve_path("notebooks/pretrain.ipynb").is_file()
