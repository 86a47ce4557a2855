"""``python -m moola_lib.classify fit RUN_DIR ... | scan MODEL_DIR ...``: the entry point of the classifier,
which lives in ``moola_lib.classifier.cli`` (see its docstring)."""

import sys

from moola_lib.classifier.cli import main
from moola_lib.util import cli

if __name__ == "__main__":
    sys.exit(cli.run(main))
