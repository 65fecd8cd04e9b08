"""The floodwall command line: ``floodwall COMMAND`` (or ``python -m floodwall``).

This module only wires the commands together: it builds the argument parser
from :data:`COMMANDS` and maps errors to exit codes. Each command lives in a
module of its own in this package, with three names:

- ``HELP``: the one-line help shown by ``floodwall --help``;
- ``add_arguments(parser)``: the command's options;
- ``run(args) -> int``: do the work, print, and return the exit code.

The commands are listed once, in :data:`COMMANDS` (and described in
docs/cli.md). What they share (options, loading the
configuration, a CLIENT's key) is in :mod:`floodwall.cli._target`; the
logic of keys and limits lives in :mod:`floodwall.config`.

Exit codes: 0 success, 1 the command ran and the answer is "no" (a damaged
table, a request denied or still limited, a client not among the hottest),
2 a usage or floodwall error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from floodwall._version import __version__
from floodwall.cli import (
    check,
    config,
    demo,
    doctor,
    history,
    init,
    limits,
    metrics,
    monitor,
    postgres,
    reset,
    serve,
    stats,
    status,
    top,
)
from floodwall.errors import FloodwallError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: dict[str, ModuleType] = {
    "demo": demo,
    "doctor": doctor,
    "init": init,
    "config": config,
    "limits": limits,
    "status": status,
    "check": check,
    "reset": reset,
    "top": top,
    "stats": stats,
    "postgres": postgres,
    "metrics": metrics,
    "monitor": monitor,
    "history": history,
    "serve": serve,
}
"""Every command: its name on the command line, and the module that runs it."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``floodwall``, with one sub-command per module of COMMANDS."""
    parser = argparse.ArgumentParser(prog="floodwall", description="floodwall rate limiter")
    parser.add_argument("--version", action="version", version=f"floodwall {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        command = sub.add_parser(name, help=module.HELP)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``floodwall`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except FloodwallError as exc:
        print(f"floodwall: error: {exc}", file=sys.stderr)
        return 2
