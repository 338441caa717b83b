"""The import rules of ../shared/GUIDE.md, read from the code (not kept by
convention): which layer may import which, one owner of the C core's `lib`,
and no circle of imports. Imports under `if TYPE_CHECKING:` are for type
checkers only and do not count; imports inside functions do."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocols", "supervisor")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> set[str]:
    """The modules `path` imports at run time (absolute names)."""
    tree = ast.parse(path.read_text())
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            # `from pkg import module` needs pkg.module (pkg only as its parent:
            # no dependency on what pkg/__init__.py does); `from m import name`, m.
            subs = {f"{base}.{a.name}" for a in node.names} & ALL
            out.update(subs or {base})
        todo.extend(ast.iter_child_nodes(node))
    return out


ALL = {
    _module_name(p)
    for pkg in PACKAGES
    for p in (ROOT / pkg).rglob("*.py")
    if "__pycache__" not in p.parts
}
MODULES = {
    _module_name(p): p
    for pkg in PACKAGES
    for p in (ROOT / pkg).rglob("*.py")
    if "__pycache__" not in p.parts
}
GRAPH = {m: {i for i in _imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}
RAW = {m: _imports(p) for m, p in MODULES.items()}


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _offenders(where: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{m} imports {i}"
        for m, imports in RAW.items()
        if _under(m, *where)
        for i in imports
        if _under(i, *forbidden)
    )


def test_protocols_import_nothing_of_ours():
    assert _offenders(("protocols",), ("supervisor",)) == []


def test_the_client_imports_no_daemon_runtime_or_heavy_library():
    forbidden = (
        "trio",
        "msgspec",
        "supervisor.daemon",
        "supervisor.runtime",
        "supervisor.images",
        "supervisor.network",
        "supervisor.volumes",
        "supervisor._native",
    )
    assert _offenders(("supervisor.client",), forbidden) == []


def test_the_compose_reader_is_pure():
    """supervisor/compose reads files and plans containers: the daemon imports it,
    never the reverse, and it touches no kernel (its CLI reaches the daemon
    through the client's socket)."""
    forbidden = (
        "trio",
        "supervisor.daemon",
        "supervisor.runtime",
        "supervisor.images",
        "supervisor.network",
        "supervisor.volumes",
        "supervisor._native",
    )
    assert _offenders(("supervisor.compose",), forbidden) == []


def test_the_build_parts_are_pure():
    """supervisor/build reads Dockerfiles, .dockerignore and makes layers' files:
    the daemon's builder composes them with the runtime and the store."""
    forbidden = ("trio", "supervisor.daemon", "supervisor.runtime", "supervisor.client")
    assert _offenders(("supervisor.build",), forbidden) == []


def test_the_docker_api_sits_on_the_daemon_never_under_it():
    """supervisor/dockerapi translates Docker's HTTP to the daemon's handlers:
    it imports the daemon; only the daemon's entry point (main.py) imports it,
    to listen; the client never."""
    users = sorted(
        m
        for m, imports in RAW.items()
        if not _under(m, "supervisor.dockerapi")
        and any(_under(i, "supervisor.dockerapi") for i in imports)
    )
    assert users == ["supervisor.daemon.main"]
    assert _offenders(("supervisor.dockerapi",), ("supervisor.client", "supervisor._native")) == []


def test_the_runtime_never_imports_the_daemon_or_the_client():
    forbidden = ("supervisor.daemon", "supervisor.client", "supervisor.images")
    assert _offenders(("supervisor.runtime",), forbidden) == []


@pytest.mark.parametrize("part", ["supervisor.images", "supervisor.network", "supervisor.volumes"])
def test_the_parts_the_daemon_composes_never_import_it(part):
    assert _offenders((part,), ("supervisor.daemon", "supervisor.client")) == []


def test_one_module_owns_the_c_core():
    owners = sorted(m for m, imports in RAW.items() if "supervisor._corral_native" in imports)
    assert owners == ["supervisor._native"]


def test_no_circle_of_imports():
    circles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                circles.append(" -> ".join([*path[path.index(n) :], n]))
            elif n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])
    assert circles == []


def test_no_module_over_600_lines_outside_generated_code():
    generated = {"protocols.lite.api", "protocols.lite.oci"}
    big = sorted(
        f"{m}: {n}"
        for m, p in MODULES.items()
        if m not in generated and (n := len(p.read_text().splitlines())) > 650
    )
    assert big == []
