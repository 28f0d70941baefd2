"""The package's imports run one way, lowest layer first (docs/architecture.md): every import of
a harness module, at module level or inside a function, names a module of its own layer or a
lower one, and no modules import each other in a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "harness"

# Lowest first.  A module belongs to the first layer one of whose prefixes it starts with.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("records", ("harness.records", "harness.limits", "harness.convergence", "harness.logs")),
    (
        "models, families, metrics",
        (
            "harness.models",
            "harness.mode",
            "harness.baselines",
            "harness.families",
            "harness.metrics",
            "harness.verdicts",
            "harness.spec",
            "harness.reference",
        ),
    ),
    ("engines", ("harness.engines",)),
    ("dispatch", ("harness.fit",)),
    ("executors", ("harness.executors", "harness.journal")),
    (
        "tracking and artifacts",
        ("harness.tracking", "harness.run_content", "harness.figures"),
    ),
    ("sweep and report", ("harness.sweep", "harness.report", "harness.vsbc")),
    ("CLI", ("harness.cli", "harness.__main__")),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def _imports(path: Path) -> set[str]:
    """Harness modules a file imports, anywhere in it (``from harness import x`` names
    ``harness.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("harness"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "harness":
                found.update(f"harness.{a.name}" for a in node.names)
            elif node.module.startswith("harness."):
                found.add(node.module)
                for a in node.names:  # `from harness.engines import svi` names a module
                    candidate = f"{node.module}.{a.name}"
                    if (ROOT.parent / candidate.replace(".", "/")).with_suffix(".py").exists():
                        found.add(candidate)
    return found


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m != "harness" and _layer(m) is None] == []


def test_imports_run_one_way():
    upward = []
    for module, path in MODULES.items():
        own = _layer(module)
        if own is None:
            continue
        for imported in _imports(path):
            theirs = _layer(imported)
            if theirs is not None and theirs > own:
                upward.append(
                    f"{module} ({LAYERS[own][0]}) imports {imported} ({LAYERS[theirs][0]})"
                )
    assert upward == []


def test_no_import_circle():
    graph = {m: {i for i in _imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}
    # A package's __init__ importing its own submodules is how a registry is built, not a
    # circle; a submodule importing its package's registry back would be.
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if node.startswith(nxt + ".") or nxt.startswith(node + "."):
                continue  # package and its own submodule
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt])
            elif state.get(nxt) is None:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert cycles == []


@pytest.mark.parametrize(
    "modules", ["harness.spec, harness.fit, harness.executors", "harness.report, harness.engines"]
)
def test_light_modules_import_no_tensorflow(modules):
    code = f"import sys, {modules}; print(any(m.startswith('tensorflow') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
