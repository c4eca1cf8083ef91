"""``tinygrad-edu gradcheck``: check an expression's gradient against numerical derivatives, at
given points (``--set``) or at points Hypothesis draws inside every operation's domain; with
``--derivative``, check a derivative worked out by hand against the engine and the numbers.

Exit 0 when everything holds, 1 with the report (table, culprit) when something does not, 2 on
bad input.
"""

from __future__ import annotations

import argparse
import math
import random

from ..engine import Value, grad, topological_order
from ..expr import Expression, ExpressionError, compile_expression
from ..testing.gradcheck import GradcheckError, gradcheck, gradgradcheck, numerical_gradient
from ._common import CLIError, assignment, non_negative_float, positive_float, positive_int, set_values, shown

#: Where drawn points come from when a variable has no --set: each variable in [-RANGE, RANGE].
RANGE = 3.0


#: The options that take a value, so that an expression starting with a minus is told from them.
EXPRESSION_VALUE_OPTIONS = ("--set", "--derivative", "--examples", "--seed", "--eps", "--atol", "--rtol")


def _derivative(text: str) -> tuple[str, str]:
    """``NAME=EXPRESSION`` for --derivative."""
    name, sep, expression = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier() or not expression.strip():
        raise argparse.ArgumentTypeError(f'expected NAME="EXPRESSION" (like x="2*x"), got {shown(text)}')
    return name, expression.strip()


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "gradcheck",
        help="check an expression's gradient (or your own derivative) against numerical derivatives",
        description=(
            "Check the engine's gradient of an expression against float64 numerical derivatives (automatic "
            "step, one-sided at domain edges, subgradients at kinks). With --set for every variable, at that "
            "point; otherwise at points Hypothesis draws inside every operation's domain. With --derivative "
            "NAME=EXPR, check a derivative you worked out against the engine and the numbers. A failure names "
            "the operation whose rule is wrong. Exit status: 0 holds, 1 does not hold, 2 bad input."
        ),
    )
    parser.add_argument("expression", help='the expression, e.g. "tanh(x*w + b)"')
    parser.add_argument("--set", dest="assignments", metavar="NAME=VALUE", action="append", default=[],
                        type=assignment, help="check at this value of a variable (repeat per variable)")
    parser.add_argument("--derivative", dest="derivatives", metavar='NAME="EXPR"', action="append", default=[],
                        type=_derivative, help='your derivative with respect to NAME, e.g. x="w*(1 - tanh(x*w)**2)"')
    parser.add_argument("--examples", type=positive_int, default=100,
                        help="points to draw for the variables without --set (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn points (default: 0)")
    parser.add_argument("--second-order", action="store_true", help="also check second derivatives")
    parser.add_argument("--strict-kinks", action="store_true",
                        help="at a kink, require a subgradient of the whole function, not just the value the "
                             "rules' conventions compose to (relu(x) - relu(-x) at 0 then fails)")
    parser.add_argument("--eps", type=positive_float, default=None,
                        help="fixed relative step of the numerical derivative (default: chosen automatically)")
    parser.add_argument("--atol", type=non_negative_float, default=1e-5, help="absolute tolerance (default: 1e-5)")
    parser.add_argument("--rtol", type=non_negative_float, default=1e-3, help="relative tolerance (default: 1e-3)")
    parser.set_defaults(func=run)


def _compile(text: str, what: str) -> Expression:
    try:
        return compile_expression(text)
    except ExpressionError as err:
        raise CLIError(f"cannot use {what}: {err}") from None


def run(args: argparse.Namespace) -> int:
    args.expression = args.expression.strip()
    expression = _compile(args.expression, "the expression")
    names = list(expression.variables)
    if not names:
        raise CLIError("the expression has no variables: there is no gradient to check")
    given = set_values(args.assignments, names)
    derivatives: dict[str, Expression] = {}
    for name, text in args.derivatives:
        if name not in names:
            raise CLIError(f"--derivative {name}: {name} is not a variable of the expression ({', '.join(names)})")
        if name in derivatives:
            raise CLIError(f"--derivative {name} is given twice")
        d = _compile(text, f"the derivative for {name}")
        extra = sorted(set(d.variables) - set(names))
        if extra:
            raise CLIError(f"the derivative for {name} uses {', '.join(extra)}, which the expression does not")
        derivatives[name] = d
    checker = _Checker(expression, names, derivatives, args)
    if len(given) == len(names):
        point = [given[n] for n in names]
        try:
            report = checker.report(point)
        except (ArithmeticError, ValueError) as err:
            raise CLIError(f"cannot check at {_where(names, point)}: {err}") from None
        if report:
            print(report)
            return 1
        print(checker.passed_at(point))
        return 0
    return _search(checker, names, given, args)


def _where(names: list[str], point: list[float]) -> str:
    return ", ".join(f"{n} = {v:.6g}" for n, v in zip(names, point))


