"""Safe arithmetic expressions: turn text like ``"tanh(x*w + b)"`` into a ``Value`` graph.

The text is parsed with Python's :mod:`ast` and checked against a whitelist (numbers, variable
names, ``+ - * / % **``, unary ``-``/``+``, and the call-style primitives of :mod:`tinygrad_edu.ops`
as functions) before anything is evaluated; nothing is ever passed to ``eval``.
"""

from __future__ import annotations

import ast
import math
import numbers
import re
from dataclasses import dataclass
from typing import Mapping, Union

from . import engine, ops
from .engine import Value

#: Longest accepted expression text, in characters.
MAX_LENGTH = 2000
#: Deepest accepted nesting of operations: each unary minus, binary operator and call inside
#: another counts one level (``-(-(-x))`` is 3 deep, ``((((x))))`` 0, and ``x+x+x`` 2, as ``(x+x)+x``).
#: Python's parser also refuses more than 200 nested parentheses, so ``exp(`` nests at most 200 deep.
MAX_DEPTH = 200
#: Largest accepted magnitude of a constant exponent, as in ``x ** 3``.
MAX_EXPONENT = 1000.0

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%", ast.Pow: "**"}
_UNARY = {ast.USub: "-", ast.UAdd: "+"}
# Plain-language names for the constructs people most often try, for the error message.
_FORBIDDEN = {
    ast.Attribute: "attribute access (a.b)",
    ast.Subscript: "subscripts (a[i])",
    ast.Lambda: "lambda",
    ast.Compare: "comparisons",
    ast.BoolOp: "'and'/'or'",
    ast.IfExp: "'if ... else'",
    ast.NamedExpr: "assignment (:=)",
    ast.JoinedStr: "f-strings",
    ast.Starred: "starred arguments",
    ast.ListComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Set: "sets",
    ast.Dict: "dicts",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


class ExpressionError(ValueError):
    """The expression text is not allowed or cannot be evaluated; the message says why."""


class UndefinedVariableError(ExpressionError):
    """The expression uses variables that were not given; ``names`` lists them, sorted."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        super().__init__(f"no value given for {', '.join(names)}")


def functions() -> dict[str, ops.Primitive]:
    """The functions an expression may call: every primitive written as a call (``exp``, ``log``,
    ``tanh``, ``abs``, ``atan2``, ``sum``, …), read from the primitive table. A parametrised one
    (``leaky_relu``) appears as its default member and takes its parameters as keywords
    (``leaky_relu(x, negative_slope=0.2)``); ``where`` is left out (its condition would need a
    comparison, which expressions do not have)."""
    return {
        name: op
        for name, op in ops.PRIMITIVES.items()
        if op.is_call and not any(v is ops.REQUIRED for v in getattr(ops.FAMILIES.get(name), "params", {}).values())
    }


_OPERATIONS = (ast.BinOp, ast.UnaryOp, ast.Call)
_NOT_TEXT = re.compile("[\ud800-\udfff\x00]")


def _not_text(text: str) -> str | None:
    """Why ``text`` cannot be parsed as source text (a lone surrogate, a NUL), or None."""
    found = _NOT_TEXT.search(text)
    if found is None:
        return None
    code, where = ord(found.group()), f"at column {found.start() + 1}: "
    if code == 0:
        return where + "the NUL character is not allowed"
    if 0xDC80 <= code <= 0xDCFF:  # how Python passes on a command-line byte that is not UTF-8
        return where + f"the byte 0x{code - 0xDC00:02x} is not UTF-8 text"
    return where + f"U+{code:04X} is a lone surrogate, not a character"


def _arity_text(op: ops.Primitive) -> str:
    if op.arity == -1:
        return "one or more arguments"
    return "exactly one argument" if op.arity == 1 else f"exactly {op.arity} arguments"


def _parameter(node: ast.AST) -> object:
    """The value of a keyword argument: a number, a string or None, written as a constant."""
    number = _constant(node)
    if number is not None:
        return number
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str)):
        return node.value
    raise ExpressionError(f"{_where(node)}a parameter must be a number, a string or None")


def _call_op(node: ast.Call, op: ops.Primitive) -> ops.Primitive:
    """The primitive a checked call applies: ``op``, or its family's member for the keywords."""
    if not node.keywords:
        return op
    try:
        return ops.FAMILIES[op.name](**{k.arg: _parameter(k.value) for k in node.keywords})
    except (TypeError, ValueError) as err:
        raise ExpressionError(f"{_where(node)}{err}") from None


def _where(node: ast.AST) -> str:
    col = getattr(node, "col_offset", None)
    return f"at column {col + 1}: " if col is not None else ""


def _constant(node: ast.AST) -> float | None:
    """The number a variable-free subtree stands for (inf if it overflows), or None if it uses a
    variable or a call. Computed with floats only, so even ``9**9**9`` is quick."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        try:
            return float(value)
        except OverflowError:
            return math.inf
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        inner = _constant(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _constant(node.left), _constant(node.right)
        if left is None or right is None:
            return None
        op = type(node.op)
        try:
            if op is ast.Pow:
                return ops.FLOAT_MATH.pow(left, right)
            if op is ast.Div:
                return left / right
            if op is ast.Mod:
                return ops.FLOAT_MATH.mod(left, right)
            return left + right if op is ast.Add else left - right if op is ast.Sub else left * right
        except (ArithmeticError, ValueError):
            return math.inf
    return None


@dataclass(frozen=True)
class Expression:
    """A checked expression, ready to evaluate any number of times. Make one with :func:`compile_expression`."""

    text: str
    tree: ast.Expression
    #: The variable names the expression uses, sorted.
    variables: tuple[str, ...]

    def evaluate(self, values: Mapping[str, Union[float, Value]]) -> Value:
        """Build the expression's graph. A number becomes a leaf ``Value`` labelled with its
        name (one leaf per name, however often it is used); a ``Value`` is used as it is."""
        missing = tuple(name for name in self.variables if name not in values)
        if missing:
            raise UndefinedVariableError(missing)
        leaves: dict[str, Value] = {}
        for name in self.variables:
            given = values[name]
            if isinstance(given, Value):
                leaves[name] = given
            elif isinstance(given, numbers.Real) and not isinstance(given, bool):
                leaves[name] = Value(float(given), label=name)
            else:
                raise ExpressionError(f"the value of {name} must be a number or a Value, got {type(given).__name__}")
        return self._eval(self.tree.body, leaves)

    def _eval(self, node: ast.AST, leaves: dict[str, Value]):
        # Recursion is safe: compile_expression has bounded the depth.
        if isinstance(node, ast.Constant):
            return Value(float(node.value))
        if isinstance(node, ast.Name):
            return leaves[node.id]
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, leaves)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call):  # checked by _check
            op = _call_op(node, ops.PRIMITIVES[node.func.id])
            return engine.apply(op, *(self._eval(a, leaves) for a in node.args))
        left = self._eval(node.left, leaves)
        if isinstance(node.op, ast.Pow):
            exponent = _constant(node.right)
            if exponent is not None:  # a constant power: the x ** c primitive, drawn as "** c"
                return left ** exponent
        right = self._eval(node.right, leaves)
        op = node.op
        if isinstance(op, ast.Add):
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        if isinstance(op, ast.Div):
            return left / right
        if isinstance(op, ast.Mod):
            return left % right
        return left**right

    def __call__(self, **values: Union[float, Value]) -> Value:
        """``expr(x=0.5, w=-1.5)`` is ``expr.evaluate({"x": 0.5, "w": -1.5})``."""
        return self.evaluate(values)


def compile_expression(text: str) -> Expression:
    """Parse and check ``text``; raise :class:`ExpressionError` (one line, saying what is not
    allowed) for anything beyond numbers, names, ``+ - * / % **``, unary minus and the primitive
    functions (see :func:`functions`), for nesting deeper than ``MAX_DEPTH`` and for constant
    exponents larger than ``MAX_EXPONENT`` in magnitude (``9**9**9``). Nothing is evaluated here."""
    if not isinstance(text, str):
        raise TypeError(f"the expression must be a str, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is {len(text)} characters long; at most {MAX_LENGTH} are allowed")
    if not text.strip():
        raise ExpressionError("the expression is empty")
    reason = _not_text(text)
    if reason is not None:
        raise ExpressionError(reason)
    too_deep = f"the expression is nested too deeply (at most {MAX_DEPTH} levels)"
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        if "too many nested parentheses" in err.msg:
            raise ExpressionError(f"{too_deep[:-1]}; Python reads at most 200 nested parentheses)") from None
        where = f" at column {err.offset}" if err.offset else ""
        raise ExpressionError(f"not a valid expression{where}: {err.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(too_deep) from None

    # Check the depth first, iteratively, so that the recursive checks below stay shallow. Only
    # operations count; what is not an operation is either a leaf or refused below.
    stack = [(tree.body, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, _OPERATIONS):
            depth += 1
            if depth > MAX_DEPTH:
                raise ExpressionError(too_deep)
        stack.extend((child, depth) for child in ast.iter_child_nodes(node))

    names: set[str] = set()
    allowed_functions = functions()
    stack = [tree.body]
    while stack:
        node = stack.pop()
        _check(node, allowed_functions, names)
        # A call's function name was checked with the call; only its arguments are expressions.
        stack.extend(node.args if isinstance(node, ast.Call) else ast.iter_child_nodes(node))
    return Expression(text, tree, tuple(sorted(names)))


def _check(node: ast.AST, allowed_functions: Mapping[str, ops.Primitive], names: set[str]) -> None:
    """Accept one node of the tree or raise ExpressionError; children are checked by the caller."""
    where = _where(node)
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExpressionError(f"{where}only numbers are allowed as constants, got {value!r:.40}")
        try:
            number = float(value)
        except OverflowError:
            raise ExpressionError(f"{where}the number {str(value)[:20]}... is too large") from None
        if not math.isfinite(number):
            raise ExpressionError(f"{where}the number {value!r:.40} is too large")
    elif isinstance(node, ast.Name):
        if node.id in allowed_functions:
            raise ExpressionError(f"{where}{node.id} is a function: call it, as in {node.id}(x)")
        if node.id.startswith("_"):
            raise ExpressionError(f"{where}names starting with '_' are not allowed: {node.id}")
        names.add(node.id)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            symbol = {ast.FloorDiv: "//", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
                      ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^"}.get(type(node.op), type(node.op).__name__)
            raise ExpressionError(f"{where}the operator {symbol} is not supported; use + - * / % **")
        if isinstance(node.op, ast.Pow):
            exponent = _constant(node.right)
            if exponent is not None and not abs(exponent) <= MAX_EXPONENT:
                text = ast.unparse(node.right)
                text = text if len(text) <= 24 else text[:20] + "..."
                shown = f" = {exponent:.6g}" if math.isfinite(exponent) and not isinstance(node.right, ast.Constant) else ""
                raise ExpressionError(
                    f"{_where(node.right)}the exponent {text}{shown} is too large; at most {MAX_EXPONENT:g} in magnitude"
                )
    elif isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise ExpressionError(f"{where}the operator {'not' if isinstance(node.op, ast.Not) else '~'} is not supported")
    elif isinstance(node, ast.Call):
        func = node.func
        if not isinstance(func, ast.Name):
            raise ExpressionError(f"{where}only the functions {', '.join(sorted(allowed_functions))} may be called")
        if func.id not in allowed_functions:
            raise ExpressionError(
                f"{where}unknown function {func.id}; the functions are {', '.join(sorted(allowed_functions))}"
            )
        op = allowed_functions[func.id]
        if (len(node.args) != op.arity and op.arity != -1) or not node.args:
            example = ", ".join(["x", "y", "z"][: max(op.arity, 1)])
            raise ExpressionError(f"{where}{func.id} takes {_arity_text(op)}, as in {func.id}({example})")
        family = ops.FAMILIES.get(func.id)
        for keyword in node.keywords:
            if family is None or keyword.arg not in family.params:
                known = f"; its parameters are {', '.join(family.params)}" if family else ""
                raise ExpressionError(f"{where}{func.id} has no parameter {keyword.arg}{known}")
        _call_op(node, op)  # reject bad parameter values now, not at evaluation
    elif isinstance(node, (ast.operator, ast.unaryop, ast.expr_context)):
        pass  # the operator tokens and Load context of nodes accepted above
    else:
        what = _FORBIDDEN.get(type(node), type(node).__name__)
        raise ExpressionError(f"{where}{what} not allowed; use numbers, names, + - * / % ** and functions like tanh(x)")


def parse_expression(text: str, variables: Mapping[str, Union[float, Value]]) -> Value:
    """Check ``text`` and build its graph with the given variables, e.g.
    ``parse_expression("tanh(x*w + b)", {"x": 0.5, "w": -1.5, "b": 0.2})``."""
    return compile_expression(text).evaluate(variables)


__all__ = [
    "Expression", "ExpressionError", "UndefinedVariableError", "compile_expression", "parse_expression", "functions",
    "MAX_DEPTH", "MAX_EXPONENT", "MAX_LENGTH",
]
