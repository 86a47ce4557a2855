"""``python -m moola_lib.gpu_check [OUT_DIR]`` (``bin/dev gpu-check``): the entry point of the prepared GPU
check, which lives in ``moola_lib.tools.gpu_check`` (see its docstring)."""

import sys

from moola_lib import cli
from moola_lib.tools.gpu_check import main

if __name__ == "__main__":
    sys.exit(cli.run(main))
