"""The batched engine: trace a scalar computation once into a tape, then replay that tape forward
and backward on NumPy arrays, one element per sample, with the rules of :mod:`tinygrad_edu.ops`.

Tracing calls your per-sample function once on placeholder ``Value`` inputs and keeps the graph it
builds: its primitives, in topological order. The nodes that apply the same primitive at the same
depth (a layer's multiplications, say) form a group: contiguous rows of a value and a gradient
buffer (one column per sample), whose inputs are strided views of those buffers. For each batch
size the tape generates the step as one straight-line Python function (per group, one call of the
rule on the stacked arrays, then the gradients added into its inputs' rows), so a training step
costs a few NumPy calls per level of the graph instead of one Python call per node. The rules are
the primitive table's own functions, called with a :class:`NumpyMath` namespace; nothing here
knows a derivative. On a floating-point error the step is replayed group by group, to raise the
scalar engine's error naming the op and the sample.

    >>> from tinygrad_edu import Value
    >>> w, b = Value(2.0, "w"), Value(0.5, "b")
    >>> tape = trace(lambda x, y: (w * x + b - y) ** 2, example=[1.0, 0.0], params=[w, b])
    >>> tape.forward([[1.0, 0.0], [3.0, 1.0]]).tolist()
    [6.25, 30.25]
    >>> tape.mean_backward([[1.0, 0.0], [3.0, 1.0]]), w.grad, b.grad  # like (sum(losses) / 2).backward()
    (18.25, 19.0, 8.0)

The tape reads the live ``.data`` of the parameters on every call (optimizers update them in
place) and adds into their ``.grad`` like ``backward`` does, so optimizers work unchanged. It
replays the graph recorded at trace time: a function that branches on its inputs' values
(``if x > 0``) is traced along the branch the example took.
"""

from __future__ import annotations

import functools
import math
import weakref
import operator
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from .engine import Value, _math_error, enable_grad, topological_order
from .ops import FLOAT_MATH, Primitive

if TYPE_CHECKING:
    from .optim import Optimizer

__all__ = ["NUMPY_MATH", "NumpyMath", "Tape", "Trainer", "trace", "batched_step", "batched_outputs", "batched_losses"]

_ARITHMETIC_ERRORS = (ArithmeticError, ValueError)


class NumpyMath:
    """The math namespace of :mod:`tinygrad_edu.ops` for NumPy arrays (elementwise), with the same
    formulas as ``FLOAT_MATH``. With ``checked=True`` (:data:`NUMPY_MATH`), a domain error raises
    ``ValueError``/``ZeroDivisionError``/``OverflowError`` like the scalar engine instead of
    producing NaN or inf; the tape uses an unchecked instance inside its own ``np.errstate``."""

    def __init__(self, checked: bool = True):
        self.checked = checked

    def _call(self, name: str, fn: Callable, *args):
        if not self.checked:
            return fn(*args)
        with np.errstate(divide="raise", invalid="raise", over="raise", under="ignore"):
            try:
                return fn(*args)
            except FloatingPointError as err:
                raise _numpy_error(name, err) from None

    def exp(self, x):
        return self._call("exp", np.exp, x)

    def log(self, x):
        return self._call("log", np.log, x)

    def sqrt(self, x):
        return self._call("sqrt", np.sqrt, x)

    def pow(self, a, b):
        return self._call("pow", np.power, a, b)

    @staticmethod
    def tanh(x):
        # NumPy's vectorised tanh differs from the C library's (math.tanh) by up to 2 ulps for about
        # a fifth of inputs, and near +-1 the rules' 1 - tanh**2 (or a log(tanh)) magnify that far past
        # 1e-12; the C library's tanh keeps this engine within 1e-12 of the scalar one. (NumPy's exp,
        # log, sin and cos may also differ from the C library's by an ulp, on CPUs where NumPy uses
        # SIMD versions, e.g. AVX-512; the rules do not magnify those past 1e-12, which is what the
        # tests check against the scalar engine.)
        x = np.asarray(x, dtype=np.float64)
        return np.fromiter(map(math.tanh, x.ravel().tolist()), np.float64, x.size).reshape(x.shape)

    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    sign = staticmethod(np.sign)
    where = staticmethod(np.where)

    @staticmethod
    def sigmoid(x):
        # FLOAT_MATH's two branches in one: exp of a non-positive number never overflows. The
        # numerator is 1 where x >= 0 and exp(x) elsewhere; x's sign bit picks the same branch
        # (at -0.0 both give 0.5). Fewer temporaries and 0-d constants (cheaper than floats).
        e = np.copysign(x, _MINUS_ONE)  # -|x| in one call
        if not isinstance(e, np.ndarray):  # a scalar: no in-place operations
            e = np.exp(e)
            return np.where(np.signbit(x), e, 1.0) / (1.0 + e)
        np.exp(e, out=e)
        num = np.where(np.signbit(x), e, _ONE)
        np.add(e, _ONE, out=e)
        return np.divide(num, e, out=num)

    @staticmethod
    def softplus(x):
        # FLOAT_MATH's formula: max(x, 0) + log(1 + exp(-|x|)) never overflows.
        e = np.copysign(x, _MINUS_ONE)
        if not isinstance(e, np.ndarray):
            return np.maximum(x, 0.0) + np.log1p(np.exp(e))
        np.exp(e, out=e)
        np.log1p(e, out=e)
        return np.add(np.maximum(x, _ZERO), e, out=e)

    @staticmethod
    def relu(x):
        # x where x > 0, else +0.0 (for NaN and -0.0 too): fmax passes NaN over, + 0.0 turns -0.0 into 0.0.
        r = np.fmax(x, _ZERO)
        r += _ZERO
        return r

    @staticmethod
    def step(x):
        """1.0 where x > 0 else 0.0 (relu's derivative, 0 at 0 as in PyTorch)."""
        return np.greater(x, _ZERO).astype(np.float64)

    @staticmethod
    def add_n(xs):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total


