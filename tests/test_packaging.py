"""A built wheel installs ppl_vae.models and ppl_vae.guides — never top-level packages —
and the changelog names the version it carries. (CI's `make release-check` goes further:
the wheel from `python -m build`, `twine check`, installed alone, trains the demo model.)"""

import os
import re
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_models_and_guides_under_ppl_vae(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(ROOT)], check=True)
    wheel = next((tmp_path / "dist").glob("ppl_vae-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "ppl_vae/models/vae.py" in names and "ppl_vae/guides/diagonal.py" in names
    assert not any(n.startswith(("models/", "guides/")) for n in names)
    assert "ppl_vae/py.typed" in names  # PEP 561: type checkers read the annotations

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # Dependencies come from this interpreter's site-packages through a .pth line (no
    # download); a .pth line does not run the editable-install finder found there.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site,
                    str(wheel)], check=True)
    code = ("import ppl_vae, ppl_vae.models.vae, ppl_vae.guides.diagonal, importlib.util;"
            "print(ppl_vae.__file__);"
            "print(importlib.util.find_spec('models'), importlib.util.find_spec('guides'));"
            "print(len(ppl_vae.registry.MODELS.entries()))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""}).stdout.split("\n")
    assert out[0].startswith(site), out  # the installed copy, not the source tree
    assert out[1] == "None None"
    assert int(out[2]) >= 3


def test_changelog_starts_at_this_version():
    """The newest CHANGELOG entry is the version the wheel carries (pyproject, __version__)."""
    import ppl_vae

    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    newest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert newest == version == ppl_vae.__version__
