"""Optimisation passes: small, named rewrites a tape makes before it is scheduled and compiled.
Each keeps the numbers within the batched engine's documented tolerance of the graph as traced
(``trace(..., passes=())`` turns them off, to compare), and each has its own test.

Graph passes rewrite the traced graph (new nodes; the Values ``fn`` built are left as they are):

- ``fuse_logit_bce``: ``softplus(z) - z * t`` (``nn.binary_cross_entropy_with_logits``) becomes one
  node of the ``binary_cross_entropy_with_logits`` primitive, whose rule computes the derivative
  as ``sigmoid(z) - t`` directly: 3 groups become 1, and backward skips softplus's derivative.

Layout passes rewrite the groups:

- ``matmul``: a layer's products and sums become one matrix product (:mod:`.dense`).
- ``fold_bias``: a layer's bias is folded into its matrix product, ``[W; b].T @ [X; 1]``, so that
  backward one product gives the gradients of the weights and of the bias, summed over the batch
  (:mod:`.dense`; after ``matmul``).

Code passes change how :mod:`.codegen` writes the step:

- ``skip_unused_gradients``: a rule's gradients that nothing reads are not computed (``mul``'s
  gradient for an input, say): the rule is evaluated symbolically once, and only the lines the
  gradients in use depend on are generated.
- ``reuse_forward_values``: the training step's forward rules are written out line by line too,
  and the backward pass reuses what the forward pass computed instead of computing it again (an
  expression of the same operation on the same arguments): the derivative of the fused loss,
  ``sigmoid(z) - t``, takes ``softplus(z)`` from the loss itself (NumpyMath's sigmoid is
  ``-expm1(-softplus(z))``), one ``logaddexp`` fewer per step. A result made by one call that can
  write into an array is written where it goes (``out=``): ``relu`` into the next layer's buffer,
  and, where results are stored (large batches, evaluation), into their rows of ``V``.

With ``skip_unused_gradients`` or ``reuse_forward_values``, the lowered rules use NumpyMath's
one-expression functions as their NumPy expressions (``numpy_math.INLINE``): the same calls.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .. import ops
from ..engine import Value, topological_order

__all__ = ["PASSES", "GRAPH_PASSES", "run_passes", "fuse_logit_bce"]


def _consumers(outputs: Sequence[Value]) -> dict[int, int]:
    """How many input slots read each node (an output counts as read once more)."""
    count: dict[int, int] = {}
    for node in topological_order(*outputs):
        for p in node.parents:
            count[id(p)] = count.get(id(p), 0) + 1
    for o in outputs:
        count[id(o)] = count.get(id(o), 0) + 1
    return count


def _rebuild(outputs: Sequence[Value], replace: Callable[[Value, dict[int, Value]], Value | None]) -> list[Value]:
    """The graph of ``outputs`` with ``replace(node, new)`` applied to every operation, in
    topological order, ``new`` mapping the id of every node before it to its new version (None:
    keep the node, copied if its parents changed)."""
    new: dict[int, Value] = {}
    for node in topological_order(*outputs):
        if node.is_leaf:
            new[id(node)] = node
            continue
        parents = tuple(new[id(p)] for p in node.parents)
        made = replace(node, new)
        if made is None:
            changed = any(a is not b for a, b in zip(parents, node.parents))
            made = Value(node.data, node.label, node.op, parents) if changed else node
        new[id(node)] = made
    return [new[id(o)] for o in outputs]


def fuse_logit_bce(outputs: Sequence[Value]) -> list[Value]:
    """``sub(softplus(z), mul(z, t))`` (or ``mul(t, z)``), whose softplus and product nothing else
    reads, becomes ``binary_cross_entropy_with_logits(z, t)``."""
    reads = _consumers(outputs)

    def replace(node: Value, new: dict[int, Value]) -> Value | None:
        if node.op is not ops.SUB:
            return None
        sp, prod = node.parents
        if sp.op is not ops.SOFTPLUS or prod.op is not ops.MUL or reads[id(sp)] != 1 or reads[id(prod)] != 1:
            return None
        z = sp.parents[0]
        a, b = prod.parents
        if a is z and b is not z:
            t = b
        elif b is z and a is not z:
            t = a
        else:
            return None
        return Value(node.data, node.label, ops.BCE_WITH_LOGITS, (new[id(z)], new[id(t)]))

    return _rebuild(outputs, replace)


#: Graph passes, in the order they run.
GRAPH_PASSES: dict[str, Callable[[Sequence[Value]], list[Value]]] = {"fuse_logit_bce": fuse_logit_bce}
#: Every pass, graph passes first (the default of ``trace``).
PASSES: tuple[str, ...] = (*GRAPH_PASSES, "matmul", "fold_bias", "skip_unused_gradients", "reuse_forward_values")


def run_passes(outputs: Sequence[Value], names: Sequence[str] | None) -> tuple[list[Value], tuple[str, ...]]:
    """Run the graph passes among ``names`` (None: all of :data:`PASSES`); returns the new outputs and
    the names of the passes that apply (code passes included)."""
    names = PASSES if names is None else tuple(names)
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise ValueError(f"unknown pass {unknown[0]!r}; choose from {', '.join(PASSES)}")
    outputs = list(outputs)
    for name, run in GRAPH_PASSES.items():
        if name in names:
            outputs = run(outputs)
    return outputs, tuple(n for n in PASSES if n in names)
