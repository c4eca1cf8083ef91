"""tinygrad_edu: a small, exact and fast scalar autograd engine, built to be read, seen and tested.

``Value`` records the computation graph; ``backward()`` and ``grad()`` differentiate it in reverse
mode, ``jvp`` in forward mode; ``jacobian``, ``hessian`` and ``hvp`` build on both.
"""

from .engine import (
    Value, atan2, clamp, enable_grad, grad, hypot, is_grad_enabled, logaddexp, maximum, minimum, no_grad, sum, where,
)
from .ops import PRIMITIVES, Primitive
from .functional import hessian, hvp, jacobian, jvp, vjp

__version__ = "0.1.0"


def __getattr__(name: str):
    # tinygrad_edu.primitive (custom primitives) needs NumPy: load it on first use, so that
    # ``import tinygrad_edu`` (and the command line's start) stays quick.
    if name == "primitive":
        from .custom import primitive

        return primitive
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "primitive"])


__all__ = [
    "Value", "grad", "no_grad", "enable_grad", "is_grad_enabled", "sum", "Primitive", "PRIMITIVES", "primitive",
    "atan2", "hypot", "maximum", "minimum", "logaddexp", "clamp", "where",
    "jvp", "vjp", "jacobian", "hessian", "hvp",
]
