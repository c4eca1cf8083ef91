"""Custom primitives: add your own scalar operation, given as a float forward function and its
partial derivatives, to the primitive table, so it records nodes, prints and differentiates like
the built-in ones (``tinygrad_edu.primitive``).

A custom primitive is an ordinary :class:`~tinygrad_edu.ops.Primitive` (registered with
:func:`~tinygrad_edu.ops.register`) whose VJP rule is ``g * partial_i``. The partials come from one
function returning all of them, or, like the built-in rules, from one function per input, so that
only the gradients someone reads are computed. Its rules accept floats
and NumPy arrays (element by element, through ``np.vectorize``), so the batched engine can run it
too; the user's scalar functions stay available as ``op.scalar_forward`` / ``op.scalar_derivative``.
Its derivative is a float function, so it cannot be differentiated again: second derivatives
(``grad(..., create_graph=True)``) through a custom primitive raise ``NotImplementedError``.
"""

from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from . import engine, ops
from .engine import Value

Domain = Union[tuple[float, float], Callable[..., bool], None]


@dataclass(frozen=True, eq=False, repr=False)
class CustomPrimitive(ops.Primitive):
    """A primitive made by :func:`primitive`: a table entry that also keeps the user's functions.

    ``scalar_forward(*floats) -> float`` and ``scalar_derivative`` (``(*floats) -> float | tuple``,
    or a tuple of functions, one partial per input) are what the user gave; ``valid`` is the
    optional domain (an open interval ``(lo, hi)`` for every input, or a predicate on the inputs)
    that test strategies draw points from.
    """

    scalar_forward: Callable[..., float] | None = None
    scalar_derivative: Callable[..., object] | tuple[Callable[..., float], ...] | None = None
    valid: Domain = None

    def in_domain(self, *xs: float) -> bool:
        """Whether ``xs`` lies in the declared domain (always true when none was declared)."""
        if self.valid is None:
            return True
        if callable(self.valid):
            return bool(self.valid(*xs))
        lo, hi = self.valid
        return all(lo < x < hi for x in xs)


def _arity_of(forward: Callable, name: str) -> int:
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):  # some builtins (math.erf) have no signature
        raise TypeError(f"primitive {name!r}: cannot read the number of inputs of forward; pass arity=") from None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        raise TypeError(f"primitive {name!r}: forward takes *args; pass arity= with its number of inputs")
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    return len(positional)


def _partials(derivative: Callable, what: str, arity: int, xs: tuple) -> tuple[float, ...]:
    """Call the user's derivative and check that it gave one float per input (``arity`` of them)."""
    d = derivative(*xs)
    parts = d if isinstance(d, (tuple, list)) else (d,)
    if len(parts) != arity or not all(isinstance(p, numbers.Real) for p in parts):
        raise TypeError(
            f"{what} must return "
            + ("one float" if arity == 1 else f"a tuple of {arity} floats (one partial per input)")
            + f", got {d!r:.80}"
        )
    return tuple(float(p) for p in parts)


def _is_array(xs: tuple) -> bool:
    return any(isinstance(x, np.ndarray) for x in xs)


def _no_values(name: str, xs: tuple) -> None:
    if any(isinstance(x, Value) for x in xs):
        raise NotImplementedError(
            f"second derivatives through custom primitive {name!r} are not available: its derivative "
            "is a float function. Write the operation as a Python function of Values built from "
            "the built-in operations to get higher-order gradients."
        )


def _make_rules(name: str, arity: int, forward: Callable, derivative: Callable | tuple):
    """The forward rule and the derivative rules: ``(forward_rule, vjp, vjps)``, one of the last
    two given (``vjps`` when ``derivative`` is one function per input), the other ``None``."""
    def forward_rule(m, *xs):
        if _is_array(xs):
            return np.vectorize(forward, otypes=[float])(*xs)
        return float(forward(*xs))

    def partial_rule(i: int, d: Callable):
        what = f"derivative {i} of custom primitive {name!r}" if arity > 1 else f"the derivative of custom primitive {name!r}"

        def rule(m, g, out, *xs):
            _no_values(name, xs)
            if _is_array(xs):
                return g * np.vectorize(lambda *x: _partials(d, what, 1, x)[0], otypes=[float])(*xs)
            return g * _partials(d, what, 1, xs)[0]
        return rule

    if isinstance(derivative, tuple):
        return forward_rule, None, tuple(partial_rule(i, d) for i, d in enumerate(derivative))

    what = f"the derivative of custom primitive {name!r}"

    def vjp_rule(m, g, out, *xs):
        _no_values(name, xs)
        if _is_array(xs):
            if arity == 1:
                parts = (np.vectorize(lambda x: _partials(derivative, what, 1, (x,))[0], otypes=[float])(*xs),)
            else:
                parts = np.vectorize(lambda *x: _partials(derivative, what, arity, x), otypes=[float] * arity)(*xs)
        else:
            parts = _partials(derivative, what, arity, xs)
        return tuple(g * p for p in parts)

    return forward_rule, vjp_rule, None


