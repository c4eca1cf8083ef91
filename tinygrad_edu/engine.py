"""The scalar engine: ``Value`` wraps one float and records the graph that made it; ``backward``
and ``grad`` run reverse-mode autodiff over that graph with the rules of :mod:`tinygrad_edu.ops`.

A node refers to its parents and its primitive, and nothing refers back: no closures, no
reference cycles, so freeing a graph needs no help from Python's cyclic garbage collector.
"""

from __future__ import annotations

import contextlib
import numbers
import threading
from typing import Iterable, Sequence, Union

from . import ops, specialize
from .ops import FLOAT_MATH, Primitive

Number = Union[int, float]
_ARITHMETIC_ERRORS = (ArithmeticError, ValueError)

class _GradState(threading.local):
    enabled = True  # each thread starts recording, as in PyTorch
    by_rules = False  # backward() and grad() call the table's rules one by one (see _calling_rules)


_state = _GradState()
# How many threads have recording off right now. While it is 0 (the common case) the hot path
# skips the thread-local lookup, which costs more than the rest of the check.
_disabled_threads = 0
_disabled_lock = threading.Lock()


def _set_grad_enabled(mode: bool) -> None:
    global _disabled_threads
    mode = bool(mode)
    if _state.enabled is not mode:
        with _disabled_lock:
            _disabled_threads += -1 if mode else 1
        _state.enabled = mode


@contextlib.contextmanager
def _calling_rules():
    """In this block, this thread's ``backward()`` and ``grad()`` call the table's rules one by
    one, as the plain loops below spell out, instead of the steps written out from them
    (:mod:`tinygrad_edu.specialize`): the same numbers, slower, and every rule call visible to a
    profiler (``functional.count_rule_calls`` counts them so)."""
    saved, _state.by_rules = _state.by_rules, True
    try:
        yield
    finally:
        _state.by_rules = saved


def is_grad_enabled() -> bool:
    """Whether operations on ``Value`` in this thread record the graph (``False`` inside ``no_grad``).

    The mode is per thread, as in PyTorch: a ``no_grad`` block in one thread does not change what
    another thread records. asyncio tasks running on one thread share that thread's mode."""
    return _state.enabled


class _GradMode(contextlib.ContextDecorator):
    _enabled: bool

    def __init__(self) -> None:
        self._saved: list[bool] = []  # a stack, so one instance can be re-entered as a decorator

    def __enter__(self) -> None:
        self._saved.append(_state.enabled)
        _set_grad_enabled(self._enabled)

    def __exit__(self, *exc_info) -> None:
        _set_grad_enabled(self._saved.pop())


class no_grad(_GradMode):
    """Context manager and decorator: operations inside record no graph (results are leaves)."""

    _enabled = False


class enable_grad(_GradMode):
    """Context manager and decorator: turn graph recording back on inside a ``no_grad`` block."""

    _enabled = True


def _to_float(data: object) -> float:
    # bool is an int subclass but almost always a bug here; complex and arrays are not real scalars.
    if isinstance(data, numbers.Real) and not isinstance(data, bool):
        return float(data)
    raise TypeError(
        f"Value needs a real number (int, float or NumPy real scalar), got {type(data).__name__}: {data!r:.60}"
    )


def _math_error(op: Primitive, inputs: Sequence[float], err: Exception, where: str = "") -> Exception:
    if op.arity == -1:
        call = f"{op.name}({len(inputs)} inputs)"
    else:  # an infix operator gets (-8.0) ** 0.5, not the misleading -8.0 ** 0.5
        infix = op.notation in ("infix", "postfix")
        call = op.format(*(f"({x!r})" if infix and x < 0 else repr(x) for x in inputs))
    return type(err)(f"{where}{call}: {err}")


