"""The `iimm` command line.

The CLI is the composition root of the project: some commands run the pure measures
(`app.measures`), some run worker-side ML code (`workers.ml`), some talk to the REST API.
It lives in its own package so that `app` never has to import `workers` (or torch).

Every module of this package that defines ``register(subparsers)`` adds its subcommands.
Modules must stay cheap to import: heavy imports (numpy is fine; torch, open_clip,
SQLAlchemy are not) happen inside the command handlers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

from iimm_cli._common import CliError
from iimm_cli.client import add_client_args


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="iimm",
        description="Predict learning and forgetting of fine-tuned vision-language models (IIMM).",
    )
    add_client_args(parser)  # also accepted before the subcommand; the subcommand's wins
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


#: The exit status of a command whose reader closed its output early (`iimm ... | head`):
#: 128 + SIGPIPE, what a shell reports for git, ls or cat killed by SIGPIPE.
BROKEN_PIPE_EXIT = 128 + 13


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `iimm` console script; returns the process exit code. A reader
    that closes the output early (`iimm datasets list | head -5`) ends the command quietly
    with BROKEN_PIPE_EXIT, as Python's documentation recommends (signal module, "Note on
    SIGPIPE"): stdout is pointed at devnull so the interpreter's last flush does not fail."""
    try:
        try:
            code = _main(argv)
        finally:  # also after --help's SystemExit: what is buffered fails here, not at exit
            sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return BROKEN_PIPE_EXIT
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "data_dir", None):  # what commands that read the settings see too
        os.environ["IIMM_DATA_DIR"] = str(Path(args.data_dir).resolve())
    try:
        return int(args.handler(args) or 0)
    except CliError as exc:
        from iimm_cli.client import as_cli_hint  # the API's hints as this CLI's flags

        print(f"iimm {args.command}: error: {as_cli_hint(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # invalid IIMM_* settings: one line, not pydantic's traceback
        from pydantic import ValidationError

        if not (isinstance(exc, ValidationError) and exc.title == "Settings"):
            raise
        from app.config import describe_invalid

        line = describe_invalid(exc)
        them = "them" if ", IIMM_" in line or len(exc.errors()) > 1 else "it"
        print(f"iimm {args.command}: error: {line}; set {them} in the environment", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
