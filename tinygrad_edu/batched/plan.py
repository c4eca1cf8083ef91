"""The plan: a laid-out tape bound to buffers for one batch size, every view made once, and the
step spelled out as data: a list of :class:`ForwardStep` and one of :class:`BackwardStep`.

:mod:`.codegen` turns a plan into straight-line Python; :func:`interpret_forward` and
:func:`interpret_backward` run the same lists one step at a time, the reference the generated
code is tested against and what the tape replays on a floating-point error.
"""

from __future__ import annotations

import contextlib
import operator
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .layout import Group, Layout, distinct, strided, strided_vector
from .numpy_math import ARITHMETIC_ERRORS, TAPE_MATH, NumpyMath

__all__ = ["Plan", "ForwardStep", "BackwardStep", "interpret_forward", "interpret_backward"]


@dataclass(eq=False)
class ForwardStep:
    """``out[...] = rule(math, *args)``: a group's forward rule on its argument views (``group``
    set), or, ``group`` None, the gathering of a slot whose rows are no strided view (``rule`` is
    :func:`gather`) or the copy of a staged slot into its buffer (:func:`stage`; ``source`` is the
    group and the slot)."""

    rule: Callable
    math: NumpyMath
    out: np.ndarray
    args: tuple
    group: Group | None
    source: tuple[Group, int] | None = None


@dataclass(eq=False)
class BackwardStep:
    """``grads = vjp(math, grad, out, *args)``, then each slot's gradient added where it goes:
    ``plain`` as ``(slot, view of G)`` pairs (one ``+=`` each), ``other`` as adds into ``G`` that
    need more (:class:`RunAdd`, :class:`ReduceAdd`, :class:`ScatterAdd`), ``params`` into the
    parameters' gradient vector (:class:`ParamAdd`)."""

    vjp: Callable
    grad: np.ndarray
    out: np.ndarray
    args: tuple
    plain: tuple[tuple[int, np.ndarray], ...]
    other: tuple
    params: tuple
    group: Group

    @property
    def used(self) -> set[int]:
        """The slots whose gradient is added somewhere."""
        return {k for k, _ in self.plain} | {k for add in self.other + self.params for k in add.slots}


def interpret_forward(plan: Plan, on_error: Callable[[ForwardStep], None] | None = None) -> None:
    """Run the forward steps one by one (the reference for the generated ``run_forward``). A step
    that raises goes to ``on_error(step)``, which raises or fills ``step.out``; without one, the
    error propagates."""
    if plan.params_in_V:
        plan.V_params[...] = plan.params[:, None]
    for step in plan.forward:
        try:
            step.out[...] = step.rule(step.math, *step.args)
        except ARITHMETIC_ERRORS:
            if on_error is None:
                raise
            on_error(step)


def interpret_backward(plan: Plan, on_error: Callable[[BackwardStep], tuple] | None = None) -> None:
    """Run the backward steps one by one, last group first (the reference for ``run_backward``);
    ``G`` must hold the outputs' seed and ``param_grads`` zeros. ``on_error(step)`` returns the
    gradients of a step that raised; with it, adding up the gradients never raises (inf and NaN go
    through, as they do on the scalar engine)."""
    for step in plan.backward:
        try:
            grads = step.vjp(TAPE_MATH, step.grad, step.out, *step.args)
        except ARITHMETIC_ERRORS:
            if on_error is None:
                raise
            grads = on_error(step)
        with np.errstate(all="ignore") if on_error is not None else contextlib.nullcontext():
            for k, target in step.plain:
                target += grads[k]
            for add in step.other + step.params:
                add(grads)
    if plan.params_in_G:
        with np.errstate(all="ignore") if on_error is not None else contextlib.nullcontext():
            plan.param_grads += np.dot(plan.G_params, plan.ones)


