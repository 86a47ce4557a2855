"""The wings import only downwards (README.md, "Architecture"):

    util  <-  pipeline (moola_lib/*.py)  <-  labelling (moola_lib.labelling)
                                         <-  evaluation (moola_lib.transfer)
          <-  notebook layer (moola_lib.notebook)  <-  tools (moola_lib.tools) and the entry modules

``util`` imports no other wing; the pipeline imports neither the labelling wing nor the evaluation wing;
those two do not import each other; nothing but the tools and the entry modules imports the tools; and no
module imports itself back through a chain of imports (lazy imports inside functions count too)."""

import ast
from pathlib import Path

import pytest

import moola_lib

PACKAGE = Path(moola_lib.__file__).parent
ENTRY_POINTS = {"run_notebook.py", "gpu_check.py", "bench.py"}
PIPELINE = sorted(p for p in PACKAGE.glob("*.py") if p.name not in ENTRY_POINTS | {"__init__.py"})
WINGS = {wing: sorted((PACKAGE / wing).glob("*.py")) for wing in ("util", "labelling", "transfer", "notebook", "tools")}
ALL_MODULES = sorted(PACKAGE.rglob("*.py"))
FORBIDDEN = {  # wing -> the wings it must not import
    "util": ("pipeline", "labelling", "transfer", "notebook", "tools"),
    "pipeline": ("labelling", "transfer", "notebook", "tools"),
    "labelling": ("transfer", "notebook", "tools"),
    "transfer": ("labelling", "notebook", "tools"),
    "notebook": ("tools",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, package: str) -> set[str]:
    """Every moola_lib module that ``source`` (a module of ``package``) imports, at any depth of the code,
    relative imports resolved; ``from X import name`` also counts X.name (it may be a module)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(x for x in (base, node.module) if x)
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return {m for m in found if m == "moola_lib" or m.startswith("moola_lib.")}


def wing_of(module: str) -> str | None:
    """The wing a module name belongs to (None: the package root, an entry module or not a module)."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in WINGS:
        return parts[1]
    if len(parts) == 2 and (PACKAGE / f"{parts[1]}.py").exists() and f"{parts[1]}.py" not in ENTRY_POINTS:
        return "pipeline"
    return None


def wrong_imports(path: Path, wing: str) -> list[str]:
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    return sorted(
        m for m in imported_modules(path.read_text(encoding="utf-8"), package) if wing_of(m) in FORBIDDEN[wing]
    )


@pytest.mark.parametrize("path", PIPELINE, ids=[p.stem for p in PIPELINE])
def test_pipeline_imports_no_wing_above_it(path):
    assert wrong_imports(path, "pipeline") == []


@pytest.mark.parametrize(
    "wing, path",
    [(w, p) for w, paths in WINGS.items() if w in FORBIDDEN for p in paths],
    ids=lambda x: x if isinstance(x, str) else f"{x.parent.name}.{x.stem}",
)
def test_each_wing_imports_only_downwards(wing, path):
    assert wrong_imports(path, wing) == []


def _import_graph() -> dict[str, set[str]]:
    names = {module_name(p): p for p in ALL_MODULES}
    graph = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = {
            m
            for m in imported_modules(path.read_text(encoding="utf-8"), package)
            if m in names and m != name and m != "moola_lib"
        }
    return graph


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


def test_the_wings_exist():
    assert {"config", "data", "features", "models", "pretrain", "testbed"} <= {p.stem for p in PIPELINE}
    assert {"protocol", "stats", "verdict", "figures"} <= {p.stem for p in WINGS["transfer"]}
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
        ("from ..features import swing_points", "moola_lib.util", "pipeline"),
    ],
)
def test_the_check_sees_an_upward_import(source, package, wing):
    assert wing in {wing_of(m) for m in imported_modules(source, package)}
    assert {wing_of(m) for m in imported_modules("from .data import run_bars\nimport numpy", "moola_lib")} <= {
        "pipeline",
        None,
    }
