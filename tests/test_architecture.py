"""The package's shape (README.md, "Architecture"), enforced:

    util  <-  bars  <-  features  <-  pretraining  <-  labels  <-  labelling | transfer  <-  classifier
          <-  studies  <-  notebook  <-  tools  (and the thin ``python -m`` entry modules at the top)

Each wing imports only the wings below it (``labelling`` and ``transfer`` never import each other); no
module imports itself back through a chain of imports (lazy imports inside functions count too); no module
imports another module's ``_private`` name; no function is longer than ``MAX_FUNCTION_LINES`` lines (its body
without the docstring; numba kernels exempt: one compiled loop reads best whole); at most ``MAX_TOP_MODULES``
modules lie directly in the package; the tests mirror the package's folders."""

import ast
import re
from pathlib import Path

import pytest

import moola_lib

PACKAGE = Path(moola_lib.__file__).parent
TESTS = Path(__file__).parent
LAYERS = {  # wing -> its layer; a wing imports only wings of lower layers (and itself)
    "util": 0,
    "bars": 1,
    "features": 2,
    "pretraining": 3,
    "labels": 4,
    "labelling": 5,
    "transfer": 5,
    "classifier": 6,
    "studies": 7,
    "notebook": 8,
    "tools": 9,
}
ENTRY_POINTS = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
MAX_TOP_MODULES = 7  # __init__ and the entry modules
MAX_FUNCTION_LINES = 60
WINGS = {wing: sorted((PACKAGE / wing).glob("*.py")) for wing in LAYERS}
ALL_MODULES = sorted(PACKAGE.rglob("*.py"))
WING_MODULES = [(w, p) for w, paths in WINGS.items() for p in paths]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    return module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]


def imports(source: str, package: str) -> list[tuple[str, tuple[str, ...]]]:
    """(module, imported names) of every moola_lib import in ``source`` (a module of ``package``), at any
    depth of the code, relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            found.append((".".join(x for x in (base, node.module) if x), tuple(a.name for a in node.names)))
    return [(m, n) for m, n in found if m == "moola_lib" or m.startswith("moola_lib.")]


def imported_modules(source: str, package: str) -> set[str]:
    """Every moola_lib module that ``source`` imports; ``from X import name`` also counts X.name (it may be
    a module)."""
    return {x for m, names in imports(source, package) for x in (m, *(f"{m}.{n}" for n in names))}


def wing_of(module: str) -> str | None:
    """The wing a module name belongs to (None: the package root or an entry module)."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in LAYERS else None


def wrong_imports(path: Path, wing: str) -> list[str]:
    """The imports of ``path`` (in ``wing``) that point up, or across between labelling and transfer."""
    found = imported_modules(path.read_text(encoding="utf-8"), package_of(path))
    return sorted(m for m in found if (w := wing_of(m)) and w != wing and LAYERS[w] >= LAYERS[wing])


@pytest.mark.parametrize("wing, path", WING_MODULES, ids=lambda x: x if isinstance(x, str) else x.stem)
def test_each_wing_imports_only_downwards(wing, path):
    assert wrong_imports(path, wing) == []


def test_the_top_of_the_package_holds_only_entry_modules():
    assert len(ENTRY_POINTS) + 1 <= MAX_TOP_MODULES, sorted(ENTRY_POINTS)
    for name in ENTRY_POINTS:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
        defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        assert defined == [], f"{name}.py is an entry module: it defines nothing ({defined})"


