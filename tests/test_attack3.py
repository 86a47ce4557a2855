"""Issue 30, the third attack: nothing deleted that moola did not write. ``overwrite`` on a folder that holds
no run, ``--report`` into another run's directory, shared labels files (symlinks, modes, several labellers, a
100 MB file), reversed exclude periods, parquet times, odd names and file names, a text file as an encoder,
out-of-range seeds and sizes, ``..`` in a run directory, a resumed finished run, a curves run without a
non-neural arm. (The command lines' expected errors: tests/test_cli_errors.py.)"""

import os
import stat

import pandas as pd
import pytest

from moola_lib.models import load_encoder
from moola_lib.util.io import CheckpointError, atomic_write_bytes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

T0 = pd.Timestamp("2025-05-01T14:30:00Z")


def listing(directory) -> dict:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _add(store, k: int) -> dict:
    start = T0 + pd.Timedelta(hours=k)
    return store.add(
        start=start, end=start + pd.Timedelta(minutes=104), label="retracement", expansion_start=1, expansion_end=2
    )


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_atomic_writes_keep_the_mode_and_new_files_follow_the_umask(tmp_path):
    for mode in (0o600, 0o664):
        path = tmp_path / f"file{mode:o}"
        path.write_bytes(b"old")
        path.chmod(mode)
        atomic_write_bytes(path, b"new")
        assert stat.S_IMODE(path.stat().st_mode) == mode and path.read_bytes() == b"new"
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "new", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o640


def test_a_text_file_is_no_encoder(tmp_path):
    for text in ("abc", "hello world\n", "0 1 2\n"):
        (tmp_path / "enc.pt").write_text(text)
        with pytest.raises(CheckpointError, match="enc.pt: "):
            load_encoder(tmp_path / "enc.pt")
