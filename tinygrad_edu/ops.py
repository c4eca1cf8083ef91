"""The primitive table: one record per primitive, holding every fact about it, written once.

A record (:class:`Primitive`) has the primitive's name and notation, its forward rule, its
derivative rule, the ``Value`` method or function that applies it, its domain (in words, and as a
predicate the test strategies draw points from), its kinks and whether the complex step applies.
Everything else reads it from here: ``Value``'s methods and operators, the expression parser's
functions, the strategies, gradcheck, the graph labels, the docs table (:func:`markdown_table`).

A rule is written against a small math namespace ``m`` (``m.exp``, ``m.log``, ``m.where``, …)
that plain floats (:data:`FLOAT_MATH`, in :mod:`tinygrad_edu.floatmath`), ``Value`` graphs
(``engine.VALUE_MATH``, for higher-order gradients), NumPy arrays (``batched.NUMPY_MATH``) and
complex numbers (gradcheck's complex step) all provide, so every interpreter shares one rule.

Derivative rules are vector-Jacobian products, one per input, as in autodidact and JAX:
``vjps[i](m, g, out, *xs)`` gets the output's gradient ``g``, the output ``out`` and all the
inputs ``xs``, and returns the gradient of input ``i``. So an interpreter computes only the
gradients someone reads (``grad(f(x, w), [w])`` never computes ``x``'s side of ``x * w``).
``vjp(m, g, out, *xs)``, all of them at once as a tuple, is made from them (a primitive over any
number of inputs, ``sum``, declares only that combined rule). Forward mode
(:mod:`tinygrad_edu.functional`) reads the same rules: for a scalar primitive, ``vjps[i](m, t,
out, *xs)`` is also the output's tangent for the tangent ``t`` of input ``i`` (summed over inputs).

Conventions at non-differentiable points follow PyTorch; :func:`markdown_table` lists them.
Every rule gives the same answer in every namespace: a result too large for a float is ``inf``
(IEEE 754, as in NumPy and PyTorch; never ``OverflowError``), an input outside the domain raises
like Python's ``math`` module, and a NaN input gives NaN (values and derivatives alike).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import numbers
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from .floatmath import FLOAT_MATH, FloatMath  # noqa: F401  (re-exported: ops.FLOAT_MATH)

LN2, LN10 = math.log(2.0), math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def _anywhere(*xs: float) -> bool:
    return True


def combined_rule(vjps: tuple[Callable[..., Any], ...]) -> Callable[..., tuple]:
    """The combined rule ``vjp(m, g, out, *xs) -> tuple`` of per-input rules (every gradient)."""
    def vjp(m, g, out, *xs):
        return tuple(rule(m, g, out, *xs) for rule in vjps)

    vjp.__wrapped__ = vjps[0]  # type: ignore[attr-defined]  (inspect.signature shows the inputs' names)
    vjp.derived_from = vjps  # type: ignore[attr-defined]
    return vjp


def per_input_rules(vjp: Callable[..., tuple], arity: int) -> tuple[Callable[..., Any], ...]:
    """Per-input rules made from a combined rule: rule ``i`` runs it and keeps gradient ``i``
    (correct, but computes every gradient; declare ``vjps`` to compute only the one asked for).
    Empty for a primitive over any number of inputs (``arity == -1``)."""
    def part(i: int) -> Callable[..., Any]:
        def rule(m, g, out, *xs):
            return vjp(m, g, out, *xs)[i]

        rule.derived_from = vjp  # type: ignore[attr-defined]
        return rule

    return tuple(part(i) for i in range(arity))


@dataclass(frozen=True, eq=False)
class Primitive:
    """One operation of the engine and every fact about it.

    ``forward(m, *xs)`` is its forward rule; its derivative is given as ``vjps``, one rule per
    input (``vjps[i](m, g, out, *xs)`` returns input ``i``'s gradient), or as one combined rule
    ``vjp(m, g, out, *xs)`` returning a tuple, one gradient per input. Either makes the other:
    every record has both (a combined rule's ``vjps`` pick its parts; ``n``-ary primitives have
    only ``vjp``). ``notation`` says how it prints:
    ``"call"`` (``name(x)``), ``"infix"`` (``a + b``), ``"prefix"`` (``-x``) or ``"postfix"``
    (``x ** 2``), with its operator ``symbol`` and ``precedence`` (Python's: 1 for ``+ -``, 2 for
    ``* / %``, 3 for unary minus, 4 for ``**``). ``method`` is the ``Value`` method or operator that
    applies it (``"exp"``, ``"__add__"``); ``function`` makes it ``tinygrad_edu.<name>(...)`` too.

    ``domain`` says in words where the forward rule is defined (errors, docs); ``interior(*xs)``
    is where its derivative is well-conditioned, where test strategies draw points. ``kinks`` lists
    the inputs where the derivative is a convention (``relu`` at 0); ``kinks_at(*xs)`` measures the
    distance to the nearest one when they are not single points (``floor`` at every integer).
    ``convention`` says in words what the derivative is there (PyTorch's choice). ``complex_step``:
    the forward rule is analytic and runs on complex numbers, so gradcheck's complex step applies.
    ``params`` holds a parametrised primitive's non-default parameters (:class:`Family`), ``exponent``
    the ``c`` of ``x ** c``, ``base`` the ``c`` of ``c ** x``. ``doc`` is its derivative in words,
    for the docs table.
    """

    name: str
    arity: int  # number of inputs; -1 for n-ary (sum)
    forward: Callable[..., Any]
    vjp: Callable[..., tuple] | None = None  # the combined rule (made from vjps when not given)
    vjps: tuple[Callable[..., Any], ...] = ()  # one rule per input (made from vjp when not given)
    notation: str = "call"
    symbol: str = ""
    precedence: int = 9
    method: str | None = None
    function: bool = False
    domain: str = "all real numbers"
    interior: Callable[..., bool] = _anywhere
    kinks: tuple[float, ...] = ()
    kinks_at: Callable[..., float] | None = None
    convention: str = ""
    complex_step: bool = False
    continuous: bool = True  # False where the function jumps (floor, mod, atan2's cut), not only bends
    params: tuple[tuple[str, Any], ...] = ()
    exponent: float | None = None  # set on the x ** c family (pow_const): c
    base: float | None = None  # set on the c ** x family (rpow_const): c
    doc: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.vjp is None and not self.vjps:
            raise TypeError(f"primitive {self.name!r} needs a derivative rule: vjps=(one rule per input) or vjp=")
        if self.vjps and self.arity != len(self.vjps):
            raise TypeError(f"primitive {self.name!r} takes {self.arity} inputs but has {len(self.vjps)} rules in vjps")
        if self.vjp is None:
            object.__setattr__(self, "vjp", combined_rule(self.vjps))  # the record is frozen
        elif not self.vjps:
            object.__setattr__(self, "vjps", per_input_rules(self.vjp, self.arity))
        # float_backward(node) and float_grad(node, g, grads, needed): this record's rules
        # written out for a node of floats (specialize.py), which Value.backward() and grad()
        # run; made on first use. Plain attributes rather than properties: the engine reads one
        # per node.
        object.__setattr__(self, "float_backward", _FIRST_FLOAT_BACKWARD)
        object.__setattr__(self, "float_grad", _FIRST_FLOAT_GRAD)

    @property
    def is_call(self) -> bool:
        """Whether it prints as a call, ``name(x, ...)``, rather than with an operator symbol."""
        return self.notation == "call"

    def format(self, *args: str) -> str:
        """Render this operation applied to already-formatted arguments, e.g. ``(x * w)``."""
        if self.notation == "infix":
            return "(" + f" {self.symbol} ".join(args) + ")"
        if self.base is not None:
            return f"({self.symbol}{args[0]})"
        if self.notation == "prefix":
            return f"{self.symbol}{args[0]}"
        if self.notation == "postfix":
            return f"({args[0]} {self.symbol})"
        shown = [*args, *(f"{k}={v!r}" for k, v in self.params)]
        return f"{self.name}({', '.join(shown)})"

    def kink_distance(self, *xs: float) -> float:
        """How far the inputs ``xs`` are from the nearest kink (``inf`` when there is none)."""
        if self.kinks_at is not None:
            return abs(self.kinks_at(*xs))
        return min((abs(x - k) for x in xs for k in self.kinks), default=math.inf)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.params)
        return f"Primitive({self.name!r}{extra})"


def _made_on_first_use(attribute: str, make: str) -> Callable[..., None]:
    """A primitive's ``attribute`` until its first use: it makes the function with
    ``specialize.<make>(op)``, keeps it on the record in its own place and runs it."""
    def first(node: Any, *args: Any) -> None:
        from . import specialize  # imported late: it reads this module's records

        op = node._op
        step = getattr(specialize, make)(op)
        object.__setattr__(op, attribute, step)
        step(node, *args)

    return first


_FIRST_FLOAT_BACKWARD = _made_on_first_use("float_backward", "backward_step")
_FIRST_FLOAT_GRAD = _made_on_first_use("float_grad", "grad_step")


class Family:
    """Primitives that differ only in parameters (``x ** c``, ``leaky_relu``'s slope, ``clamp``'s
    bounds): ``family(**params)`` is the member for those values, made on first use and kept in a
    bounded cache, so equal parameters give the same record (the batched engine groups by it).

    ``make(**params)`` builds a member (and rejects bad parameters with a one-line error);
    ``params`` are the parameter names with their defaults (:data:`REQUIRED` for none);
    ``examples`` are parameter sets the test strategies draw; ``default``, the member for the
    first of them, stands for the family in :data:`PRIMITIVES`. A member's ``params`` are the
    parameters that differ from the defaults (so ``leaky_relu(x)`` prints without its slope).
    """

    def __init__(self, name: str, make: Callable[..., Primitive], params: dict[str, Any], *,
                 method: str | None = None, function: bool = False, examples: tuple[dict, ...] = ({},)):
        self.name, self.params, self.method, self.function = name, dict(params), method, function
        self._make = functools.lru_cache(maxsize=256)(lambda *values: self._member(make, values))
        self.examples = examples
        self.default = self(**examples[0])

    def _member(self, make: Callable[..., Primitive], values: tuple) -> Primitive:
        op = make(**dict(zip(self.params, values)))
        # Print only the parameters that differ from the defaults: leaky_relu(x), elu(x, alpha=0.5).
        shown = tuple((k, v) for k, v in op.params if self.params.get(k, REQUIRED) is REQUIRED or self.params[k] != v)
        return dataclasses.replace(op, params=shown)

    def __call__(self, *args: Any, **kwargs: Any) -> Primitive:
        names = list(self.params)
        if len(args) > len(names):
            raise TypeError(f"{self.name} takes at most {len(names)} parameters ({', '.join(names)}), got {len(args)}")
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in self.params:
                raise TypeError(f"{self.name} got an unknown parameter {k!r}; its parameters are {', '.join(names)}")
            if k in values:
                raise TypeError(f"{self.name} got {k!r} twice")
            values[k] = v
        for k, v in self.params.items():
            values.setdefault(k, v)
            if values[k] is REQUIRED:
                raise TypeError(f"{self.name} needs the parameter {k!r}")
        key = tuple(values[k] for k in names)
        try:
            hash(key)
        except TypeError:  # an unhashable parameter: make rejects it with its own message
            return self._make.__wrapped__(*key)
        return self._make(*key)

    def members(self) -> list[Primitive]:
        """The members for :attr:`examples` (for test strategies)."""
        return [self(**params) for params in self.examples]

    def __repr__(self) -> str:
        return f"Family({self.name!r})"


REQUIRED: Any = object()  # marks a Family parameter without a default


def _real(name: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: {what} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: {what} must be finite, got {value!r}")
    return float(value)


# Helpers the rules share ---------------------------------------------------------------------


def _log_or(m, a, fill):
    """log(a) where a > 0, else ``fill``; safe to evaluate on every input (no domain error)."""
    positive = a > 0
    return m.where(positive, m.log(m.where(positive, a, 1.0)), fill)


def _is_zero(x):
    """x == 0 in every namespace (a Value's == is identity; NaN is not zero)."""
    return abs(x) <= 0


def _pow_vjp_base(m, g, out, a, b):
    # d/da a**b = b * a**(b-1). At (0, 0) that is 0 * 0**-1, and PyTorch gives 0 (a**0 is
    # constant): there the exponent b - 1 becomes 1 - 1, so 0 * 0**0 = 0 and 0**-1 never runs.
    return g * (b * m.pow(a, m.where(abs(a) + abs(b) <= 0, 1.0, b) - 1))  # both zero (NaN is not)


def _pow_vjp_exponent(m, g, out, a, b):
    # d/db a**b = a**b * log(a): defined for a > 0; 0 at a == 0 (PyTorch's convention),
    # NaN for a negative base, where a**b is only defined at integer b, and for a NaN base.
    return g * out * _log_or(m, a, m.where(_is_zero(a), 0.0, math.nan))


def _number_label(c: float) -> str:
    return repr(int(c)) if c == int(c) and abs(c) < 1e15 else repr(c)


def _zero(m, g, out, x):
    return g * 0.0


def _near_integer(x: float) -> float:
    return x - math.floor(x + 0.5) if math.isfinite(x) else math.inf


def _mod_jump_distance(a: float, b: float) -> float:
    """The signed distance in the (a, b) plane from the point to the nearest line a = k·b (k an
    integer), where a % b jumps; 0 at b == 0."""
    if b == 0 or not (math.isfinite(a) and math.isfinite(b)):
        return 0.0
    k = math.floor(a / b + 0.5)
    return (a - k * b) / math.hypot(1.0, k)


def _unary(name: str, forward, vjp, **facts) -> Primitive:
    """A one-input primitive written as a call and reached by the ``Value`` method ``name``."""
    return Primitive(name, 1, forward, vjps=(vjp,), method=facts.pop("method", name), **facts)


def _binary_function(name: str, forward, vjps, **facts) -> Primitive:
    """A two-input primitive written as a call: ``tinygrad_edu.<name>(a, b)``."""
    return Primitive(name, 2, forward, vjps=vjps, function=True, **facts)


# The table. Each entry: forward, then its derivative right beside it. -------------------------

# A two-input primitive has one rule per input, the gradient of a then of b: vjps=(d_a, d_b).
ADD = Primitive("add", 2, lambda m, a, b: a + b, vjps=(lambda m, g, out, a, b: g, lambda m, g, out, a, b: g),
                notation="infix", symbol="+", precedence=1, method="__add__", complex_step=True, doc="1, 1")
SUB = Primitive("sub", 2, lambda m, a, b: a - b, vjps=(lambda m, g, out, a, b: g, lambda m, g, out, a, b: -g),
                notation="infix", symbol="-", precedence=1, method="__sub__", complex_step=True, doc="1, -1")
MUL = Primitive("mul", 2, lambda m, a, b: a * b, vjps=(lambda m, g, out, a, b: g * b, lambda m, g, out, a, b: g * a),
                notation="infix", symbol="*", precedence=2, method="__mul__", complex_step=True, doc="b, a")
DIV = Primitive(
    "div", 2, lambda m, a, b: a / b, vjps=(lambda m, g, out, a, b: g / b, lambda m, g, out, a, b: -g * out / b),
    notation="infix", symbol="/", precedence=2, method="__truediv__", domain="b != 0",
    interior=lambda a, b: abs(b) >= 0.25, complex_step=True, doc="1/b, -a/b²",
)
MOD = Primitive(
    "mod", 2, lambda m, a, b: m.mod(a, b),
    vjps=(lambda m, g, out, a, b: g, lambda m, g, out, a, b: -g * m.floordiv(a, b)), notation="infix",
    symbol="%", precedence=2, method="__mod__", domain="b != 0",
    interior=lambda a, b: abs(b) >= 0.25, kinks_at=lambda a, b: _mod_jump_distance(a, b), continuous=False,
    convention="jumps where a/b is an integer; the derivative there is the one-sided 1, -floor(a/b)",
    doc="1, -floor(a/b) (Python's sign rule: the result has b's sign)",
)
POW = Primitive(
    "pow", 2, lambda m, a, b: m.pow(a, b), vjps=(_pow_vjp_base, _pow_vjp_exponent), notation="infix", symbol="**", precedence=4,
    domain="a > 0, or a < 0 with an integer b, or a == 0 with b >= 0",
    interior=lambda a, b: 0.25 <= a <= 10.0 and abs(b) <= 3.0, complex_step=True,
    convention="d/db at a = 0 is 0; NaN for a negative base", doc="b·a^(b-1), a^b·log a",
)
NEG = Primitive("neg", 1, lambda m, x: -x, vjps=(lambda m, g, out, x: -g,), notation="prefix", symbol="-",
                precedence=3, method="__neg__", complex_step=True, doc="-1")
ABS = _unary("abs", lambda m, x: abs(x), lambda m, g, out, x: g * m.sign(x), method="__abs__",
             kinks=(0.0,), convention="0 at 0", doc="sign(x)")
EXP = _unary("exp", lambda m, x: m.exp(x), lambda m, g, out, x: g * out, domain="x <= 709.78",
             interior=lambda x: x <= 4.0, complex_step=True, doc="exp x")
LOG = _unary("log", lambda m, x: m.log(x), lambda m, g, out, x: g / x, domain="x > 0",
             interior=lambda x: x >= 0.1, complex_step=True, doc="1/x")
SQRT = _unary("sqrt", lambda m, x: m.sqrt(x), lambda m, g, out, x: g / (2.0 * out),
              domain="x >= 0 (x > 0 for the derivative)", interior=lambda x: x >= 0.1, complex_step=True,
              doc="1/(2 sqrt x)")
TANH = _unary("tanh", lambda m, x: m.tanh(x), lambda m, g, out, x: g * (1.0 - out * out), complex_step=True,
              doc="1 - tanh²")
SIGMOID = _unary("sigmoid", lambda m, x: m.sigmoid(x), lambda m, g, out, x: g * out * (1.0 - out),
                 complex_step=True, doc="σ(1-σ)")
SOFTPLUS = _unary("softplus", lambda m, x: m.softplus(x), lambda m, g, out, x: g * m.sigmoid(x),
                  complex_step=True, doc="σ(x)")
RELU = _unary("relu", lambda m, x: m.relu(x), lambda m, g, out, x: g * m.step(x), kinks=(0.0,),
              convention="0 at 0", complex_step=True, doc="1 where x > 0, else 0")
SIN = _unary("sin", lambda m, x: m.sin(x), lambda m, g, out, x: g * m.cos(x), complex_step=True, doc="cos x")
COS = _unary("cos", lambda m, x: m.cos(x), lambda m, g, out, x: -g * m.sin(x), complex_step=True, doc="-sin x")
SUM = Primitive("sum", -1, lambda m, *xs: m.add_n(xs), lambda m, g, out, *xs: (g,) * len(xs), complex_step=True,
                doc="1 for every input")
# nn.binary_cross_entropy_with_logits's graph, softplus(z) - z * t, as one primitive: the same
# forward, and the derivative sigmoid(z) - t in one rule (the batched engine's fuse_logit_bce pass).
BCE_WITH_LOGITS = Primitive(
    "binary_cross_entropy_with_logits", 2, lambda m, z, t: m.softplus(z) - z * t,
    vjps=(lambda m, g, out, z, t: g * (m.sigmoid(z) - t), lambda m, g, out, z, t: -g * z), complex_step=True,
    doc="σ(z) - t, -z",
)

# Trigonometric and hyperbolic functions and their inverses.
TAN = _unary("tan", lambda m, x: m.tan(x), lambda m, g, out, x: g * (1.0 + out * out),
             domain="x not an odd multiple of π/2", interior=lambda x: abs(x) <= 1.2, complex_step=True,
             doc="1 + tan²")
ASIN = _unary("asin", lambda m, x: m.asin(x), lambda m, g, out, x: g / m.sqrt(1.0 - x * x),
              domain="-1 <= x <= 1 (inside for the derivative)", interior=lambda x: abs(x) <= 0.9,
              complex_step=True, doc="1/sqrt(1 - x²)")
ACOS = _unary("acos", lambda m, x: m.acos(x), lambda m, g, out, x: -g / m.sqrt(1.0 - x * x),
              domain="-1 <= x <= 1 (inside for the derivative)", interior=lambda x: abs(x) <= 0.9,
              complex_step=True, doc="-1/sqrt(1 - x²)")
ATAN = _unary("atan", lambda m, x: m.atan(x), lambda m, g, out, x: g / (1.0 + x * x), complex_step=True,
              doc="1/(1 + x²)")
SINH = _unary("sinh", lambda m, x: m.sinh(x), lambda m, g, out, x: g * m.cosh(x),
              interior=lambda x: abs(x) <= 4.0, complex_step=True, doc="cosh x")
COSH = _unary("cosh", lambda m, x: m.cosh(x), lambda m, g, out, x: g * m.sinh(x),
              interior=lambda x: abs(x) <= 4.0, complex_step=True, doc="sinh x")
ASINH = _unary("asinh", lambda m, x: m.asinh(x), lambda m, g, out, x: g / m.sqrt(x * x + 1.0),
               complex_step=True, doc="1/sqrt(x² + 1)")
ACOSH = _unary("acosh", lambda m, x: m.acosh(x), lambda m, g, out, x: g / m.sqrt(x * x - 1.0),
               domain="x >= 1 (x > 1 for the derivative)", interior=lambda x: 1.1 <= x <= 10.0,
               complex_step=True, doc="1/sqrt(x² - 1)")
ATANH = _unary("atanh", lambda m, x: m.atanh(x), lambda m, g, out, x: g / (1.0 - x * x),
               domain="-1 < x < 1", interior=lambda x: abs(x) <= 0.9, complex_step=True, doc="1/(1 - x²)")

DEG2RAD = _unary("deg2rad", lambda m, x: x * (math.pi / 180.0), lambda m, g, out, x: g * (math.pi / 180.0),
                 complex_step=True, doc="π/180")

# Exponentials and logarithms that keep their precision.
LOG1P = _unary("log1p", lambda m, x: m.log1p(x), lambda m, g, out, x: g / (1.0 + x), domain="x > -1",
               interior=lambda x: x >= -0.9, complex_step=True, doc="1/(1 + x); exact for tiny x")
EXPM1 = _unary("expm1", lambda m, x: m.expm1(x), lambda m, g, out, x: g * (out + 1.0),
               interior=lambda x: x <= 4.0, complex_step=True, doc="exp x; exact for tiny x")
LOG2 = _unary("log2", lambda m, x: m.log2(x), lambda m, g, out, x: g / (x * LN2), domain="x > 0",
              interior=lambda x: x >= 0.1, complex_step=True, doc="1/(x ln 2)")
LOG10 = _unary("log10", lambda m, x: m.log10(x), lambda m, g, out, x: g / (x * LN10), domain="x > 0",
               interior=lambda x: x >= 0.1, complex_step=True, doc="1/(x ln 10)")
EXP2 = _unary("exp2", lambda m, x: m.exp2(x), lambda m, g, out, x: g * out * LN2,
              interior=lambda x: x <= 6.0, complex_step=True, doc="2^x ln 2")
ERF = _unary("erf", lambda m, x: m.erf(x), lambda m, g, out, x: g * _TWO_OVER_SQRT_PI * m.exp(-x * x),
             doc="2/sqrt(π) exp(-x²)")
ERFC = _unary("erfc", lambda m, x: m.erfc(x), lambda m, g, out, x: -g * _TWO_OVER_SQRT_PI * m.exp(-x * x),
              doc="-2/sqrt(π) exp(-x²)")

# Rounding: piecewise constant, so the derivative is 0 (PyTorch's choice, also at the jumps).
_STEPS = "0 everywhere, also at the jumps"
FLOOR = _unary("floor", lambda m, x: m.floor(x), _zero, kinks_at=_near_integer, convention=_STEPS, doc="0", continuous=False)
CEIL = _unary("ceil", lambda m, x: m.ceil(x), _zero, kinks_at=_near_integer, convention=_STEPS, doc="0", continuous=False)
TRUNC = _unary("trunc", lambda m, x: m.trunc(x), _zero, kinks_at=_near_integer, convention=_STEPS, doc="0", continuous=False)
ROUND = _unary("round", lambda m, x: m.round(x), _zero, kinks_at=lambda x: _near_integer(x + 0.5),
               convention=_STEPS + "; halves round to even", doc="0", continuous=False)
SIGN = _unary("sign", lambda m, x: m.sign(x), _zero, kinks=(0.0,), convention="0, also at 0", doc="0",
              continuous=False)

# Functions of two inputs: tinygrad_edu.atan2(y, x), hypot, maximum, minimum, logaddexp.
ATAN2 = _binary_function(
    "atan2", lambda m, y, x: m.atan2(y, x),
    (lambda m, g, out, y, x: g * x / (x * x + y * y), lambda m, g, out, y, x: -g * y / (x * x + y * y)),
    domain="all (y, x); the derivative needs (y, x) != (0, 0)",
    interior=lambda y, x: math.hypot(y, x) >= 0.25, kinks_at=lambda y, x: abs(y) if x < 0 else math.hypot(y, x),
    continuous=False,
    convention="jumps by 2π across y = 0 for x < 0; the derivative there is the one-sided limit",
    doc="x/(x² + y²), -y/(x² + y²)",
)
HYPOT = _binary_function(
    "hypot", lambda m, a, b: m.hypot(a, b), (lambda m, g, out, a, b: g * a / out, lambda m, g, out, a, b: g * b / out),
    domain="all (a, b); the derivative needs (a, b) != (0, 0)", interior=lambda a, b: math.hypot(a, b) >= 0.25,
    kinks=(), kinks_at=lambda a, b: math.hypot(a, b), complex_step=False, doc="a/hypot, b/hypot",
)
_TIE = "a tie splits the gradient 0.5/0.5"
# d max(a, b)/da = 0.5 (1 + sign(a - b)): 1 for the larger input, 0.5 at a tie, NaN where a or b is.
MAXIMUM = _binary_function(
    "maximum", lambda m, a, b: m.maximum(a, b),
    (lambda m, g, out, a, b: g * (0.5 * (1.0 + m.sign(a - b))), lambda m, g, out, a, b: g * (0.5 * (1.0 - m.sign(a - b)))),
    kinks_at=lambda a, b: (a - b) * math.sqrt(0.5), convention=_TIE, doc="1 to the larger input, 0 to the other",
)
MINIMUM = _binary_function(
    "minimum", lambda m, a, b: m.minimum(a, b),
    (lambda m, g, out, a, b: g * (0.5 * (1.0 - m.sign(a - b))), lambda m, g, out, a, b: g * (0.5 * (1.0 + m.sign(a - b)))),
    kinks_at=lambda a, b: (a - b) * math.sqrt(0.5), convention=_TIE, doc="1 to the smaller input, 0 to the other",
)
LOGADDEXP = _binary_function(
    "logaddexp", lambda m, a, b: m.logaddexp(a, b),
    (lambda m, g, out, a, b: g * m.sigmoid(a - b), lambda m, g, out, a, b: g * m.sigmoid(b - a)), complex_step=True,
    doc="σ(a - b), σ(b - a)",
)

# Activations.
SILU = _unary("silu", lambda m, x: x * m.sigmoid(x),
              lambda m, g, out, x: g * (m.sigmoid(x) * (1.0 + x * (1.0 - m.sigmoid(x)))), complex_step=True,
              doc="σ(x)(1 + x(1 - σ(x)))")
LOGSIGMOID = _unary("logsigmoid", lambda m, x: -m.softplus(-x), lambda m, g, out, x: g * m.sigmoid(-x),
                    complex_step=True, doc="σ(-x)")
SOFTSIGN = _unary("softsign", lambda m, x: x / (1.0 + abs(x)),
                  lambda m, g, out, x: g / ((1.0 + abs(x)) * (1.0 + abs(x))), kinks=(0.0,),
                  convention="smooth at 0 (derivative 1); its second derivative jumps there",
                  doc="1/(1 + |x|)²")


def _leaky_relu(negative_slope: float) -> Primitive:
    s = _real("leaky_relu", "negative_slope", negative_slope)
    return Primitive(
        "leaky_relu", 1, lambda m, x: m.where(x > 0, x, x * s),
        vjps=(lambda m, g, out, x: g * (s + (1.0 - s) * m.step(x)),),  # step: 1 where x > 0, 0 at 0, NaN at NaN
        kinks=(0.0,), convention="negative_slope at 0", params=(("negative_slope", s),),
        doc="1 where x > 0, else negative_slope",
    )


def _elu(alpha: float) -> Primitive:
    a = _real("elu", "alpha", alpha)
    return Primitive(
        "elu", 1, lambda m, x: m.where(x > 0, x, a * m.expm1(m.where(x > 0, 0.0, x))),
        vjps=(lambda m, g, out, x: g * m.where(x > 0, 1.0, a * m.exp(m.where(x > 0, 0.0, x))),),
        kinks=(0.0,), convention="alpha at 0", params=(("alpha", a),),
        doc="1 where x > 0, else alpha·exp(x)",
    )


def _gelu_exact(m, x):  # x·Φ(x), Φ written with erfc: no cancellation for x << 0
    return 0.5 * x * m.erfc(-x * math.sqrt(0.5))


def _gelu_exact_vjp(m, g, out, x):
    return g * (0.5 * m.erfc(-x * math.sqrt(0.5)) + x * _INV_SQRT_2PI * m.exp(-0.5 * x * x))


def _gelu_tanh(m, x):
    return 0.5 * x * (1.0 + m.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x * x * x)))


def _gelu_tanh_vjp(m, g, out, x):
    t = m.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x * x * x))
    return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * x * x))


