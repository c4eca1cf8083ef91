"""A floor for the scalar engine's per-node benchmark: the engine's design, written by hand for the
five operations of bench_engine's graph and nothing else.

Slotted nodes without closures or reference cycles, and tinygrad_edu.engine's own backward walk
(it marks the nodes it has met by a zero of its own); but each operation's forward and backward
written out by hand, and none of what makes a library: no primitive table, no math-error
messages, no ``no_grad``, numbers converted with ``float()`` unchecked. What a table-driven engine
of this design can at best approach in CPython; bench_engine.py reports it beside ours.
"""

from __future__ import annotations

from tinygrad_edu.engine import _backward_order

_new = object.__new__


class FloorValue:
    __slots__ = ("data", "grad", "label", "_step", "_prev")

    def __init__(self, data):
        self.data, self.grad, self.label, self._step, self._prev = float(data), 0.0, "", None, ()

    # Each operation written out in full: a helper to make the node would cost a call per node.
    def __add__(self, other):
        if type(other) is not FloorValue:
            other = FloorValue(other)
        out = _new(FloorValue)
        out.data, out.grad, out.label, out._step, out._prev = self.data + other.data, 0.0, "", _add_backward, (self, other)
        return out

    def __sub__(self, other):
        if type(other) is not FloorValue:
            other = FloorValue(other)
        out = _new(FloorValue)
        out.data, out.grad, out.label, out._step, out._prev = self.data - other.data, 0.0, "", _sub_backward, (self, other)
        return out

    def __mul__(self, other):
        if type(other) is not FloorValue:
            other = FloorValue(other)
        out = _new(FloorValue)
        out.data, out.grad, out.label, out._step, out._prev = self.data * other.data, 0.0, "", _mul_backward, (self, other)
        return out

    __radd__, __rmul__ = __add__, __mul__

    def __pow__(self, c):
        if c != 2:
            raise NotImplementedError("the floor engine squares only")
        out = _new(FloorValue)
        out.data, out.grad, out.label, out._step, out._prev = self.data ** c, 0.0, "", _square_backward, (self,)
        return out

    def relu(self):
        x = self.data
        out = _new(FloorValue)
        out.data, out.grad, out.label, out._step, out._prev = 0.0 if x <= 0.0 else x, 0.0, "", _relu_backward, (self,)
        return out

    def backward(self):
        order = _backward_order(self)  # the engine's own walk: the floor differs only in its operations
        self.grad = 1.0
        for node in reversed(order):
            node._step(node)


def _add_backward(n):
    a, b = n._prev
    g = n.grad
    a.grad += g
    b.grad += g


def _sub_backward(n):
    a, b = n._prev
    g = n.grad
    a.grad += g
    b.grad -= g


def _mul_backward(n):
    a, b = n._prev
    g = n.grad
    a.grad += g * b.data
    b.grad += g * a.data


def _square_backward(n):
    (a,) = n._prev
    a.grad += n.grad * 2.0 * a.data


def _relu_backward(n):
    (a,) = n._prev
    x = a.data
    a.grad += n.grad * (1.0 if x > 0.0 else (0.0 if x <= 0.0 else float("nan")))
