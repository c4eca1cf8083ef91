"""Tools to property-test gradients: of the engine, of your own functions and of custom primitives.

``gradcheck`` / ``gradgradcheck`` / ``assert_gradients_match`` compare the engine's derivatives with
float64 numerical ones; ``tinygrad_edu.testing.strategies`` (needs Hypothesis:
``pip install 'tinygrad_edu[testing]'``) draws random expressions, Values and MLPs to check them on.
See docs/testing.md.
"""

from .gradcheck import (
    GradcheckError,
    assert_gradients_match,
    formula,
    gradcheck,
    gradgradcheck,
    numerical_gradient,
)

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck", "assert_gradients_match", "numerical_gradient", "formula"]
