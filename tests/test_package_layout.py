"""The package's shape: modules of a readable size, no module reaching into another's private
names, no import cycle between modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "kmq"
#: Private modules any module may use: the compiled kernels and the numba policy.
SHARED_PRIVATE = ("kmq._kernels", "kmq._config")
MAX_LINES = 700


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports(path: Path, package: str, *, top_level_only: bool):
    """``(module imported, names taken from it)`` for each import statement of a file."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            yield base, [alias.name for alias in node.names]


def test_no_module_outside_the_kernels_is_over_700_lines():
    long = {name: n for name, path in modules().items()
            if not name.startswith("kmq._kernels")
            and (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_imports_another_modules_private_names(name):
    path = modules()[name]
    package = package_of(name, path)
    for module, names in imports(path, package, top_level_only=False):
        if not module.startswith("kmq") or module.startswith(SHARED_PRIVATE):
            continue
        private = [part for part in module.split(".") if part.startswith("_")]
        own_package = module.rpartition(".")[0] == package
        assert not private or own_package, f"{name} imports the private module {module}"
        taken = [n for n in names if n.startswith("_") and n != "__version__"]
        assert not taken or module == name, f"{name} takes {taken} from {module}"


def test_no_import_cycle_between_modules():
    every = modules()
    graph = {}
    for name, path in every.items():
        if path.name == "__init__.py":
            continue  # a package's front door imports its modules; they may import its names
        package = package_of(name, path)
        targets = set()
        for module, names in imports(path, package, top_level_only=True):
            for candidate in [module, *(f"{module}.{n}" for n in names)]:
                if candidate in every and every[candidate].name != "__init__.py":
                    targets.add(candidate)
        graph[name] = targets - {name}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt):], nxt] if nxt in trail else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
