"""``python -m moola_lib.gpu_check [OUT_DIR]`` (``bin/dev gpu-check``): the entry point of the prepared GPU
check, which lives in ``moola_lib.tools.gpu_check`` (see its docstring)."""

import sys

from moola_lib.tools.gpu_check import main
from moola_lib.util import cli

if __name__ == "__main__":
    sys.exit(cli.run(main))
