"""The package root: every public name resolves, and importing it stays cheap."""
import subprocess
import sys

import moola_lib


def test_every_public_name_resolves():
    for name in moola_lib.__all__:
        assert getattr(moola_lib, name) is not None, name


def test_import_does_not_load_torch():
    code = "import sys, moola_lib; moola_lib.load_ohlcv; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
