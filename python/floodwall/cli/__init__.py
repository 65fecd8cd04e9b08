"""The floodwall command line: ``floodwall COMMAND`` (or ``python -m floodwall``).

This module only wires the commands together: it builds the argument parser
from :data:`COMMANDS` and maps errors to exit codes. Each command lives in a
module of its own in this package, with three names:

- ``HELP``: the one-line help shown by ``floodwall --help``;
- ``add_arguments(parser)``: the command's options;
- ``run(args) -> int``: do the work, print, and return the exit code.

Commands today: ``demo`` (a burst admitted, then limited, on the memory
store) and ``doctor`` (check a file:// or shm:// table, read-only).
An operator's commands are coming (``status``, ``reset``, ``top``,
``metrics``, ``serve``); each will be one more module here, listed in
:data:`COMMANDS`, with its logic in :mod:`floodwall.ops` (or
:mod:`floodwall.server` for ``serve``), not in the CLI.

Exit codes: 0 success, 1 the command ran and found a problem (a damaged
table, a request still limited), 2 a usage or floodwall error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from floodwall._version import __version__
from floodwall.cli import demo, doctor, postgres
from floodwall.errors import FloodwallError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: dict[str, ModuleType] = {"demo": demo, "doctor": doctor, "postgres": postgres}
"""Every command: its name on the command line, and the module that runs it."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``floodwall``, with one sub-command per module of COMMANDS."""
    parser = argparse.ArgumentParser(prog="floodwall", description="floodwall rate limiter")
    parser.add_argument("--version", action="version", version=f"floodwall {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
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
