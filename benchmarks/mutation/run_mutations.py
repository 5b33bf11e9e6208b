"""Mutation run over ``ppl_vae/estimators/`` and ``ppl_vae/distributions.py``.

Each mutant of :mod:`mutants` is applied, one at a time, to a scratch copy of the
source tree (the working tree is never changed), and the test files that check its
file run with ``pytest -x -q``: a failing test kills the mutant, a pass lets it
survive. The scratch copy reproduces the installed layout (``models/`` and
``guides/`` become ``ppl_vae.models`` and ``ppl_vae.guides``, as ``pyproject.toml``
maps them) and runs torch on one thread, niced. Before the mutants, every test
command must pass on the unmutated copy.

Usage (from the repository root, about 20-40 minutes on two shared cores)::

    python benchmarks/mutation/run_mutations.py                    # all; writes results
    python benchmarks/mutation/run_mutations.py --only tcvae-column-0 --no-write
    python benchmarks/mutation/run_mutations.py --only ID ...    # rerun some; merge the results

Results: ``benchmarks/mutation/results.json`` (one record per mutant) and
``results.md`` (the table, the survivors and why each is harmless); a copy of an earlier
run's JSON as ``results_first.json`` adds its outcomes to the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from mutants import MUTANTS, Mutant  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ESTIMATOR_TESTS = ["test_tcvae.py", "test_known_answers.py", "test_elbo.py",
                   "test_gradient_estimators.py", "test_beta_vae_loss.py", "test_pyro_native.py"]


def estimator_tests(*first: str) -> list[str]:
    """All of ``tests/estimators``, the most direct files ``first`` (-x stops at a failure)."""
    order = [*first, *(name for name in ESTIMATOR_TESTS if name not in first)]
    return [f"tests/estimators/{name}" for name in order]


TESTS = {  # the test files of each source file
    "ppl_vae/estimators/tcvae.py": estimator_tests("test_tcvae.py"),
    "ppl_vae/estimators/renyi.py": estimator_tests("test_known_answers.py", "test_elbo.py"),
    "ppl_vae/estimators/pathwise.py": estimator_tests("test_gradient_estimators.py"),
    "ppl_vae/estimators/trace.py": estimator_tests("test_elbo.py", "test_known_answers.py"),
    "ppl_vae/estimators/pyro_elbo.py": estimator_tests("test_pyro_native.py"),
    "ppl_vae/estimators/base.py": estimator_tests()
    + ["tests/training/test_inputs_and_globals.py"],
    "ppl_vae/distributions.py": ["tests/test_distributions.py"],
}
# subprocess tests of the CLI and of import side effects: minutes, and no mathematics
DESELECT = ["tests/estimators/test_tcvae.py::test_trains_from_the_cli_with_its_flag",
            "tests/estimators/test_pyro_native.py::test_import_changes_no_pyro_setting"]


def scratch_copy(destination: Path) -> None:
    """The tracked and new (not ignored) files, laid out as installed."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    for package in ("models", "guides"):  # [tool.setuptools.package-dir]
        shutil.copytree(destination / package, destination / "ppl_vae" / package)
    conftest = destination / "tests" / "conftest.py"
    conftest.write_text(conftest.read_text().replace("torch.set_num_threads(2)",
                                                     "torch.set_num_threads(1)"))


def environment(scratch: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(scratch), "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def check_imports(scratch: Path) -> None:
    """The scratch copy, not the editable install, must be what the tests import."""
    code = ("import ppl_vae, ppl_vae.models, ppl_vae.estimators.tcvae as t, "
            "ppl_vae.distributions as d; print(t.__file__, d.__file__, ppl_vae.models.__path__[0])")
    out = subprocess.run([sys.executable, "-c", code], cwd=scratch, env=environment(scratch),
                         capture_output=True, text=True, check=True).stdout.split()
    if not all(path.startswith(str(scratch)) for path in out):
        raise SystemExit(f"the scratch copy is not the one imported: {out}")


def run_tests(scratch: Path, files: list[str], timeout: float) -> tuple[str, float]:
    """``(first failing test, seconds)``; ``""`` when all pass, ``"timeout"`` past ``timeout``."""
    command = ["nice", "-n", "10", sys.executable, "-m", "pytest", "-x", "-q",
               "-p", "no:cacheprovider", *files, *(f"--deselect={d}" for d in DESELECT)]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=scratch, env=environment(scratch),
                                capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    seconds = time.perf_counter() - start
    if result.returncode == 0:
        return "", seconds
    failed = [line.split(" ")[1] for line in result.stdout.splitlines()
              if line.startswith(("FAILED ", "ERROR "))]
    return failed[0] if failed else f"pytest exit {result.returncode}", seconds


def apply(scratch: Path, mutant: Mutant) -> str:
    """Write the mutant into the scratch copy; return the original text to restore."""
    path = scratch / mutant.file
    original = path.read_text()
    if original.count(mutant.old) != 1:
        raise SystemExit(f"{mutant.id}: the snippet occurs {original.count(mutant.old)} times "
                         f"in {mutant.file}, not once")
    path.write_text(original.replace(mutant.old, mutant.new))
    return original


def run(mutants: list[Mutant]) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="ppl-vae-mutants-") as folder:
        scratch = Path(folder)
        scratch_copy(scratch)
        check_imports(scratch)
        for mutant in mutants:  # every snippet found once, before the long runs
            apply(scratch, mutant)
            (scratch / mutant.file).write_text((ROOT / mutant.file).read_text())
        every_file = sorted({f for m in mutants for f in TESTS[m.file]})
        failed, baseline = run_tests(scratch, every_file, timeout=3600)
        print(f"baseline {failed or 'passed'} {baseline:6.1f}s", flush=True)
        if failed:
            raise SystemExit(f"the unmutated tests fail ({failed}): fix them first")
        records = []
        for mutant in mutants:
            original = apply(scratch, mutant)
            try:
                failed, seconds = run_tests(scratch, TESTS[mutant.file],
                                            timeout=2 * baseline + 120)
            finally:
                (scratch / mutant.file).write_text(original)
            records.append({"id": mutant.id, "file": mutant.file, "what": mutant.what,
                            "outcome": "killed" if failed else "survived",
                            "killed_by": failed, "seconds": round(seconds, 1),
                            "equivalent": mutant.equivalent, "note": mutant.note,
                            "old": mutant.old, "new": mutant.new})
            print(f"{records[-1]['outcome']:8s} {seconds:6.1f}s  {mutant.id}  {failed}",
                  flush=True)
    return records


