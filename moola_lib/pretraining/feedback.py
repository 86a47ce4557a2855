"""What a pretraining job tells the world after each epoch, and how a terminal follows it (DESIGN.md
section 4.9).

Writing (``JobFeedback``, rank 0 only, after the epoch's checkpoints): one JSON object per epoch appended to
RUN_DIR/progress.jsonl (``PROGRESS_FILE``: the history row of ``job`` plus ``epochs``, ``best_val_loss``,
``best_epoch``, ``elapsed_seconds``, ``eta_seconds`` (an upper bound under early stopping) and
``finished``), the TensorBoard scalars (``tensorboard_log``) and an optional callback (the command line
prints ``epoch_line``). A fresh run starts progress.jsonl anew; a resumed run appends to it.

Following (``follow_progress``): a notebook executed by papermill runs in a kernel whose output never
reaches the terminal, so ``python -m moola_lib.run_notebook`` reads the file instead: a background thread
looks every second for lines appended to any progress.jsonl under the run directory (a sweep's settings
lie in sub-folders, named in front of their lines) and prints each as one ``epoch_line`` on stderr. Lines
already there when it starts (a resumed run's earlier epochs) are not repeated; an unfinished last line
waits for its end.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from ..util.io import append_line
from .config import PretrainConfig
from .tensorboard_log import TensorBoardLog

PROGRESS_FILE = "progress.jsonl"


class JobFeedback:
    """The per-epoch outputs of one job on rank 0: progress.jsonl, TensorBoard, ``on_epoch(record)``."""

    def __init__(
        self, run_dir: Path | None, tensorboard: TensorBoardLog | None, on_epoch: Callable[[dict], None] | None
    ):
        self.run_dir, self.tensorboard, self.on_epoch = run_dir, tensorboard, on_epoch

    @classmethod
    def open(cls, run_dir: Path, config: PretrainConfig, start_epoch: int, *, main: bool, on_epoch=None) -> JobFeedback:
        """``main`` False (a DDP rank other than 0): feedback that does nothing."""
        if not main:
            return cls(None, None, None)
        if start_epoch == 0:  # a fresh run: the file holds this run's epochs only
            (run_dir / PROGRESS_FILE).unlink(missing_ok=True)
        return cls(run_dir, TensorBoardLog(run_dir, config, start_epoch), on_epoch)

    def epoch(self, record: dict) -> None:
        if self.run_dir is None:
            return
        append_line(self.run_dir / PROGRESS_FILE, json.dumps(record))
        self.tensorboard.epoch(record)
        if self.on_epoch is not None:
            self.on_epoch(record)

    def finish(self, results: Mapping) -> dict:
        """Write the end of the run (TensorBoard's hyperparameters); return what training_results.json
        records of the feedback: ``tensorboard`` (the event files' folder, or "not installed")."""
        if self.tensorboard is None:
            return {}
        self.tensorboard.finish(results)
        return {"tensorboard": self.tensorboard.status}

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


# ---------------------------------------------------------------------------------------------------
# one line per epoch


def epoch_line(record: Mapping, prefix: str = "") -> str:
    """``epoch  3/15  train 0.1234  val 0.1180 (best)  4.2 s/epoch  ~51 s left`` (``done`` or ``stopped
    early`` on the last one)."""
    epoch, epochs = record["epoch"], record["epochs"]
    best = " (best)" if record["best_epoch"] == epoch else ""
    if not record["finished"]:
        end = f"~{duration(record['eta_seconds'])} left"
    else:
        end = "done" if epoch == epochs else "stopped early"
    return (
        f"{prefix}epoch {epoch:>{len(str(epochs))}}/{epochs}  train {record['train_loss']:.4f}  "
        f"val {record['val_loss']:.4f}{best}  {record['seconds']:.1f} s/epoch  {end}"
    )


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 05 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def to_terminal(line: str) -> None:
    """One line on stderr (stdout stays for results). Through ``tqdm.write``: a tqdm bar on the same terminal
    (papermill's cell bar under the notebook runner) is cleared first and drawn again below the line."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def print_epoch(record: Mapping) -> None:
    """``JobFeedback``'s callback for a command line: the epoch as one line on stderr."""
    to_terminal(epoch_line(record))


# ---------------------------------------------------------------------------------------------------
# following the files


class ProgressFollower:
    """The lines appended to the progress.jsonl files under ``root`` since the last ``poll``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.read: dict[Path, tuple[bytes, int]] = {}  # file -> (its first line, lines already read)
        for path, lines in self._files():
            if lines:
                self.read[path] = (lines[0], len(lines))

    def _files(self) -> Iterator[tuple[Path, list[bytes]]]:
        """Each progress.jsonl under root with its complete lines; one that vanishes meanwhile is skipped."""
        try:
            paths = sorted(self.root.rglob(PROGRESS_FILE))
        except OSError:  # the tree changed under the walk: look again at the next poll
            return
        for path in paths:
            try:
                data = path.read_bytes()  # small: one line per epoch
            except OSError:
                continue
            yield path, data.split(b"\n")[:-1]

    def poll(self) -> list[str]:
        """The new lines as ``epoch_line``s; a file whose first line changed (a new run in the same
        folder) is read from its start."""
        out = []
        for path, lines in self._files():
            first, done = self.read.get(path, (None, 0))
            if lines and lines[0] != first:
                done = 0
            self.read[path] = (lines[0] if lines else None, len(lines))
            folder = path.parent.relative_to(self.root).as_posix()
            prefix = "" if folder == "." else f"{folder}: "
            for raw in lines[done:]:
                with contextlib.suppress(ValueError, KeyError, TypeError):  # never stop a run over a display
                    out.append(epoch_line(json.loads(raw), prefix))
        return out


@contextlib.contextmanager
def follow_progress(
    root: str | Path, *, enabled: bool = True, interval: float = 1.0, write: Callable[[str], None] = to_terminal
):
    """While the block runs, ``write`` each new epoch line of the jobs under ``root`` (see the module's
    docstring); the last ones are written when the block ends, however it ends."""
    if not enabled:
        yield
        return
    follower, stop = ProgressFollower(root), threading.Event()

    def loop():
        while not stop.wait(interval):
            for line in follower.poll():
                write(line)

    thread = threading.Thread(target=loop, name="moola-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        for line in follower.poll():
            write(line)
