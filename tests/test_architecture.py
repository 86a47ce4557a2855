"""The three layers import only downwards: pipeline <- evaluation (moola_lib.transfer) <- notebook layer
(moola_lib.notebook). Entry modules (``python -m moola_lib.run_notebook``, the GPU check) may import any layer."""
import ast
from pathlib import Path

import pytest

import moola_lib

PACKAGE = Path(moola_lib.__file__).parent
ENTRY_POINTS = {"run_notebook.py", "gpu_check.py"}
PIPELINE = sorted(p for p in PACKAGE.glob("*.py") if p.name not in ENTRY_POINTS | {"__init__.py"})
EVALUATION = sorted((PACKAGE / "transfer").glob("*.py"))
NOTEBOOK_LAYER = sorted((PACKAGE / "notebook").glob("*.py"))


def imported_modules(source: str, package: str) -> set[str]:
    """Every moola_lib module that ``source`` (a module of ``package``) imports, at any depth of the code,
    relative imports resolved; ``from X import name`` also counts X.name (it may be a module)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(x for x in (base, node.module) if x)
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return {m for m in found if m == "moola_lib" or m.startswith("moola_lib.")}


def upward(path: Path, package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imported_modules(path.read_text(encoding="utf-8"), package)
                  if m.startswith(forbidden))


@pytest.mark.parametrize("path", PIPELINE, ids=[p.stem for p in PIPELINE])
def test_pipeline_imports_neither_evaluation_nor_notebook_layer(path):
    assert upward(path, "moola_lib", ("moola_lib.transfer", "moola_lib.notebook")) == []


@pytest.mark.parametrize("path", EVALUATION, ids=[p.stem for p in EVALUATION])
def test_evaluation_does_not_import_the_notebook_layer(path):
    assert upward(path, "moola_lib.transfer", ("moola_lib.notebook",)) == []


def test_the_layers_exist_and_the_notebook_layer_uses_them():
    assert {"config", "data", "features", "models", "pretrain"} <= {p.stem for p in PIPELINE}
    assert {"protocol", "stats", "verdict", "provenance", "figures"} <= {p.stem for p in EVALUATION}
    assert {"params", "runs", "steps", "execute", "sweep"} <= {p.stem for p in NOTEBOOK_LAYER}


@pytest.mark.parametrize("source, package", [
    ("from .notebook.runs import start_run", "moola_lib"),
    ("from . import notebook", "moola_lib"),
    ("def f():\n    from moola_lib.transfer.stats import corrected_t", "moola_lib"),
    ("import moola_lib.notebook.params", "moola_lib"),
    ("from ..notebook import steps", "moola_lib.transfer"),
])
def test_the_check_sees_an_upward_import(source, package):
    modules = imported_modules(source, package)
    assert any(m.startswith(("moola_lib.notebook", "moola_lib.transfer")) for m in modules), modules
    assert not imported_modules("from .data import run_bars\nimport numpy", "moola_lib") & {
        "moola_lib.notebook", "moola_lib.transfer"}
