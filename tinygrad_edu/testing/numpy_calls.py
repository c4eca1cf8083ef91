"""Counting NumPy calls: the batched engine's step time follows how many NumPy operations it makes
(an elementwise call on 32 elements costs about 0.2 µs), and that count, unlike a time, is the same
on every machine. :func:`count_step_calls` counts one training step of a tape; the tests hold the
circle tape's count and ``benchmarks/bench_passes.py`` reports it per optimisation pass.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Counted", "count_step_calls"]


class Counted(np.ndarray):
    """An array that logs every NumPy operation made on it: ufunc calls (operators, in-place
    operators and reductions included), array functions (``np.where``, ``np.dot``), stores into
    it and the methods ``fill`` and ``astype``. Results are Counted too, so a chain is followed."""

    log: list[str] = []

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        Counted.log.append(ufunc.__name__ + ("" if method == "__call__" else "." + method))
        inputs = tuple(x.view(np.ndarray) if isinstance(x, Counted) else x for x in inputs)
        if out is not None:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, Counted) else o for o in out)
        result = getattr(ufunc, method)(*inputs, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result.view(Counted) if isinstance(result, np.ndarray) else result

    def __array_function__(self, func, types, args, kwargs):
        Counted.log.append(func.__name__)
        log, Counted.log = Counted.log, []  # what the function does inside is its own business
        try:
            result = super().__array_function__(func, types, args, kwargs)
        finally:
            Counted.log = log
        return result.view(Counted) if isinstance(result, np.ndarray) else result

    def __setitem__(self, key, value):
        Counted.log.append("store")
        super().__setitem__(key, value)

    def fill(self, value):
        Counted.log.append("fill")
        super().fill(value)

    def astype(self, *args, **kwargs):
        Counted.log.append("astype")
        return super().astype(*args, **kwargs)


def count_step_calls(tape, X: np.ndarray) -> list[str]:
    """The NumPy calls of one training step of ``tape`` (a one-output tape: a per-sample loss) on
    the rows of ``X`` (``(batch, num_inputs)``): forward and backward of the mean loss, the
    parameters read from the plan's parameter vector and their gradients written into its
    gradient vector, as ``batched.Trainer`` does, on buffers that count (:class:`Counted`). The operations in the order made, after a
    first, uncounted step."""
    from ..batched import Plan

    X = np.asarray(X, dtype=np.float64)
    plan = Plan(tape.layout, len(X), zeros=lambda shape: np.zeros(shape).view(Counted), passes=tape.passes)
    plan.inputs_view.view(np.ndarray)[...] = X.T
    plan.params.view(np.ndarray)[...] = [p.data for p in tape.used_params]
    # as batched.Trainer: the parameters stay in plan.params, their gradients in plan.param_grads
    tape.mean_step(plan, plan.params, plan.param_grads)
    Counted.log = []
    tape.mean_step(plan, plan.params, plan.param_grads)
    calls, Counted.log = Counted.log, []
    return calls
