"""The package's structure as numbers: rooms, floors and import circles.

- rooms: the top-level places of ``ppl_vae/`` a reader meets first — its modules and
  its subpackages (a wing such as ``estimators/`` counts once);
- floors: the length of the longest chain of module-level imports between the
  package's own modules (``a`` imports ``b`` imports ``c``: 3 floors);
- circles: import cycles among module-level imports (there should be none).

``from a import b`` counts as importing the module ``a.b`` where there is one (a
package's ``__init__`` runs first, but it is not what the importer depends on).

Imports inside functions (deferred on purpose) are not counted, unless ``--deferred``
asks for them: a deferred import still ties the two modules together, so the
package should have no circle either way (imports under ``if TYPE_CHECKING:`` never
run and are never counted)::

    python benchmarks/structure.py [--root ppl_vae] [--deferred]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _import_nodes(tree: ast.Module, deferred: bool) -> list[ast.AST]:
    """The import statements at module level, or (``deferred``) anywhere that can run."""
    if not deferred:
        return tree.body
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if not _is_type_checking(node):
            found.append(node)
            todo.extend(ast.iter_child_nodes(node))
    return found


def module_imports(path: Path, name: str, package: str, deferred: bool = False) -> set[str]:
    """The package's modules ``path`` imports (``from a import b``: a.b or a)."""
    found = set()
    for node in _import_nodes(ast.parse(path.read_text()), deferred):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[:len(name.split(".")) - node.level + (
                    path.name == "__init__.py")]
                base = ".".join(anchor + ([base] if base else []))
            found |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    return {m for m in found if m.startswith(package + ".")}


def import_graph(root: Path, deferred: bool = False) -> dict[str, set[str]]:
    """Each module of the package at ``root`` -> the package's modules it imports."""
    package = root.name
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        imported = {m for m in module_imports(path, name, package, deferred)
                    if m in files and m != name}
        # ``from a import b`` names the module a.b; a itself only when nothing under it is named
        graph[name] = {m for m in imported
                       if not any(other.startswith(m + ".") for other in imported)}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components: a component of several modules is a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for other in graph[name]:
            if other not in index:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in stack:
                low[name] = min(low[name], index[other])
        if low[name] == index[name]:
            group = {stack.pop()}
            while name not in group:
                group.add(stack.pop())
            groups.append(group)

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("ppl_vae"))
    parser.add_argument("--deferred", action="store_true",
                        help="count imports inside functions too")
    args = parser.parse_args()
    root = args.root.resolve()
    package = root.name
    graph = import_graph(root, args.deferred)
    circles = [sorted(group) for group in strongly_connected(graph) if len(group) > 1]
    home = {name: min(group) for group in strongly_connected(graph) for name in group}
    depths: dict[str, int] = {}

    def depth(name: str) -> int:
        """Floors from ``name`` down; a circle's modules share one floor."""
        if name not in depths:
            depths[name] = 0  # a circle is entered once
            below = {m for member in graph if home[member] == home[name] for m in graph[member]
                     if home[m] != home[name]}
            depths[name] = 1 + max((depth(m) for m in below), default=0)
        return depths[name]

    floors = max(depth(name) for name in graph)
    chain = [max(graph, key=depth)]
    while any(home[m] != home[chain[-1]] for m in graph[chain[-1]]):
        chain.append(max((m for m in graph[chain[-1]] if home[m] != home[chain[-1]]), key=depth))
    rooms = sorted({p.relative_to(root).parts[0].removesuffix(".py") for p in root.rglob("*.py")
                    if p.name != "__init__.py" or p.parent != root} - {"__pycache__"})
    print(f"rooms {len(rooms)}: {' '.join(rooms)}")
    print(f"floors {floors}: {' -> '.join(m.removeprefix(package + '.') for m in chain)}")
    print(f"circles {len(circles)}" + "".join(
        f"\n  {len(c)} modules: {' '.join(m.removeprefix(package + '.') for m in c)}"
        for c in circles))


if __name__ == "__main__":
    main()
