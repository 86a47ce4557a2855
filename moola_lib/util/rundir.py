"""One run directory, one writer: a run claims its directory before it writes anything there.

``claim_run_dir(path)`` creates the directory if needed and takes an exclusive ``flock`` on
``path/.moola-lock``, held until ``release()`` (or the end of the ``run_dir_claim`` block). A second
process that claims the same directory while the first holds it gets ``RunDirBusyError`` (a
FileExistsError) naming the holder, and has touched nothing there. The kernel drops a ``flock`` when its
process ends, however it ends: the lock file that a killed run leaves behind is held by nobody, so it is
recognisably stale and the next claim takes it over (with a warning naming the dead holder).

Claims nest: within a process a second claim of a held directory is counted, not refused
(pretrain.ipynb claims its run directory in ``start_run``, then ``pretrain()`` claims it again). A child
process may run under its parent's claim (the notebook runner claims the directory, then starts the
kernel that runs the notebook's ``start_run``): ``Claim.env()`` names the claim in the environment
variable ``MOOLA_RUN_CLAIMS`` (JSON: run directory -> token, so any path works, ``:`` included). The
claim is inherited only when (1) the lock file holds that token, (2) its holder is alive on this host
and an ancestor of the claimant (reading the world-readable lock file gives an unrelated process
nothing), and (3) no other process is running under the same claim: the one that inherits it holds an
exclusive ``flock`` on the run directory itself until it releases, so a subprocess that a notebook
starts on its own run directory while it writes there is refused (one writer, even within one tree).

A directory that cannot be created or written is ``RunDirError``, raised before any work is done.
Releasing a claim that created the directory removes it again when nothing was written into it, so a
refused run leaves no empty run directory behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import sys
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LOCK_NAME = ".moola-lock"
CLAIMS_ENV = "MOOLA_RUN_CLAIMS"


class RunDirError(ValueError):
    """A run directory that cannot be created or written (a file in the way, no permission, ...)."""


class RunDirBusyError(FileExistsError):
    """Another live process holds the run directory."""


@dataclass
class Claim:
    path: Path
    token: str
    fd: int | None = None  # the lock file (this process holds the claim) or, inherited, the directory
    created: list[Path] = field(default_factory=list)  # directories this claim created, deepest first
    count: int = 1
    inherited: bool = False  # run under an ancestor's claim (which keeps the lock file)

    def env(self) -> dict[str, str]:
        """The environment a child process needs to run under this claim."""
        return {CLAIMS_ENV: json.dumps({**_env_claims(), str(self.path): self.token})}

    def release(self) -> None:
        """Drop one level of the claim; the last one unlocks, removes the lock file (not an inherited
        claim's: its holder's) and, if this claim created the directory and nothing was written into it,
        the directory."""
        self.count -= 1
        if self.count > 0:
            return
        _HELD.pop(self.path, None)
        if self.fd is not None:
            if not self.inherited:
                with contextlib.suppress(FileNotFoundError):
                    (self.path / LOCK_NAME).unlink()  # while still locked: no other claim sees a half state
            os.close(self.fd)
            self.fd = None
        _remove_empty(self.created)


def _remove_empty(directories) -> None:
    """Remove the directories a claim created, innermost first, where nothing was written into them."""
    for directory in directories:
        with contextlib.suppress(OSError):  # not empty: the run wrote something, keep it
            directory.rmdir()


_HELD: dict[Path, Claim] = {}


def claim_run_dir(run_dir: str | os.PathLike) -> Claim:
    """Claim ``run_dir`` for this process (see the module docstring); ``release()`` the result."""
    path = Path(os.path.abspath(run_dir))
    if path in _HELD:
        _HELD[path].count += 1
        return _HELD[path]
    claim = _inherited_claim(path)
    if claim is None:
        created = _make_dirs(path)
        try:
            claim = _lock(path, created)
        except BaseException:
            _remove_empty(created)
            raise
    _HELD[path] = claim
    return claim


@contextlib.contextmanager
def run_dir_claim(run_dir: str | os.PathLike, *, enabled: bool = True) -> Iterator[Claim | None]:
    """``claim_run_dir`` for the length of a ``with`` block (nothing when not ``enabled``)."""
    if not enabled:
        yield None
        return
    claim = claim_run_dir(run_dir)
    try:
        yield claim
    finally:
        claim.release()


def _env_claims() -> dict[str, str]:
    try:
        claims = json.loads(os.environ.get(CLAIMS_ENV) or "{}")
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _inherited_claim(path: Path) -> Claim | None:
    """The claim of an ancestor process on ``path`` that this process may run under (see the module
    docstring); None when there is none, RunDirBusyError when another process already runs under it."""
    token = _env_claims().get(str(path))
    holder = _holder(path / LOCK_NAME) if token else {}
    if not (
        token
        and holder.get("token") == token
        and holder.get("host") == socket.gethostname()
        and holder.get("pid") in _ancestors()
    ):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunDirBusyError(
            f"run directory {path} is in use by another process running under the same "
            f"claim ({_describe(holder)}); nothing in it was touched. One writer per run "
            "directory: give this job its own run_dir"
        ) from None
    return Claim(path, token, fd, inherited=True)


def _ancestors() -> set[int]:
    """Process ids of this process's parent, its parent, ... (from /proc; the parent alone without it)."""
    out, pid = set(), os.getppid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])  # field 4, after the command in ()
        except (OSError, ValueError, IndexError):
            break
    return out


def _make_dirs(path: Path) -> list[Path]:
    """Create ``path`` and missing parents; return the ones created, deepest first."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run_dir {path}: exists and is not a directory; choose another run_dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(
            f"run_dir {path}: cannot be created ({e.strerror or e}"
            f"{': ' + str(e.filename) if e.filename else ''}); choose another run_dir"
        ) from None
    return [p for p in missing if p.exists()]


def _lock(path: Path, created: list[Path]) -> Claim:
    """Take the lock file's flock (retrying if a releasing holder unlinked the file under us)."""
    lock = path / LOCK_NAME
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise RunDirError(
                f"run_dir {path}: cannot be written ({e.strerror or e}); choose another run_dir"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(lock)
            os.close(fd)
            raise RunDirBusyError(
                f"run directory {path} is in use by another run ({_describe(holder)}); "
                "nothing in it was touched. Wait for that run to end or choose another "
                "run_dir"
            ) from None
        if os.path.exists(lock) and os.stat(lock).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)  # we locked a file its holder had just removed: take the new one
    stale = _holder(lock)
    if stale:
        warnings.warn(
            f"run directory {path}: taking over a stale lock left by a run that ended without "
            f"releasing it ({_describe(stale)}; killed or crashed?)",
            stacklevel=3,
        )
    token = uuid.uuid4().hex
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "token": token,
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:300],
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    return Claim(path, token, fd, created)


def _holder(lock: Path) -> dict:
    try:
        return json.loads(lock.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "holder unknown"
    return (
        f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: "
        f"{holder.get('command', '?')}"
    )
