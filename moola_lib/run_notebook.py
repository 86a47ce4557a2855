"""``python -m moola_lib.run_notebook NAME [-f FILE.yaml] [-y YAML] [-p NAME VALUE]...``: the entry point
of the headless notebook runner, which lives in ``moola_lib.notebook.execute`` (see its docstring)."""

import sys

from moola_lib.notebook.execute import main

if __name__ == "__main__":
    sys.exit(main())