def _gelu(approximate: str) -> Primitive:
    if approximate == "none":
        return Primitive("gelu", 1, _gelu_exact, vjps=(_gelu_exact_vjp,), doc="Φ(x) + x·φ(x)")
    if approximate == "tanh":
        return Primitive("gelu", 1, _gelu_tanh, vjps=(_gelu_tanh_vjp,), params=(("approximate", "tanh"),),
                         complex_step=True, doc="of 0.5x(1 + tanh(sqrt(2/π)(x + 0.044715x³)))")
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r:.40}")


def _clip(m, x, lo, hi):
    if lo is not None:
        x = m.where(x < lo, lo, x)
    if hi is not None:
        x = m.where(x > hi, hi, x)
    return x


def _inside(m, x, lo, hi):
    """1.0 where lo <= x <= hi (a missing bound does not limit), else 0.0; NaN at NaN."""
    below = 0.0 if lo is None else m.step(lo - x)
    above = 0.0 if hi is None else m.step(x - hi)
    return (1.0 - below) * (1.0 - above)


def _clamp(min: float | None, max: float | None) -> Primitive:  # noqa: A002  (PyTorch's names)
    lo = None if min is None else _real("clamp", "min", min)
    hi = None if max is None else _real("clamp", "max", max)
    if lo is None and hi is None:
        raise TypeError("clamp needs min or max (or both)")
    return Primitive(
        "clamp", 1, lambda m, x: _clip(m, x, lo, hi), vjps=(lambda m, g, out, x: g * _inside(m, x, lo, hi),),
        kinks=tuple(b for b in (lo, hi) if b is not None), params=(("min", lo), ("max", hi)),
        convention="1 at min and max (the gradient passes at the bounds); above max when min > max",
        doc="1 where min <= x <= max, else 0",
    )


