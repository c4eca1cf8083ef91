"""Layout: where every node of a scheduled graph lives in the buffers, and how each group reads
its inputs.

Every node has a row in a ``(rows, batch)`` value buffer ``V`` and a gradient buffer ``G`` (one
column per sample): the parameters, the inputs, the constants, then each group's outputs,
contiguous. A group of M nodes is an array of some member shape ``(M,)`` or ``(M // d, d)``, and
each of its input slots is read as one strided view of ``V`` when the slot's rows are an affine
function of the member index (a stride of 0 broadcasts an input every member reads); only other
slots are gathered. So a step is, per group, one rule call and one store forward, and one rule
call and one add per input slot backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine import Value
from ..ops import Primitive
from .tracing import Schedule

__all__ = ["Group", "Layout", "lay_out", "strided", "strided_vector", "contiguous", "distinct"]


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


def distinct(base: int, strides: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether a view writes each row at most once, not counting broadcast axes (stride 0)."""
    shape = tuple(n if s != 0 else 1 for s, n in zip(strides, shape))
    rows = base + sum(s * i for s, i in zip(strides, np.indices(shape)))
    return len(np.unique(rows)) == np.size(rows)


def strided(buf: np.ndarray, base: int, strides: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """The rows ``base + index . strides`` of ``buf`` as an array of ``shape + (batch,)`` (a view)."""
    row, col = buf.strides
    return np.lib.stride_tricks.as_strided(
        buf[base:], shape + (buf.shape[1],), tuple(s * row for s in strides) + (col,), subok=True)


def strided_vector(vec: np.ndarray, base: int, strides: tuple[int, ...], shape: tuple[int, ...],
                   batch: int | None = None) -> np.ndarray:
    """The entries ``base + index . strides`` of the 1-D ``vec`` (the parameters) as an array of
    ``shape``, with a last axis of ``batch`` of stride 0 (every sample reads the same number)
    unless ``batch`` is None (a view)."""
    step = vec.strides[0]
    extra = ((batch,), (0,)) if batch is not None else ((), ())
    return np.lib.stride_tricks.as_strided(vec[base:], shape + extra[0], tuple(s * step for s in strides) + extra[1],
                                           subok=True)


class Group:
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

    #: Whether the rule applies elementwise, node by node (a fused group's does not).
    elementwise = True
    #: The slots the plan copies into a buffer with one more row, of ones, for the rule to read
    #: (a layer with its bias folded in, :class:`~.dense.BiasLinear`).
    staged: frozenset[int] = frozenset()

    @property
    def size(self) -> int:
        return self.hi - self.lo

    def slot_shape(self, k: int) -> tuple[int, ...]:
        """The shape slot ``k`` is read as (the member shape, except in fused groups)."""
        return self.shape

    def arg_view(self, k: int, buf: np.ndarray) -> np.ndarray:
        """Slot ``k`` as a view of ``buf`` (``V``, or ``G`` for its gradient)."""
        return strided(buf, *self.views[k], self.slot_shape(k))

    def reads_params(self, k: int, num_params: int) -> bool:
        """Whether slot ``k`` reads parameters only (rows below ``num_params``) through a view."""
        return self.views[k] is not None and int(self.slots[k].max()) < num_params

    def param_view(self, k: int, vec: np.ndarray, batch: int) -> np.ndarray:
        """Slot ``k``, which reads parameters only, as a view of the parameter vector ``vec``."""
        return strided_vector(vec, *self.views[k], self.slot_shape(k), batch)

    def reads_whole(self, k: int, other: Group) -> bool:
        """Whether slot ``k`` reads all of ``other``'s output, laid out as ``other`` itself is."""
        view, shape = self.views[k], self.slot_shape(k)
        return view is not None and other.shape == shape and view == (other.lo, contiguous(shape))


def contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The row strides of a block of rows laid out as ``shape`` (0 along axes of length 1, as in :func:`_affine`)."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step if n > 1 else 0)
        step *= n
    return tuple(reversed(strides))


@dataclass
class Layout:
    """The rows of a scheduled graph: ``params`` (the parameters the outputs use, rows
    ``0:len(params)``), the inputs from row ``input_lo``, the constants at ``const_rows`` (values
    ``const_data``), then ``groups``; ``output_rows`` are the outputs' rows, ``num_rows`` all rows."""

    params: tuple[Value, ...]
    input_lo: int
    num_inputs: int
    const_rows: np.ndarray
    const_data: np.ndarray
    groups: list[Group]
    output_rows: np.ndarray
    num_rows: int


def lay_out(s: Schedule) -> Layout:
    """Give every node of ``s`` a row and every group its member shape and views."""
    row: dict[int, int] = {id(p): i for i, p in enumerate(s.params)}
    P, I = len(s.params), len(s.inputs)
    for i, x in enumerate(s.inputs):
        row[id(x)] = P + i
    for i, c in enumerate(s.consts):
        row[id(c)] = P + I + i
    next_row = P + I + len(s.consts)
    groups: list[Group] = []
    for members in s.groups:
        lo = next_row
        for node in members:
            row[id(node)] = next_row
            next_row += 1
        arity = len(members[0].parents)
        slots = [np.array([row[id(m.parents[k])] for m in members], dtype=np.intp) for k in range(arity)]
        grad_slots = [any(s.needs_grad[id(m.parents[k])] for m in members) for k in range(arity)]
        groups.append(Group(members[0].op, lo, slots, grad_slots))
    return Layout(
        params=tuple(s.params), input_lo=P, num_inputs=I,
        const_rows=np.arange(P + I, P + I + len(s.consts)),
        const_data=np.array([c.data for c in s.consts], dtype=np.float64),
        groups=groups, output_rows=np.array([row[id(o)] for o in s.outputs], dtype=np.intp), num_rows=next_row,
    )