class Value:
    """One float in a computation graph, with its gradient.

    ``data`` is the number, ``grad`` the derivative of the last ``backward`` root with respect to
    it (0.0 before any), ``label`` a name for display, ``op`` the primitive that made it (``None``
    for a leaf) and ``parents`` its inputs, in order (``a + a`` has two parent slots).
    Arithmetic works with plain numbers on either side. ``==`` and hashing are by identity;
    ``<``, ``<=``, ``>``, ``>=`` compare ``data`` and return ``bool``.

    The operators (``+ - * / % **``, unary ``-``, ``abs()``) and the methods ``exp()``,
    ``log()``, ``tanh()``, ``leaky_relu(negative_slope=0.01)``, … each apply one primitive of the
    table in :mod:`tinygrad_edu.ops`; they are made from its records (see ``_install``), so the
    table is the one list of them.
    """

    __slots__ = ("data", "grad", "label", "_op", "_prev")
    __array_ufunc__ = None  # NumPy scalars on the left defer to our reflected operators

    def __init__(self, data: Number, label: str = "", _op: Primitive | None = None, _prev: tuple = ()):
        if type(data) is not float:
            data = _to_float(data)
        self.data = data
        self.grad = 0.0
        self.label = label
        self._op = _op
        self._prev = _prev

    @property
    def op(self) -> Primitive | None:
        """The primitive that computed this value, or ``None`` for a leaf."""
        return self._op

    @property
    def parents(self) -> tuple[Value, ...]:
        """The inputs of :attr:`op`, in order; empty for a leaf."""
        return self._prev

    @property
    def is_leaf(self) -> bool:
        return self._op is None

    def __repr__(self) -> str:
        extra = f", op={self._op.name!r}" if self._op is not None else ""
        if self.label:
            extra += f", label={self.label!r}"
        return f"Value(data={self.data!r}, grad={self.grad!r}{extra})"

    def __float__(self) -> float:
        return self.data

    def item(self) -> float:
        """The plain float, as in PyTorch."""
        return self.data

    def detach(self) -> Value:
        """A new leaf with the same data and no graph."""
        return Value(self.data, self.label)

    # Arithmetic. Each operator is one primitive of the table in ops.py (see _operator below).
    def __pow__(self, other):
        if type(other) is Value:
            return _pow(self, other)
        c = other if type(other) is float else float(other) if type(other) is int else _to_float(other)
        return _apply1(ops.pow_const(c), self)

    def __lt__(self, other): return self.data < _data(other)
    def __le__(self, other): return self.data <= _data(other)
    def __gt__(self, other): return self.data > _data(other)
    def __ge__(self, other): return self.data >= _data(other)

    def backward(self, grad: Number = 1.0) -> None:
        """Reverse-mode autodiff from this value: add d(self)/d(leaf) * ``grad`` to every leaf's
        ``.grad``. Leaf gradients accumulate across calls until ``zero_grad()``; intermediate
        nodes hold the gradient of this latest call."""
        grad = _to_float(grad)
        order = _backward_order(self)
        self.grad = self.grad + grad if self._op is None else grad
        node = None
        try:
            if not _state.by_rules:
                for node in reversed(order):
                    node._op.float_backward(node)  # the loop below, written out for each primitive (specialize.py)
            else:
                for node in reversed(order):  # each input's gradient from the table's rule, at this node's numbers
                    prev = node._prev
                    for p, gp in zip(prev, node._op.vjp(FLOAT_MATH, node.grad, node.data, *[p.data for p in prev])):
                        p.grad += gp
        except _ARITHMETIC_ERRORS as err:
            raise _math_error(node._op, [p.data for p in node._prev], err, "in backward, the derivative of ") from None

    def zero_grad(self) -> None:
        """Set ``grad`` to 0.0 on every node of the graph that ends here, leaves included."""
        for node in topological_order(self):
            node.grad = 0.0

    def draw(self, **kwargs):
        """Shortcut for tinygrad_edu.viz.draw_graph(self, ...)."""
        from .viz.graph import draw_graph  # lazy: graphviz is only needed for pictures

        return draw_graph(self, **kwargs)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """Jupyter shows a bare Value as its drawn graph (SVG), with its repr as the text form."""
        from .viz.graph import value_mimebundle

        return value_mimebundle(self, include, exclude)

    def explore(self, **kwargs):
        """Shortcut for tinygrad_edu.viz.explore(self, ...): an interactive, step-by-step explorer
        of this graph's forward and backward pass (save it as HTML, or show it in Jupyter)."""
        from .viz.explorer import explore

        return explore(self, **kwargs)


def _data(x) -> float:
    return x.data if type(x) is Value else x


_new = object.__new__


def _record(data: float, op: Primitive | None, parents: tuple) -> Value:
    """A new node: ``data`` made by ``op`` from ``parents`` (a leaf when recording is off). The
    hot path of every operation, so it skips ``Value()``'s checks: ``data`` is a float already."""
    out = _new(Value)
    out.data, out.grad, out.label = data, 0.0, ""
    if not _disabled_threads or _state.enabled:
        out._op, out._prev = op, parents
    else:
        out._op, out._prev = None, ()
    return out


def _leaf(x: Number) -> Value:
    """A plain number as a new leaf Value (``2.0`` in ``x * 2.0``)."""
    return _record(x if type(x) is float else _to_float(x), None, ())


