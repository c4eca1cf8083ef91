"""testing.numeric: stencils, the automatic step and its error estimate, one-sided derivatives at
kinks and domain edges, all against closed-form derivatives."""

import math

import pytest

from tinygrad_edu.testing import numeric
from tinygrad_edu.testing.numeric import NotDefinedError, check, derivative, one_sided


@pytest.mark.parametrize(
    "f, x, exact",
    [
        (math.exp, 1.0, math.e),
        (math.sin, 100.0, math.cos(100.0)),
        (lambda t: t**3, 1e6, 3e12),
        (math.tanh, -2.5, 1 - math.tanh(-2.5) ** 2),
        (math.log, 1e-7, 1e7),  # the domain edge 1e-7 away: steps shrink until the stencil fits
        (math.asin, 1 - 1e-5, 1 / math.sqrt(1 - (1 - 1e-5) ** 2)),
    ],
)
def test_the_automatic_step_is_accurate_and_its_error_estimate_covers_the_truth(f, x, exact):
    est = derivative(f, x)
    assert est.value == pytest.approx(exact, rel=1e-8)
    assert abs(est.value - exact) <= max(10 * est.error, 1e-12 * abs(exact))
    assert est.stencil == "central" and est.step > 0


def test_a_fixed_step_is_one_central_difference():
    est = derivative(math.sin, 0.3, step=1e-3)
    assert est.step == 1e-3 and est.stencil == "central"
    # The truncation error of a central difference is about f'''(x) h^2 / 6 = -cos(x) h^2 / 6.
    assert est.value - math.cos(0.3) == pytest.approx(-math.cos(0.3) * 1e-6 / 6, rel=1e-3)
    assert est.error == pytest.approx(math.cos(0.3) * 1e-6 / 6, rel=1e-2)


def _sqrt_only(t: float) -> float:
    return t**1.5 if t >= 0 else math.log(-1.0)  # defined for t >= 0 only


def test_at_a_domain_edge_a_one_sided_stencil_stays_inside():
    est = derivative(_sqrt_only, 0.0)  # on the edge: only the right side exists
    assert est.stencil == "right" and abs(est.value) <= max(est.error, 1e-6)
    # 1e-10 from the edge: a one-sided stencil, or central steps below 1e-10, whichever is more
    # accurate (here central differences at steps of a few 1e-12; f bends on the scale 1e-10).
    est = derivative(_sqrt_only, 1e-10)
    assert est.stencil == "right" or (est.stencil == "central" and est.step < 1e-10)
    assert est.value == pytest.approx(1.5 * math.sqrt(1e-10), rel=1e-6)
    est = derivative(_sqrt_only, 1e-10, step=1e-4)  # a fixed step, too
    assert est.stencil == "right" and est.step == 1e-4  # t**1.5 bends fast at 0: a fixed step is coarse
    assert est.value == pytest.approx(1.5 * math.sqrt(1e-10), abs=0.02) and est.error > 1e-4
    left_only = derivative(lambda t: _sqrt_only(-t), -0.0)
    assert left_only.stencil == "left" and abs(left_only.value) <= max(left_only.error, 1e-6)
    left_only = derivative(lambda t: _sqrt_only(-t), -1e-10)
    assert left_only.value == pytest.approx(-1.5e-5, rel=1e-6)


def test_undefined_on_both_sides_is_an_error():
    with pytest.raises(NotDefinedError):
        derivative(lambda t: t if t == 1.0 else math.log(-1.0), 1.0)
    with pytest.raises(NotDefinedError):
        derivative(lambda t: math.nan, 0.0, step=1e-3)


def test_one_sided_derivatives_see_both_slopes_of_a_kink_and_ignore_a_jump():
    left, right = one_sided(lambda t: 3 * max(t, 0.0) - t, 0.0)
    assert (left.value, right.value) == (pytest.approx(-1.0), pytest.approx(2.0))
    assert (left.stencil, right.stencil) == ("left", "right")
    # floor jumps at 1, but its slope is 0 on both sides: the stencils never evaluate f at x.
    left, right = one_sided(math.floor, 1.0)
    assert (left.value, right.value) == (0.0, 0.0)


def test_max_step_keeps_the_steps_clear_of_a_kink():
    est = derivative(abs, 1e-6, max_step=2.5e-7)
    assert est.step <= 2.5e-7 and est.value == pytest.approx(1.0, rel=1e-12)


def agrees(a, n, err):
    return abs(a - n) <= 1e-6 + 1e-6 * abs(n)


def test_check_away_from_kinks_compares_with_the_derivative():
    c = check(math.cos(0.4), math.sin, 0.4, agrees)
    assert c.ok and c.interval is None and c.value == pytest.approx(math.cos(0.4), rel=1e-10)
    assert not check(math.cos(0.4) + 1e-3, math.sin, 0.4, agrees).ok


