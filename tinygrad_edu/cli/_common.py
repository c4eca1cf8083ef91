"""What every subcommand shares: the one-line error convention, argument types, and finishing the
outputs when Ctrl-C arrives while they are being written."""

from __future__ import annotations

import argparse
import math
import re
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, NoReturn


class CLIError(Exception):
    """A mistake in the user's input: the CLI prints the message in one line and exits with 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit code 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _number(kind, name: str, minimum: float, inclusive: bool):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}") from None
        if not math.isfinite(value):  # float("inf") and float("nan") parse, but no option takes them
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < minimum or (value == minimum and not inclusive):
            bound = f">= {minimum}" if inclusive else f"> {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
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
        raise argparse.ArgumentTypeError(f"must be a number, got {text.strip()!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text.strip()}")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (e.g. the held-out share of the data)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
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
    """``NAME=NUMBER``, as for ``--set x=0.5``: a variable name and a finite number."""
    name, sep, number = text.partition("=")
    name = name.strip()
    if not sep or not re.fullmatch(r"[A-Za-z]\w*", name):
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER (like x=0.5), got {text!r}")
    try:
        return name, finite_float(number)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"the value of {name} {err}") from None