# 0-d arrays: as operands of ufuncs they cost less than Python floats, with the same result.
_ZERO, _ONE, _MINUS_ONE = np.array(0.0), np.array(1.0), np.array(-1.0)


def _numpy_error(name: str, err: FloatingPointError) -> Exception:
    text = str(err)
    if "divide by zero" in text and name == "pow":
        return ZeroDivisionError(f"0.0 cannot be raised to a negative power ({text})")
    if "overflow" in text:
        return OverflowError(f"math range error: {name} overflowed ({text})")
    return ValueError(f"math domain error: {name} got an input outside its domain ({text})")


#: The checked NumPy namespace (public): raises where the scalar engine raises.
NUMPY_MATH = NumpyMath(checked=True)
_TAPE_MATH = NumpyMath(checked=False)  # the tape runs it under np.errstate(all="raise")


# The tape's layout ----------------------------------------------------------------------------
# Every node has a row in a (rows, batch) value buffer V and a gradient buffer G: parameters,
# inputs, constants, then each group's outputs. A group of M nodes is an array of some member
# shape (M,) or (M // d, d), and each of its input slots is read as one strided view of V when
# the slot's rows are an affine function of the member index (a stride of 0 broadcasts an input
# every member reads); only other slots are gathered. So a step is, per group, one rule call and
# one store forward, and one rule call and one add per input slot backward.

def _member_shapes(m: int):
    yield (m,)
    for d in range(2, m):
        if m % d == 0:
            yield (m // d, d)


def _affine(rows: np.ndarray, shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]] | None:
    """``(base, strides)`` when ``rows``, read as an array of ``shape``, are
    ``base + index . strides`` (strides in rows, 0 along axes of length 1), else None."""
    table = rows.reshape(shape)
    base = int(table.flat[0])
    strides = tuple(int(np.take(table, 1, axis=a).flat[0]) - base if n > 1 else 0 for a, n in enumerate(shape))
    expected = base + sum(s * i for s, i in zip(strides, np.indices(shape)))
    return (base, strides) if np.array_equal(table, expected) else None


