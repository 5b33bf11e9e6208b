"""MkDocs hook: the command-line reference is the parser's own ``--help``.

``<!-- cli-reference -->`` in a page is replaced by the help of ``ppl-vae`` and of each
subcommand, as :func:`ppl_vae.cli.parser.build_parser` builds them now, and by what
``ppl-vae list`` prints: a flag added, renamed or given another default, or a new
registry entry, shows in the site without anyone copying it."""

from __future__ import annotations

import argparse
import contextlib
import io
import os

MARKER = "<!-- cli-reference -->"
WIDTH = "100"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _registries() -> str:
    """What ``ppl-vae list`` prints: every registered model, guide, estimator and dataset."""
    from ppl_vae.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(["list"])
    return printed.getvalue().rstrip()


def cli_reference() -> str:
    """The help texts as markdown: the main command, then one section a subcommand, then
    the registries as ``ppl-vae list`` prints them."""
    from ppl_vae.cli.parser import build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps to $COLUMNS: the same page everywhere
    try:
        parser = build_parser()
        sections = [("ppl-vae", parser)] + [(f"ppl-vae {name}", sub) for name, sub
                                            in _subcommands(parser).items()]
        helps = [f"## `{title}`\n\n```text\n{sub.format_help().rstrip()}\n```"
                 for title, sub in sections]
        listed = f"## What `ppl-vae list` prints\n\n```text\n{_registries()}\n```"
        return "\n\n".join([*helps, listed])
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Fill the marker of the page that holds one."""
    return markdown.replace(MARKER, cli_reference()) if MARKER in markdown else markdown
