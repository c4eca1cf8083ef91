"""tinygrad_edu: a small, exact and fast scalar autograd engine, built to be read, seen and tested.

``Value`` records the computation graph; ``backward()`` and ``grad()`` differentiate it.
"""

from .engine import Value, enable_grad, grad, is_grad_enabled, no_grad, sum
from .ops import PRIMITIVES, Primitive
from .custom import primitive  # noqa: E402  (custom primitives: tinygrad_edu.primitive)

__version__ = "0.1.0"

__all__ = ["Value", "grad", "no_grad", "enable_grad", "is_grad_enabled", "sum", "Primitive", "PRIMITIVES", "primitive"]
