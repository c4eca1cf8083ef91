"""How well the gradient checks catch and localise wrong derivative rules, and how often they
fail on correct functions at the hard places (the evaluation of docs/testing.md):

1. Broken rules: each built-in primitive's derivative rule is perturbed in turn (scaled by 1.01
   and by 1.1, sign flipped, shifted by 0.1, one partial dropped, partials swapped), by patching the record in
   place and restoring it after; plus wrong custom primitives. Each runs in random expressions
   (tinygrad_edu.testing.strategies) that use it. Reported: how often gradcheck fails where the
   broken rule changes the gradient (detection), and how often the first culprit it names is the
   broken primitive (localisation).
2. False failures: correct random expressions drawn with near_kinks=True and
   near_domain_edges=True (inputs on kinks, just inside domain edges): how many checks fail
   (with --second-order, gradgradcheck runs on each too).

Run: python benchmarks/gradcheck_eval.py [--cases 12] [--false-cases 2000] [--seed 0]
[--false-seeds 0 1 2 3 4] [--second-order] (about a minute at the defaults; needs Hypothesis, in the dev extra).
"""

from __future__ import annotations

import argparse
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tinygrad_edu import ops, primitive, specialize
from tinygrad_edu.engine import Value, grad
from tinygrad_edu.testing import GradcheckError, gradcheck, gradgradcheck
from tinygrad_edu.testing.strategies import BUILTIN_OPS, POW_CONST_EXPONENTS, expressions

ATOL, RTOL = 1e-5, 1e-3


def _perturbations(arity: int) -> dict[str, Callable[[tuple], tuple]]:
    """Ways to break a rule, as functions of the rule's partials (already multiplied by g)."""
    kinds: dict[str, Callable[[tuple], tuple]] = {
        "scaled by 1.01": lambda d: tuple(x * 1.01 for x in d),
        "scaled by 1.1": lambda d: tuple(x * 1.1 for x in d),
        "sign flipped": lambda d: tuple(-x for x in d),
        "shifted by 0.1": lambda d: tuple(x + 0.1 for x in d),
        "first partial dropped": lambda d: (0.0 * d[0], *d[1:]),
    }
    if arity == 2:
        kinds["partials swapped"] = lambda d: (d[1], d[0])
    return kinds


@contextmanager
def patched(op: ops.Primitive, vjp: Callable) -> Iterator[None]:
    """Give ``op`` another derivative rule for a while (the engines read ``op.vjp``, its
    per-input parts ``op.vjps`` and the float steps made from them, ``op.float_backward`` and
    ``op.float_grad``, at backward time; all four are replaced); restore the record afterwards,
    whatever happens."""
    names = ("vjp", "vjps", "float_backward", "float_grad")
    original = [getattr(op, name) for name in names]
    object.__setattr__(op, "vjp", vjp)  # the record is a frozen dataclass
    object.__setattr__(op, "vjps", ops.per_input_rules(vjp, op.arity))
    object.__setattr__(op, "float_backward", specialize.backward_step(op))
    object.__setattr__(op, "float_grad", specialize.grad_step(op))
    try:
        yield
    finally:
        for name, rule in zip(names, original):
            object.__setattr__(op, name, rule)


def broken(op: ops.Primitive, change: Callable[[tuple], tuple]):
    """``op`` with its rule's partials passed through ``change`` (see :func:`patched`)."""
    original = op.vjp
    return patched(op, lambda m, g, out, *xs: change(tuple(original(m, g, out, *xs))))


