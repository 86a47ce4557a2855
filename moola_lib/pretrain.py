"""``python -m moola_lib.pretrain RUN_DIR [-f FILE.yaml] [-y YAML] [-p NAME VALUE]...``: the entry point of a
pretraining job, which lives in ``moola_lib.pretraining.job`` (see its docstring)."""

import sys

from moola_lib.pretraining.job import main, pretrain
from moola_lib.util import cli

__all__ = ["main", "pretrain"]

if __name__ == "__main__":
    sys.exit(cli.run(main))