def _import_graph() -> dict[str, set[str]]:
    names = {module_name(p): p for p in ALL_MODULES}
    return {
        name: {
            m
            for m in imported_modules(path.read_text(encoding="utf-8"), package_of(path))
            if m in names and m != name and m != "moola_lib"
        }
        for name, path in names.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    assert find_cycle(_import_graph()) is None


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def private_imports(source: str, package: str) -> list[str]:
    """``module._name`` for every private name ``source`` imports from another module."""
    return [f"{m}.{n}" for m, names in imports(source, package) for n in names if n.startswith("_")]


@pytest.mark.parametrize("path", ALL_MODULES, ids=module_name)
def test_no_module_imports_a_private_name(path):
    assert private_imports(path.read_text(encoding="utf-8"), package_of(path)) == []


def long_functions(source: str) -> list[str]:
    """``name (N lines)`` of every function whose body, without its docstring, exceeds MAX_FUNCTION_LINES;
    numba kernels (decorated with ``njit`` / ``jit``) are exempt."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if any("jit" in ast.unparse(d) for d in node.decorator_list):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            body = body[1:]
        n = body[-1].end_lineno - body[0].lineno + 1 if body else 0
        if n > MAX_FUNCTION_LINES:
            found.append(f"{node.name} ({n} lines)")
    return found


@pytest.mark.parametrize("path", ALL_MODULES, ids=module_name)
def test_functions_are_short(path):
    assert long_functions(path.read_text(encoding="utf-8")) == []


def test_the_tests_mirror_the_package():
    """A test of a wing lies in ``tests/<wing>/``; only the checks of the whole package stay at the top."""
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name not in {"fixtures", "__pycache__"}}
    assert folders <= set(LAYERS) | {"entry"}, folders - set(LAYERS)
    for test_file in TESTS.rglob("test_*.py"):
        imported = re.findall(r"^\s*(?:from|import) (test_\w+)", test_file.read_text(encoding="utf-8"), re.M)
        assert imported == [], f"{test_file} imports {imported}: shared helpers go to tests/helpers.py"


def test_the_wings_exist():
    assert {"ohlcv", "sources", "splits", "windows", "synthetic", "episodes"} <= {p.stem for p in WINGS["bars"]}
    assert {"relativity", "options"} <= {p.stem for p in WINGS["features"]}
    assert {"model", "objectives", "trainer", "job", "checkpoints"} <= {p.stem for p in WINGS["pretraining"]}
    assert {"sets", "rows", "testbed", "provenance"} <= {p.stem for p in WINGS["labels"]}
    assert {"protocol", "stats", "verdict", "figures", "fits", "arms"} <= {p.stem for p in WINGS["transfer"]}
    assert {"validate", "curves", "ceiling"} <= {p.stem for p in WINGS["studies"]}
    assert {"params", "runs", "steps", "execute", "sweep"} <= {p.stem for p in WINGS["notebook"]}
    assert {"session", "store", "suggestions", "figures"} <= {p.stem for p in WINGS["labelling"]}
    assert {"bench", "gpu_check"} <= {p.stem for p in WINGS["tools"]}


@pytest.mark.parametrize(
    "source, package, wing",
    [
        ("from .notebook.runs import start_run", "moola_lib", "notebook"),
        ("from . import notebook", "moola_lib", "notebook"),
        ("def f():\n    from moola_lib.transfer.stats import corrected_t", "moola_lib", "transfer"),
        ("import moola_lib.notebook.params", "moola_lib", "notebook"),
        ("from ..notebook import steps", "moola_lib.transfer", "notebook"),
        ("from ..labelling.store import LabelStore", "moola_lib.transfer", "labelling"),
        ("from ..features.relativity import swing_points", "moola_lib.bars", "features"),
    ],
)
def test_the_check_sees_an_upward_import(source, package, wing):
    assert wing in {wing_of(m) for m in imported_modules(source, package)}


def test_the_checks_see_a_private_import_and_a_long_function():
    assert private_imports("from .rows import _check, ok", "moola_lib.labels") == ["moola_lib.labels.rows._check"]
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES + 1))
    assert long_functions(f'def f():\n    """doc"""\n{body}\n') == [f"f ({MAX_FUNCTION_LINES + 1} lines)"]
    assert long_functions(f"@njit\ndef f():\n{body}\n") == []
