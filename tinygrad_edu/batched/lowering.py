"""Lowering a rule to lines of code: the rule is called once on symbols instead of arrays, which
record every operation it makes; then only the lines that the wanted results depend on are
written. That is how the ``skip_unused_gradients`` pass leaves out a gradient nobody reads
(``mul``'s rule computes ``g * b`` and ``g * a``; for a layer's weights only ``g * x`` is needed).
The lines are the rule's own operations in the rule's order, so they compute the same bits.

A rule that looks at its inputs' values (``if x > 0``), or does anything a symbol cannot record,
is not lowered: :func:`lower` returns None and the rule is called as it is.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .numpy_math import EXPANSIONS, INLINE

__all__ = ["lower"]


class _NotSymbolic(Exception):
    """The rule needs a value, not a symbol."""


def _infix(symbol: str):
    """The operator and its reflected form, recording ``a <symbol> b``."""
    fmt = "{} " + symbol + " {}"
    return (lambda a, b: a.rec.make(fmt, (a, b))), (lambda a, b: a.rec.make(fmt, (b, a)))


class Sym:
    """An array in a rule being recorded: a name (an input), or ``code``, an operation's format
    and its arguments (symbols or constants' names), named when a wanted result needs it."""

    __slots__ = ("rec", "code", "name")

    def __init__(self, rec: _Recorder, code: tuple | None, name: str | None = None):
        self.rec, self.code, self.name = rec, code, name

    __add__, __radd__ = _infix("+")
    __sub__, __rsub__ = _infix("-")
    __mul__, __rmul__ = _infix("*")
    __truediv__, __rtruediv__ = _infix("/")
    __pow__, __rpow__ = _infix("**")
    __lt__, _ = _infix("<")
    __le__, _ = _infix("<=")
    __gt__, _ = _infix(">")
    __ge__, _ = _infix(">=")
    del _

    def __neg__(self):
        return self.rec.make("-{}", (self,))

    def __abs__(self):
        return self.rec.make("abs({})", (self,))

    def _refuse(self, *other):  # a branch on a value, a comparison for equality: not recordable
        raise _NotSymbolic

    __bool__ = __float__ = __int__ = __index__ = __len__ = __iter__ = __eq__ = __ne__ = _refuse
    __hash__ = object.__hash__


def _number(x):
    """A constant a rule may use: a plain number (anything else, an array say, is not recorded)."""
    if type(x) in (int, float, bool):
        return x
    raise _NotSymbolic


class _Recorder:
    def __init__(self, math_name: str, const: Callable[[object], str]):
        self.math_name, self.const = math_name, const

    def make(self, fmt: str, args: tuple) -> Sym:
        shown = [a if isinstance(a, Sym) else self.const(_number(a)) for a in args]
        return Sym(self, (fmt, shown))


class _SymMath:
    """The math namespace for symbols: every function records a call of the tape's math, except
    those NumpyMath computes as a composition of its other functions (:data:`~.numpy_math.EXPANSIONS`),
    which are recorded as that composition, so that their parts can be shared."""

    def __init__(self, rec: _Recorder, expand: bool, inline: bool):
        self._rec, self._expand, self._inline = rec, expand, inline

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._expand and name in EXPANSIONS:
            return lambda *args: EXPANSIONS[name](self, *args)
        rec = self._rec
        if self._inline and name in INLINE and (self._expand or name != "softplus"):
            return lambda *args: rec.make(INLINE[name], args)

        def call(*args):
            return rec.make(f"{rec.math_name}.{name}(" + ", ".join(["{}"] * len(args)) + ")", args)

        return call


def lower(rule: Callable, inputs: Sequence[str], wanted: Sequence[int], math_name: str,
          const: Callable[[object], str], temp: Callable[[], str], known: dict[str, str] | None = None,
          remember: bool = False, expand: bool = True, inline: bool = False
          ) -> tuple[list[str], list[str | None]] | None:
    """Lines computing the results ``wanted`` of ``rule(m, *inputs)`` (``inputs`` are the names of
    its arguments in the generated code), and each result's name (None where not wanted); or None
    when the rule cannot be recorded. ``const(value)`` names a constant, ``temp()`` a new local.
    ``known`` maps expressions computed earlier in the generated code to their locals: such an
    expression is not computed again (``remember``: add this rule's expressions to it).
    ``expand``: record the functions of :data:`~.numpy_math.EXPANSIONS` as their compositions (as
    NumpyMath computes them on arrays of at most ``SMALL`` elements). ``inline``: write the
    functions of :data:`~.numpy_math.INLINE` as their NumPy expressions (the generated code must
    have :data:`~.numpy_math.INLINE_NAMES`)."""
    rec = _Recorder(math_name, const)
    leaves = [Sym(rec, None, name) for name in inputs]
    try:
        results = rule(_SymMath(rec, expand, inline), *leaves)
        results = tuple(results)
    except (_NotSymbolic, TypeError, AttributeError, ValueError, ArithmeticError):
        return None
    lines: list[str] = []

    def name_of(sym: Sym) -> str:
        if sym.name is None:
            fmt, shown = sym.code
            expression = fmt.format(*[name_of(a) if isinstance(a, Sym) else a for a in shown])
            sym.name = known.get(expression) if known is not None else None
            if sym.name is None:
                sym.name = temp()
                lines.append(f"{sym.name} = {expression}")
                if remember:
                    known[expression] = sym.name
        return sym.name

    names: list[str | None] = [None] * len(results)
    try:
        for k in wanted:
            r = results[k]
            names[k] = name_of(r) if isinstance(r, Sym) else const(_number(r))
    except _NotSymbolic:
        return None
    return lines, names
