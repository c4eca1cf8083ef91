"""What every subcommand shares: the one-line error convention, argument types, and finishing the
outputs when Ctrl-C arrives while they are being written."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import unicodedata
from contextlib import contextmanager
from typing import Iterator, NoReturn, Sequence


class CLIError(Exception):
    """A mistake in the user's input: the CLI prints the message in one line and exits with 2."""


#: Longest error line the CLI prints, in characters (an argument may be megabytes long).
MAX_MESSAGE = 400


def one_line(message) -> str:
    """``message`` as one line of at most about :data:`MAX_MESSAGE` characters."""
    message = " ".join(str(message).split())
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "..."


def shown(text: str, limit: int = 40, quote: bool = True) -> str:
    """``text`` for a one-line message, quoted (anything unprintable escaped) unless ``quote`` is
    false, and cut to about ``limit`` characters: an argument may be megabytes long."""
    text = str(text)
    cut = text if len(text) <= limit else text[:limit]
    cut = repr(cut) if quote else cut
    return cut if len(text) <= limit else cut + f"... ({len(text)} characters)"


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit code 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def expression_may_start_with_minus(args: Sequence[str], value_options: Sequence[str]) -> list[str]:
    """A subcommand's arguments with a leading space before its expression when that starts with a
    minus (``"-x*w"``): argparse would read it as an unknown option, but leaves an argument that
    starts with a space alone, and the expression parser ignores the space. The expression is the
    first argument that is no option (``-h`` stays the help) and no value of one of
    ``value_options`` (the options that take a value; abbreviations count, as in argparse)."""
    args = list(args)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            takes_value = "=" not in arg and len(name) > 2 and any(o.startswith(name) for o in value_options)
            i += 2 if takes_value else 1
            continue
        if arg.startswith("-") and arg != "-h":
            args[i] = " " + arg
        break
    return args


def _number(kind, name: str, minimum: float, inclusive: bool):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {name}, got {shown(text)}") from None
        if not math.isfinite(value):  # float("inf") and float("nan") parse, but no option takes them
            raise argparse.ArgumentTypeError(f"must be a finite number, got {shown(text, quote=False)}")
        if value < minimum or (value == minimum and not inclusive):
            bound = f">= {minimum}" if inclusive else f"> {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {shown(text, quote=False)}")
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


positive_int = _number(int, "a positive integer", 1, inclusive=True)
non_negative_int = _number(int, "a non-negative integer", 0, inclusive=True)
positive_float = _number(float, "a positive number", 0.0, inclusive=False)
non_negative_float = _number(float, "a non-negative number", 0.0, inclusive=True)


def finite_float(text: str) -> float:
    """Any finite number (no inf or nan), e.g. a coordinate or a variable's value."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {shown(text.strip())}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {shown(text.strip(), quote=False)}")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (e.g. the held-out share of the data)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {shown(text)}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {shown(text, quote=False)}")
    return value


class Interrupts:
    """What :func:`finish_outputs` saw: ``count`` is how many Ctrl-Cs arrived inside it."""

    count: int = 0


@contextmanager
def finish_outputs(command: str) -> Iterator[Interrupts]:
    """Write every output even if Ctrl-C arrives meanwhile: the first Ctrl-C inside is noted (one
    line on stderr) and the block goes on, so the run can still end with exit code 130 and all its
    files; a second one aborts at once (files are written atomically, so none is left half-written).
    Outside the main thread, where signals cannot be handled, it does nothing."""
    seen = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def note(signum, frame):
        seen.count += 1
        if seen.count > 1:
            raise KeyboardInterrupt
        print(f"tinygrad-edu {command}: interrupted; finishing the outputs (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def assignment(text: str) -> tuple[str, float]:
    """``NAME=NUMBER``, as for ``--set x=0.5``: a variable name and a finite number. NAME is any
    name an expression accepts (``é``, ``x_1``), normalised as Python normalises the names it
    parses (NFKC: ``ﬁ`` is ``fi``)."""
    name, sep, number = text.partition("=")
    name = unicodedata.normalize("NFKC", name.strip())
    if not sep or not name.isidentifier() or name.startswith("_"):
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER (like x=0.5), got {shown(text)}")
    try:
        return name, finite_float(number)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"the value of {name} {err}") from None


def set_values(assignments, variables) -> dict[str, float]:
    """The ``--set NAME=VALUE`` pairs as a dict, checked against the expression's ``variables``:
    a name given twice or not used by the expression is a :class:`CLIError`."""
    values: dict[str, float] = {}
    for name, value in assignments:
        if name in values:
            raise CLIError(f"--set {name} is given twice")
        values[name] = value
    unused = sorted(set(values) - set(variables))
    if unused:
        raise CLIError(f"--set {', '.join(unused)}: not used in the expression (its variables: "
                       f"{', '.join(variables) or 'none'})")
    return values