def apply(op: Primitive, *args: Value | Number) -> Value:
    """Apply a primitive to Values (plain numbers are wrapped) and record the node."""
    parents = tuple(a if type(a) is Value else _leaf(a) for a in args)
    try:
        data = op.forward(FLOAT_MATH, *[p.data for p in parents])
    except _ARITHMETIC_ERRORS as err:
        raise _math_error(op, [p.data for p in parents], err) from None
    return _record(data, op, parents)


def _apply1(op: Primitive, x: Value) -> Value:
    """``apply`` for one Value, unrolled: the hot path of ``x.relu()``, ``x ** 2``, ``-x``."""
    try:
        data = op.forward(FLOAT_MATH, x.data)
    except _ARITHMETIC_ERRORS as err:
        raise _math_error(op, (x.data,), err) from None
    return _record(data, op, (x,))


# How a generated method (specialize.method_source) makes a number its leaf (Value(), inlined),
# and how it ends (_record, inlined). It runs in this module's globals, so it sees no_grad's live
# _disabled_threads.
_LEAF = """\
if type(_other) is not Value:
    _number = _other if type(_other) is float else _to_float(_other)
    _other = _new(Value)
    _other.data = _number
    _other.grad = 0.0
    _other.label = ""
    _other._op = None
    _other._prev = ()"""
_RECORD = """\
_out = _new(Value)
_out.data, _out.grad, _out.label = _data, 0.0, ""
if not _disabled_threads or _state.enabled:
    _out._op, _out._prev = _op, _parents
else:
    _out._op, _out._prev = None, ()
return _out"""


def _operator(op: Primitive, reflected: bool = False):
    """Make the method for a binary operator (``__mul__``, or ``__rmul__`` when reflected).

    This is the hot path of every graph: the method is generated with the forward rule's
    expression in place (``_data = a * b``; see :mod:`tinygrad_edu.specialize`), or, for a rule
    that must be called, is ``apply`` for two inputs, unrolled."""
    method = specialize.method(op, op.method or op.name, _LEAF, _RECORD, globals())
    if method is None:
        forward = op.forward

        def method(a, b):
            if type(b) is not Value:
                b = Value(b)
            try:
                data = forward(FLOAT_MATH, a.data, b.data)
            except _ARITHMETIC_ERRORS as err:
                raise _math_error(op, (a.data, b.data), err) from None
            return _record(data, op, (a, b))

    def reflected_method(self, other):  # `other op self`: Python calls it only when other is no Value
        return method(_leaf(other), self)

    result = reflected_method if reflected else method
    result.__name__ = result.__qualname__ = f"__{'r' if reflected else ''}{op.name}__"
    return result


_pow = _operator(ops.POW)


def _rpow(self: Value, other: Number) -> Value:
    # `c ** x` with a number c: the primitive c ** x, whose only input is x (see ops.rpow_const)
    return _apply1(ops.rpow_const(_to_float(other)), self)


Value.__rpow__ = _rpow


def _unary_method(op: Primitive):
    method = specialize.method(op, op.method or op.name, _LEAF, _RECORD, globals())
    if method is None:
        def method(self) -> Value:
            return _apply1(op, self)
    return method


def _family_method(family: ops.Family):
    make = family.__call__

    def method(self, *args, **params) -> Value:
        return _apply1(make(*args, **params), self)
    return method


def _function(op: Primitive):
    def function(*args: Value | Number) -> Value:
        if len(args) != op.arity:
            raise TypeError(f"{op.name}() takes {op.arity} inputs, got {len(args)}")
        return apply(op, *args)
    return function


def _family_function(family: ops.Family):
    make = family.__call__

    def function(input: Value | Number, *args, **params) -> Value:  # noqa: A002  (PyTorch's name)
        return apply(make(*args, **params), input)
    return function