def backward_adds(g: Group, G: np.ndarray, param_grads: np.ndarray) -> tuple[list, list, list]:
    """How each input slot's gradient is added up: ``plain`` as ``(slot, view of G)`` pairs (one
    ``+=``); ``other`` as functions of the rule's gradients: a run of slots whose views stack into
    one strided view (an n-ary sum: one ``+=`` when the rule hands every slot the same array), a
    view with broadcast axes (summed over them first) or a gathered slot (np.add.at); ``params``
    for the slots that read parameters through a view (:class:`ParamAdd`: summed over the batch
    into ``param_grads``, the parameters' gradient vector)."""
    shape, batch, P = g.shape, G.shape[1], len(param_grads)
    full = shape + (batch,)
    plain, other, params = [], [], []
    for k in range(len(g.slots)):
        if g.grad_slots[k] and g.reads_params(k, P):
            add = param_add(g, k, param_grads, batch)
            if add is not None:
                params.append(add)
    done = {add.k for add in params}
    k = 0
    while k < len(g.slots):
        if not g.grad_slots[k] or k in done:
            k += 1
            continue
        if not g.elementwise and k < 2:  # a fused layer's inputs: one plain add
            plain.append((k, g.arg_view(k, G)))
            k += 1
            continue
        end = run_end(g, k, P)
        if end - k >= 3:  # a broadcasting add costs about as much as two plain ones
            base, strides = g.views[k]
            step = g.views[k + 1][0] - base
            singles = [(j, strided(G, *g.views[j], shape)) for j in range(k, end)]
            other.append(RunAdd(k, end, strided(G, base, (step,) + strides, (end - k,) + shape), singles))
            k = end
            continue
        view = g.views[k]
        if view is not None and distinct(*view, shape):
            base, strides = view
            broadcast = tuple(a for a, (s, n) in enumerate(zip(strides, shape)) if s == 0 and n > 1)
            if not broadcast:
                plain.append((k, strided(G, base, strides, shape)))
            else:
                kept = [a for a in range(len(shape)) if a not in broadcast]
                target = strided(G, base, tuple(strides[a] for a in kept), tuple(shape[a] for a in kept))
                other.append(ReduceAdd(k, target, broadcast, full))
        else:
            other.append(ScatterAdd(k, G, g.slots[k], full))
        k += 1
    return plain, other, params


def param_add(g: Group, k: int, param_grads: np.ndarray, batch: int) -> ParamAdd | None:
    """The :class:`ParamAdd` of slot ``k`` (which reads parameters through a view), or None when
    its rows repeat along an axis that is not broadcast (then it goes through ``G``)."""
    if not g.elementwise and k == 0:  # a fused layer's weights: the rule sums over the batch
        return ParamAdd(k, g.param_view(0, param_grads, batch), (), g.slot_shape(0), g.slots[0])
    shape = g.slot_shape(k)
    base, strides = g.views[k]
    broadcast = tuple(a for a, (s, n) in enumerate(zip(strides, shape)) if s == 0 and n > 1)
    kept = [a for a in range(len(shape)) if a not in broadcast]
    kept_strides, kept_shape = tuple(strides[a] for a in kept), tuple(shape[a] for a in kept)
    if not distinct(base, kept_strides, kept_shape):
        return None
    rows = g.slots[k].reshape(shape)
    for a in broadcast:
        rows = rows.take([0], axis=a)
    return ParamAdd(k, strided_vector(param_grads, base, kept_strides, kept_shape), broadcast + (len(shape),),
                    shape + (batch,), rows.reshape(-1))


def run_end(g: Group, k: int, num_params: int) -> int:
    """The end of the run of gradient slots from ``k`` whose views have the same strides, no
    broadcast axis, and bases in arithmetic progression, writing distinct rows of ``G`` (not
    parameters'): their gradient targets stack into one strided view."""
    def stackable(j):
        v = g.views[j]
        return g.grad_slots[j] and v is not None and v[1] == g.views[k][1] and not g.reads_params(j, num_params) \
            and all(s != 0 or n == 1 for s, n in zip(v[1], g.shape))

    if not stackable(k) or k + 1 == len(g.slots) or not stackable(k + 1):
        return k + 1
    base, strides = g.views[k]
    step = g.views[k + 1][0] - base
    if step == 0:  # the same rows twice (a + a): two adds
        return k + 1
    end = k + 1
    while end < len(g.slots) and stackable(end) and g.views[end][0] == base + step * (end - k) \
            and distinct(base, (step,) + strides, (end - k + 1,) + g.shape):
        end += 1
    return end


class RunAdd:
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
        target = bind(self.target, "T")
        if len(set(d[self.k0:self.k1])) == 1:  # known to be one array when the code is written
            return [f"{target} += {d[self.k0]}"]
        same = " is ".join(d[self.k0:self.k1])
        lines = [f"if {same}:", f"    {target} += {d[self.k0]}", "else:"]
        lines += [f"    {bind(t, 't')} += {d[k]}" for k, t in self.singles]
        return lines