def _hardtanh(min_val: float, max_val: float) -> Primitive:
    lo, hi = _real("hardtanh", "min_val", min_val), _real("hardtanh", "max_val", max_val)
    if lo > hi:
        raise ValueError(f"hardtanh: min_val ({lo!r}) must not be greater than max_val ({hi!r})")
    return Primitive(
        "hardtanh", 1, lambda m, x: _clip(m, x, lo, hi),
        vjps=(lambda m, g, out, x: g * (m.step(x - lo) * m.step(hi - x)),),
        kinks=(lo, hi), params=(("min_val", lo), ("max_val", hi)),
        convention="0 at min_val and max_val (unlike clamp)", doc="1 where min_val < x < max_val, else 0",
    )


def _where(condition: bool) -> Primitive:
    if not isinstance(condition, bool):
        if type(condition).__name__ not in ("bool_", "bool"):  # a Python or NumPy bool
            raise TypeError(f"where: condition must be a bool, such as x > 0, got {type(condition).__name__}")
        condition = bool(condition)
    c = condition
    return Primitive(
        "where", 2, lambda m, a, b: a if c else b,
        vjps=(lambda m, g, out, a, b: g if c else g * 0.0, lambda m, g, out, a, b: g * 0.0 if c else g),
        params=(("condition", c),),
        complex_step=True, doc="1 to the chosen input, 0 to the other",
    )