class _Checker:
    """The checks at one point: the engine's gradient (and second derivatives) against the
    numerical ones, and each hand-written derivative against both."""

    def __init__(self, expression: Expression, names: list[str], derivatives: dict[str, Expression], args):
        self.expression, self.names, self.derivatives, self.args = expression, names, derivatives, args

    def fn(self, *xs: Value) -> Value:
        return self.expression.evaluate(dict(zip(self.names, xs)))

    def _inputs(self, point: list[float]) -> list[Value]:
        return [Value(v, label=n) for n, v in zip(self.names, point)]

    def report(self, point: list[float]) -> str:
        """The failure report at ``point``; empty when everything holds. Raises ValueError where
        the expression cannot be checked (undefined, infinite)."""
        a = self.args
        try:
            gradcheck(self.fn, self._inputs(point), eps=a.eps, atol=a.atol, rtol=a.rtol, strict_kinks=a.strict_kinks)
            if a.second_order:
                gradgradcheck(self.fn, self._inputs(point), eps=a.eps, atol=a.atol, rtol=a.rtol)
        except GradcheckError as err:
            return str(err)
        return self._check_derivatives(point)

    def holds(self, point: list[float]) -> bool:
        try:
            return not self.report(point)
        except (ArithmeticError, ValueError):
            return True  # not checkable here: not a counterexample

    def _check_derivatives(self, point: list[float]) -> str:
        if not self.derivatives:
            return ""
        a = self.args
        xs = self._inputs(point)
        out = self.fn(*xs)
        engine = [0.0 if g is None else g.data for g in grad(out, xs, allow_unused=True)]
        numeric = numerical_gradient(self.fn, self._inputs(point), eps=a.eps)
        values = dict(zip(self.names, point))
        lines = []
        for name, d in self.derivatives.items():
            i = self.names.index(name)
            try:
                yours = d.evaluate({n: values[n] for n in d.variables}).data
            except (ArithmeticError, ValueError) as err:
                lines.append(f"d/d{name}: your derivative is undefined at {_where(self.names, point)}: {err}")
                continue
            if not abs(yours - numeric[i]) <= a.atol + a.rtol * abs(numeric[i]):
                lines.append(
                    f"d/d{name}: your derivative {d.text} = {yours:.6g} at {_where(self.names, point)}, but the "
                    f"engine gives {engine[i]:.6g} and central differences {numeric[i]:.6g} "
                    f"(atol={a.atol:g}, rtol={a.rtol:g})"
                )
        return "\n".join(lines)

    def passed_at(self, point: list[float]) -> str:
        xs = self._inputs(point)
        out = self.fn(*xs)
        engine = [0.0 if g is None else g.data for g in grad(out, xs, allow_unused=True)]
        lines = [f"gradcheck passed: {self.args.expression} at {_where(self.names, point)}"
                 + (" (second derivatives too)" if self.args.second_order else "")]
        for name, g in zip(self.names, engine):
            yours = " = your derivative" if name in self.derivatives else ""
            lines.append(f"  d/d{name} = {g:.6g}{yours}")
        return "\n".join(lines)


def _in_domain(checker: _Checker, point: list[float]) -> bool:
    """Whether every operation of the expression is inside its domain (where strategies draw)."""
    from ..testing.strategies import domain_of

    try:
        out = checker.fn(*[Value(v) for v in point])
    except (ArithmeticError, ValueError):
        return False
    if not math.isfinite(out.data):
        return False
    return all(domain_of(n.op)(*(p.data for p in n.parents)) for n in topological_order(out) if n.op is not None)


def _search(checker: _Checker, names: list[str], given: dict[str, float], args) -> int:
    try:
        from hypothesis import HealthCheck, Phase, find, settings
        from hypothesis import strategies as st
        from hypothesis.errors import NoSuchExample, Unsatisfiable
    except ImportError:
        raise CLIError("drawing points needs Hypothesis (pip install 'tinygrad_edu[testing]'); "
                       "or give every variable a value with --set") from None
    free = [n for n in names if n not in given]
    coordinate = st.floats(-RANGE, RANGE, allow_nan=False, allow_infinity=False)

    def point_of(drawn: tuple) -> list[float]:
        values = dict(zip(free, drawn), **given)
        return [values[n] for n in names]

    points = st.tuples(*[coordinate] * len(free)).filter(lambda d: _in_domain(checker, point_of(d)))
    tried = [0]

    def fails(drawn: tuple) -> bool:
        tried[0] += 1
        return not checker.holds(point_of(drawn))

    config = settings(max_examples=args.examples, database=None, deadline=None, phases=[Phase.generate, Phase.shrink],
                      suppress_health_check=list(HealthCheck))
    try:
        drawn = find(points, fails, settings=config, random=random.Random(args.seed))
    except NoSuchExample:
        if tried[0] == 0:
            raise CLIError(f"found no point inside the domain of {args.expression} with "
                           f"{', '.join(free)} in [-{RANGE:g}, {RANGE:g}]: give values with --set") from None
        print(f"gradcheck passed at {tried[0]} points drawn inside the domain ({', '.join(free)} in "
              f"[-{RANGE:g}, {RANGE:g}], seed {args.seed})" + (" (second derivatives too)" if args.second_order else ""))
        return 0
    except Unsatisfiable:
        raise CLIError(f"found no point inside the domain of {args.expression} with {', '.join(free)} in "
                       f"[-{RANGE:g}, {RANGE:g}]: give values with --set") from None
    point = point_of(drawn)
    print(f"counterexample (after {tried[0]} checks, shrunk): {_where(names, point)}")
    print(checker.report(point))
    return 1
