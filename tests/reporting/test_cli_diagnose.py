"""``ppl-vae diagnose RUN`` from the command line."""

import json

from ppl_vae.cli import main
from tests.test_cli import TINY


def test_diagnose_command_writes_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["diagnose", str(out), "--n-examples", "8", "--draws", "20",
                 "--metrics", "none", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "psis" in printed
    for name in ("posterior.nc", "report.json", "report.md"):
        assert (out / "diagnostics" / name).exists(), name


def test_diagnose_bad_draws_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["diagnose", str(out), "--draws", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ppl-vae: error:") and err.count("\n") == 1