LEAKY_RELU = Family("leaky_relu", _leaky_relu, {"negative_slope": 0.01}, method="leaky_relu",
                    examples=({"negative_slope": 0.01}, {"negative_slope": 0.2}))
ELU = Family("elu", _elu, {"alpha": 1.0}, method="elu", examples=({"alpha": 1.0}, {"alpha": 0.5}))
GELU = Family("gelu", _gelu, {"approximate": "none"}, method="gelu",
              examples=({"approximate": "none"}, {"approximate": "tanh"}))
HARDTANH = Family("hardtanh", _hardtanh, {"min_val": -1.0, "max_val": 1.0}, method="hardtanh",
                  examples=({"min_val": -1.0, "max_val": 1.0},))
CLAMP = Family("clamp", _clamp, {"min": None, "max": None}, method="clamp", function=True,
               examples=({"min": -1.0, "max": 1.0}, {"min": 0.0}, {"max": 0.5}))
WHERE = Family("where", _where, {"condition": REQUIRED},
               examples=({"condition": True}, {"condition": False}))

#: The parametrised primitives by name; :data:`PRIMITIVES` lists each one's default member.
FAMILIES: dict[str, Family] = {f.name: f for f in (LEAKY_RELU, ELU, GELU, HARDTANH, CLAMP, WHERE)}

