"""The ``matmul`` pass: a layer's products ``w[j][k] * x[k]`` (a ``mul`` group) and the sums that add
them up with a bias (a ``sum`` group) become one :class:`Linear` group, ``out = W.T @ X + b``: one
matrix product forward instead of a multiplication and K additions, and backward ``X @ g.T`` for
the weights (already summed over the batch) and ``W @ g`` for the inputs, instead of two products
and K + 1 adds.

The weights must be parameters (every sample reads the same number, so one column of their rows
is the matrix), and nothing else may read the products. The matrix product adds the K terms in
its own order (BLAS, with fused multiply-adds where the CPU has them), so the result agrees with
the scalar engine to rounding, not to the bit.

The ``fold_bias`` pass then folds a layer's bias into its matrix product, when the bias's
parameters follow the weights' as one more row of the same matrix (as an MLP's do):
:class:`BiasLinear`, ``out = [W; b].T @ [X; 1]``, the inputs copied into a buffer whose last row
is ones. Backward, ``[X; 1] @ g.T`` is the gradient of the weights and of the bias at once, summed
over the batch by the product itself: the bias needs no reduction of its own.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ops import Primitive
from .layout import Group, Layout, _affine, contiguous, strided_vector

__all__ = ["LINEAR", "Linear", "fuse_linear", "LINEAR_BIAS", "BiasLinear", "fold_bias"]


def _linear_forward(m, W, X, *rest):
    total = m.matmul_tn(W, X)
    for r in rest:
        total = total + r
    return total


def _linear_vjp(m, g, out, W, X, *rest):
    return (m.matmul_nt(X, g), m.matmul(W, g), *((g,) * len(rest)))


#: The rule of a :class:`Linear` group, on whole arrays: ``W`` (K, J) and ``X`` (K, batch), then
#: the other terms of the sum (a bias), each (J, batch). It is no primitive of the scalar engine.
LINEAR = Primitive("linear", -1, _linear_forward, _linear_vjp,
                   doc="W.T @ X + b for a layer, made by the batched engine's matmul pass")


class Linear(Group):
    """A layer as one group: output rows ``lo:hi`` (the sums'), shape ``(J,)``; slot 0 the weights
    (rows ``w[j][k]`` laid out as ``(K, J)``), slot 1 the inputs ``x[k]`` (``(K,)``), then the
    sum's other slots."""

    def __init__(self, total: Group, products: Group, weights: int, K: int):
        J = total.size
        w_rows = products.slots[weights]
        x_rows = products.slots[1 - weights].reshape(K, J)[:, 0].copy()
        self.op, self.lo, self.hi, self.shape = LINEAR, total.lo, total.hi, total.shape
        self.slots = [w_rows, x_rows, *total.slots[K:]]
        self.views = [_affine(w_rows, (K, J)), _affine(x_rows, (K,)), *total.views[K:]]
        self.grad_slots = [True, products.grad_slots[1 - weights], *total.grad_slots[K:]]
        self.slot_shapes = [(K, J), (K,)] + [total.shape] * (len(total.slots) - K)

    elementwise = False

    def slot_shape(self, k: int) -> tuple[int, ...]:
        return self.slot_shapes[k]

    def param_view(self, k: int, vec: np.ndarray, batch: int) -> np.ndarray:
        if k == 0:  # the weights: a matrix (the rule sums their gradient over the batch itself)
            return strided_vector(vec, *self.views[0], self.slot_shapes[0])
        return super().param_view(k, vec, batch)


def _layer(total: Group, groups: list[Group], P: int, read: dict[int, int]) -> tuple[int, int, int] | None:
    """``(index of the products' group, weight slot, K)`` when ``total`` sums a layer's products."""
    if total.op.name != "sum" or not isinstance(total.shape, tuple) or len(total.shape) != 1:
        return None
    J = total.size
    first = total.views[0]
    if first is None:
        return None
    p = next((i for i, g in enumerate(groups) if g.lo <= first[0] < g.hi), None)
    if p is None or groups[p].op.name != "mul" or type(groups[p]) is not Group:
        return None
    products = groups[p]
    K = products.size // J
    if K < 1 or products.size != K * J or len(total.slots) < K:
        return None
    for k in range(K):  # the first K slots are the products' rows, block by block
        if total.views[k] != (products.lo + k * J, contiguous(total.shape)):
            return None
    if read.get(p, 0) != K:  # nothing else reads the products
        return None
    for weights in (0, 1):
        w_rows = products.slots[weights].reshape(K, J)
        x_rows = products.slots[1 - weights].reshape(K, J)
        if (w_rows < P).all() and len(np.unique(w_rows)) == w_rows.size and (x_rows == x_rows[:, :1]).all() \
                and _affine(w_rows.reshape(-1), (K, J)) is not None and _affine(x_rows[:, 0].copy(), (K,)) is not None:
            return p, weights, K
    return None


def fuse_linear(layout: Layout) -> Layout:
    """The layout with every layer's ``mul`` and ``sum`` groups fused into a :class:`Linear` group."""
    groups = list(layout.groups)
    P = len(layout.params)
    owner = {}
    for i, g in enumerate(groups):
        for r in range(g.lo, g.hi):
            owner[r] = i
    read: dict[int, int] = {}  # how many slots read some rows of each group
    for g in groups:
        for rows in g.slots:
            for i in {owner[int(r)] for r in rows if int(r) in owner}:
                read[i] = read.get(i, 0) + 1
    for r in layout.output_rows.tolist():
        if r in owner:
            read[owner[r]] = read.get(owner[r], 0) + 1000
    fused, dropped = {}, set()
    for s, total in enumerate(groups):
        found = _layer(total, groups, P, read)
        if found is not None:
            p, weights, K = found
            fused[s] = Linear(total, groups[p], weights, K)
            dropped.add(p)
    if not fused:
        return layout
    new = [fused.get(i, g) for i, g in enumerate(groups) if i not in dropped]
    return replace(layout, groups=new)


def _bias_linear_forward(m, Wb, A, W):
    return m.matmul_tn(Wb, A)


def _bias_linear_vjp(m, g, out, Wb, A, W):
    return m.matmul_nt(A, g), m.matmul(W, g), None


#: The rule of a :class:`BiasLinear` group: ``Wb`` the weights and the bias, (K + 1, J); ``A`` the
#: inputs with a row of ones below, (K + 1, batch); ``W`` the weights alone (the first K rows of
#: ``Wb``), for the inputs' gradient. Its gradients: ``Wb``'s, the inputs' (for the rows of ``A``
#: that are inputs), and none for ``W`` (part of ``Wb``'s).
LINEAR_BIAS = Primitive("linear", -1, _bias_linear_forward, _bias_linear_vjp,
                        doc="[W; b].T @ [X; 1] for a layer, made by the batched engine's fold_bias pass")


class BiasLinear(Linear):
    """A layer whose bias is folded into its matrix product: slot 0 the weights and the bias, rows
    laid out as ``(K + 1, J)``; slot 1 the inputs ``(K,)``, which the plan copies into a buffer
    with a row of ones below (:attr:`staged`); slot 2 the weights alone, ``(K, J)``, no gradient."""

    #: The slots the plan copies into a buffer of one more row, of ones, before the rule reads it.
    staged = frozenset({1})

    def __init__(self, layer: Linear):
        (K, J), (base, strides) = layer.slot_shapes[0], layer.views[0]
        self.op, self.lo, self.hi, self.shape = LINEAR_BIAS, layer.lo, layer.hi, layer.shape
        self.slots = [np.concatenate([layer.slots[0], layer.slots[2]]), layer.slots[1], layer.slots[0]]
        self.views = [(base, strides), layer.views[1], layer.views[0]]
        self.grad_slots = [True, layer.grad_slots[1], False]
        self.slot_shapes = [(K + 1, J), (K,), (K, J)]

    def param_view(self, k: int, vec: np.ndarray, batch: int) -> np.ndarray:
        if k == 2:  # the weights alone: a matrix, as slot 0
            return strided_vector(vec, *self.views[2], self.slot_shapes[2])
        return super().param_view(k, vec, batch)


def _foldable(g: Group, P: int) -> bool:
    """Whether ``g`` is a layer whose one bias slot reads parameters laid out as one more row of
    its weights' matrix."""
    if type(g) is not Linear or len(g.slots) != 3 or g.views[2] is None or int(g.slots[2].max()) >= P:
        return False
    (K, J), (base, strides) = g.slot_shapes[0], g.views[0]
    rows = np.concatenate([g.slots[0], g.slots[2]])
    return _affine(rows, (K + 1, J)) == (base, strides) and len(np.unique(rows)) == rows.size


def fold_bias(layout: Layout) -> Layout:
    """The layout with every :class:`Linear` group whose bias can be folded made a :class:`BiasLinear`."""
    P = len(layout.params)
    groups = [BiasLinear(g) if _foldable(g, P) else g for g in layout.groups]
    return replace(layout, groups=groups) if any(a is not b for a, b in zip(groups, layout.groups)) else layout
