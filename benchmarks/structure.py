"""The package's structure as numbers: rooms, floors and import circles.

- rooms: the top-level places of ``ppl_vae/`` a reader meets first — its modules and
  its subpackages (a wing such as ``estimators/`` counts once);
- floors: the length of the longest chain of module-level imports between the
  package's own modules (``a`` imports ``b`` imports ``c``: 3 floors);
- circles: import cycles among module-level imports (there should be none).

``from a import b`` counts as importing the module ``a.b`` where there is one (a
package's ``__init__`` runs first, but it is not what the importer depends on).

Imports inside functions (deferred on purpose) are not counted::

    python benchmarks/structure.py [--root ppl_vae]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(path: Path, name: str, package: str) -> set[str]:
    """The package's modules ``path`` imports at module level (``from a import b``: a.b or a)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("ppl_vae"))
    root = parser.parse_args().root.resolve()
    package = root.name
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        imported = {m for m in module_imports(path, name, package) if m in files and m != name}
        # ``from a import b`` names the module a.b; a itself only when nothing under it is named
        graph[name] = {m for m in imported
                       if not any(other.startswith(m + ".") for other in imported)}
    circles, depths, active = set(), {}, []

    def depth(name: str) -> int:
        if name in active:
            circles.add(tuple(active[active.index(name):]))
            return 0
        if name not in depths:
            active.append(name)
            depths[name] = 1 + max((depth(m) for m in graph[name]), default=0)
            active.pop()
        return depths[name]

    floors = max(depth(name) for name in graph)
    chain = [max(graph, key=depth)]
    while graph[chain[-1]]:
        chain.append(max(graph[chain[-1]], key=depth))
    rooms = sorted({p.relative_to(root).parts[0].removesuffix(".py") for p in root.rglob("*.py")
                    if p.name != "__init__.py" or p.parent != root} - {"__pycache__"})
    print(f"rooms {len(rooms)}: {' '.join(rooms)}")
    print(f"floors {floors}: {' -> '.join(m.removeprefix(package + '.') for m in chain)}")
    print(f"circles {len(circles)}" + "".join(f"\n  {' -> '.join(c)}" for c in circles))


if __name__ == "__main__":
    main()