#: Every primitive by name (a family by its default member). Custom primitives join with :func:`register`.
PRIMITIVES: dict[str, Primitive] = {
    p.name: p for p in (
        ADD, SUB, MUL, DIV, MOD, POW, NEG, ABS, EXP, LOG, SQRT, TANH, SIGMOID, SOFTPLUS, RELU, SIN, COS, SUM,
        BCE_WITH_LOGITS,
        TAN, ASIN, ACOS, ATAN, SINH, COSH, ASINH, ACOSH, ATANH, DEG2RAD, LOG1P, EXPM1, LOG2, LOG10, EXP2, ERF, ERFC,
        FLOOR, CEIL, TRUNC, ROUND, SIGN, ATAN2, HYPOT, MAXIMUM, MINIMUM, LOGADDEXP, SILU, LOGSIGMOID, SOFTSIGN,
        *(f.default for f in FAMILIES.values() if f.default is not None),
    )
}
#: The names ops.py itself defines (before any custom primitive is registered).
BUILTIN_NAMES: tuple[str, ...] = tuple(PRIMITIVES)


def _pow_const(c: float) -> Primitive:
    if c == 0:
        vjp = lambda m, g, out, x: g * 0.0  # noqa: E731  (x**0 is constant; avoids 0 * x**-1)
    else:
        vjp = lambda m, g, out, x: g * c * m.pow(x, c - 1.0)  # noqa: E731
    label = _number_label(c)
    if c == int(c):
        interior = _anywhere if c >= 0 else (lambda x: abs(x) >= 0.25)
    else:
        interior = lambda x: 0.25 <= x <= 10.0  # noqa: E731  (a fractional power needs x > 0; keep its derivative tame)
    return Primitive(
        f"**{label}", 1, lambda m, x: m.pow(x, c), vjps=(vjp,), notation="postfix", symbol=f"** {label}", precedence=4,
        exponent=c, domain="x > 0 unless the exponent is an integer", interior=interior, complex_step=True,
        doc="c·x^(c-1)",
    )


