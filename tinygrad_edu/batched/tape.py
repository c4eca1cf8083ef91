"""The tape: a traced per-sample computation (scheduled, laid out and optimised once), replayed on
batches through one compiled :class:`~.plan.Plan` per batch size; floating-point errors are
replayed group by group to raise the scalar engine's error naming the op and the sample.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Sequence

import numpy as np

from ..engine import Value, _math_error, topological_order
from ..ops import FLOAT_MATH, Primitive
from .codegen import describe_rows, describe_slot, group_names
from .dense import fold_bias, fuse_linear
from .layout import Group, lay_out
from .numpy_math import ARITHMETIC_ERRORS, RAISE, TAPE_MATH
from .passes import run_passes
from .plan import BackwardStep, ForwardStep, Plan, interpret_backward, interpret_forward
from .tracing import schedule

__all__ = ["Tape"]

_RAISE = RAISE
_raising = np.errstate(**_RAISE)  # as a decorator: half the cost of a `with np.errstate(...)` per call


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


class Tape:
    """A traced per-sample computation, replayed on batches. Make one with :func:`trace`.

    ``params`` are the parameter leaves (read live, gradients accumulated), ``num_inputs`` the
    number of per-sample inputs, ``num_outputs`` the number of per-sample outputs, ``num_nodes``
    the number of scalar nodes per sample as traced and ``num_groups`` the number of stacked NumPy
    operations one forward pass makes after the optimisation :attr:`passes` (:mod:`.passes`).
    ``print(tape)`` lists the groups (:meth:`show`).
    """

    def __init__(self, outputs: Sequence[Value], placeholders: Sequence[Value], params: Sequence[Value],
                 passes: Sequence[str] | None = None):
        self.params = tuple(params)
        self.num_inputs = len(placeholders)
        self.num_outputs = len(outputs)
        self.num_nodes = len(topological_order(*outputs))
        outputs, self.passes = run_passes(outputs, passes)
        self.layout = lay_out(schedule(outputs, placeholders, self.params))
        if "matmul" in self.passes:
            self.layout = fuse_linear(self.layout)
            if "fold_bias" in self.passes:
                self.layout = fold_bias(self.layout)
        self.used_params: tuple[Value, ...] = self.layout.params  # the parameters the outputs use, in row order
        self._plans: dict[int, Plan] = {}
        self._get_data = attrgetter("data")

    @property
    def num_groups(self) -> int:
        return len(self.layout.groups)

    @property
    def primitives(self) -> frozenset[Primitive]:
        """The primitives the tape applies (constants folded at trace time not counted)."""
        return frozenset(g.op for g in self.layout.groups)

    def __repr__(self) -> str:
        return (
            f"Tape(num_inputs={self.num_inputs}, num_outputs={self.num_outputs}, params={len(self.params)}, "
            f"num_nodes={self.num_nodes}, num_groups={self.num_groups})"
        )

    def show(self) -> str:
        """The tape as a listing, one line per group, like a jaxpr: its name (primitive and index),
        its member shape, the primitive and what each input slot reads (``p[0:16]``: parameter rows
        0 to 16; ``x[1]``: input 1; ``c[0]``: a constant; ``relu2``: group 2's whole output;
        ``mul0[8:16]``: part of it; ``[...]`` marks a slot read by every member, broadcast)."""
        layout = self.layout
        names = group_names(layout)
        P, I = len(layout.params), layout.num_inputs
        C = len(layout.const_rows)
        lines = [f"tape: {_count(I, 'input')} x[0:{I}], {_count(P, 'parameter')} p[0:{P}], {_count(C, 'constant')} c; "
                 f"{_count(self.num_nodes, 'node')} per sample in {_count(self.num_groups, 'group')}",
                 f"  passes: {', '.join(self.passes) or 'none'}"]
        width = max((len(n) + len(str(g.shape)) for n, g in zip(names, layout.groups)), default=0) + 3
        for name, g in zip(names, layout.groups):
            reads = [describe_slot(layout, g, k, names) for k in range(len(g.slots))]
            lhs = f"{name}:{g.shape}"
            lines.append(f"  {lhs:<{width}} = {g.op.name} {' '.join(reads)}")
        outs = ", ".join(describe_rows(layout, np.array([r]), names) for r in layout.output_rows)
        lines.append(f"  out {outs}")
        return "\n".join(lines)

    __str__ = show

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

    def plan(self, batch: int) -> Plan:
        """The compiled plan for ``batch`` samples (made on first use; a few batch sizes are kept).
        Put a batch's inputs into ``plan.inputs_view`` (one row per input) and call :meth:`step`."""
        plan = self._plans.get(batch)
        if plan is None:
            if len(self._plans) >= 8:  # keep a few batch sizes (training, last batch, evaluation)
                self._plans.pop(next(iter(self._plans)))
            plan = self._plans[batch] = Plan(self.layout, batch, passes=self.passes)
        return plan

    def _inputs_plan(self, inputs) -> Plan:
        X = self._check_inputs(inputs)
        plan = self.plan(X.shape[0])
        plan.inputs_view[...] = X.T
        return plan

    def load_params(self, plan: Plan, params: np.ndarray | None = None) -> None:
        """The parameters into ``plan.params``, from their Values or from ``params`` (in
        :attr:`used_params` order; nothing to copy when it is ``plan.params`` itself)."""
        if params is not None:
            if params is not plan.params:
                plan.params[...] = params
        elif self.used_params:
            plan.params[...] = np.fromiter(map(self._get_data, self.used_params), np.float64, len(self.used_params))

    def run_forward(self, plan: Plan) -> None:
        """Fill the value buffer, the inputs being in place (call inside ``np.errstate(**_RAISE)``)."""
        self.load_params(plan)
        try:
            plan.run_forward()
        except ARITHMETIC_ERRORS:  # FloatingPointError is an ArithmeticError
            self.replay_forward(plan)

    def replay_forward(self, plan: Plan) -> None:
        """The forward pass group by group, raising the scalar engine's error where a group fails."""
        interpret_forward(plan, on_error=lambda step: self._replay_error(step, "forward"))

    def _replay_error(self, step: ForwardStep | BackwardStep, where: str):
        """A group hit a NumPy floating-point error: find the first sample and node where the scalar
        engine raises and raise its error; if none does (inf - inf, say), the scalar engine
        gives inf or nan there too, so finish the group without raising."""
        g: Group = step.group
        out, args = step.out, step.args
        batch = out.shape[-1]
        # (a fused layer is products and sums, where the scalar engine never raises: no search)
        cols = [np.broadcast_to(a, out.shape).reshape(-1, batch) for a in args] if g.elementwise else []
        outs = out.reshape(-1, batch)
        grads = step.grad.reshape(-1, batch) if where != "forward" else None
        for j in range(batch if g.elementwise else 0):
            for r in range(outs.shape[0]):
                xs = [float(a[r, j]) for a in cols]
                try:
                    if where == "forward":
                        g.op.forward(FLOAT_MATH, *xs)
                    else:
                        g.op.vjp(FLOAT_MATH, float(grads[r, j]), float(outs[r, j]), *xs)
                except ARITHMETIC_ERRORS as scalar_err:
                    prefix = f"in the batched {where} (sample {j}), " + ("the derivative of " if where != "forward" else "")
                    raise _math_error(g.op, xs, scalar_err, prefix) from None
        with np.errstate(all="ignore"):
            if where == "forward":
                out[...] = step.rule(step.math, *args)
                return None
            return step.vjp(TAPE_MATH, step.grad, out, *args)

    def _outputs(self, plan: Plan) -> np.ndarray:
        out = plan.V[self.layout.output_rows].T
        return out[:, 0].copy() if self.num_outputs == 1 else out.copy()

    def forward(self, inputs) -> np.ndarray:
        """Per-sample outputs for a ``(batch, num_inputs)`` array: shape ``(batch,)`` for one
        output, ``(batch, num_outputs)`` otherwise. Records no gradients."""
        return self.values(self._inputs_plan(inputs))

    __call__ = forward

    @_raising
    def values(self, plan: Plan) -> np.ndarray:
        """The outputs for the inputs in ``plan.inputs_view``; on a floating-point error, the forward
        pass is replayed group by group."""
        self.run_forward(plan)
        return self._outputs(plan)

    def backward(self, inputs, grad_outputs) -> np.ndarray:
        """Forward, then add ``sum over samples of grad_outputs[i] * d(outputs[i])/d(param)`` to each
        parameter's ``.grad`` (as ``backward`` on the scalar graph of the weighted sum would).
        ``grad_outputs`` has the outputs' shape. Returns the per-sample outputs."""
        plan = self._inputs_plan(inputs)
        batch = plan.batch
        go = np.asarray(grad_outputs, dtype=np.float64)
        if go.size != batch * self.num_outputs:
            expected = f"({batch},)" if self.num_outputs == 1 else f"({batch}, {self.num_outputs})"
            raise ValueError(f"grad_outputs must have the outputs' shape {expected}, one per sample and output; "
                             f"got shape {go.shape}")
        go = go.reshape(batch, self.num_outputs)
        with np.errstate(**_RAISE):
            self.run_forward(plan)
            self.run_backward(plan, go)
        return self._outputs(plan)

    def mean_backward(self, inputs) -> float:
        """For a one-output tape (a per-sample loss): the batch's mean loss, with its gradient added
        into the parameters' ``.grad``, as ``(sum(losses) / n).backward()`` would."""
        if self.num_outputs != 1:
            raise ValueError(f"mean_backward needs a tape with one output (a loss); this one has {self.num_outputs}")
        return self.mean_step(self._inputs_plan(inputs))

    def mean_step(self, plan: Plan, params: np.ndarray | None = None, grads: np.ndarray | None = None) -> float:
        """One training step of a one-output tape on the inputs in ``plan.inputs_view``: the batch's
        mean loss, its gradient added into the parameters' ``.grad``, or, with ``params`` and
        ``grads`` (vectors in :attr:`used_params` order), the parameters read from ``params`` and
        their gradients written into ``grads``. A training loop that keeps its parameters in
        ``plan.params`` and reads their gradients from ``plan.param_grads`` (pass those) copies
        nothing."""
        n = plan.batch
        totals, loss_sum = self._loss_step(plan, 1.0 / n, params, grads)
        if grads is None:
            for p, total in zip(self.used_params, totals.tolist()):
                p.grad += total
        return float(loss_sum) / n

    @_raising
    def _loss_step(self, plan: Plan, seed: float, params: np.ndarray | None = None,
                   out: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """Forward and backward of a one-output tape, the output's gradient ``seed`` per sample,
        the parameters read as in :meth:`load_params`: the parameters' gradients (in ``out``, or
        ``plan.param_grads``) and the output's sum over the batch. ``G`` is zeroed and seeded only
        when the step needs it (see ``codegen.Compiled``). On a floating-point error, both passes
        are replayed group by group."""
        self.load_params(plan, params)
        if plan.run_step_zeroes or plan.seeded != seed:
            self.seed(plan, None, seed)
        try:
            loss_sum = plan.run_step()
        except ARITHMETIC_ERRORS:
            self.replay_forward(plan)
            self.replay_backward(plan, None, seed)
            loss_sum = np.add.reduce(plan.first_output)
        totals = plan.param_grads
        if out is not None and out is not totals:
            out[...] = totals
            totals = out
        return totals, loss_sum

    def seed(self, plan: Plan, grad_outputs: np.ndarray | None, seed: float) -> None:
        """Zero the gradient buffer and put the outputs' gradients in: ``grad_outputs``
        (``(batch, num_outputs)``), or ``seed`` for every sample of the first output."""
        plan.G.fill(0.0)
        plan.param_grads.fill(0.0)
        if grad_outputs is None:
            plan.first_output_grad.fill(seed)
        else:
            np.add.at(plan.G, self.layout.output_rows, grad_outputs.T)
        plan.seeded = seed if grad_outputs is None else None

    def run_backward(self, plan: Plan, grad_outputs: np.ndarray | None, seed: float = 1.0) -> None:
        """Fill the gradient buffer from the outputs' seed and add the parameters' gradients into
        their ``.grad`` (call after :meth:`run_forward`, inside ``np.errstate(**_RAISE)``)."""
        self.seed(plan, grad_outputs, seed)
        try:
            plan.run_backward()
            totals = plan.param_grads
        except ARITHMETIC_ERRORS:
            totals = self.replay_backward(plan, grad_outputs, seed)
        for p, total in zip(self.used_params, totals.tolist()):
            p.grad += total

    def replay_backward(self, plan: Plan, grad_outputs: np.ndarray | None, seed: float) -> np.ndarray:
        """A rule (or a sum of contributions) hit a floating-point error: start again and go group
        by group, raising the scalar engine's error, or letting inf and nan through where the
        scalar engine does too (adding up contributions never raises there). Returns the
        parameters' gradients summed over the batch."""
        self.seed(plan, grad_outputs, seed)
        interpret_backward(plan, on_error=lambda step: self._replay_error(step, "backward"))
        return plan.param_grads
