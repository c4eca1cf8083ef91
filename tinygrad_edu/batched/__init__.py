"""The batched engine: trace a scalar computation once into a tape, then replay that tape forward
and backward on NumPy arrays, one element per sample, with the rules of :mod:`tinygrad_edu.ops`.

Tracing calls your per-sample function once on placeholder ``Value`` inputs and keeps the graph it
builds: its primitives, in topological order. The nodes that apply the same primitive at the same
depth, read first by the same primitive (a layer's multiplications, say), form a group: contiguous rows of a value and a gradient
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

The package's modules are the stages, in order: :mod:`.tracing` (trace, classify and group the
graph), :mod:`.layout` (rows and strided views), :mod:`.plan` (the step as a list of named steps
on buffers for one batch size, and a reference interpreter of it), :mod:`.codegen` (the plan as
straight-line Python), :mod:`.tape` (running, and replaying errors), :mod:`.trainer` (``train.fit``'s
loop) and :mod:`.numpy_math` (the rules' math on arrays). ``print(tape)`` lists a tape's groups.
"""

from .numpy_math import NUMPY_MATH, NumpyMath
from .plan import Plan
from .tape import Tape
from .tracing import trace
from .trainer import Trainer, batched_losses, batched_outputs, batched_step, outputs_tape

__all__ = ["NUMPY_MATH", "NumpyMath", "Plan", "Tape", "Trainer", "trace", "batched_step", "batched_outputs",
           "batched_losses", "outputs_tape"]
