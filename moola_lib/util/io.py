"""Small shared I/O helpers: atomic writes (bytes, text, JSON, tables, torch objects) that keep the replaced
file's mode and write through symlinks, appends and truncations in place (``append_bytes``, ``truncate_file``:
for a labels file too large to rewrite at every click; ``append_line``: one line to a log file), the temp
files a killed writer leaves (``temp_files``), the check of an output path before the work
(``check_writable``), JSON and table reading, and the one reader of torch files (``load_torch_file``:
weights only, and a broken or unsafe file is a one-line ``CheckpointError`` naming the file and what is wrong
with it)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
import struct
from pathlib import Path
from typing import Any


class FileWriteError(OSError):
    """A file could not be written (disk full, no permission, read-only file system): the message names
    the file and says that its previous content, if any, is unchanged."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old file or the new one, never half.

    A symlink is written through: its target is replaced and the link stays a link (a labels file shared
    by linking it into each person's folder stays shared). The new file keeps the mode of the file it
    replaces (a private 0600 file stays private, a group-writable one group-writable) and, where the
    writer may set it, its group; a new file gets 0666 less the umask, as ``open`` would give it. An
    OSError on the way is a FileWriteError naming the file (the old file stays as it was). ``durable=False``
    skips the flush to disk before the rename (a cache written hundreds of times a run: after a power cut the
    file may be empty or gone, which its reader must treat as missing)."""
    path = Path(path)
    target = Path(os.path.realpath(path))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(target)
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            keep_group_and_mode(f.fileno(), target)
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, FileWriteError):
            raise _write_error(path, e) from None
        raise
    return path


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new temp file beside ``path`` named ``.NAME.<random>.tmp`` (``temp_files`` finds them)."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp  # the umask applies
        except FileExistsError:
            continue


def keep_group_and_mode(fd: int, path: str | os.PathLike) -> None:
    """Give the open file ``fd`` the mode and, where this user may set it, the group of the file ``path``
    (nothing when there is no such file)."""
    try:
        old = os.stat(path)
    except FileNotFoundError:
        return  # a new file: os.open gave it 0666 less the umask
    if old.st_gid != os.fstat(fd).st_gid:
        with contextlib.suppress(PermissionError):  # only a member of the group may hand the file to it
            os.fchown(fd, -1, old.st_gid)
    os.fchmod(fd, stat.S_IMODE(old.st_mode))  # after fchown, which may clear the set-group-id bit


def append_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Append ``data`` to the existing file ``path`` in place (``O_APPEND``, then fsync): what it costs does
    not depend on the file's size, unlike ``atomic_write_bytes``. Not atomic: a crash in the middle can
    leave part of ``data`` at the end. A write that fails (disk full) is taken back, leaving the file as it
    was, and raised as FileWriteError."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError as e:
        raise _write_error(path, e) from None
    size = os.fstat(fd).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise _write_error(path, e) from None
    finally:
        os.close(fd)
    return path


def truncate_file(path: str | os.PathLike, size: int) -> Path:
    """Cut the file ``path`` to its first ``size`` bytes in place (then fsync)."""
    path = Path(path)
    try:
        with open(path, "r+b") as f:
            f.truncate(size)
            os.fsync(f.fileno())
    except OSError as e:
        raise _write_error(path, e) from None
    return path


def temp_files(path: str | os.PathLike) -> list[Path]:
    """The temp files of ``path``'s unfinished atomic writes (a killed writer leaves one). The random part
    of the name holds no dot, so the temp files of another file (``a.csv.b.csv`` beside ``a.csv``) never
    match."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[^.]+\.tmp")
    return [p for p in path.parent.glob(".*.tmp") if pattern.fullmatch(p.name)]


