"""No import circle in the package, imports inside functions counted too (issue 37)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from structure import import_graph, strongly_connected  # noqa: E402


def circles(root: Path, deferred: bool) -> list[set[str]]:
    return [group for group in strongly_connected(import_graph(root, deferred)) if len(group) > 1]


def test_the_package_has_no_import_circle():
    assert circles(ROOT / "ppl_vae", deferred=False) == []
    assert circles(ROOT / "ppl_vae", deferred=True) == []


def test_a_deferred_import_back_is_a_circle(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text("def load():\n    from pkg.data import read\n")
    (package / "data.py").write_text("from pkg.settings import load\n\ndef read(): ...\n")
    (package / "leaf.py").write_text("import pkg.data\n")
    assert circles(package, deferred=False) == []
    assert circles(package, deferred=True) == [{"pkg.settings", "pkg.data"}]
