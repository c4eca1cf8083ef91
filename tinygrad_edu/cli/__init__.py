"""The ``tinygrad-edu`` command. Each public module of this package is one subcommand: it
defines ``add_parser(subparsers)``, which registers its arguments and sets ``func`` to its runner.

Importing this module imports nothing else (and ``tinygrad_edu`` loads its names on first use), so
the command is inside :func:`main`'s ``try`` almost at once: Ctrl-C while the subcommands and
NumPy and matplotlib are still loading prints one line, not a traceback.
"""

from __future__ import annotations

import sys


def build_parser():
    """The ``tinygrad-edu`` argument parser, with every subcommand (imports them all)."""
    import importlib
    import pkgutil

    from ._common import OneLineParser

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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one line on stderr and return exit code 2, and
    Ctrl-C (even while the subcommands are still being imported) one line and exit code 130."""
    try:
        return _run(argv)
    except KeyboardInterrupt:  # before a subcommand was chosen
        print("tinygrad-edu: interrupted", file=sys.stderr)
        return 130


def _run(argv: list[str] | None) -> int:
    from ._common import CLIError, expression_may_start_with_minus, one_line

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # A subcommand that reads an expression lists its options that take values, so that an
    # expression starting with a minus is not taken for an option.
    command = sys.modules.get(f"{__name__}.{argv[0].replace('-', '_')}") if argv and argv[0].isidentifier() else None
    value_options = getattr(command, "EXPRESSION_VALUE_OPTIONS", None)
    if value_options is not None:
        argv = [argv[0], *expression_may_start_with_minus(argv[1:], value_options)]
    args = parser.parse_args(argv)
    command = f"tinygrad-edu {args.command}"
    try:
        return args.func(args) or 0
    except CLIError as err:
        print(f"{command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        print(f"{command}: error: {one_line(f'{err.strerror or err}{where}')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130


def __getattr__(name: str):
    if name == "CLIError":  # loaded on first use, like everything else here
        from ._common import CLIError

        return CLIError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["main", "build_parser", "CLIError"]
