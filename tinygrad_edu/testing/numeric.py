"""Numerical derivatives of a function of one float, for the gradient checks: the stencils
(central, and one-sided ones that stay on one side of a point), the automatic choice of step with
an error estimate, and the one-sided derivatives that bound a subgradient at a kink.

Everything here sees only a plain function ``f(t) -> float`` that raises ``ArithmeticError`` or
``ValueError`` (or returns a non-finite number) outside its domain, so it serves the whole-function
check (``f`` is the user's function along one input) and the per-primitive check of the
localisation (``f`` is one primitive's forward rule along one of its inputs) alike.

With no step given, :func:`derivative` runs Ridders' method: central differences at a shrinking
sequence of steps, extrapolated to step 0 (Richardson), keeping the entry whose neighbours agree
best; the disagreement is the estimated error. Near a domain edge the steps shrink until the
stencil fits; at the edge itself a one-sided stencil is used instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

F = Callable[[float], float]

#: The first step of the automatic choice, relative to ``max(1, |x|)``.
FIRST_STEP = 1e-2
#: Ridders' method: each step is the previous one divided by this; at most TABLE steps.
SHRINK = 1.4
TABLE = 10
#: Near a domain edge, the steps shrink by this factor until the central stencil fits; below
#: FIRST_STEP * EDGE_LIMIT (relative) a one-sided stencil is used instead.
EDGE_SHRINK = 4.0
EDGE_LIMIT = 1e-6
#: No step is smaller than this, relative to ``max(1, |x|)``: below it x + h rounds to x.
MIN_STEP = 1e-13


class NotDefinedError(ValueError):
    """``f`` is not defined on either side of the point, at any step tried."""


@dataclass(frozen=True)
class Estimate:
    """A numerical derivative: its ``value``, an estimate of its absolute ``error``, the ``step``
    used (absolute) and the ``stencil``: ``"central"``, ``"right"`` (points above x only) or
    ``"left"`` (points below x only)."""

    value: float
    error: float
    step: float
    stencil: str


def _safe(f: F) -> Callable[[float], Optional[float]]:
    """``f`` returning None where it is not defined (domain error or non-finite result)."""

    def at(t: float) -> Optional[float]:
        try:
            y = float(f(t))
        except (ArithmeticError, ValueError):
            return None
        return y if math.isfinite(y) else None

    return at


def _central(at, x: float, h: float) -> Optional[float]:
    up, down = at(x + h), at(x - h)
    if up is None or down is None:
        return None
    return (up - down) / ((x + h) - (x - h))  # the step actually taken, after rounding


def _one_sided(at, x: float, h: float, side: int) -> Optional[float]:
    """f'(x) from the side ``side`` (+1 right, -1 left) using x + side*h, 2h, 3h only (never x
    itself, so a jump at x does not enter): the slope of the parabola through those points at x,
    second order in h. The offsets are the ones actually taken, after rounding x + side*k*h (at
    steps of a few hundred ulps of x, the nominal ones would be off by a part in a thousand)."""
    ts = [x + side * k * h for k in (1, 2, 3)]
    fs = [at(t) for t in ts]
    if any(v is None for v in fs):
        return None
    d1, d2, d3 = (t - x for t in ts)
    if d1 == d2 or d2 == d3 or d1 == d3:
        return None
    # The derivative at 0 of the Lagrange parabola through (d_i, f_i). Its weights add up to 0,
    # so it is written with differences from f_1: exactly 0 for a constant f.
    return (-(fs[1] - fs[0]) * (d1 + d3) / ((d2 - d1) * (d2 - d3))
            - (fs[2] - fs[0]) * (d1 + d2) / ((d3 - d1) * (d3 - d2)))


def _ridders(diff: Callable[[float], Optional[float]], h: float, order: int, floor: float) -> tuple[float, float, float]:
    """Ridders' extrapolation of ``diff(h)`` to h -> 0: (value, error, step). ``order`` 2 for a
    stencil whose error has even powers of h only (central), 1 otherwise."""
    base = SHRINK**order
    first = diff(h)
    if first is None:
        raise NotDefinedError("the stencil does not fit")
    previous = [first]
    best, err, best_h = first, math.inf, h
    for _ in range(1, TABLE):
        h /= SHRINK
        if h < floor:
            break
        d = diff(h)
        if d is None:
            break
        row = [d]
        fac = base
        for j in range(1, len(previous) + 1):
            row.append((row[j - 1] * fac - previous[j - 1]) / (fac - 1.0))
            fac *= base
            e = max(abs(row[j] - row[j - 1]), abs(row[j] - previous[j - 1]))
            if e <= err:
                best, err, best_h = row[j], e, h
        if abs(row[-1] - previous[-1]) >= 2.0 * err:
            break  # rounding now dominates: smaller steps only get worse
        previous = row
    if not math.isfinite(err):  # a single entry: no comparison to estimate the error from
        err = abs(first)
    return best, err, best_h


def derivative(f: F, x: float, *, step: float | None = None, side: int = 0, max_step: float | None = None,
               noise: float = 0.0) -> Estimate:
    """The derivative of ``f`` at ``x``.

    ``side=0`` is the two-sided derivative (central differences, or a one-sided stencil where
    only one side of ``x`` is in ``f``'s domain); ``side=1`` / ``side=-1`` the right / left
    derivative, from points on that side only. ``step`` fixes the step (one stencil, its error
    estimated against twice the step); without it the step is chosen automatically (Ridders'
    method), at most ``max_step``. ``noise`` is the rounding error of one evaluation of ``f``
    (absolute; see :func:`rounding_noise`; at least an ulp of f(x)): a stencil at step h cannot be more accurate than
    about noise / h, so no estimate claims less error than that, and a step so small that ``f``
    looks flat is not preferred to a larger one. Raises :class:`NotDefinedError` when ``f`` is
    undefined on both sides at every step tried.
    """
    at = _safe(f)
    scale = max(1.0, abs(x))
    if step is not None:
        return _fixed(at, x, step, side)
    h = FIRST_STEP * scale if max_step is None else min(FIRST_STEP * scale, max_step)
    size = abs(at(x) or 0.0)  # |f(x)|: the scale of f's values, to tell a smooth step from one across a pole
    noise = max(noise, ROUNDING * size)  # at least f's own last digit
    smallest = h * EDGE_LIMIT  # (relative to the first step: a max_step near a kink is no domain edge)
    floor = MIN_STEP * scale
    tiny_central = None  # a central stencil that fits only below `smallest`: very close to an edge
    if side == 0:
        probe = h
        while probe >= floor:
            if at(x + probe) is not None and at(x - probe) is not None:
                central = _best(lambda s: _central(at, x, s), probe, 2, "central", floor, noise, size)
                if probe >= smallest:
                    return central
                tiny_central = central
                break
            probe /= EDGE_SHRINK
        sides = (1, -1)
    else:
        sides = (side,)
    # At a domain edge (or asked for one side): the side whose stencil fits at the larger step.
    fits = []
    for s in sides:
        probe = h
        while probe >= floor and _one_sided(at, x, probe, s) is None:
            probe /= EDGE_SHRINK
        if probe >= floor:
            fits.append((probe, s))
    if fits:
        probe, s = max(fits)
        one = _best(lambda t: _one_sided(at, x, t, s), probe, 1, "right" if s > 0 else "left", floor,
                    ONE_SIDED_NOISE * noise, size)
        # So close to an edge that f changes on the scale of the steps: whichever is more accurate.
        return one if tiny_central is None else _prefer(one, tiny_central, size)
    if tiny_central is not None:
        return tiny_central
    raise NotDefinedError(f"not defined on {'either side' if side == 0 else 'that side'} of {x!r}")


#: When Ridders' estimate from the first step is not this accurate (relative), start again from
#: steps RESTART times smaller, up to RESTARTS times, and keep the most accurate estimate: a
#: function that changes on a small scale (near a domain edge: log, sqrt near 0) needs small steps.
ACCURATE = 1e-8
RESTART = 100.0
RESTARTS = 5


#: An estimated error below this is as good as exact (a derivative that is 0, estimated from
#: rounding noise, must not send the search to ever smaller steps where the noise grows).
NEGLIGIBLE = 1e-12


#: The one-sided stencil's weights (-2.5, 4, -1.5) add up the evaluations' rounding errors
#: 8 times, the central one's (1, -1) twice over a span twice as long: 1 time per step.
ONE_SIDED_NOISE = 8.0


def rounding_noise(magnitudes: Sequence[tuple[float, float]]) -> float:
    """The rounding error of evaluating a function once, to first order: each intermediate value
    ``v`` is off by about one unit in the last place, which moves the result by ``|v| *
    |d result / d v|``; ``magnitudes`` holds those pairs (value, sensitivity) for every node."""
    return ROUNDING * math.fsum(abs(v * d) for v, d in magnitudes if math.isfinite(v * d))


#: One unit in the last place of a float64, relative (2**-52), times 2 for the libm functions.
ROUNDING = 2.0 * 2.0**-52


#: A step is too coarse for f (it straddles a pole or a jump, or f varies on a smaller scale, as
#: log(t) does near 0) when the uncertainty of the derivative times the step, a change in f,
#: exceeds this fraction of the size of f there: its error estimate is not to be trusted.
COARSE = 1e-3


def _coarse(e: Estimate, size: float) -> bool:
    """Whether ``e``'s step is too coarse for f (:data:`COARSE`; ``size`` is |f(x)|)."""
    return e.error * e.step > COARSE * (size + abs(e.value) * e.step)


def _prefer(a: Estimate, b: Estimate, size: float) -> Estimate:
    """The better of two estimates of the same derivative. When they disagree beyond their
    errors, one error estimate is wrong, and it is the one from the larger step (its stencil
    straddled what a smaller one resolves: a kink, a pole, the bend of log near 0); the smaller
    step's error includes the rounding noise, so it does not claim too much. Otherwise: one whose
    step is not too coarse, then the smaller error."""
    if abs(a.value - b.value) > a.error + b.error:  # False for NaN: then by rank
        return a if a.step < b.step else b
    return min(a, b, key=lambda e: (_coarse(e, size), e.error))


def _best(diff: Callable[[float], Optional[float]], h: float, order: int, stencil: str, floor: float,
          noise: float = 0.0, size: float = 0.0) -> Estimate:
    """Ridders' estimate from step ``h``, restarted from steps RESTART times smaller while it is
    not accurate; the estimates are compared with :func:`_prefer`. An estimate's error is at
    least ``noise / step`` (the evaluations' rounding error, magnified by the step): a step so
    small that f looks flat in float64 (a difference of exactly 0) would otherwise claim to be
    exact. ``size`` is |f(x)|."""
    best = None
    for _ in range(RESTARTS + 1):
        try:
            value, err, used = _ridders(diff, h, order, floor)
        except NotDefinedError:
            break
        est = Estimate(value, max(err, noise / used), used, stencil)
        fine = not _coarse(est, size)
        if best is None and abs(est.value) <= est.error and fine:
            # Consistent with 0 (rounding noise, as in x + y - y along y): smaller steps would
            # only magnify the noise, not find a derivative the larger step missed. (Not when the
            # step is too coarse: straddling a pole, 1/x with x - h < 0 < x, scatters the estimates.)
            return est
        best = est if best is None else _prefer(est, best, size)
        if fine and best is est and est.error <= max(ACCURATE * abs(value), NEGLIGIBLE, noise / used):
            break  # accurate, or as accurate as rounding allows: smaller steps only lose digits
        h /= RESTART
        if h < floor:
            break
    assert best is not None  # the caller checked that the stencil fits at the first h
    return best


def _fixed(at, x: float, h: float, side: int) -> Estimate:
    def one(stencil_side: int, s: float) -> Optional[float]:
        return _central(at, x, s) if stencil_side == 0 else _one_sided(at, x, s, stencil_side)

    for s in ((0, 1, -1) if side == 0 else (side,)):
        d = one(s, h)
        if d is None:
            continue
        wide = one(s, 2 * h)
        # Richardson: the truncation error of the step-h result is about (d - d_2h) / (2^p - 1).
        err = abs(d - wide) / 3.0 if wide is not None else math.nan  # both stencils are second order
        return Estimate(d, err, h, {0: "central", 1: "right", -1: "left"}[s])
    raise NotDefinedError(f"not defined on {'either side' if side == 0 else 'that side'} of {x!r} at step {h:.3g}")


def one_sided(f: F, x: float, *, step: float | None = None, max_step: float | None = None) -> tuple[Estimate, Estimate]:
    """The left and right derivatives of ``f`` at ``x``: at a kink the subgradients of ``f`` lie
    between them."""
    return (derivative(f, x, step=step, side=-1, max_step=max_step),
            derivative(f, x, step=step, side=1, max_step=max_step))


@dataclass(frozen=True)
class Check:
    """The verdict of :func:`check` on one derivative: the numerical ``value`` (at a kink, the
    middle of the one-sided derivatives), its estimated ``error``, the ``step`` and ``stencil``
    (``"kink"`` at a kink), whether the analytic value is ``ok``, and at a kink the ``interval``
    (left, right) of one-sided derivatives that a subgradient lies in."""

    value: float
    error: float
    step: float
    stencil: str
    ok: bool
    interval: tuple[float, float] | None = None


Agrees = Callable[[float, float, float], bool]  # (analytic, numeric, numeric error) -> within tolerance


def check(analytic: float, f: F, x: float, agrees: Agrees, *, step: float | None = None, at_kink: bool = False,
          max_step: float | None = None, noise: float = 0.0) -> Check:
    """Compare ``analytic`` with the derivative of ``f`` at ``x``.

    Away from kinks this is ``agrees(analytic, numeric, error)``. At a kink (``at_kink``, or
    found here because the two-sided check fails and the left and right derivatives disagree) it
    is a subgradient check: ``analytic`` must lie between the left and right derivatives (up to
    the tolerance), whatever convention the rule follows there. ``noise`` as in :func:`derivative`."""
    est = None
    if not at_kink:
        est = derivative(f, x, step=step, max_step=max_step, noise=noise)
        if agrees(analytic, est.value, est.error):
            return Check(est.value, est.error, est.step, est.stencil, True)
    sides = []
    for side in (-1, 1):
        try:
            sides.append(derivative(f, x, side=side, max_step=max_step, noise=noise))
        except NotDefinedError:
            pass
    if len(sides) == 1:  # a kink at a domain edge: only one side to compare with
        one = sides[0]
        return Check(one.value, one.error, one.step, one.stencil, agrees(analytic, one.value, one.error))
    if not sides:
        if est is None:
            raise NotDefinedError(f"not defined on either side of {x!r}")
        return Check(est.value, est.error, est.step, est.stencil, False)
    left, right = sides
    err = max(left.error, right.error)
    if agrees(left.value, right.value, err):  # no kink after all
        if est is None:
            mid = (left.value + right.value) / 2
            return Check(mid, err, min(left.step, right.step), "left+right", agrees(analytic, mid, err))
        return Check(est.value, est.error, est.step, est.stencil, False)
    lo, hi = sorted((left.value, right.value))
    nearest = min(max(analytic, lo), hi)  # the subgradient closest to the analytic value
    ok = agrees(analytic, nearest, err) if not math.isnan(analytic) else False
    return Check((lo + hi) / 2, err, min(left.step, right.step), "kink", ok, (left.value, right.value))


__all__ = ["Estimate", "Check", "NotDefinedError", "derivative", "one_sided", "check", "rounding_noise", "FIRST_STEP"]