def _install(namespace: dict) -> None:
    """Give ``Value`` a method or operator, and this module a function, for every record of the
    table that asks for one (``op.method``, ``op.function``)."""
    def named(fn, name: str, owner: str, doc: str):
        fn.__name__, fn.__qualname__, fn.__doc__ = name, f"{owner}{name}", doc
        return fn

    for op in ops.PRIMITIVES.values():
        if op.params:
            continue  # a family's default member: the family installs its method
        what = f"The primitive {op.name!r} (ops.{op.name.upper()}): derivative {op.doc}. Domain: {op.domain}."
        if op.method and op.method.startswith("__") and op.arity == 2:
            reflected = "__r" + op.method[2:]
            setattr(Value, op.method, named(_operator(op), op.method, "Value.", what))
            setattr(Value, reflected, named(_operator(op, reflected=True), reflected, "Value.", what))
        elif op.method:
            setattr(Value, op.method, named(_unary_method(op), op.method, "Value.", what))
        if op.function:
            namespace[op.name] = named(_function(op), op.name, "", what)
    for family in ops.FAMILIES.values():
        what = f"The primitive {family.name!r} (ops.{family.name.upper()}), with parameters {family.params}."
        if family.method:
            setattr(Value, family.method, named(_family_method(family), family.method, "Value.", what))
        if family.function:
            namespace[family.name] = named(_family_function(family), family.name, "", what)


_install(globals())


def where(condition: bool, input: Value | Number, other: Value | Number) -> Value:  # noqa: A002
    """``input`` where ``condition`` is true, else ``other``, as ``torch.where``: a node that
    records the selection, so the gradient flows to the chosen input only. ``condition`` is a bool,
    such as a comparison of Values (``x > 0``); the batched engine replays the branch taken when
    it traced the function."""
    return apply(ops.WHERE(condition), input, other)


def sum(values: Iterable[Value | Number]) -> Value:  # noqa: A001  (mirrors torch.sum)
    """The sum of many values as one node (not a chain of additions). An empty sum is 0.0."""
    values = tuple(values)
    if not values:
        return Value(0.0)
    return apply(ops.SUM, *values)


def topological_order(*roots: Value) -> list[Value]:
    """Every node the roots depend on, each after all of its parents, found by an iterative
    depth-first search (no recursion, so a chain of a million nodes is fine)."""
    order: list[Value] = []
    visited: set[Value] = set()
    # A None on the stack marks "the node below me has all its parents in `order` now".
    stack: list = list(reversed(roots))
    append, pop, push, extend, mark = order.append, stack.pop, stack.append, stack.extend, visited.add
    while stack:
        node = pop()
        if node is None:
            append(pop())
        elif node not in visited:
            mark(node)
            prev = node._prev
            if prev:
                push(node)
                push(None)
                extend(prev)
            else:
                append(node)
    return order


def _backward_order(root: Value) -> list[Value]:
    """The computed nodes ``root`` depends on, each after its parents, with their ``grad`` set to
    0.0: what ``backward`` walks in reverse. Leaves are left out (they pass nothing on).

    The engine's costliest loop, so it keeps no set of visited nodes: the 0.0 it writes to each
    ``grad`` is a float object of its own, and ``grad is zero`` says a node was met already."""
    order: list[Value] = []
    stack: list = [root]
    zero = float("0")  # a new float object, equal to 0.0, that no other grad holds
    append, pop, push = order.append, stack.pop, stack.append
    while stack:
        node = pop()
        if node is None:  # the node below has all its parents in `order` now
            append(pop())
        elif node.grad is not zero and node._prev:
            node.grad = zero
            push(node)
            push(None)
            for p in node._prev:
                if p._prev and p.grad is not zero:
                    push(p)
    return order


def _paths_to(outputs: Sequence[Value], inputs: Sequence[Value]) -> tuple[list[Value], set[Value]]:
    """For ``grad``: the computed nodes on a path from an input to an output, each after its
    parents, and the set of them with the inputs (the nodes whose gradients are needed). One
    depth-first walk like ``_backward_order``'s, with a set (``grad`` leaves every ``.grad`` be)."""
    needed = set(inputs)
    order: list[Value] = []
    visited: set[Value] = set()
    stack: list = list(outputs)
    append, pop, push, mark, add, isdisjoint = order.append, stack.pop, stack.append, visited.add, needed.add, needed.isdisjoint
    while stack:
        node = pop()
        if node is None:  # the node below has all its parents placed: it is needed if one of them is
            node = pop()
            if node in needed or not isdisjoint(node._prev):
                add(node)
                append(node)
        elif node not in visited and node._prev:
            mark(node)
            push(node)
            push(None)
            for p in node._prev:
                if p._prev and p not in visited:
                    push(p)
    return order, needed