class ReduceAdd:
    """A slot read along broadcast axes: its gradient is summed over them, then added."""

    def __init__(self, k: int, target: np.ndarray, axes: tuple[int, ...], full: tuple[int, ...]):
        self.k, self.target, self.axes, self.full = k, target, axes, full
        self.slots = (k,)

    def __call__(self, grads) -> None:
        np.add(self.target, summed(grads[self.k], self.full, self.axes), out=self.target)

    def code(self, d: list[str], bind: Callable) -> list[str]:
        return [f"{bind(self.target, 't')} += {bind(summed, 'summed')}({d[self.k]}, {self.full}, {self.axes})"]


def summed(d, full: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    if getattr(d, "shape", ()) != full:
        d = np.broadcast_to(d, full)
    return d.sum(axis=axes)


class ParamAdd:
    """A slot that reads parameters (a strided view of the parameter vector): its gradient, summed
    over the batch and over any axis the slot is broadcast along (``axes``; none for a fused
    layer's weights, whose rule sums over the batch itself), goes into the parameters' entries
    ``rows`` of the gradient vector: the view ``target``."""

    def __init__(self, k: int, target: np.ndarray, axes: tuple[int, ...], full: tuple[int, ...], rows: np.ndarray):
        self.k, self.target, self.axes, self.full, self.rows = k, target, axes, full, rows
        self.slots = (k,)

    def __call__(self, grads) -> None:
        d = grads[self.k]
        np.add(self.target, summed(d, self.full, self.axes) if self.axes else d, out=self.target)

    def code(self, d: list[str], bind: Callable, target: str, assign: bool) -> list[str]:
        """The line adding the gradient into ``target`` (the name of :attr:`target`), or writing
        it there (``assign``)."""
        g = d[self.k]
        if not self.axes:
            return [f"{target}{'[...] =' if assign else ' +='} {g}"]
        if assign:
            return [f"{bind(sum_into, 'sum_into')}({g}, {self.full}, {self.axes}, {target})"]
        return [f"{target} += {bind(summed, 'summed')}({g}, {self.full}, {self.axes})"]


def sum_into(d, full: tuple[int, ...], axes: tuple[int, ...], out: np.ndarray) -> None:
    """``out[...] = d`` summed over ``axes`` (``d`` broadcast to ``full`` first when smaller): one
    reduction written straight into ``out``."""
    if getattr(d, "shape", ()) != full:
        d = np.broadcast_to(d, full)
    np.add.reduce(d, axes, None, out)


class ScatterAdd:
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


class StackedMath(NumpyMath):
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


def stacked_math(g: Group, V: np.ndarray, args: tuple, num_params: int) -> NumpyMath:
    """A :class:`StackedMath` when at least 3 leading slots of ``g`` stack into one view of ``V``
    (not of the parameters; with one sample per column, the batch axis could vanish and NumPy
    would add the rows pairwise instead: not then), else the tape's plain math."""
    views, batch = g.views, V.shape[1]
    k = 0

    def stacks(j: int) -> bool:
        return views[j] is not None and views[j] == (base + j * step, strides) and int(g.slots[j].min()) >= num_params

    if batch > 1 and g.elementwise and views[0] is not None and len(views) >= 3:
        base, strides = views[0]
        step = views[1][0] - base if views[1] is not None else 0
        k = 0
        while step and k < len(views) and stacks(k):
            k += 1
    if k < 3:
        return TAPE_MATH
    return StackedMath(args[:k], strided(V, base, (step,) + strides, (k,) + g.shape))


def gather(m, V, rows):
    return V.take(rows, axis=0)


def stage(m, x):
    """A staged slot's rows, copied into their buffer (above its row of ones)."""
    return x


class Plan:
    """A laid-out tape bound to buffers for one batch size, with every view made once: the
    per-call work is the rules' NumPy calls, one store per group and one add per gradient slot.

    ``V`` and ``G`` are the value and gradient buffers, ``(rows, batch)``; ``params`` and
    ``param_grads`` the parameters' values and their gradients summed over the batch, two vectors
    (pass your own, e.g. an optimizer's arrays, to share them between plans and steps without
    copying): slots that read parameters read views of ``params`` (every sample the same number)
    and their gradients go straight into ``param_grads``. Only slots that mix parameters with
    other rows or are gathered read the parameters' rows of ``V`` (``params_in_V``: the step copies
    them in) and add into those of ``G`` (``params_in_G``: the step sums them into
    ``param_grads``). ``forward`` and ``backward`` are the steps (the backward ones for the groups
    a gradient flows through, last group first). :func:`~.codegen.compile_plan` writes them as
    straight-line Python: ``run_forward()``, ``run_backward()`` and ``run_step()`` (both passes:
    what a training step calls), ``source`` being the code. ``zeros`` makes the buffers (the tests
    pass one making arrays that count NumPy calls); ``passes`` are the tape's passes
    (:mod:`.passes`), the code passes among them apply."""

    def __init__(self, layout: Layout, batch: int, zeros: Callable[[tuple[int, ...]], np.ndarray] = np.zeros,
                 passes: Sequence[str] = (), params: np.ndarray | None = None,
                 param_grads: np.ndarray | None = None):
        from .codegen import compile_plan

        self.layout = layout
        self.V = V = zeros((layout.num_rows, batch))
        self.G = G = zeros((layout.num_rows, batch))
        V[layout.const_rows] = layout.const_data[:, None]
        P = len(layout.params)
        for name, vec in (("params", params), ("param_grads", param_grads)):
            if vec is not None and (vec.shape != (P,) or vec.dtype != np.float64):
                raise ValueError(f"{name} must be a float64 vector of the {P} parameters, got {vec.dtype} {vec.shape}")
        self.params = params if params is not None else zeros((P,))
        self.param_grads = param_grads if param_grads is not None else zeros((P,))
        self.V_params, self.G_params = V[:P], G[:P]
        self.ones = np.ones(batch)  # G_params @ ones: the sums over the batch, one BLAS call
        self.inputs_view = V[layout.input_lo : layout.input_lo + layout.num_inputs]
        first = int(layout.output_rows[0])
        self.first_output, self.first_output_grad = V[first], G[first]
        self.forward: list[ForwardStep] = []
        self.backward: list[BackwardStep] = []
        # an output that is a parameter: its value in V, its seed in G
        self.params_in_V = self.params_in_G = bool((layout.output_rows < P).any())
        for g in layout.groups:
            args = []
            for k, (rows, view) in enumerate(zip(g.slots, g.views)):
                if g.reads_params(k, P):
                    args.append(g.param_view(k, self.params, batch))
                    continue
                self.params_in_V |= int(rows.min()) < P
                if k in g.staged:  # copied into a buffer of one more row, of ones
                    staged = zeros((len(rows) + 1, batch))
                    staged[-1] = 1.0
                    self.forward.append(ForwardStep(stage, TAPE_MATH, staged[:-1], (g.arg_view(k, V),), None, (g, k)))
                    args.append(staged)
                elif view is not None:
                    args.append(g.arg_view(k, V))
                else:
                    gathered = np.empty(g.shape + (batch,))
                    self.forward.append(ForwardStep(gather, TAPE_MATH, gathered, (V, rows.reshape(g.shape)), None))
                    args.append(gathered)
            out = V[g.lo : g.hi].reshape(g.shape + (batch,))
            args = tuple(args)
            self.forward.append(ForwardStep(g.op.forward, stacked_math(g, V, args, P), out, args, g))
            if any(g.grad_slots):
                plain, other, param_adds = backward_adds(g, G, self.param_grads)
                self.params_in_G |= any(int(g.slots[k].min()) < P for k, _ in plain)
                self.params_in_G |= any(int(g.slots[k].min()) < P for add in other for k in add.slots)
                self.backward.append(BackwardStep(g.op.vjp, G[g.lo : g.hi].reshape(out.shape), out, args,
                                                  tuple(plain), tuple(other), tuple(param_adds), g))
        self.backward.reverse()
        # Whether every parameter's gradient is written by exactly one add (then run_step assigns
        # them: no zeroing of param_grads per step).
        written = np.concatenate([add.rows for step in self.backward for add in step.params] or [np.zeros(0, int)])
        self.params_written_once = not self.params_in_G and np.array_equal(np.sort(written), np.arange(P))
        compiled = compile_plan(self, skip_unused="skip_unused_gradients" in passes,
                                reuse="reuse_forward_values" in passes)
        self.source, self.run_forward, self.run_backward = compiled.source, compiled.run_forward, compiled.run_backward
        self.run_step, self.run_step_zeroes = compiled.run_step, compiled.run_step_zeroes
        self.seeded: float | None = None  # the seed G holds for run_step, when it needs no zeroing

    @property
    def batch(self) -> int:
        return self.V.shape[1]
