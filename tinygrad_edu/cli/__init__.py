"""The ``tinygrad-edu`` command. Each public module of this package is one subcommand: it
defines ``add_parser(subparsers)``, which registers its arguments and sets ``func`` to its runner.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Sequence

from ._common import CLIError, OneLineParser


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="tinygrad-edu",
        description="tinygrad_edu: a scalar autograd engine you can read, see and test.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"tinygrad-edu {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line on stderr and return exit code 2, and
    Ctrl-C (even while the subcommands are still being imported) one line and exit code 130."""
    command = "tinygrad-edu"
    try:
        args = build_parser().parse_args(argv)
        command = f"tinygrad-edu {args.command}"
        return args.func(args) or 0
    except CLIError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        print(f"{command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser", "CLIError"]
