"""tinygrad_edu: a small, exact and fast scalar autograd engine, built to be read, seen and tested.

``Value`` records the computation graph; ``backward()`` and ``grad()`` differentiate it.
"""

from .engine import Value, enable_grad, grad, is_grad_enabled, no_grad, sum
from .ops import PRIMITIVES, Primitive

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

__all__ = ["Value", "grad", "no_grad", "enable_grad", "is_grad_enabled", "sum", "Primitive", "PRIMITIVES", "primitive"]
