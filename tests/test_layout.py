"""Package layout rules: no import cycle between sublim's parts, and the core never loads torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sublim

PACKAGE = Path(sublim.__file__).parent
SUBPACKAGES = ("concepts", "tasks", "training", "probes")


def part(module: str) -> str | None:
    """The graph node of a dotted module name: its subpackage or top-level module; "sublim" for the root."""
    names = module.split(".")
    if names[0] != "sublim":
        return None
    return names[1] if len(names) > 1 else "sublim"


def module_name(path: Path) -> str:
    names = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(names[:-1] if names[-1] == "__init__" else names)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from sublim import tasks` imports the subpackage; `from sublim import match` the root
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if (PACKAGE.parent / sub.replace(".", "/")).exists() else module)
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = part(module_name(path))
        assert source is not None
        graph.setdefault(source, set())
        for module in imported_modules(path):
            target = part(module)
            if target is not None and target != source:
                graph[source].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_function_local_and_relative_imports() -> None:
    graph = import_graph()
    assert set(SUBPACKAGES) <= set(graph)
    assert "probability" in graph["tasks"]  # imported inside a solver function only
    assert "training" in graph["probes"]  # function-local too
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_subpackages_and_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_import_sublim_and_the_cli_load_no_torch() -> None:
    code = (
        "import sys, sublim, sublim.cli, sublim._registry\n"
        "from sublim.cli import build_parser, main\n"
        "build_parser()\n"
        "main(['match', '-t', 'owl', 'owl'])\n"
        "assert callable(sublim.compare) and sublim.GateResult and sublim.analyze and sublim.SweepConfig\n"
        "heavy = sorted({'torch', 'transformers', 'peft', 'datasets', 'lm_eval', 'ray'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_the_served_probability_path_loads_no_torch() -> None:
    """`sublim.probability` keeps torch inside the functions that run a local model: importing it (the
    served engine and the whole-word core included) loads no torch."""
    code = (
        "import asyncio, sys\n"
        "from sublim.probability import Reply, ServedScorer, whole_words, ends_word\n"
        "assert ends_word(' monkey') and not ends_word('-like') and not ends_word('let')\n"
        "assert 'torch' not in sys.modules, 'torch'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_no_module_over_500_lines_and_no_function_over_80() -> None:
    """Issue #24's size limits for sublim/, checked so they hold."""
    root = Path(__file__).resolve().parent.parent / "sublim"
    long_modules, long_functions = [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 500:
            long_modules.append(str(path.relative_to(root)))
        for node in ast.walk(ast.parse(text)):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and (node.end_lineno or node.lineno) - node.lineno + 1 > 80:
                long_functions.append(f"{path.relative_to(root)}:{node.name}")
    assert long_modules == [] and long_functions == []