def draw_cases(strategy, n: int, random_seed: int) -> list:
    """``n`` examples of a Hypothesis strategy, reproducibly (seeded), outside any test."""
    cases: list = []

    @seed(random_seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(case):
        cases.append(case)

    collect()
    return cases[:n]


@dataclass
class Tally:
    cases: int = 0  # drawn expressions using the broken primitive
    effective: int = 0  # ... where the broken rule changes the engine's gradient beyond tolerance
    detected: int = 0  # ... where gradcheck fails
    named: int = 0  # ... where its first culprit is the broken primitive
    missed: list = field(default_factory=list)
    misnamed: list = field(default_factory=list)

    def add(self, other: "Tally") -> None:
        for f in ("cases", "effective", "detected", "named"):
            setattr(self, f, getattr(self, f) + getattr(other, f))


def _gradient(fn, inputs) -> list[float]:
    xs = [Value(v) for v in inputs]
    return [0.0 if g is None else g.data for g in grad(fn(*xs), xs, allow_unused=True)]


def _changed(good: list[float], bad: list[float]) -> bool:
    return any(not abs(b - a) <= ATOL + RTOL * abs(a) for a, b in zip(good, bad))


def _judge(t: Tally, op: ops.Primitive, fn, inputs) -> None:
    """Run gradcheck on an effective case and count whether it failed and named ``op`` first."""
    t.effective += 1
    try:
        gradcheck(fn, inputs, atol=ATOL, rtol=RTOL)
    except GradcheckError as err:
        t.detected += 1
        if err.culprits and err.culprits[0].op is op:
            t.named += 1
        else:
            t.misnamed.append((str(fn), inputs))
        return
    except ValueError:
        t.effective -= 1  # not checkable at this point
        return
    t.missed.append((str(fn), inputs))


def run_broken(op: ops.Primitive, change, cases: list) -> Tally:
    t = Tally()
    for fn, inputs in cases:
        t.cases += 1
        good = _gradient(fn, inputs)
        with broken(op, change):
            try:
                bad = _gradient(fn, inputs)
            except (ArithmeticError, ValueError):
                continue
            if _changed(good, bad):
                _judge(t, op, fn, inputs)
    return t


def builtin_targets() -> list[tuple[str, ops.Primitive]]:
    targets = [(name, ops.PRIMITIVES[name]) for name in BUILTIN_OPS if name != "pow_const"]
    targets += [(f"x**{c:g}", ops.pow_const(c)) for c in POW_CONST_EXPONENTS]
    return targets


def _op_list(op: ops.Primitive) -> list:
    others = [name for name in BUILTIN_OPS if name != "pow_const" and ops.PRIMITIVES[name] is not op]
    return [op, *others]


def cases_using(op: ops.Primitive, n: int, seed: int) -> list:
    strategy = expressions(n_inputs=st.integers(1, 3), max_ops=6, ops=_op_list(op)).filter(
        lambda case: op in case[0].ops)
    return draw_cases(strategy, n, seed)


def wrong_customs() -> list[tuple[str, ops.Primitive, Callable]]:
    """Custom primitives with the derivative mistakes people make (registered once), each with
    its correct derivative (to tell where the mistake changes the gradient)."""
    made = []
    specs = [
        ("ev_cube_wrong_power", lambda x: x**3, lambda x: 3 * x**3, lambda x: 3 * x * x, "power not lowered: 3x^3"),
        ("ev_softplus_sign", lambda x: math.log1p(math.exp(x)), lambda x: 1 / (1 + math.exp(x)),
         lambda x: 1 / (1 + math.exp(-x)), "sign in sigmoid"),
        ("ev_sin2x_chain", lambda x: math.sin(2 * x), lambda x: math.cos(2 * x), lambda x: 2 * math.cos(2 * x),
         "chain rule factor 2 missing"),
        ("ev_gauss_const", lambda x: math.exp(-x * x), lambda x: -x * math.exp(-x * x),
         lambda x: -2 * x * math.exp(-x * x), "factor 2 missing"),
        ("ev_xlogx", lambda x: x * math.log(abs(x) + 1), lambda x: math.log(abs(x) + 1),
         lambda x: math.log(abs(x) + 1) + abs(x) / (abs(x) + 1), "product rule half"),
        ("ev_prod_swapped", lambda a, b: a * b * b, lambda a, b: (2 * a * b, b * b), lambda a, b: (b * b, 2 * a * b),
         "partials swapped"),
        ("ev_ratio_quotient", lambda a, b: a / (1 + b * b), lambda a, b: (1 / (1 + b * b), 2 * a * b / (1 + b * b) ** 2),
         lambda a, b: (1 / (1 + b * b), -2 * a * b / (1 + b * b) ** 2), "quotient-rule sign"),
    ]
    for name, f, wrong, right, what in specs:
        existing = ops.PRIMITIVES.get(name)
        op = existing if existing is not None else primitive(name, f, wrong, doc=what).op
        made.append((f"{name} ({what})", op, right))
    return made


def run_custom(op: ops.Primitive, right: Callable, cases: list) -> Tally:
    """Like run_broken, the other way round: the registered rule is wrong; the right one, patched
    in for a moment, gives the gradient to compare with."""

    def right_vjp(m, g, out, *xs):
        parts = right(*xs)
        return tuple(g * p for p in (parts if isinstance(parts, tuple) else (parts,)))

    t = Tally()
    for fn, inputs in cases:
        t.cases += 1
        bad = _gradient(fn, inputs)
        with patched(op, right_vjp):
            good = _gradient(fn, inputs)
        if _changed(good, bad):
            _judge(t, op, fn, inputs)
    return t


def false_failures(n: int, seed: int, second_order: bool = False) -> tuple[int, list, list, float]:
    """Check ``n`` correct expressions drawn near kinks and domain edges (with ``second_order``,
    gradgradcheck too): (count, failures, not checkable, seconds per expression)."""
    strategy = expressions(n_inputs=st.integers(1, 3), max_ops=8, near_kinks=True, near_domain_edges=True)
    cases = draw_cases(strategy, n, seed)
    failures, undefined = [], []
    start = time.perf_counter()
    for fn, inputs in cases:
        try:
            gradcheck(fn, inputs, atol=ATOL, rtol=RTOL)
            if second_order:
                gradgradcheck(fn, inputs, atol=ATOL, rtol=RTOL)
        except GradcheckError as err:
            failures.append((str(fn), inputs, str(err).splitlines()[3:5]))
        except (ValueError, ArithmeticError) as err:  # fn, or the engine's derivative, undefined at the point
            undefined.append((str(fn), inputs, str(err)))
    return len(cases), failures, undefined, (time.perf_counter() - start) / max(len(cases), 1)


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "-"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=12, help="random expressions per broken rule (default 12)")
    parser.add_argument("--false-cases", type=int, default=2000, help="correct expressions near kinks/edges")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--false-seeds", type=int, nargs="+", metavar="SEED",
                        help="part 2 with each of these seeds, one table row each (default: --seed)")
    parser.add_argument("--second-order", action="store_true",
                        help="part 2 also runs gradgradcheck on each expression (second derivatives)")
    parser.add_argument("--only", nargs="*", help="only these primitives (names) in part 1")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    print(f"Broken rules ({args.cases} random expressions per broken rule, atol={ATOL:g}, rtol={RTOL:g})\n")
    print("| primitive | perturbations | effective cases | detected | first culprit right |")
    print("| --- | --- | --- | --- | --- |")
    total, examples = Tally(), []
    for name, op in builtin_targets():
        if args.only and name not in args.only:
            continue
        cases = cases_using(op, args.cases, args.seed)
        row = Tally()
        for kind, change in _perturbations(op.arity).items():
            t = run_broken(op, change, cases)
            row.add(t)
            examples += [(name, kind, "missed", m) for m in t.missed[:1]] + [(name, kind, "misnamed", m) for m in t.misnamed[:1]]
        total.add(row)
        print(f"| {name} | {len(_perturbations(op.arity))} | {row.effective} | {_pct(row.detected, row.effective)} "
              f"| {_pct(row.named, row.detected)} |")
    custom_total = Tally()
    for label, op, right in wrong_customs():
        if args.only and op.name not in args.only:
            continue
        t = run_custom(op, right, cases_using(op, args.cases, args.seed))
        custom_total.add(t)
        examples += [(label, "custom", "missed", m) for m in t.missed[:1]] + [(label, "custom", "misnamed", m) for m in t.misnamed[:1]]
        print(f"| custom {label} | 1 | {t.effective} | {_pct(t.detected, t.effective)} | {_pct(t.named, t.detected)} |")
    print(f"| **built-in rules, all** | | {total.effective} | {_pct(total.detected, total.effective)} "
          f"| {_pct(total.named, total.detected)} |")
    print(f"| **wrong custom primitives, all** | | {custom_total.effective} | "
          f"{_pct(custom_total.detected, custom_total.effective)} | {_pct(custom_total.named, custom_total.detected)} |")
    if examples:
        print("\nMissed or misnamed (first of each):")
        for name, kind, what, (text, inputs) in examples[:20]:
            print(f"- {name}, {kind}: {what} at {text} with inputs {inputs}")

    seeds = args.false_seeds or [args.seed]
    print(f"\nCorrect functions near kinks and domain edges: {args.false_cases} random expressions per seed "
          f"(expressions(near_kinks=True, near_domain_edges=True)), {'gradcheck and gradgradcheck' if args.second_order else 'gradcheck'}\n")
    print("| seed | expressions | false failures | not checkable | ms per check |")
    print("| --- | --- | --- | --- | --- |")
    all_failures, total_n, total_undefined = [], 0, 0
    for s in seeds:
        n, failures, undefined, per_check = false_failures(args.false_cases, s, args.second_order)
        all_failures += failures
        total_n += n
        total_undefined += len(undefined)
        print(f"| {s} | {n} | {len(failures)} ({_pct(len(failures), n)}) | {len(undefined)} | {per_check * 1e3:.1f} |")
    print(f"\n- false failures: {len(all_failures)} ({_pct(len(all_failures), total_n)}) in {total_n}")
    print(f"- not checkable (fn or its derivative undefined at the point): {total_undefined}")
    for text, inputs, rows in all_failures[:5]:
        print(f"  {text} at {inputs}: {' | '.join(r.strip() for r in rows)}")
    print(f"\n({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
