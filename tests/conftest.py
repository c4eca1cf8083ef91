"""Shared test setup: Hypothesis profiles and the `dot` requirement.

Profiles: ``default`` is bounded for a quick run (and CI); ``thorough`` (HYPOTHESIS_PROFILE=thorough)
draws many more examples. Neither has a deadline: the machines are shared and timing is noisy.
"""

import os
import shutil

import matplotlib
import pytest
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

settings.register_profile("default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def require_dot():
    """Skip when Graphviz's `dot` is missing, unless TINYGRAD_EDU_REQUIRE_DOT=1 (CI), then fail."""
    if shutil.which("dot") is None:
        if os.environ.get("TINYGRAD_EDU_REQUIRE_DOT") == "1":
            pytest.fail("Graphviz's `dot` is not on PATH but TINYGRAD_EDU_REQUIRE_DOT=1")
        pytest.skip("Graphviz's `dot` is not installed (apt-get install graphviz)")
