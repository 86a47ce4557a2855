"""Conventions shared by the command lines (every ``python -m moola_lib...`` command: run_notebook, pretrain,
bench, gpu_check, tools.contention, transfer.validate, transfer.curves, transfer.ceiling,
labelling.study): the papermill-style parameter flags and one policy for expected errors.

An expected error is the user's to fix: an unknown parameter or a value of the wrong type
(ConfigError), a data file that fails validation (DataValidationError,
like every ``util.errors.ExpectedError``), a run directory that already
holds a run or is in use (FileExistsError) or cannot be written (RunDirError), a file that is not there
(FileNotFoundError), a broken checkpoint (CheckpointError), training stopped by a non-finite loss
(FloatingPointError), a file that cannot be written, e.g. on a full disk (FileWriteError). The command
prints it as one line ``error: ...`` on stderr and exits with status 2, with no traceback; under torchrun
only rank 0 prints it (every rank exits 2). Anything else is a bug and keeps its traceback. A warning is
one line ``warning: ...`` on stderr too (not Python's two lines with the source line that raised it).
A usage error (an unknown flag, a value argparse cannot convert) is one line ``error: ...`` too, with
exit status 2 (``ArgumentParser``). A command checks its options and its output paths
(``util.io.check_writable``) before the work, so that a typo does not cost the results of a long run.
Library code only raises; the ``__main__`` blocks of the commands call ``run``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from .config import ConfigError, read_parameters
from .errors import ExpectedError
from .io import CheckpointError, FileWriteError
from .rundir import RunDirError

EXPECTED_ERRORS = (
    ExpectedError,  # DataValidationError and every other wing's own (util.errors)
    ConfigError,
    FileExistsError,
    FileNotFoundError,
    RunDirError,
    CheckpointError,
    FloatingPointError,
    FileWriteError,
)
USAGE_ERROR = 2  # the exit status of argparse's own usage errors too


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with its usage errors in the form of the other expected errors: one line
    ``error: ...`` on stderr (pointing to --help instead of printing the usage), exit status 2."""

    def error(self, message: str):
        if os.environ.get("RANK", "0") == "0":  # torchrun: one line, not one per process
            print(error_line(f"{self.prog}: {message} (see --help)"), file=sys.stderr)
        self.exit(USAGE_ERROR)


def add_parameter_flags(parser: argparse.ArgumentParser, *, what: str = "parameter") -> None:
    """``-f FILE.yaml`` / ``-y YAML`` / ``-p NAME VALUE`` (each repeatable), read by ``parameters``."""
    parser.add_argument(
        "-f",
        "--parameters_file",
        dest="files",
        action="append",
        default=[],
        metavar="FILE",
        help=f"YAML file of {what}s (repeatable; later ones win)",
    )
    parser.add_argument(
        "-y",
        "--parameters_yaml",
        dest="yamls",
        action="append",
        default=[],
        metavar="YAML",
        help=f"YAML string of {what}s (repeatable)",
    )
    parser.add_argument(
        "-p",
        "--parameters",
        dest="pairs",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help=f"one {what} (repeatable)",
    )


def parameters(args: argparse.Namespace) -> dict:
    """The parameters given by the flags of ``add_parameter_flags``: files, then -y, then -p."""
    return read_parameters(args.files, args.yamls, args.pairs)


def expected_error_names() -> set[str]:
    """Names of the expected errors and of their subclasses (RunDirBusyError, LabelsFileError, ...): an
    error raised inside a notebook reaches the runner as its class name only."""
    names, todo = set(), list(EXPECTED_ERRORS)
    while todo:
        cls = todo.pop()
        if cls.__name__ not in names:
            names.add(cls.__name__)
            todo.extend(cls.__subclasses__())
    return names


def error_line(error: object) -> str:
    """The one line printed for an expected error (a multi-line message is folded into one)."""
    return "error: " + " ".join(str(error).split())


def run(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)``; an expected error becomes one line on stderr and exit status 2. An int
    returned by ``main`` is its exit status; anything else means success (0). Warnings are one line each."""
    with warnings.catch_warnings():  # restores the default display afterwards
        warnings.showwarning = _warning_line
        try:
            result = main(argv)
        except EXPECTED_ERRORS as e:
            if os.environ.get("RANK", "0") == "0":  # torchrun: one line, not one per process
                print(error_line(e), file=sys.stderr)
            return USAGE_ERROR
    return result if isinstance(result, int) else 0


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print("warning: " + " ".join(str(message).split()), file=file or sys.stderr)
