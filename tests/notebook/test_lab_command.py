"""``bin/dev lab``: the JupyterLab command it builds, as root and not (MOOLA_DRY_RUN=1 prints it, starts nothing)."""

import os
import shlex
import subprocess

import pytest

from moola_lib.util.paths import ROOT


def lab_command(tmp_path, uid: int, *args) -> list[str]:
    """The words of ``bin/dev lab ARGS`` with ``id -u`` answering ``uid`` (a stand-in ``id`` first on PATH)."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (fake / "id").chmod(0o755)
    env = {**os.environ, "MOOLA_DRY_RUN": "1", "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "MOOLA_VENV": "/v"}
    proc = subprocess.run(
        [str(ROOT / "bin" / "dev"), "lab", *args], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return shlex.split(proc.stdout)


@pytest.mark.parametrize("uid, root_flag", [(0, ["--allow-root"]), (1000, [])], ids=["root", "user"])
def test_lab_runs_jupyter_lab_without_a_browser_and_allows_root_only_as_root(tmp_path, uid, root_flag):
    words = lab_command(tmp_path, uid, "--ip", "0.0.0.0", "--port", "8888", "--ServerApp.token=a b")
    assert words == ["/v/bin/jupyter", "lab", "--no-browser", *root_flag, "--ip", "0.0.0.0", "--port", "8888"] + [
        "--ServerApp.token=a b"
    ]
