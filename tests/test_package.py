"""The package as a user installs it: public names, light import, command line, type information."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import wsgimon


def test_all_is_honest() -> None:
    for name in wsgimon.__all__:
        assert hasattr(wsgimon, name), name
    public = {name for name in vars(wsgimon) if not name.startswith("_")} - {"annotations"}
    modules = {name for name in public if type(getattr(wsgimon, name)).__name__ == "module"}
    assert public - modules <= set(wsgimon.__all__)


def test_import_loads_no_framework_scheduler_or_database_driver() -> None:
    modules = "('flask', 'apscheduler', 'httpx', 'psycopg')"
    code = f"import sys, wsgimon; print(sorted(m for m in {modules} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_command_line_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wsgimon", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"wsgimon {wsgimon.__version__}"
    script = Path(sys.executable).with_name("wsgimon")
    if script.exists():
        assert subprocess.run([str(script), "--version"], capture_output=True, text=True).stdout == out


def test_type_information_ships() -> None:
    assert (Path(wsgimon.__file__).parent / "py.typed").exists()


def _imports() -> dict[str, set[str]]:
    """Module -> the wsgimon modules it imports when it runs, inside functions too (not ``TYPE_CHECKING``)."""
    import ast

    root = Path(wsgimon.__file__).parent
    modules: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        skipped: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
        found: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level:
                    base = base[: len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # "from package import submodule" runs the submodule (its package is already running)
                targets = [f"{module}.{alias.name}" for alias in node.names]
                if any(target not in modules for target in targets):
                    targets.append(module)
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def test_the_package_has_no_import_cycle() -> None:
    """Not even one held together by an import inside a function: each module imports only ones below it.

    Every import a module's code makes counts (at the top, inside functions, of a package's
    ``__init__``); only ``if TYPE_CHECKING:`` imports, which never run, do not.
    """
    graph = _imports()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles[:10])