def markdown(records: list[dict], first: list[dict]) -> str:
    """The table of mutants (with the first run's outcome), the survivors and why each is
    harmless, and the first run's survivors with the tests added to kill them."""
    before = {r["id"]: r for r in first}
    survivors = [r for r in records if r["outcome"] == "survived"]
    unexplained = [r for r in survivors if not r["equivalent"]]
    lines = [
        "# Mutation run: `ppl_vae/estimators/` and `ppl_vae/distributions.py`",
        "",
        "Written by `python benchmarks/mutation/run_mutations.py` (mutants in "
        "`benchmarks/mutation/mutants.py`, raw records in `results.json`, the first run's in "
        "`results_first.json`: after the β-TCVAE tests, before the tests that kill its "
        "survivors). Each mutant is applied alone to a scratch copy of the tree; "
        "the test files of its source file run with `pytest -x -q` on one thread (the "
        "CLI-training and import-subprocess tests deselected). A hand list, not `mutmut`: "
        "mutmut 3 maps tests to functions by running the whole suite first, mutates every "
        "operator and string (error messages included: hundreds of mutants for these files), "
        "and copies the tree into `mutants/` without this project's `models/` → "
        "`ppl_vae.models` mapping; on two shared cores the hand list's meaningful mutants "
        "(wrong weight, sign, index, α for 1 - α, a dropped `log K` or `detach`) are the "
        "better use of the time.",
        "",
        "β-TCVAE before this run: `main`'s seven tests of `tcvae.py` (the CLI test aside) all "
        "pass with the data-set size ×10, ÷10 and with the reference implementation's weights "
        "(1/N in column 0, not on the diagonal), checked by hand. The density-space test "
        "`test_the_batch_estimate_of_q_z_is_unbiased_in_density_space` reads E[q̂(z)/q(z)] = "
        "1.04 on the code, 0.50, 6.5 and 31 on those three mutants (allowed: 1 ± 0.2).",
        "",
        f"**{len(records)} mutants: {len(records) - len(survivors)} killed, {len(survivors)} "
        f"survived ({len(survivors) - len(unexplained)} equivalent, {len(unexplained)} "
        "unexplained).**",
        "",
        "| mutant | file | what it breaks | first run | now | first failing test |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        test = f"`{r['killed_by']}`" if r["killed_by"] else ""
        earlier = before.get(r["id"], {}).get("outcome", "(new)")
        lines.append(f"| `{r['id']}` | `{Path(r['file']).name}` | {r['what'].replace('|', '∣')} "
                     f"| {earlier} | {r['outcome']} | {test} |")
    lines += ["", "## Survivors", ""]
    lines += [f"- `{r['id']}` ({r['what']}): "
              f"{r['equivalent'] or '**not explained: a hole in the tests**'}" for r in survivors]
    if not survivors:
        lines.append("None.")
    revived = [r for r in records if r["outcome"] == "killed"
               and before.get(r["id"], {}).get("outcome") == "survived"]
    if revived:
        lines += ["", "## Survivors of the first run, killed by tests added since", ""]
        lines += [f"- `{r['id']}` ({r['what']}): {r['note'] or 'missed'}; now killed by "
                  f"`{r['killed_by']}`" for r in revived]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", help="mutant ids to run (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print only; keep the results")
    parser.add_argument("--markdown-only", action="store_true",
                        help="rewrite results.md from results.json and the mutants' notes")
    args = parser.parse_args()
    if args.markdown_only:
        write_markdown(json.loads((HERE / "results.json").read_text()))
        return
    chosen = [m for m in MUTANTS if not args.only or m.id in args.only]
    if args.only and len(chosen) != len(args.only):
        raise SystemExit(f"unknown mutant ids: {set(args.only) - {m.id for m in MUTANTS}}")
    records = run(chosen)
    if not args.no_write:
        if args.only and (HERE / "results.json").exists():  # merge into the last full run
            done = {r["id"]: r for r in json.loads((HERE / "results.json").read_text())}
            done.update({r["id"]: r for r in records})
            records = [done[m.id] for m in MUTANTS if m.id in done]
        (HERE / "results.json").write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n")
        write_markdown(records)


def write_markdown(records: list[dict]) -> None:
    """``results.md`` from ``records`` with the mutants' current explanations, and
    ``results_first.json``'s outcomes if present."""
    explained = {m.id: {"what": m.what, "equivalent": m.equivalent, "note": m.note}
                 for m in MUTANTS}
    records = [{**r, **explained[r["id"]]} for r in records]
    first = HERE / "results_first.json"
    (HERE / "results.md").write_text(
        markdown(records, json.loads(first.read_text()) if first.exists() else []))


if __name__ == "__main__":
    main()