def _rpow_const(c: float) -> Primitive:
    # d/dx c**x = c**x * log(c); 0 for c == 0 and NaN for c < 0, as d/db of POW. The base is a
    # number, not a node, so its own partial (b * c**(b-1), infinite at c == 0 and 0 < b < 1) is
    # never computed: (0.0 ** y).backward() gives y.grad == 0.
    dlog = math.log(c) if c > 0 else (0.0 if c == 0 else math.nan)
    label = _number_label(c)
    return Primitive(
        f"{label}**", 1, lambda m, x: m.pow(c, x), vjps=(lambda m, g, out, x: g * out * dlog,), notation="prefix",
        symbol=f"{label} ** ", precedence=4, base=c, complex_step=c > 0,
        domain="x >= 0 if the base is 0; an integer x if the base is negative",
        interior=(lambda x: abs(x) <= 3.0) if c > 0 else _anywhere, doc="c^x log c",
    )


class _Interned:
    """One primitive per constant, made on demand: the same instance for a constant as long as any
    graph (or anyone) holds it, and the ``size`` most recently made kept alive besides, so identity
    comparisons hold and memory stays bounded however many distinct constants a program uses."""

    def __init__(self, make: Callable[[float], Primitive], size: int = 256):
        self._make, self._size = make, size
        self.recent: dict[float, Primitive] = {}  # the lookup of the hot path; oldest dropped first
        self._live: weakref.WeakValueDictionary[float, Primitive] = weakref.WeakValueDictionary()

    def miss(self, c: float) -> Primitive:
        """The primitive for ``c`` when it is not among the recent ones."""
        c = float(c)
        op = self._live.get(c)
        if op is None:
            op = self._live[c] = self._make(c)
        recent = self.recent
        recent[c] = op
        if len(recent) > self._size:
            del recent[next(iter(recent))]
        return op

    def __len__(self) -> int:
        return len(self._live)


