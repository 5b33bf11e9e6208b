"""The ``ppl-vae`` command: train, evaluate, compare, sample, diagnose, list.

Every user mistake ends as one line on stderr and exit status 2; ``--debug``
(before or after the subcommand) shows the traceback instead. A
:class:`~ppl_vae.errors.PplVaeWarning` is one ``ppl-vae: note:`` line on stderr.
``ppl-vae COMMAND --help`` shows every flag with its default. The flags are
:mod:`ppl_vae.cli.parser`'s; ``train`` is :mod:`ppl_vae.cli.train`, the other
commands :mod:`ppl_vae.cli.commands`.
"""

from __future__ import annotations

import sys
import warnings

from ppl_vae.cli.commands import cmd_compare, cmd_diagnose, cmd_evaluate, cmd_list, cmd_sample
from ppl_vae.cli.parser import HelpFormatter, build_parser
from ppl_vae.cli.train import cmd_train
from ppl_vae.errors import PplVaeError, PplVaeWarning

__all__ = ["HelpFormatter", "build_parser", "main"]


def _one_line_warnings(fallback):
    """``warnings.showwarning`` showing a :class:`PplVaeWarning` as one line on stderr."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, PplVaeWarning):
            print(f"ppl-vae: note: {message}", file=sys.stderr)
        else:
            fallback(message, category, filename, lineno, file, line)
    return show


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    command = {"train": cmd_train, "evaluate": cmd_evaluate, "compare": cmd_compare,
               "sample": cmd_sample, "diagnose": cmd_diagnose, "list": cmd_list}[args.command]
    from ppl_vae.training.speedups import keep_freed_memory

    keep_freed_memory()  # this process is ours: large host tensors are reused, not re-faulted
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            command(args)
    except PplVaeError as error:
        if args.debug:
            raise
        print(f"ppl-vae: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ppl-vae: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, not a user mistake: still one line by default
        if args.debug:
            raise
        print(f"ppl-vae: internal error: {type(error).__name__}: {error}; rerun with --debug "
              "for the traceback and report it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