class _ValueMath:
    """The math namespace of ``ops`` for Values, so a derivative rule can build a graph itself
    (higher-order gradients). Rules may mix Values and plain floats; floats are wrapped. Each
    function named like a primitive (``exp``, ``atan2``, ``mod``, …) applies that primitive; they
    are added from the table below the class."""

    @staticmethod
    def pow(a, b):
        if type(a) is not Value and type(b) is not Value:
            return FLOAT_MATH.pow(a, b)
        return a**b  # Value ** anything, or number ** Value (the c ** x primitive)

    # Piecewise-constant functions: their own derivative is 0, so constants are exact (no node).
    @staticmethod
    def step(x):
        return FLOAT_MATH.step(_data(x))

    @staticmethod
    def sign(x):
        return FLOAT_MATH.sign(_data(x))

    @staticmethod
    def floordiv(a, b):
        return FLOAT_MATH.floordiv(_data(a), _data(b))

    @staticmethod
    def where(cond, a, b):
        return a if cond else b

    @staticmethod
    def add_n(xs):
        return sum(xs)


def _value_math_function(op: Primitive):
    return staticmethod(lambda *xs: apply(op, *xs))


for _op in ops.PRIMITIVES.values():
    if _op.arity in (1, 2) and not _op.params and not hasattr(_ValueMath, _op.name):
        setattr(_ValueMath, _op.name, _value_math_function(_op))


VALUE_MATH = _ValueMath()


def _as_tuple(x, what: str) -> tuple:
    items = (x,) if isinstance(x, Value) else tuple(x)
    for item in items:
        if not isinstance(item, Value):
            raise TypeError(f"grad: {what} must be Values, got {type(item).__name__}")
    return items


def grad(
    outputs: Value | Sequence[Value],
    inputs: Value | Sequence[Value],
    grad_outputs: Number | Sequence[Number | Value] | None = None,
    *,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Value | None, ...]:
    """The gradients of ``outputs`` with respect to ``inputs``, like ``torch.autograd.grad``.

    Returns one ``Value`` per input and leaves every ``.grad`` untouched. With
    ``create_graph=True`` the returned Values carry their own graph, built by the same derivative
    rules, so they can be differentiated again (second, third, … derivatives). An input the
    outputs do not depend on is an error, or ``None`` with ``allow_unused=True``. Only gradients
    on paths to ``inputs`` are computed: in ``grad(x * w, [w])`` the rule for ``x``'s side never runs.
    """
    outputs = _as_tuple(outputs, "outputs")
    inputs = _as_tuple(inputs, "inputs")
    if grad_outputs is None:
        grad_outputs = (1.0,) * len(outputs)
    elif isinstance(grad_outputs, (Value, numbers.Real)):
        grad_outputs = (grad_outputs,)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")

    grads: dict[Value, object] = {}
    for out, g in zip(outputs, grad_outputs):
        g = g if (create_graph and type(g) is Value) else _to_float(_data(g))
        grads[out] = grads[out] + g if out in grads else g

    order, needed = _paths_to(outputs, inputs)

    m = VALUE_MATH if create_graph else FLOAT_MATH
    written_out = not create_graph and not _state.by_rules
    saved = _state.enabled
    _set_grad_enabled(create_graph)
    get = grads.get
    node = None
    try:
        for node in reversed(order):
            g = get(node)
            if g is None or node._op is None:
                continue
            if written_out:  # floats: the lines below, written out for each primitive (specialize.py)
                node._op.float_grad(node, g, grads, needed)
                continue
            prev, rules = node._prev, node._op.vjps
            out, xs = (node, prev) if create_graph else (node.data, [p.data for p in prev])
            local = None if rules else node._op.vjp(m, g, out, *xs)  # sum has only a combined rule
            for i, p in enumerate(prev):
                if p in needed:  # one rule per input: only the needed parents' rules run
                    gp = rules[i](m, g, out, *xs) if rules else local[i]
                    old = get(p)
                    grads[p] = gp if old is None else old + gp
    except _ARITHMETIC_ERRORS as err:
        raise _math_error(node._op, [p.data for p in node._prev], err, "in grad, the derivative of ") from None
    finally:
        _set_grad_enabled(saved)

    result: list[Value | None] = []
    for i, x in enumerate(inputs):
        g = grads.get(x)
        if g is None:
            if not allow_unused:
                raise ValueError(
                    f"grad: input {i} ({x!r}) is not used to compute the outputs; "
                    "pass allow_unused=True to get None for it"
                )
            result.append(None)
        else:
            result.append(g if type(g) is Value else Value(g))
    return tuple(result)


__all__ = [
    "Value", "grad", "no_grad", "enable_grad", "is_grad_enabled", "sum", "apply", "topological_order", "where",
    *(op.name for op in ops.PRIMITIVES.values() if op.function), *(f.name for f in ops.FAMILIES.values() if f.function),
]