_POW_CONST_CACHE = _Interned(_pow_const)
_RPOW_CONST_CACHE = _Interned(_rpow_const)
_POW_CONST_RECENT, _RPOW_CONST_RECENT = _POW_CONST_CACHE.recent, _RPOW_CONST_CACHE.recent


def pow_const(c: float) -> Primitive:
    """The primitive ``x ** c`` for a constant number ``c`` (one instance per exponent while in use)."""
    op = _POW_CONST_RECENT.get(c)
    return op if op is not None else _POW_CONST_CACHE.miss(c)


def rpow_const(c: float) -> Primitive:
    """The primitive ``c ** x`` for a constant number ``c`` (one instance per base while in use)."""
    op = _RPOW_CONST_RECENT.get(c)
    return op if op is not None else _RPOW_CONST_CACHE.miss(c)


def register(op: Primitive) -> Primitive:
    """Add ``op`` to :data:`PRIMITIVES`; a name already taken by a different primitive is an error."""
    existing = PRIMITIVES.get(op.name)
    if existing is not None and existing is not op:
        raise ValueError(f"a primitive named {op.name!r} already exists; choose another name")
    if op.name in FAMILIES:
        raise ValueError(f"a primitive named {op.name!r} already exists; choose another name")
    PRIMITIVES[op.name] = op
    return op


