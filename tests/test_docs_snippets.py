"""The documentation says only what is true of the code.

- Every fenced ``python`` block of ``README.md`` and ``docs/**/*.md`` runs: a page's blocks
  in order in one namespace, as a reader would paste them, in an empty folder. A block
  that cannot run as written (a fragment naming the reader's own class) is marked by the
  line ``<!-- snippet: skip (why) -->`` just above it, one that takes more than a few
  seconds by ``<!-- snippet: slow (why) -->`` (it runs under ``pytest -m slow``); both are
  still compiled and their imports run, so a renamed module or class fails here too.
- Every ``ppl-vae`` command of a ``bash`` block parses with the CLI's own parser, and every
  ``--flag`` named beside ``ppl-vae <command>`` in the prose is a flag of that command.
- Every repository path the pages name exists, every relative link of the README leads to
  a file, and every ``make`` target they name is in the Makefile.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

from ppl_vae.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?:<!-- snippet: (?P<marker>.*?) -->\n)?```(?P<lang>\w*)[^\n]*\n"
                   r"(?P<body>.*?)^```", re.S | re.M)
MARKER = re.compile(r"(?P<kind>skip|slow) \((?P<why>.+)\)")
INLINE = re.compile(r"`([^`\n]+)`")
REPO_PATH = re.compile(r"(?<![\w./-])((?:ppl_vae|benchmarks|examples|tests|models|guides|docs)"
                       r"/[\w./-]*[\w/])")
COMMAND = re.compile(r"^(?:\w+=\S+ )*(?:\.venv/bin/)?(?:ppl-vae|python -m ppl_vae) ")


def blocks(page: Path, lang: str) -> list[tuple[int, str | None, str]]:
    """(line, marker, code) of each fenced block in ``lang``."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group("marker"), m.group("body"))
            for m in FENCE.finditer(text) if m.group("lang") == lang]


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _pages_with(lang: str) -> list[Path]:
    return [page for page in PAGES if blocks(page, lang)]


def run_snippets(page: Path, run: set[str | None]) -> None:
    """Run the page's python blocks whose kind is in ``run`` (None: unmarked) in order in one
    namespace; compile the others and run their imports."""
    namespace = {"__name__": "__snippet__"}
    for line, marker, code in blocks(page, "python"):
        where = f"{_name(page)}:{line}"
        compiled = compile(code, where, "exec")
        kind = marker and MARKER.fullmatch(marker)
        assert marker is None or kind, f"{where}: write <!-- snippet: skip|slow (why) -->"
        if (kind and kind.group("kind")) in run:
            exec(compiled, namespace)
            continue
        imports = [node for node in ast.parse(code).body
                   if isinstance(node, (ast.Import, ast.ImportFrom))]
        exec(compile(ast.Module(imports, []), where, "exec"), {})


@pytest.fixture
def reader_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # run folders the snippets write land here
    monkeypatch.syspath_prepend(str(ROOT))  # `from examples... import` as from a checkout


@pytest.mark.parametrize("page", _pages_with("python"), ids=_name)
def test_python_snippets_run(page, reader_folder):
    run_snippets(page, {None})


@pytest.mark.slow
@pytest.mark.parametrize("page", [page for page in _pages_with("python") if any(
    marker and marker.startswith("slow") for _, marker, _ in blocks(page, "python"))], ids=_name)
def test_slow_python_snippets_run(page, reader_folder):
    run_snippets(page, {None, "slow"})


def _command_lines(code: str) -> list[str]:
    """The ``ppl-vae`` commands of a bash block, continuation lines joined, comments cut."""
    joined = re.sub(r"\\\n\s*", "", code)
    return [line.split(" #")[0].strip() for line in joined.splitlines()
            if COMMAND.match(line.strip())]


def _argv(line: str) -> list[str]:
    words = shlex.split(line)
    while "=" in words[0] and not words[0].startswith("-"):
        words.pop(0)  # PYTHONPATH=... before the command
    return words[3:] if words[:3] == ["python", "-m", "ppl_vae"] else words[1:]


def _bash_commands() -> list[tuple[str, str]]:
    return [(f"{_name(page)}:{line}", command) for page in PAGES
            for line, _, code in blocks(page, "bash") for command in _command_lines(code)]


@pytest.mark.parametrize("where, command", _bash_commands(), ids=lambda x: x)
def test_documented_commands_parse(where, command, capsys):
    try:
        build_parser().parse_args(_argv(command))
    except SystemExit:
        pytest.fail(f"{where}: `{command}` does not parse: {capsys.readouterr().err.strip()}")


def _subcommands() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def test_flags_named_in_the_prose_exist():
    commands = _subcommands()
    wrong = []
    for page in PAGES:
        for span in INLINE.findall(page.read_text()):
            words = span.split()
            if len(words) < 2 or words[0] != "ppl-vae" or words[1] not in commands:
                continue
            known = commands[words[1]]._option_string_actions
            wrong += [f"{_name(page)}: {flag} in `{span}`"
                      for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", span)
                      if flag not in known]
    assert not wrong, "flags the parser does not know:\n" + "\n".join(wrong)


def test_repository_paths_named_exist():
    missing = [f"{_name(page)}: {path}" for page in PAGES
               for span in INLINE.findall(page.read_text()) + [
                   code for _, _, code in blocks(page, "bash")]
               for path in REPO_PATH.findall(span) if not (ROOT / path).exists()]
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


def test_readme_links_lead_to_files():
    links = re.findall(r"\]\(([^)#\s]+)\)", (ROOT / "README.md").read_text())
    local = [link for link in links if "://" not in link]
    assert local, "the README links the documentation pages"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_make_targets_named_exist():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    code = [span for page in PAGES for span in INLINE.findall(page.read_text())
            + [block for _, _, block in blocks(page, "bash")]]
    named = {target for span in code for target in re.findall(r"(?<![\w-])make ([a-z][\w-]*)", span)}
    assert named and named <= targets, f"make targets not in the Makefile: {named - targets}"