def primitive(
    name: str,
    forward: Callable[..., float],
    derivative: Callable[..., object],
    *,
    arity: int | None = None,
    domain: Domain = None,
    kinks: tuple[float, ...] = (),
    doc: str = "",
) -> Callable[..., Value]:
    """Add a scalar primitive to the table and return the function that applies it to Values.

    ``forward(*floats) -> float`` computes the value. ``derivative(*floats)`` returns the partial
    derivative for one input, or a tuple of partials (d/dx0, d/dx1, ...) for several. Or give
    ``derivative`` as a tuple of functions, one partial per input (``(d_dx0, d_dx1)``, each
    ``(*floats) -> float``, as the built-in rules are written): then ``grad`` with respect to some
    inputs calls only the partials it needs. The number of inputs is read from ``forward``'s
    signature, or given as ``arity``.

    ``domain`` says where the operation is defined and smooth: an open interval ``(lo, hi)`` that
    every input must lie in, or a predicate ``domain(*floats) -> bool``. It is not enforced
    (``forward`` raises for bad inputs itself, as ``math.log`` does); test strategies
    (:mod:`tinygrad_edu.testing.strategies`) draw points inside it. ``kinks`` lists the inputs
    where the derivative is a convention (like ``0`` for ``abs``), so checks can say so.

    The returned function accepts Values and plain numbers, records a node drawn as
    ``name(x)``, and works with ``backward`` and ``grad``. First derivatives only: the
    derivative is a float function, so ``grad(create_graph=True)`` through it raises
    ``NotImplementedError``. The primitive itself is ``f.op``.

    >>> softplus = primitive("softplus", lambda x: math.log1p(math.exp(x)),
    ...                      lambda x: 1 / (1 + math.exp(-x)))
    >>> softplus(Value(0.0))  # doctest: +SKIP
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"primitive name must be an identifier such as 'softplus' (it is printed as name(x)), got {name!r}")
    if isinstance(derivative, list):
        derivative = tuple(derivative)
    partials = derivative if isinstance(derivative, tuple) else ()
    functions = [(f"derivative {i}", d) for i, d in enumerate(partials)] if partials else [("derivative", derivative)]
    for what, f in [("forward", forward), *functions]:
        if not callable(f):
            raise TypeError(f"primitive {name!r}: {what} must be a function of floats, got {type(f).__name__}")
    if arity is None:
        arity = _arity_of(forward, name)
    if not isinstance(arity, int) or arity < 1:
        raise ValueError(f"primitive {name!r}: arity must be a positive int, got {arity!r}")
    if partials and len(partials) != arity:
        raise ValueError(f"primitive {name!r}: derivative has {len(partials)} functions for {arity} inputs; "
                         "give one partial per input")
    if domain is not None and not callable(domain):
        try:
            lo, hi = (float(v) for v in domain)
        except (TypeError, ValueError):
            raise TypeError(
                f"primitive {name!r}: domain must be an interval (lo, hi) or a predicate function, got {domain!r}"
            ) from None
        if not lo < hi:
            raise ValueError(f"primitive {name!r}: domain interval needs lo < hi, got ({lo}, {hi})")
        domain = (lo, hi)
    if domain is None:
        words = "all real numbers"
    elif callable(domain):
        words = f"where {getattr(domain, '__name__', 'the domain predicate')}(...) is true"
    else:
        words = f"{_num(domain[0])} < x < {_num(domain[1])}"
    forward_rule, vjp_rule, vjps = _make_rules(name, arity, forward, derivative)
    op = ops.register(
        CustomPrimitive(
            name, arity, forward_rule, vjp_rule, vjps or (), domain=words, kinks=tuple(float(k) for k in kinks),
            doc=doc or (forward.__doc__ or ""), scalar_forward=forward, scalar_derivative=derivative, valid=domain,
        )
    )

    def apply(*args: Value | float) -> Value:
        if len(args) != arity:
            raise TypeError(f"{name}() takes {arity} input{'s' if arity > 1 else ''}, got {len(args)}")
        return engine.apply(op, *args)

    apply.__name__ = apply.__qualname__ = name
    apply.__doc__ = f"The custom primitive {name!r} applied to Values (or numbers). Domain: {words}."
    apply.op = op  # type: ignore[attr-defined]
    return apply


def _num(x: float) -> str:
    return "inf" if x == math.inf else ("-inf" if x == -math.inf else repr(x))


__all__ = ["primitive", "CustomPrimitive"]
