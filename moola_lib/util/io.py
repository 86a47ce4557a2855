"""Small shared I/O helpers: atomic writes (bytes, text, JSON, torch objects), appending a line to a log
file, JSON reading, and the one reader of torch files (``load_torch_file``: weights only, and a broken or
unsafe file is a one-line ``CheckpointError`` naming the file and what is wrong with it)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


class FileWriteError(OSError):
    """A file could not be written (disk full, no permission, read-only file system): the message names
    the file and says that its previous content, if any, is unchanged."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old file or the new one, never half.
    An OSError on the way is a FileWriteError naming the file (the old file stays as it was)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, FileWriteError):
            raise _write_error(path, e) from None
        raise
    return path


def _write_error(path: Path, error: OSError) -> FileWriteError:
    kept = "its previous content is unchanged" if path.exists() else "nothing was written"
    out = FileWriteError(
        f"cannot write {path}: {error.strerror or error}; {kept}. Free disk space or fix "
        "the permissions, then run again"
    )
    out.errno = error.errno
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (numpy scalars and paths are converted)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


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
    except (EOFError, RuntimeError, KeyError, OSError, ValueError) as e:
        # torch reports a cut-off zip as RuntimeError, a cut-off legacy pickle as EOFError, foreign bytes as
        # KeyError/ValueError or EINVAL: all mean the bytes are not a complete torch file
        raise CheckpointError(
            f"{path}: truncated or corrupt, not a complete torch file ({type(e).__name__}: {_first_sentence(e)})"
        ) from None


def _first_sentence(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return (text.split(". ")[0] or repr(error))[:160]


def _json_default(o: Any) -> Any:
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
