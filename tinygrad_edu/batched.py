"""The batched engine: trace a scalar computation once into a tape, then replay that tape forward
and backward on NumPy arrays, one element per sample, with the rules of :mod:`tinygrad_edu.ops`.

Tracing calls your per-sample function once on placeholder ``Value`` inputs and keeps the graph it
builds: its primitives, in topological order. Replaying groups the nodes that apply the same
primitive at the same depth (a layer's multiplications, say) and runs each group as one NumPy call
on a stacked array, so a training step costs a few NumPy calls per level of the graph instead of
one Python call per node. Forward and derivative rules are read from the primitive table through
:data:`NUMPY_MATH`; nothing here knows a derivative.

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
from operator import attrgetter
from typing import Any, Callable, Sequence

import numpy as np

from . import ops
from .engine import Value, _math_error, enable_grad, topological_order
from .ops import FLOAT_MATH, Primitive

__all__ = ["NUMPY_MATH", "NumpyMath", "Tape", "trace", "batched_step", "batched_outputs", "batched_losses"]

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
        # 1e-12; the C library's tanh keeps this engine equal to the scalar one. (NumPy's exp, log,
        # sin and cos agree with the C library's.)
        x = np.asarray(x, dtype=np.float64)
        return np.fromiter(map(math.tanh, x.ravel().tolist()), np.float64, x.size).reshape(x.shape)

    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    sign = staticmethod(np.sign)
    where = staticmethod(np.where)

    @staticmethod
    def sigmoid(x):
        # FLOAT_MATH's two branches in one: exp of a non-positive number never overflows.
        e = np.exp(-np.abs(x))
        return np.where(x >= 0.0, 1.0, e) / (1.0 + e)

    @staticmethod
    def relu(x):
        return np.where(x > 0.0, x, 0.0)

    @staticmethod
    def step(x):
        """1.0 where x > 0 else 0.0 (relu's derivative, 0 at 0 as in PyTorch)."""
        return (x > 0.0).astype(np.float64)

    @staticmethod
    def add_n(xs):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total


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


def _as_slice(rows: np.ndarray) -> slice | None:
    """``rows`` as a basic slice (a view, no copy) when they form an arithmetic progression of
    distinct rows, else None."""
    if len(rows) == 1:
        return slice(int(rows[0]), int(rows[0]) + 1)
    step = int(rows[1] - rows[0])
    if step == 0 or not (np.diff(rows) == step).all():
        return None
    stop = int(rows[-1]) + (1 if step > 0 else -1)
    return slice(int(rows[0]), stop if stop >= 0 else None, step)


def _grid(slots: list[np.ndarray]) -> tuple[int, int, int] | None:
    """(first row, slot stride, member stride) when ``rows[k][i] == base + k*sk + i*si`` for all
    slots ``k`` and members ``i``, all rows distinct and ``si >= 0``, so that the slots, taken in
    order of their first row, are one strided view of a buffer."""
    table = np.stack(sorted(slots, key=lambda rows: int(rows[0])))
    k, n = table.shape
    base = int(table[0, 0])
    sk = int(table[1, 0] - base) if k > 1 else 0
    si = int(table[0, 1] - base) if n > 1 else 0
    expected = base + sk * np.arange(k)[:, None] + si * np.arange(n)[None, :]
    if si < 0 or not np.array_equal(table, expected) or len(np.unique(table)) != table.size:
        return None
    return base, sk, si


class _Group:
    """Nodes applying one primitive at one depth: output rows ``lo:hi``, one row array per slot."""

    def __init__(self, op: Primitive, lo: int, hi: int, slots: list[np.ndarray], grad_slots: list[bool]):
        self.op, self.lo, self.hi, self.slots, self.grad_slots = op, lo, hi, slots, grad_slots
        self.slices = [_as_slice(rows) for rows in slots]
        # Runs of consecutive gradient slots whose rows form one grid: when the derivative rule
        # hands every slot the same array (sum, add), a run is updated by one strided +=.
        self.runs: list[tuple[int, int, tuple[int, int, int]]] = []
        k = 0
        while k < len(slots):
            end = k
            while end < len(slots) and grad_slots[end] and self.slices[end] is not None:
                end += 1
            while end - k >= 2 and _grid(slots[k:end]) is None:
                end -= 1
            if end - k >= 2:
                self.runs.append((k, end, _grid(slots[k:end])))
                k = end
            else:
                k += 1


class _Plan:
    """A tape bound to buffers for one batch size: views are made once, so the per-call work is
    the rules' NumPy calls, one store per group and one scatter per gradient slot."""

    def __init__(self, tape: Tape, batch: int):
        n = tape._num_rows
        self.V = V = np.zeros((n, batch))
        self.G = G = np.zeros((n, batch))
        V[tape._const_rows] = tape._const_data[:, None]
        self.params_view = V[: len(tape._used_params)]
        self.inputs_view = V[tape._input_lo : tape._input_lo + tape.num_inputs]
        self.forward = []  # (group, forward rule, output view, args or None, take specs)
        for g in tape._groups:
            # A slot is a fixed view of V when its rows form a progression, else rows to take.
            specs = [(True, V[s]) if s is not None else (False, rows) for s, rows in zip(g.slices, g.slots)]
            static = tuple(sp for _, sp in specs) if all(is_view for is_view, _ in specs) else None
            self.forward.append((g, g.op.forward, V[g.lo : g.hi], static, specs))
        self.backward = []
        for i in reversed(range(len(tape._groups))):
            g = tape._groups[i]
            if not any(g.grad_slots):
                continue
            scatters = []
            for k, (s, rows) in enumerate(zip(g.slices, g.slots)):
                if not g.grad_slots[k]:
                    scatters.append(None)
                elif s is not None:
                    scatters.append(("view", G[s]))
                elif len(np.unique(rows)) == len(rows):
                    scatters.append(("unique", rows))
                else:
                    scatters.append(("dup", rows))
            runs, covered = [], set()
            for k0, k1, (base, sk, si) in g.runs:
                runs.append(np.lib.stride_tricks.as_strided(
                    G[base:], shape=(k1 - k0, g.hi - g.lo, batch),
                    strides=(sk * G.strides[0], si * G.strides[0], G.strides[1])))
                covered.update(range(k0, k1))
            rest = [sc if k not in covered else None for k, sc in enumerate(scatters)]
            self.backward.append((i, g, g.op.vjp, G[g.lo : g.hi], V[g.lo : g.hi], scatters, runs, rest))
        self.saved: list[Any] = [None] * len(tape._groups)


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
            self._groups.append(_Group(members[0].op, lo, next_row, slots, grad_slots))
        self._num_rows = next_row
        self._output_rows = np.array([row[id(o)] for o in outputs], dtype=np.intp)
        self._plans: dict[int, _Plan] = {}
        self._get_data = attrgetter("data")

    @property
    def num_groups(self) -> int:
        return len(self._groups)

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

    def _run_forward(self, X: np.ndarray) -> _Plan:
        plan = self._plan(X.shape[0])
        plan.params_view[...] = np.fromiter(map(self._get_data, self._used_params), np.float64, len(self._used_params))[:, None]
        plan.inputs_view[...] = X.T
        m, V, saved = _TAPE_MATH, plan.V, plan.saved
        with np.errstate(divide="raise", invalid="raise", over="raise", under="ignore"):
            for i, (g, fwd, out, static, specs) in enumerate(plan.forward):
                args = static if static is not None else [
                    sp if is_view else V.take(sp, axis=0) for is_view, sp in specs
                ]
                try:
                    out[...] = fwd(m, *args)
                except _ARITHMETIC_ERRORS as err:  # FloatingPointError is an ArithmeticError
                    self._replay_error(g, "forward", err, plan, lambda: fwd(m, *args), out, args)
                saved[i] = args
        return plan

    def _replay_error(self, g: _Group, where: str, err: Exception, plan: _Plan, redo, out, args, gview=None):
        """A group hit a NumPy floating-point error: find the first sample and node where the scalar
        engine raises and raise its error; if none does (inf - inf, say), the scalar engine
        gives inf or nan there too, so finish the group without raising."""
        args = [np.broadcast_to(a, out.shape) for a in args]
        for j in range(out.shape[1]):
            for r in range(out.shape[0]):
                xs = [float(a[r, j]) for a in args]
                try:
                    if where == "forward":
                        g.op.forward(FLOAT_MATH, *xs)
                    else:
                        g.op.vjp(FLOAT_MATH, float(gview[r, j]), float(out[r, j]), *xs)
                except _ARITHMETIC_ERRORS as scalar_err:
                    prefix = f"in the batched {where} (sample {j}), " + ("the derivative of " if where != "forward" else "")
                    raise _math_error(g.op, xs, scalar_err, prefix) from None
        with np.errstate(all="ignore"):
            result = redo()
        if where == "forward":
            out[...] = result
        return result

    def forward(self, inputs) -> np.ndarray:
        """Per-sample outputs for a ``(batch, num_inputs)`` array: shape ``(batch,)`` for one
        output, ``(batch, num_outputs)`` otherwise. Records no gradients."""
        plan = self._run_forward(self._check_inputs(inputs))
        out = plan.V[self._output_rows].T
        return out[:, 0].copy() if self.num_outputs == 1 else out.copy()

    __call__ = forward

    def backward(self, inputs, grad_outputs) -> np.ndarray:
        """Forward, then add ``sum over samples of grad_outputs[i] * d(outputs[i])/d(param)`` to each
        parameter's ``.grad`` (as ``backward`` on the scalar graph of the weighted sum would).
        ``grad_outputs`` has the outputs' shape. Returns the per-sample outputs."""
        X = self._check_inputs(inputs)
        go = np.asarray(grad_outputs, dtype=np.float64).reshape(X.shape[0], self.num_outputs)
        plan = self._run_forward(X)
        self._run_backward(plan, go)
        out = plan.V[self._output_rows].T
        return out[:, 0].copy() if self.num_outputs == 1 else out.copy()

    def mean_backward(self, inputs) -> float:
        """For a one-output tape (a per-sample loss): the batch's mean loss, with its gradient added
        into the parameters' ``.grad``, as ``(sum(losses) / n).backward()`` would."""
        if self.num_outputs != 1:
            raise ValueError(f"mean_backward needs a tape with one output (a loss); this one has {self.num_outputs}")
        X = self._check_inputs(inputs)
        plan = self._run_forward(X)
        n = X.shape[0]
        self._run_backward(plan, None, 1.0 / n)
        return float(plan.V[self._output_rows[0]].sum() / n)

    def _run_backward(self, plan: _Plan, grad_outputs: np.ndarray | None, seed: float = 1.0) -> None:
        G, saved, m = plan.G, plan.saved, _TAPE_MATH
        G.fill(0.0)
        if grad_outputs is None:
            G[self._output_rows[0]] += seed
        else:
            np.add.at(G, self._output_rows, grad_outputs.T)
        with np.errstate(divide="raise", invalid="raise", over="raise", under="ignore"):
            for i, g, vjp, gview, out, scatters, runs, rest in plan.backward:
                args = saved[i]
                try:
                    grads = vjp(m, gview, out, *args)
                except _ARITHMETIC_ERRORS as err:
                    grads = self._replay_error(g, "backward", err, plan, lambda: vjp(m, gview, out, *args), out, args, gview)
                if runs and all(d is grads[0] for d in grads):
                    for run in runs:  # n-ary sum and add: one strided update for a run of slots
                        run += grads[0]
                    scatters = rest
                for sc, d in zip(scatters, grads):
                    if sc is None:
                        continue
                    kind, target = sc
                    if kind == "view":
                        target += d
                    elif kind == "unique":
                        G[target] += d
                    else:
                        np.add.at(G, target, np.broadcast_to(d, (len(target), G.shape[1])))
        if self._used_params:
            for p, total in zip(self._used_params, G[: len(self._used_params)].sum(axis=1).tolist()):
                p.grad += total


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


def batched_step(model, objective, Xb: np.ndarray, yb: np.ndarray) -> float:
    """One minibatch on the batched engine (``train.fit(engine="batched")``): the mean of
    ``objective.sample_loss(model, x, t)`` over the rows, with its gradient added into the
    parameters' ``.grad``, as ``backward`` on the scalar graph of that mean would. The per-sample
    loss is traced once per (model, objective) and replayed."""
    _check_traceable(objective)
    Xb = np.asarray(Xb, dtype=np.float64)
    nin = Xb.shape[1]

    def make() -> Tape:
        loss = lambda *xs: objective.sample_loss(model, list(xs[:nin]), xs[nin])  # noqa: E731
        return trace(loss, [*Xb[0], float(yb[0])], model.parameters())

    tape = _cached_tape(model, ("step", objective, nin), make)
    inputs = np.empty((len(Xb), nin + 1))
    inputs[:, :nin] = Xb
    inputs[:, nin] = yb
    return tape.mean_backward(inputs)


def batched_outputs(model, objective, X: np.ndarray) -> np.ndarray:
    """``objective.output(model, x)`` for every row of ``X`` through a traced tape (no gradients)."""
    _check_traceable(objective)
    X = np.asarray(X, dtype=np.float64)
    nin = X.shape[1]
    tape = _cached_tape(model, ("outputs", objective, nin),
                        lambda: trace(lambda *xs: objective.output(model, list(xs)), X[0], model.parameters()))
    return tape.forward(X)


@functools.lru_cache(maxsize=64)
def _criterion_tape(objective) -> Tape:
    return trace(objective.criterion, [0.0, 0.0], [])


def batched_losses(objective, outputs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``objective.criterion(output, target)`` for every sample, through a traced tape."""
    _check_traceable(objective)
    outputs = np.asarray(outputs, dtype=np.float64).reshape(-1)
    return _criterion_tape(objective).forward(np.stack([outputs, np.asarray(y, dtype=np.float64).reshape(-1)], axis=1))


def _check_traceable(objective) -> None:
    # A tape replays the graph traced from one example; this loss clips its input depending on the
    # value (a Python branch), so one traced graph cannot stand for every sample.
    if getattr(objective, "loss", None) == "bce" and not getattr(objective, "logit_output", True):
        raise ValueError(
            "the batched engine cannot replay binary cross-entropy on probabilities (it clips by value); "
            "use the logit form (train.make_objective gives it for sigmoid and linear outputs)"
        )
