"""``python -m moola_lib.bench [--quick] [--json PATH]``: the entry point of the benchmark, which lives in
``moola_lib.tools.bench`` (see its docstring)."""

import sys

from moola_lib.tools.bench import main
from moola_lib.util import cli

if __name__ == "__main__":
    sys.exit(cli.run(main))
