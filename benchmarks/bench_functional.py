"""tinygrad_edu.functional against torch.func in float64: the same jvp, Jacobians (forward and
reverse), Hessians and Hessian-vector products on functions of the new primitives, compared value
by value (max relative difference), and the time each takes; then the derivatives at kinks and
jumps against PyTorch's autograd. PyTorch is a benchmark-only
dependency (the test suite checks against finite differences and closed forms instead).

Run: python benchmarks/bench_functional.py [--repeats 5]   (needs the `bench` extra: torch)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch.func import hessian as t_hessian
from torch.func import jacfwd, jacrev
from torch.func import jvp as t_jvp

import tinygrad_edu as te
from tinygrad_edu.functional import hessian, hvp, jacobian, jvp

torch.set_num_threads(1)
POINT = [0.3, -0.7, 1.2]
TANGENT = [0.5, -1.0, 2.0]


def ours(x, y, z):
    """Three outputs built from the new primitives (and old ones)."""
    return (te.atan2(x, z) * y.softsign() + (x * z).gelu(), te.logaddexp(x, y).log1p() * z.asinh(),
            (x * y).sinh() + te.hypot(y, z).expm1() + x.leaky_relu(0.2) * z.erf())


def theirs(v):
    x, y, z = v[0], v[1], v[2]
    f = torch.nn.functional
    return torch.stack([
        torch.atan2(x, z) * f.softsign(y) + f.gelu(x * z),
        torch.log1p(torch.logaddexp(x, y)) * torch.asinh(z),
        torch.sinh(x * y) + torch.expm1(torch.hypot(y, z)) + f.leaky_relu(x, 0.2) * torch.erf(z),
    ])


def scalar_ours(x, y, z):
    a, b, c = ours(x, y, z)
    return a * b + c.tanh()


def scalar_theirs(v):
    a, b, c = theirs(v)
    return a * b + torch.tanh(c)


def rel_diff(mine, reference) -> float:
    flat = [float(v.data) for v in _flatten(mine)]
    ref = reference.detach().reshape(-1).tolist()
    return max(abs(a - b) / max(abs(b), 1e-300) for a, b in zip(flat, ref))


def _flatten(x):
    if isinstance(x, te.Value):
        return [x]
    return [v for item in x for v in _flatten(item)]


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# Derivatives at kinks and jumps: ours against PyTorch's autograd, input by input.
F = torch.nn.functional
KINKS = [
    ("leaky_relu at 0", lambda x: x.leaky_relu(0.2), lambda x: F.leaky_relu(x, 0.2), [0.0]),
    ("elu at 0", lambda x: x.elu(alpha=0.5), lambda x: F.elu(x, alpha=0.5), [0.0]),
    ("relu at 0", lambda x: x.relu(), F.relu, [0.0]),
    ("abs at 0", lambda x: abs(x), torch.abs, [0.0]),
    ("hardtanh at 1", lambda x: x.hardtanh(), F.hardtanh, [1.0]),
    ("hardtanh at -1", lambda x: x.hardtanh(), F.hardtanh, [-1.0]),
    ("clamp at max", lambda x: x.clamp(-1.0, 1.0), lambda x: torch.clamp(x, -1.0, 1.0), [1.0]),
    ("clamp at min", lambda x: x.clamp(min=-1.0), lambda x: torch.clamp(x, min=-1.0), [-1.0]),
    ("clamp min > max", lambda x: x.clamp(2.0, 1.0), lambda x: torch.clamp(x, 2.0, 1.0), [1.5]),
    ("maximum tie", te.maximum, torch.maximum, [2.0, 2.0]),
    ("minimum tie", te.minimum, torch.minimum, [2.0, 2.0]),
    ("remainder", lambda a, b: a % b, torch.remainder, [-7.5, 2.0]),
    ("remainder at a jump", lambda a, b: a % b, torch.remainder, [4.0, 2.0]),
    ("floor at 2", lambda x: x.floor(), torch.floor, [2.0]),
    ("round at 2.5", lambda x: x.round(), torch.round, [2.5]),
    ("sign at 0", lambda x: x.sign(), torch.sign, [0.0]),
    ("softsign at 0", lambda x: x.softsign(), F.softsign, [0.0]),
    ("gelu tanh at 0", lambda x: x.gelu(approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"), [0.0]),
    ("where", lambda a, b: te.where(True, a, b), lambda a, b: torch.where(torch.tensor(True), a, b), [1.0, 2.0]),
    ("atan2 on the cut", te.atan2, torch.atan2, [0.0, -2.0]),
]


def kink_table() -> bool:
    print(f"\n{'at a kink':22} {'ours':>24} {'PyTorch':>24}")
    same = True
    for name, mine, reference, point in KINKS:
        xs = [te.Value(p) for p in point]
        ours_grads = [g.data for g in te.grad(mine(*xs), xs)]
        ts = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in point]
        theirs_grads = [g.item() for g in torch.autograd.grad(reference(*ts), ts)]
        ok = ours_grads == theirs_grads
        same &= ok
        print(f"{name:22} {str(ours_grads):>24} {str(theirs_grads):>24}{'' if ok else '  DIFFER'}")
    return same


def functional_table(repeats: int) -> float:
    """Print jvp, Jacobians, Hessian and HVP against torch.func: the largest relative difference
    and the median time of each; return the worst difference."""
    v = torch.tensor(POINT, dtype=torch.float64)
    t = torch.tensor(TANGENT, dtype=torch.float64)
    cases = [
        ("jvp", lambda: jvp(ours, POINT, TANGENT)[1], lambda: t_jvp(theirs, (v,), (t,))[1]),
        ("jacobian fwd", lambda: jacobian(ours, POINT, mode="fwd"), lambda: jacfwd(theirs)(v)),
        ("jacobian rev", lambda: jacobian(ours, POINT, mode="rev"), lambda: jacrev(theirs)(v)),
        ("hessian", lambda: hessian(scalar_ours, POINT), lambda: t_hessian(scalar_theirs)(v)),
        ("hvp", lambda: hvp(scalar_ours, POINT, TANGENT)[1], lambda: t_hessian(scalar_theirs)(v) @ t),
    ]
    print(f"{'':14} {'max rel diff':>13} {'ours (ms)':>10} {'torch.func (ms)':>16}")
    worst = 0.0
    for name, mine, reference in cases:
        d = rel_diff(mine(), reference())
        worst = max(worst, d)
        print(f"{name:14} {d:13.2e} {1e3 * timed(mine, repeats):10.3f} {1e3 * timed(reference, repeats):16.3f}")
    print(f"worst relative difference: {worst:.2e} ({'agree' if worst < 1e-12 else 'DIFFER'} to 1e-12)")
    return worst


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    worst = functional_table(args.repeats)
    same = kink_table()
    if not math.isfinite(worst) or worst >= 1e-12 or not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