def spelling(op: Primitive) -> str:
    """How Python code applies ``op``: ``a + b``, ``x.exp()``, ``tinygrad_edu.atan2(a, b)``."""
    family = FAMILIES.get(op.name)
    if op.notation == "infix":
        return f"`a {op.symbol} b`"
    if op.notation == "prefix":
        return f"`{op.symbol}x`"
    if op.notation == "postfix":
        return "`x ** c`"
    if op.method == "__abs__":
        return "`abs(x)`"
    if family is not None:
        params = ", ".join(f"{k}={v!r}" for k, v in family.params.items() if v is not REQUIRED)
        if family.method:
            return f"`x.{family.method}({params})`"
        return "`tinygrad_edu.where(cond, a, b)`"
    if op.name == "sum":
        return "`tinygrad_edu.sum(values)`"
    if op.function:
        return f"`tinygrad_edu.{op.name}({', '.join(list(inspect.signature(op.forward).parameters)[1:])})`"
    return f"`x.{op.method}()`" if op.method else f"`{op.name}(x)`"


def markdown_table() -> str:
    """The docs table of the built-in primitives (docs/engine.md), made from their records."""
    rows = ["| primitive | Python | derivative | domain | at kinks and edges (as PyTorch) |", "|---|---|---|---|---|"]
    for name in BUILTIN_NAMES:
        op = PRIMITIVES[name]
        cells = [name, spelling(op), op.doc, op.domain, op.convention or "—"]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    rows.append(f"| `x ** c` | {spelling(pow_const(2.0))} | {pow_const(2.0).doc} | {pow_const(2.0).domain} | — |")
    rows.append(f"| `c ** x` | `c ** x`, as `2 ** x` | {rpow_const(2.0).doc} | {rpow_const(2.0).domain} | "
                "0 for c = 0, NaN for c < 0 |")
    return "\n".join(rows)


__all__ = [
    "Primitive", "Family", "PRIMITIVES", "FAMILIES", "FLOAT_MATH", "FloatMath", "pow_const", "register",
    "markdown_table", "spelling", "REQUIRED", "BUILTIN_NAMES", "rpow_const", "combined_rule", "per_input_rules",
]
