"""The package's imports form no cycle and never reach from a lower floor to a higher one.

Read with ``ast`` (nothing is imported), counting every import, also those inside functions: a lazy import
is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "unitscope"

# Floors, lowest first: a module may import its own floor or lower ones only.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("errors", "progress", "processes", "staging", "training_config", "batching", "palette", "defaults",
     "constraint_spec"),
    ("data", "stats", "capture", "layout", "models"),
    ("receptive", "perturb", "distributed"),
    ("dissection", "minimal", "rf", "evaluation", "training", "constraints"),
    ("report", "analysis", "explain", "annotate", "ablation", "see"),
    ("api", "demo", "demo_steps", "serve", "study"),
    ("cli", "__init__", "__main__"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str, modules: frozenset[str] = frozenset()) -> set[str]:
    """Every ``unitscope`` module ``path`` imports (relative imports resolved against ``name``).

    ``from pkg import sub`` counts as importing ``pkg.sub`` when that is one of ``modules``.
    """
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("unitscope"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith("unitscope"):
                subs = {f"{base}.{alias.name}" for alias in node.names} & modules
                found.update(subs or {base})
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges[name] = {target if target in modules else target.rsplit(".", 1)[0]
                       for target in imports_of(path, name, frozenset(modules))} - {name}
    return edges


def floor_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    for level, names in enumerate(FLOORS):
        if key in names:
            return level
    raise AssertionError(f"{module} is on no floor; add {key!r} to FLOORS in tests/test_imports.py")


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_walker_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from unitscope.report.html import write_html\nfrom . import errors\nimport os\n")
    assert imports_of(source, "unitscope.dissection.m") == {"unitscope.report.html", "unitscope.dissection"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " → ".join(cycle or [])


def test_no_package_import_cycle() -> None:
    packages: dict[str, set[str]] = {}
    for source, targets in graph().items():
        packages.setdefault(package_of(source), set()).update(package_of(t) for t in targets)
    for name, targets in packages.items():
        targets.discard(name)
    cycle = find_cycle(packages)
    assert cycle is None, " → ".join(cycle or [])


@pytest.mark.parametrize("floor", range(len(FLOORS)))
def test_no_import_reaches_a_higher_floor(floor: int) -> None:
    wrong = sorted(f"{source} imports {target}" for source, targets in graph().items() if floor_of(source) == floor
                   for target in targets if floor_of(target) > floor)
    assert not wrong, "\n".join(wrong)