def check_writable(path: str | os.PathLike) -> Path:
    """Raise FileWriteError unless ``atomic_write_bytes`` could write ``path``: not a folder, and the
    nearest folder of it that exists takes files. Commands check their output paths with it before the
    work, so that a mistyped path does not lose the results at the end; nothing is created."""
    path = Path(os.path.abspath(path))
    folder = path.parent
    while not folder.exists() and not folder.is_symlink():
        folder = folder.parent
    if path.is_dir():
        problem = "it is a folder"
    elif not folder.is_dir():
        problem = f"{folder} is not a folder"
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = f"no permission to write in {folder}"
    else:
        return path
    raise FileWriteError(f"cannot write {path}: {problem}; nothing was run. Choose another path")
    return path


def _write_error(path: Path, error: OSError) -> FileWriteError:
    kept = "its previous content is unchanged" if path.exists() else "nothing was written"
    out = FileWriteError(
        f"cannot write {path}: {error.strerror or error}; {kept}. Free disk space or fix "
        "the permissions, then run again"
    )
    out.errno = error.errno
    return out


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (numpy scalars and paths are converted)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=json_default) + "\n")


def append_line(path: str | os.PathLike, line: str) -> Path:
    """Append ``line`` and a newline to ``path`` in one write, flushed: a reader polling the file sees whole
    lines, plus at most one unfinished last line it should leave for later. An OSError is a FileWriteError."""
    path = Path(path)
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
    except OSError as e:
        raise _write_error(path, e) from None
    return path


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


TABLE_SUFFIXES = (".csv", ".parquet")  # the formats of ``atomic_write_table`` / ``read_table``, by suffix


def table_suffix(path: str | os.PathLike) -> str:
    """The table format of ``path`` (its lower-cased suffix, one of TABLE_SUFFIXES); ValueError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: a table file must end in {' or '.join(TABLE_SUFFIXES)}, not {suffix or 'nothing'!r}")
    return suffix


def atomic_write_table(path: str | os.PathLike, frame) -> Path:
    """Atomically write a pandas DataFrame (without its index) as CSV or parquet, by the path's suffix."""
    import io

    if table_suffix(path) == ".csv":
        return atomic_write_text(path, frame.to_csv(index=False))
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())


def read_table(path: str | os.PathLike):
    """A CSV or parquet file (by its suffix) as a pandas DataFrame; CSV floats read back exactly as written."""
    import pandas as pd

    if table_suffix(path) == ".csv":
        return pd.read_csv(path, float_precision="round_trip")  # the fast default parser may miss by an ulp
    return pd.read_parquet(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temp file + ``os.replace``."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


class CheckpointError(ValueError):
    """A checkpoint or encoder file that cannot be used: missing, empty, truncated or corrupt, holding
    pickled code, or not the kind of moola file expected. The message names the file."""


def load_torch_file(path: str | os.PathLike, *, map_location="cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with every way a file can be broken turned into one
    CheckpointError: no pickled code ever runs, and torch's advice to retry with weights_only=False
    (which would run it) is not passed on."""
    import pickle

    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{path}: the file is empty (0 bytes); it was never completely written (interrupted copy?)"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))
        if found:
            raise CheckpointError(
                f"{path}: refused: it holds pickled Python objects ({found.group(1)}) that would "
                "run code when loaded; moola files hold only tensors and plain values, so this "
                "one was not written by moola or was altered"
            ) from None
        raise CheckpointError(
            f"{path}: refused: not a file written by torch.save, or one that only the full pickle "
            "loader (which can run code) could read; corrupt, or not a moola file"
        ) from None
    except (EOFError, RuntimeError, KeyError, IndexError, OSError, ValueError, struct.error) as e:
        # torch reports a cut-off zip as RuntimeError, a cut-off legacy pickle as EOFError, foreign bytes (a
        # text file) as KeyError/IndexError/ValueError/struct.error or EINVAL: all mean the bytes are not a
        # complete torch file
        raise CheckpointError(
            f"{path}: truncated or corrupt, not a complete torch file ({type(e).__name__}: {_first_sentence(e)})"
        ) from None


def _first_sentence(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return (text.split(". ")[0] or repr(error))[:160]


def json_default(o: Any) -> Any:
    """``json.dumps``' default: numpy scalars and arrays, paths and dates as JSON values."""
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