def _distinct(base: int, strides: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether a view writes each row at most once, not counting broadcast axes (stride 0)."""
    shape = tuple(n if s != 0 else 1 for s, n in zip(strides, shape))
    rows = base + sum(s * i for s, i in zip(strides, np.indices(shape)))
    return len(np.unique(rows)) == np.size(rows)


def _strided(buf: np.ndarray, base: int, strides: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """The rows ``base + index . strides`` of ``buf`` as an array of ``shape + (batch,)`` (a view)."""
    row, col = buf.strides
    return np.lib.stride_tricks.as_strided(
        buf[base:], shape + (buf.shape[1],), tuple(s * row for s in strides) + (col,), subok=True)


class _Group:
    """Nodes applying one primitive at one depth: output rows ``lo:hi`` laid out as ``shape``; per
    input slot its rows (in member order), its view ``(base, strides)`` or None (gathered), and
    whether a gradient flows into it."""

    def __init__(self, op: Primitive, lo: int, slots: list[np.ndarray], grad_slots: list[bool]):
        self.op, self.lo, self.hi, self.slots, self.grad_slots = op, lo, lo + len(slots[0]), slots, grad_slots
        best = None
        for shape in _member_shapes(len(slots[0])):
            views = [_affine(rows, shape) for rows in slots]
            score = sum(v is not None for v in views)
            if best is None or score > best[0]:
                best = (score, shape, views)
        _, self.shape, self.views = best

    def backward_adds(self, G: np.ndarray) -> tuple[list, list]:
        """How each input slot's gradient is added into ``G``: ``plain`` as ``(slot, view)`` pairs
        (one ``+=``), and ``other`` as functions of the rule's gradients: a run of slots whose views
        stack into one strided view (an n-ary sum: one ``+=`` when the rule hands every slot the same
        array), a view with broadcast axes (summed over them first) or a gathered slot (np.add.at)."""
        shape, batch = self.shape, G.shape[1]
        full = shape + (batch,)
        plain, other = [], []
        k = 0
        while k < len(self.slots):
            if not self.grad_slots[k]:
                k += 1
                continue
            end = _run_end(self, k)
            if end - k >= 3:  # a broadcasting add costs about as much as two plain ones
                base, strides = self.views[k]
                step = self.views[k + 1][0] - base
                singles = [(j, _strided(G, *self.views[j], shape)) for j in range(k, end)]
                other.append(_RunAdd(k, end, _strided(G, base, (step,) + strides, (end - k,) + shape), singles))
                k = end
                continue
            view = self.views[k]
            if view is not None and _distinct(*view, shape):
                base, strides = view
                broadcast = tuple(a for a, (s, n) in enumerate(zip(strides, shape)) if s == 0 and n > 1)
                if not broadcast:
                    plain.append((k, _strided(G, base, strides, shape)))
                else:
                    kept = [a for a in range(len(shape)) if a not in broadcast]
                    target = _strided(G, base, tuple(strides[a] for a in kept), tuple(shape[a] for a in kept))
                    other.append(_ReduceAdd(k, target, broadcast, full))
            else:
                other.append(_ScatterAdd(k, G, self.slots[k], full))
            k += 1
        return plain, other


def _run_end(g: _Group, k: int) -> int:
    """The end of the run of gradient slots from ``k`` whose views have the same strides, no
    broadcast axis, and bases in arithmetic progression, writing distinct rows: their gradient
    targets stack into one strided view."""
    def stackable(j):
        v = g.views[j]
        return g.grad_slots[j] and v is not None and v[1] == g.views[k][1] \
            and all(s != 0 or n == 1 for s, n in zip(v[1], g.shape))

    if not stackable(k) or k + 1 == len(g.slots) or not stackable(k + 1):
        return k + 1
    base, strides = g.views[k]
    step = g.views[k + 1][0] - base
    if step == 0:  # the same rows twice (a + a): two adds
        return k + 1
    end = k + 1
    while end < len(g.slots) and stackable(end) and g.views[end][0] == base + step * (end - k) \
            and _distinct(base, (step,) + strides, (end - k + 1,) + g.shape):
        end += 1
    return end


class _RunAdd:
    """Slots ``k0:k1`` whose gradient targets stack into one strided view ``target``: one add when
    the rule hands every slot the same array (as ``sum``'s does), else one add per slot."""

    def __init__(self, k0: int, k1: int, target: np.ndarray, singles: list):
        self.k0, self.k1, self.target, self.singles = k0, k1, target, singles
        self.slots = range(k0, k1)  # the input slots whose gradients this adds

    def __call__(self, grads) -> None:
        g0 = grads[self.k0]
        for d in grads[self.k0 + 1:self.k1]:
            if d is not g0:
                for k, t in self.singles:
                    np.add(t, grads[k], out=t)
                return
        np.add(self.target, g0, out=self.target)

    def code(self, d: list[str], bind: Callable) -> list[str]:
        same = " is ".join(d[self.k0:self.k1])
        target = bind(self.target, "T")
        lines = [f"if {same}:", f"    {target} += {d[self.k0]}", "else:"]
        lines += [f"    {bind(t, 't')} += {d[k]}" for k, t in self.singles]
        return lines


class _ReduceAdd:
    """A slot read along broadcast axes: its gradient is summed over them, then added."""

    def __init__(self, k: int, target: np.ndarray, axes: tuple[int, ...], full: tuple[int, ...]):
        self.k, self.target, self.axes, self.full = k, target, axes, full
        self.slots = (k,)

    def __call__(self, grads) -> None:
        np.add(self.target, _summed(grads[self.k], self.full, self.axes), out=self.target)

    def code(self, d: list[str], bind: Callable) -> list[str]:
        return [f"{bind(self.target, 't')} += {bind(_summed, 'summed')}({d[self.k]}, {self.full}, {self.axes})"]


def _summed(d, full: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    if np.shape(d) != full:
        d = np.broadcast_to(d, full)
    return d.sum(axis=axes)


class _ScatterAdd:
    """A gathered slot: its gradient is added row by row (``np.add.at``: repeated rows add up)."""

    def __init__(self, k: int, G: np.ndarray, rows: np.ndarray, full: tuple[int, ...]):
        self.k, self.G, self.rows, self.full = k, G, rows, full
        self.slots = (k,)

    def __call__(self, grads) -> None:
        self.add(grads[self.k])

    def code(self, d: list[str], bind: Callable) -> list[str]:
        return [f"{bind(self, 'scatter')}.add({d[self.k]})"]

    def add(self, d) -> None:
        np.add.at(self.G, self.rows, np.broadcast_to(d, self.full).reshape(len(self.rows), -1))


class _StackedMath(NumpyMath):
    """The tape's math for a group whose first arguments are the rows of one strided view
    ``block``: ``add_n`` of them (``sum``'s forward) is one reduction instead of one add per
    argument. A reduction along the outer axis adds row after row, left to right, like the adds."""

    def __init__(self, members: tuple, block: np.ndarray):
        super().__init__(checked=False)
        self.members, self.block = members, block

    def add_n(self, xs):
        k = len(self.members)
        if len(xs) < k or not all(map(operator.is_, xs[:k], self.members)):
            return super().add_n(xs)
        total = np.add.reduce(self.block, axis=0)
        for x in xs[k:]:
            total = total + x
        return total


def _stacked_math(g: _Group, V: np.ndarray, args: tuple) -> NumpyMath:
    """A :class:`_StackedMath` when at least 3 leading slots of ``g`` stack into one view of ``V``
    (with one sample per column, the batch axis could vanish and NumPy would add the rows
    pairwise instead: not then), else the tape's plain math."""
    views, batch = g.views, V.shape[1]
    k = 0
    if batch > 1 and views[0] is not None and len(views) >= 3:
        base, strides = views[0]
        step = views[1][0] - base if views[1] is not None else 0
        k = 1
        while step and k < len(views) and views[k] is not None and views[k] == (base + k * step, strides):
            k += 1
    if k < 3:
        return _TAPE_MATH
    return _StackedMath(args[:k], _strided(V, base, (step,) + strides, (k,) + g.shape))


def _gather(m, V, rows):
    return V.take(rows, axis=0)


class _Plan:
    """A tape bound to buffers for one batch size, with every view made once: the per-call work is
    the rules' NumPy calls, one store per group and one add per gradient slot.

    ``forward`` holds ``(rule, math namespace, output view, argument views, group)`` (a gathered slot is a step of
    its own, group None); ``backward`` holds ``(vjp, gradient view, output view, argument views,
    plain adds, other adds, group)`` for the groups a gradient flows through, last group first.
    These lists are the step spelled out as data (run by the tape when it replays an error);
    :meth:`_compile` turns them into straight-line Python functions, ``run_forward()``,
    ``run_backward()`` and ``run_step()`` (both passes: what a training step calls)."""

    def __init__(self, tape: Tape, batch: int, zeros: Callable[[tuple[int, int]], np.ndarray] = np.zeros):
        # zeros: makes the buffers (the tests pass one making arrays that count NumPy calls)
        self.V = V = zeros((tape._num_rows, batch))
        self.G = G = zeros((tape._num_rows, batch))
        V[tape._const_rows] = tape._const_data[:, None]
        P = len(tape._used_params)
        self.params_view, self.param_grads = V[:P], G[:P]
        self.ones = np.ones(batch)  # param_grads @ ones: the sums over the batch, one BLAS call
        self.inputs_view = V[tape._input_lo : tape._input_lo + tape.num_inputs]
        first = int(tape._output_rows[0])
        self.first_output, self.first_output_grad = V[first], G[first]
        self.forward: list[tuple] = []
        self.backward: list[tuple] = []
        for g in tape._groups:
            args = []
            for rows, view in zip(g.slots, g.views):
                if view is not None:
                    args.append(_strided(V, *view, g.shape))
                else:
                    gathered = np.empty(g.shape + (batch,))
                    self.forward.append((_gather, _TAPE_MATH, gathered, (V, rows.reshape(g.shape)), None))
                    args.append(gathered)
            out = V[g.lo : g.hi].reshape(g.shape + (batch,))
            args = tuple(args)
            self.forward.append((g.op.forward, _stacked_math(g, V, args), out, args, g))
            if any(g.grad_slots):
                plain, other = g.backward_adds(G)
                self.backward.append((g.op.vjp, G[g.lo : g.hi].reshape(out.shape), out, args,
                                      tuple(plain), tuple(other), g))
        self.backward.reverse()
        self.source, self.run_forward, self.run_backward, self.run_step = self._compile(tape._output_rows)

    def _compile(self, output_rows: np.ndarray) -> tuple:
        """Python source for the step, one line per rule call, store and add, with every rule, view
        and helper bound as a default argument (a local). Returns it and three functions:
        ``run_forward()`` and ``run_backward()`` (every value and gradient in ``V`` and ``G``), and
        ``run_step()``, both passes in one function, where (for small batches) a group's result that
        is only ever read whole (by slots laid out as the group itself) stays a local variable: no
        store, and its gradient is the sum of its consumers' contributions, no zeroed rows to add into."""
        env: dict[str, Any] = {}
        names: dict[int, str] = {}

        def bind(obj, prefix: str) -> str:
            name = names.get(id(obj))
            if name is None:
                name = names[id(obj)] = f"{prefix}{len(env)}"
                env[name] = obj
            return name

        groups = [e[-1] for e in self.forward if e[-1] is not None]
        index = {id(g): i for i, g in enumerate(groups)}
        owner = np.full(self.V.shape[0], -1)
        for i, g in enumerate(groups):
            owner[g.lo:g.hi] = i
        whole = {(g.lo, g.shape): i for i, g in enumerate(groups)}

        # exact[i][k]: the group whose whole output slot k of group i reads in its own layout, or None.
        exact: list[list[int | None]] = []
        in_V = set(owner[output_rows].tolist())  # results that must be stored in V
        for fn, fm, out, args, g in self.forward:
            if g is None:
                continue
            stacked = len(fm.members) if isinstance(fm, _StackedMath) else 0
            row = []
            for k, view in enumerate(g.views):
                p = whole.get((view[0], g.shape)) if view is not None and k >= stacked else None
                if p is not None and view[1] != _contiguous(g.shape):
                    p = None
                row.append(p)
                if p is None:
                    in_V.update(owner[g.slots[k]].tolist())
            exact.append(row)
        in_V.discard(-1)
        # Gradients kept local: every contribution is a plain add from a slot that reads it whole.
        contributions = [0] * len(groups)
        in_G = set(owner[output_rows].tolist())
        for vjp, gview, out, args, plain, other, g in self.backward:
            i = index[id(g)]
            for k, _ in plain:
                if exact[i][k] is None:
                    in_G.update(owner[g.slots[k]].tolist())
                else:
                    contributions[exact[i][k]] += 1
            for add in other:
                for k in add.slots:
                    in_G.update(owner[g.slots[k]].tolist())
        in_G.update(i for i, n in enumerate(contributions) if n == 0)

        def forward_lines(local: bool) -> list[str]:
            lines = []
            for fn, fm, out, args, g in self.forward:
                if g is None:  # a gathered slot
                    V, rows = args
                    lines.append(f"{bind(out, 'x')}[...] = {bind(V, 'V')}.take({bind(rows, 'rows')}, 0)")
                    continue
                i = index[id(g)]
                call = f"{bind(fn, 'f')}({', '.join([bind(fm, 'm')] + arg_names(i, args, local))})"
                if not local:
                    lines.append(f"{bind(out, 'o')}[...] = {call}")
                else:
                    lines.append(f"v{i} = {call}")
                    if i in in_V:
                        lines.append(f"{bind(out, 'o')}[...] = v{i}")
            return lines

        def arg_names(i: int, args: tuple, local: bool) -> list[str]:
            return [f"v{exact[i][k]}" if local and exact[i][k] is not None else bind(a, "a") for k, a in enumerate(args)]

        def backward_lines(local: bool) -> list[str]:
            lines = []
            started = set()
            for vjp, gview, out, args, plain, other, g in self.backward:
                i = index[id(g)]
                gname = f"gl{i}" if local and i not in in_G else bind(gview, "g")
                oname = f"v{i}" if local else bind(out, "o")
                call = f"{bind(vjp, 'vjp')}({', '.join([bind(_TAPE_MATH, 'm'), gname, oname] + arg_names(i, args, local))})"
                used = {k for k, _ in plain} | {k for add in other for k in add.slots}
                d = [f"d{k}" for k in range(len(args))]
                lines.append(", ".join(d[k] if k in used else "_" for k in range(len(args))) + ", = " + call)
                for k, t in plain:
                    p = exact[i][k]
                    if not local or p is None or p in in_G:
                        lines.append(f"{bind(t, 't')} += {d[k]}")
                    elif p in started:
                        lines.append(f"gl{p} = gl{p} + {d[k]}")
                    else:
                        lines.append(f"gl{p} = {d[k]}")
                        started.add(p)
                for add in other:
                    lines += add.code(d, bind)
            return lines

        # Locals only while the arrays are small: a live temporary larger than glibc's mmap threshold
        # (128 KiB) is fresh, page-faulting memory each call (the step gets 1.5-4x slower), where a
        # stored one is freed at once and its memory reused.
        local = max(g.hi - g.lo for g in groups) * self.V.shape[1] * 8 <= 128 * 1024 if groups else False
        bodies = {"run_forward": forward_lines(False), "run_backward": backward_lines(False),
                  "run_step": forward_lines(local) + backward_lines(local)}
        defaults = ", ".join(f"{name}={name}" for name in env)
        source = "\n".join(line for name, body in bodies.items()
                           for line in [f"def {name}({defaults}):", *("    " + b for b in body or ["pass"])])
        namespace = dict(env)
        exec(compile(source, "<tinygrad_edu.batched step>", "exec"), namespace)
        return source, *(namespace[name] for name in bodies)


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The row strides of a block of rows laid out as ``shape`` (0 along axes of length 1, as in :func:`_affine`)."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step if n > 1 else 0)
        step *= n
    return tuple(reversed(strides))


_RAISE = {"divide": "raise", "invalid": "raise", "over": "raise", "under": "ignore"}
_raising = np.errstate(**_RAISE)  # as a decorator: half the cost of a `with np.errstate(...)` per call


class Tape:
    """A traced per-sample computation, replayed on batches. Make one with :func:`trace`.

    ``params`` are the parameter leaves (read live, gradients accumulated), ``num_inputs`` the
    number of per-sample inputs, ``num_outputs`` the number of per-sample outputs, ``num_nodes``
    the number of scalar nodes per sample and ``num_groups`` the number of stacked NumPy
    operations one forward pass makes.
    """

    def __init__(self, outputs: Sequence[Value], placeholders: Sequence[Value], params: Sequence[Value]):
        self.params = tuple(params)
        self.num_inputs = len(placeholders)
        self.num_outputs = len(outputs)
        order = topological_order(*outputs)
        self.num_nodes = len(order)
        param_ids = {id(p) for p in self.params}
        input_ids = {id(x): i for i, x in enumerate(placeholders)}

        # Classify every node: a parameter, an input, a constant (a leaf, or anything computed from
        # constants alone: folded now) or an operation; depth counts operations from the leaves.
        kind: dict[int, str] = {}
        consts: list[Value] = []
        depth: dict[int, int] = {}
        needs_grad: dict[int, bool] = {}
        computed: list[Value] = []
        for node in order:
            key = id(node)
            if key in param_ids:
                kind[key], depth[key], needs_grad[key] = "param", 0, True
            elif key in input_ids:
                kind[key], depth[key], needs_grad[key] = "input", 0, False
            elif node.is_leaf or all(kind[id(p)] == "const" for p in node.parents):
                kind[key], depth[key], needs_grad[key] = "const", 0, False
                consts.append(node)
            else:
                kind[key] = "op"
                depth[key] = 1 + max(depth[id(p)] for p in node.parents)
                needs_grad[key] = any(needs_grad[id(p)] for p in node.parents)
                computed.append(node)

        # Group operations by (depth, primitive, arity), in order of depth, then first appearance.
        groups: dict[tuple, list[Value]] = {}
        for node in computed:
            groups.setdefault((depth[id(node)], id(node.op), len(node.parents)), []).append(node)
        schedule = [groups[key] for key in sorted(groups, key=lambda k: k[0])]  # sort is stable

        # Order each group's members the way their consumers read them, slot by slot, walking back
        # from the outputs: a layer's products w[j][k] * x[k] come out as (k, j), so the sum that adds
        # them reads one contiguous block per k and each x[k] is one row broadcast over j.
        rank: dict[int, tuple[int, int, int]] = {}
        for i, o in enumerate(outputs):
            rank.setdefault(id(o), (-1, 0, i))
        for r, members in enumerate(reversed(schedule)):
            members.sort(key=lambda node: rank[id(node)])
            for k in range(len(members[0].parents)):
                for i, node in enumerate(members):
                    rank.setdefault(id(node.parents[k]), (r, k, i))

        # Rows of the buffers: parameters in order of first use (so that a layer's weights are one
        # contiguous block), then inputs, constants and each group's outputs, contiguous.
        row: dict[int, int] = {}
        used_params: list[Value] = []
        for members in schedule:
            for k in range(len(members[0].parents)):
                for m in members:
                    p = m.parents[k]
                    if kind[id(p)] == "param" and id(p) not in row:
                        row[id(p)] = len(used_params)
                        used_params.append(p)
        for o in outputs:
            if kind[id(o)] == "param" and id(o) not in row:
                row[id(o)] = len(used_params)
                used_params.append(o)
        self._used_params = tuple(used_params)
        P, I = len(used_params), len(placeholders)
        for x in placeholders:
            row[id(x)] = P + input_ids[id(x)]
        for i, c in enumerate(consts):
            row[id(c)] = P + I + i
        self._input_lo = P
        self._const_rows = np.arange(P + I, P + I + len(consts))
        self._const_data = np.array([c.data for c in consts], dtype=np.float64)
        next_row = P + I + len(consts)
        self._groups: list[_Group] = []
        for members in schedule:
            lo = next_row
            for node in members:
                row[id(node)] = next_row
                next_row += 1
            arity = len(members[0].parents)
            slots = [np.array([row[id(m.parents[k])] for m in members], dtype=np.intp) for k in range(arity)]
            grad_slots = [any(needs_grad[id(m.parents[k])] for m in members) for k in range(arity)]
            self._groups.append(_Group(members[0].op, lo, slots, grad_slots))
        self._num_rows = next_row
        self._output_rows = np.array([row[id(o)] for o in outputs], dtype=np.intp)
        self._plans: dict[int, _Plan] = {}
        self._get_data = attrgetter("data")

    @property
    def num_groups(self) -> int:
        return len(self._groups)

    @property
    def primitives(self) -> frozenset[Primitive]:
        """The primitives the tape applies (constants folded at trace time not counted)."""
        return frozenset(g.op for g in self._groups)

    def __repr__(self) -> str:
        return (
            f"Tape(num_inputs={self.num_inputs}, num_outputs={self.num_outputs}, params={len(self.params)}, "
            f"num_nodes={self.num_nodes}, num_groups={self.num_groups})"
        )

    # Running -----------------------------------------------------------------------------------
    def _check_inputs(self, inputs) -> np.ndarray:
        X = np.asarray(inputs, dtype=np.float64)
        if X.ndim == 1 and self.num_inputs == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[1] != self.num_inputs or X.shape[0] == 0:
            raise ValueError(
                f"the tape takes a (batch, {self.num_inputs}) array of inputs, one row per sample; got shape {X.shape}"
            )
        return X

    def _plan(self, batch: int) -> _Plan:
        plan = self._plans.get(batch)
        if plan is None:
            if len(self._plans) >= 8:  # keep a few batch sizes (training, last batch, evaluation)
                self._plans.pop(next(iter(self._plans)))
            plan = self._plans[batch] = _Plan(self, batch)
        return plan

    def _inputs_plan(self, inputs) -> _Plan:
        X = self._check_inputs(inputs)
        plan = self._plan(X.shape[0])
        plan.inputs_view[...] = X.T
        return plan

    def _load_params(self, plan: _Plan, params: np.ndarray | None = None) -> None:
        """The parameters' rows of the value buffer, from their Values or from ``params`` (in
        ``_used_params`` order)."""
        if params is not None:
            plan.params_view[...] = params[:, None]
        elif self._used_params:
            plan.params_view[...] = np.fromiter(
                map(self._get_data, self._used_params), np.float64, len(self._used_params))[:, None]

    def _run_forward(self, plan: _Plan) -> None:
        """Fill the value buffer, the inputs being in place (call inside ``np.errstate(**_RAISE)``)."""
        self._load_params(plan)
        try:
            plan.run_forward()
        except _ARITHMETIC_ERRORS:  # FloatingPointError is an ArithmeticError
            self._replay_forward(plan)

    def _replay_forward(self, plan: _Plan) -> None:
        """The forward pass group by group, raising the scalar engine's error where a group fails."""
        steps = iter(plan.forward)
        while True:
            try:
                for fwd, m, out, args, group in steps:
                    out[...] = fwd(m, *args)
                return
            except _ARITHMETIC_ERRORS:
                self._replay_error(group, "forward", lambda: fwd(m, *args), out, args)  # then carry on

    def _replay_error(self, g: _Group, where: str, redo, out, args, gview=None):
        """A group hit a NumPy floating-point error: find the first sample and node where the scalar
        engine raises and raise its error; if none does (inf - inf, say), the scalar engine
        gives inf or nan there too, so finish the group without raising."""
        batch = out.shape[-1]
        cols = [np.broadcast_to(a, out.shape).reshape(-1, batch) for a in args]
        outs = out.reshape(-1, batch)
        grads = None if gview is None else gview.reshape(-1, batch)
        for j in range(batch):
            for r in range(outs.shape[0]):
                xs = [float(a[r, j]) for a in cols]
                try:
                    if where == "forward":
                        g.op.forward(FLOAT_MATH, *xs)
                    else:
                        g.op.vjp(FLOAT_MATH, float(grads[r, j]), float(outs[r, j]), *xs)
                except _ARITHMETIC_ERRORS as scalar_err:
                    prefix = f"in the batched {where} (sample {j}), " + ("the derivative of " if where != "forward" else "")
                    raise _math_error(g.op, xs, scalar_err, prefix) from None
        with np.errstate(all="ignore"):
            result = redo()
        if where == "forward":
            out[...] = result
        return result

    def _outputs(self, plan: _Plan) -> np.ndarray:
        out = plan.V[self._output_rows].T
        return out[:, 0].copy() if self.num_outputs == 1 else out.copy()

    def forward(self, inputs) -> np.ndarray:
        """Per-sample outputs for a ``(batch, num_inputs)`` array: shape ``(batch,)`` for one
        output, ``(batch, num_outputs)`` otherwise. Records no gradients."""
        return self._values(self._inputs_plan(inputs))

    __call__ = forward

    @_raising
    def _values(self, plan: _Plan) -> np.ndarray:
        """The outputs, the inputs being in place; on a floating-point error, the forward pass is
        replayed group by group."""
        self._run_forward(plan)
        return self._outputs(plan)

    def backward(self, inputs, grad_outputs) -> np.ndarray:
        """Forward, then add ``sum over samples of grad_outputs[i] * d(outputs[i])/d(param)`` to each
        parameter's ``.grad`` (as ``backward`` on the scalar graph of the weighted sum would).
        ``grad_outputs`` has the outputs' shape. Returns the per-sample outputs."""
        plan = self._inputs_plan(inputs)
        batch = plan.V.shape[1]
        go = np.asarray(grad_outputs, dtype=np.float64)
        if go.size != batch * self.num_outputs:
            expected = f"({batch},)" if self.num_outputs == 1 else f"({batch}, {self.num_outputs})"
            raise ValueError(f"grad_outputs must have the outputs' shape {expected}, one per sample and output; "
                             f"got shape {go.shape}")
        go = go.reshape(batch, self.num_outputs)
        with np.errstate(**_RAISE):
            self._run_forward(plan)
            self._run_backward(plan, go)
        return self._outputs(plan)

    def mean_backward(self, inputs) -> float:
        """For a one-output tape (a per-sample loss): the batch's mean loss, with its gradient added
        into the parameters' ``.grad``, as ``(sum(losses) / n).backward()`` would."""
        if self.num_outputs != 1:
            raise ValueError(f"mean_backward needs a tape with one output (a loss); this one has {self.num_outputs}")
        return self._mean_backward(self._inputs_plan(inputs))

    def _mean_backward(self, plan: _Plan) -> float:
        n = plan.V.shape[1]
        totals = self._loss_step(plan, 1.0 / n)
        for p, total in zip(self._used_params, totals.tolist()):
            p.grad += total
        return float(np.add.reduce(plan.first_output)) / n

    @_raising
    def _loss_step(self, plan: _Plan, seed: float, params: np.ndarray | None = None,
                   out: np.ndarray | None = None) -> np.ndarray:
        """Forward and backward of a one-output tape, the output's gradient ``seed`` per sample,
        the parameters read as in :meth:`_load_params`: the parameters' gradients in ``out`` or a
        new array. On a floating-point error, both passes are replayed group by group."""
        self._load_params(plan, params)
        self._seed(plan, None, seed)
        try:
            plan.run_step()
            return np.dot(plan.param_grads, plan.ones, out=out)
        except _ARITHMETIC_ERRORS:
            self._replay_forward(plan)
            totals = self._replay_backward(plan, None, seed)
            if out is None:
                return totals
            out[...] = totals
            return out

    def _mean_loss_and_grads(self, plan: _Plan, params: np.ndarray, grads: np.ndarray) -> float:
        """:meth:`_mean_backward` on arrays: the parameters' values from ``params``, their
        gradients written into ``grads`` (both in ``_used_params`` order) instead of ``.grad``."""
        n = plan.V.shape[1]
        self._loss_step(plan, 1.0 / n, params, grads)
        return float(np.add.reduce(plan.first_output)) / n

    def _seed(self, plan: _Plan, grad_outputs: np.ndarray | None, seed: float) -> None:
        plan.G.fill(0.0)
        if grad_outputs is None:
            plan.first_output_grad.fill(seed)
        else:
            np.add.at(plan.G, self._output_rows, grad_outputs.T)

    def _run_backward(self, plan: _Plan, grad_outputs: np.ndarray | None, seed: float = 1.0) -> None:
        """Fill the gradient buffer from the outputs' seed and add the parameters' gradients into
        their ``.grad`` (call after :meth:`_run_forward`, inside ``np.errstate(**_RAISE)``)."""
        self._seed(plan, grad_outputs, seed)
        try:
            plan.run_backward()
            totals = np.dot(plan.param_grads, plan.ones)
        except _ARITHMETIC_ERRORS:
            totals = self._replay_backward(plan, grad_outputs, seed)
        for p, total in zip(self._used_params, totals.tolist()):
            p.grad += total

    def _replay_backward(self, plan: _Plan, grad_outputs: np.ndarray | None, seed: float) -> np.ndarray:
        """A rule (or a sum of contributions) hit a floating-point error: start again and go group
        by group, raising the scalar engine's error, or letting inf and nan through where the
        scalar engine does too (adding up contributions never raises there)."""
        self._seed(plan, grad_outputs, seed)
        m = _TAPE_MATH
        for vjp, g, out, args, plain, other, group in plan.backward:
            try:
                grads = vjp(m, g, out, *args)
            except _ARITHMETIC_ERRORS:
                grads = self._replay_error(group, "backward", lambda: vjp(m, g, out, *args), out, args, g)
            with np.errstate(all="ignore"):
                for k, target in plain:
                    target += grads[k]
                for add in other:
                    add(grads)
        with np.errstate(all="ignore"):
            return plan.param_grads.sum(axis=1)


def trace(fn: Callable[..., Value | Sequence[Value]], example: Sequence[float], params: Sequence[Value]) -> Tape:
    """Trace ``fn`` once, as a function of one sample, into a :class:`Tape`.

    ``fn`` is called with one placeholder ``Value`` per per-sample input (their data are the
    numbers in ``example``, e.g. the first row of your data) and returns a ``Value`` or a
    sequence of Values (the per-sample outputs). ``params`` are the leaves the tape reads live and
    differentiates; every other leaf ``fn`` uses is a constant, frozen at trace time.
    """
    example = [float(v) for v in np.asarray(example, dtype=np.float64).reshape(-1)]
    params = list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Value) or not p.is_leaf:
            raise TypeError(f"trace: params[{i}] must be a leaf Value (a parameter), got {p!r:.60}")
    placeholders = [Value(v, label=f"input{i}") for i, v in enumerate(example)]
    with enable_grad():
        result = fn(*placeholders)
    if not isinstance(result, (Value, list, tuple)):
        raise TypeError(f"trace: fn must return a Value or a sequence of Values, got {type(result).__name__}")
    outputs = [result] if isinstance(result, Value) else list(result)
    for i, o in enumerate(outputs):
        if not isinstance(o, Value):
            raise TypeError(f"trace: fn must return a Value or a sequence of Values; output {i} is {type(o).__name__}")
    if not outputs:
        raise ValueError("trace: fn returned no outputs")
    return Tape(outputs, placeholders, params)


# train.fit's engine: one minibatch step and evaluation, with the tapes cached per model.
_TAPES: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def _cached_tape(model, key, make: Callable[[], Tape]) -> Tape:
    per_model = _TAPES.setdefault(model, {})
    tape = per_model.get(key)
    if tape is None:
        tape = per_model[key] = make()
    return tape


def _step_tape(model, objective, x: np.ndarray, t: float) -> Tape:
    """The per-sample loss of ``objective`` on ``model``, traced once (on ``x, t``) and cached."""
    nin = len(x)

    def make() -> Tape:
        loss = lambda *xs: objective.sample_loss(model, list(xs[:nin]), xs[nin])  # noqa: E731
        return trace(loss, [*x, t], model.parameters())

    return _cached_tape(model, ("step", objective, nin), make)


def batched_step(model, objective, Xb: np.ndarray, yb: np.ndarray) -> float:
    """One minibatch on the batched engine (``train.fit(engine="batched")``): the mean of
    ``objective.sample_loss(model, x, t)`` over the rows, with its gradient added into the
    parameters' ``.grad``, as ``backward`` on the scalar graph of that mean would. The per-sample
    loss is traced once per (model, objective) and replayed."""
    _check_traceable(objective)
    Xb = np.asarray(Xb, dtype=np.float64)
    if Xb.ndim != 2 or len(Xb) == 0 or np.shape(yb) != (len(Xb),):
        raise ValueError(f"batched_step takes a (batch, features) array and a (batch,) array of targets; "
                         f"got shapes {Xb.shape} and {np.shape(yb)}")
    nin = Xb.shape[1]
    tape = _step_tape(model, objective, Xb[0], float(yb[0]))
    plan = tape._plan(len(Xb))  # the minibatch goes straight into the tape's input rows
    plan.inputs_view[:nin] = Xb.T
    plan.inputs_view[nin] = yb
    return tape._mean_backward(plan)


class Trainer:
    """``train.fit``'s minibatch loop on the batched engine with the weights in one array: each
    step is the tape's forward and backward (parameters read from the array, gradients written
    into one) and the optimizer's :meth:`~tinygrad_edu.optim.Optimizer.step_arrays`, the same
    float operations as ``optimizer.step()`` on the Values, so the same numbers as
    :func:`batched_step` with ``zero_grad`` and ``step``. Make one with :meth:`create`.

    The Values are current only after :meth:`store` (``fit`` calls it after every epoch, on an
    interruption and on an error); :meth:`load` reads them, and the optimizer's state, again."""

    def __init__(self, tape: Tape, optimizer: Optimizer, order: list[int], X: np.ndarray, y: np.ndarray,
                 batch_size: int):
        self.tape, self.optimizer, self.order, self.batch_size = tape, optimizer, order, batch_size
        self.params = [optimizer.params[i] for i in order]
        self.data = np.empty(len(order))
        self.grad = np.zeros(len(order))
        self.state: dict[str, np.ndarray] = {}
        self.XY = np.vstack([X.T, y])  # one row per input, then the targets: a batch is one slice
        self.shuffled = np.empty_like(self.XY)
        n = len(y)
        self.batches = [(tape._plan(min(batch_size, n - i)), self.shuffled[:, i:i + batch_size])
                        for i in range(0, n, batch_size)]
        self.load()

    @classmethod
    def create(cls, model, objective, optimizer: Optimizer, X: np.ndarray, y: np.ndarray,
               batch_size: int) -> Trainer | None:
        """A trainer for ``train.fit``, or None when the array form does not apply: an optimizer
        without one (see ``Optimizer.can_step_arrays``), a parameter the loss uses that the
        optimizer does not update, or a parameter listed twice."""
        _check_traceable(objective)
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if not optimizer.can_step_arrays() or len({id(p) for p in optimizer.params}) != len(optimizer.params):
            return None
        tape = _step_tape(model, objective, X[0], float(y[0]))
        index = {id(p): i for i, p in enumerate(optimizer.params)}
        if any(id(p) not in index for p in tape._used_params):
            return None
        # The tape's parameters first (their gradients come from the tape, in its order), then any
        # other parameter the optimizer updates (gradient 0, as zero_grad leaves it).
        order = [index[id(p)] for p in tape._used_params]
        used = set(order)
        order += [i for i in range(len(optimizer.params)) if i not in used]
        return cls(tape, optimizer, order, X, y, batch_size)

    def load(self) -> None:
        """Read the parameters' ``.data`` and the optimizer's state into the arrays."""
        self.data[...] = [p.data for p in self.params]
        self.state = self.optimizer.array_state(self.order)

    def store(self) -> None:
        """Write the arrays back: ``.data``, ``.grad`` (the last batch's) and the optimizer's state."""
        for p, v, g in zip(self.params, self.data.tolist(), self.grad.tolist()):
            p.data, p.grad = v, g
        self.optimizer.load_array_state(self.order, self.state)

    def epoch(self, rng: np.random.Generator, check: Callable[[float, int], None]) -> Iterator[float]:
        """One epoch in the minibatch order of ``data.minibatches(X, y, batch_size, seed=rng)``
        (the same permutation drawn from ``rng``); yields each batch's loss after the optimizer's
        step. ``check(loss, batch)`` runs before the step (it raises when training diverged)."""
        tape, opt, data, grad, state = self.tape, self.optimizer, self.data, self.grad, self.state
        P = len(tape._used_params)
        params, grads = data[:P], grad[:P]
        np.take(self.XY, rng.permutation(self.XY.shape[1]), axis=1, out=self.shuffled)
        for b, (plan, batch) in enumerate(self.batches):
            plan.inputs_view[...] = batch
            value = tape._mean_loss_and_grads(plan, params, grads)
            check(value, b)
            opt.step_arrays(data, grad, state)
            yield value


def outputs_tape(model, objective, example: np.ndarray) -> Tape:
    """``objective.output(model, x)`` as a function of one sample ``x``, traced once (on
    ``example``) and cached per (model, objective, number of inputs)."""
    example = np.asarray(example, dtype=np.float64)
    return _cached_tape(model, ("outputs", objective, len(example)),
                        lambda: trace(lambda *xs: objective.output(model, list(xs)), example, model.parameters()))


def batched_outputs(model, objective, X: np.ndarray) -> np.ndarray:
    """``objective.output(model, x)`` for every row of ``X`` through a traced tape (no gradients)."""
    _check_traceable(objective)
    X = np.asarray(X, dtype=np.float64)
    return outputs_tape(model, objective, X[0]).forward(X)


@functools.lru_cache(maxsize=64)
def _criterion_tape(objective) -> Tape:
    return trace(objective.criterion, [0.0, 0.0], [])


def batched_losses(objective, outputs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``objective.criterion(output, target)`` for every sample, through a traced tape."""
    _check_traceable(objective)
    outputs = np.asarray(outputs, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(outputs) == 0 or y.shape != outputs.shape:
        raise ValueError(f"batched_losses takes one target per output; got {len(outputs)} outputs and {len(y)} targets")
    tape = _criterion_tape(objective)
    plan = tape._plan(len(outputs))  # outputs and targets straight into the tape's input rows
    plan.inputs_view[0] = outputs
    plan.inputs_view[1] = y
    return tape._values(plan)


def _check_traceable(objective) -> None:
    # A tape replays the graph traced from one example; this loss clips its input depending on the
    # value (a Python branch), so one traced graph cannot stand for every sample.
    if getattr(objective, "loss", None) == "bce" and not getattr(objective, "logit_output", True):
        raise ValueError(
            "the batched engine cannot replay binary cross-entropy on probabilities (it clips by value); "
            "use the logit form (train.make_objective gives it for sigmoid and linear outputs)"
        )