@pytest.mark.parametrize("analytic, ok", [(0.0, True), (0.5, True), (1.0, True), (1.2, False), (-0.1, False)])
def test_check_at_a_kink_is_a_subgradient_check(analytic, ok):
    relu = lambda t: max(t, 0.0)  # noqa: E731
    c = check(analytic, relu, 0.0, agrees, at_kink=True)
    assert c.ok is ok and c.stencil == "kink"
    assert c.interval == (pytest.approx(0.0), pytest.approx(1.0))
    # An undeclared kink is found too: the two-sided check fails and the one-sided slopes differ.
    assert check(analytic, relu, 0.0, agrees).ok is ok


def test_the_first_step_is_relative_to_the_point():
    assert numeric.FIRST_STEP < 0.1
    est = derivative(lambda t: t * t, 1e8)
    assert est.value == pytest.approx(2e8, rel=1e-10)


def test_a_zero_derivative_from_rounding_noise_keeps_a_large_step():
    # -(t/1.5)/t is -1/1.5 up to rounding: its derivative is 0. Chasing relative accuracy on
    # noise would shrink the step until the noise (1e-16/h) dominates; it must not.
    est = derivative(lambda t: -(t / 1.5) / t, -2.688716103464095)
    assert abs(est.value) < 1e-9 and est.step > 1e-6


def test_rounding_noise_amplified_by_cancellation_is_not_chased_to_tiny_steps():
    # log(x0 + x1 - x1 - 0.99999999) at (1, 2) does not depend on x1, but x0 + x1 - x1 rounds by an
    # ulp of 3, which the log 1e-8 from its edge magnifies: the estimate along x1 is 0 within its
    # error, and smaller steps would only magnify the noise (they once gave 135).
    est = derivative(lambda t: math.log(1.0 + t - t - 0.99999999), 2.0)
    assert abs(est.value) <= max(est.error, 1e-3)


def test_a_first_step_across_a_pole_is_not_taken_for_a_zero_derivative():
    # 1/(sin(30t) - sin(30) + 0.01) has a pole 0.002 from t = 1: the first steps straddle it and
    # their estimates scatter (once read as "consistent with 0", which let any wrong rule pass).
    f = lambda t: 1 / (math.sin(30 * t) - math.sin(30.0) + 0.01)  # noqa: E731
    est = derivative(f, 1.0)
    assert est.value == pytest.approx(-30 * math.cos(30.0) / 0.01**2, rel=1e-8)


def test_a_step_limit_below_the_edge_threshold_still_uses_central_differences():
    # A kink 4e-9 away limits the step; that is no domain edge, so no one-sided stencil (whose
    # tiny steps lose digits: 0.5 % off once).
    est = derivative(math.sin, 0.3, max_step=4e-9)
    assert est.stencil == "central" and est.value == pytest.approx(math.cos(0.3), rel=1e-6)


def test_the_rounding_noise_keeps_a_step_where_f_looks_flat_from_being_taken_as_exact():
    # log2(tan(cos(u)) - c) with its log 1e-6 from 0: tan(...) ~ 1.56 is known to an ulp, which the
    # log magnifies to ~3e-10; at steps below ~1e-10 f looks flat (a difference of exactly 0).
    c = 1.5574067246531893
    f = lambda u: math.log2(math.tan(math.cos(u)) - c)  # noqa: E731
    u = -1e-6
    exact = -math.sin(u) / math.cos(math.cos(u)) ** 2 / ((math.tan(math.cos(u)) - c) * math.log(2))
    noise = numeric.rounding_noise([(math.tan(math.cos(u)), 1 / ((math.tan(math.cos(u)) - c) * math.log(2)))])
    assert noise == pytest.approx(2 * 2.0**-52 * 1.5574 / (1e-6 * math.log(2)), rel=1e-3)
    est = derivative(f, u, noise=noise)
    assert est.value == pytest.approx(exact, rel=1e-3) and est.error >= noise / est.step


def test_an_estimate_from_a_larger_step_that_disagrees_beyond_its_error_gives_way():
    # The right derivative of 1/(t + 1e-8) at 0 is -1e16; steps of 1e-2 see only the tail of the
    # bend (-4e4 "± 3e4"), and as |f| is 1e8 there, that looked like an accurate small error.
    # A smaller step that resolves the bend disagrees beyond both errors: it is kept.
    est = derivative(lambda t: 1 / (t + 1e-8) if t >= 0 else 0.0, 0.0, side=1)
    assert est.value == pytest.approx(-1e16, rel=1e-6) and est.step < 1e-9


def test_one_sided_stencils_use_the_steps_actually_taken():
    # At x = 2.54 a step of 1.3e-12 is about 3000 ulps: x + h, x + 2h, x + 3h round by up to half
    # an ulp each, a part in 10^4 of the step. With the nominal steps, even a straight line (t - 2.5
    # is exact here) came out 1e-4 off (and sqrt(x - c) near its edge 1e-3 off, with a smaller
    # error estimate).
    for side in (1, -1):
        est = derivative(lambda t: t - 2.5, 2.540253195409082, step=1.3e-12, side=side)
        assert est.value == pytest.approx(1.0, rel=1e-12)
    c = 2.540253185409082
    x = 2.540253195409082
    est = derivative(lambda t: math.sqrt(t - c), x, side=1)
    assert est.value == pytest.approx(0.5 / math.sqrt(x - c), rel=1e-6)
