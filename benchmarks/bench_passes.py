"""The batched engine's optimisation passes, one after another, on the circle task's tape (2-8-1
ReLU MLP, binary cross-entropy from the logit, batch 32): per pass, the groups, the NumPy calls of
one training step (counted, the same on every machine) and the time of one step (medians of
repeats, interleaved, with the ratio to no passes from the same run), and with --show the tape's
listing after each pass (Tape.show).

Run: python benchmarks/bench_passes.py [--repeats 7] [--steps 2000] [--show]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tinygrad_edu import nn, train
from tinygrad_edu.batched import trace
from tinygrad_edu.batched.passes import PASSES
from tinygrad_edu.testing.numpy_calls import count_step_calls

BATCH = 32


def stages() -> list[tuple[str, tuple[str, ...]]]:
    """(label, passes): none, then each pass added in turn."""
    return [("no passes", ())] + [("+ " + name, PASSES[: i + 1]) for i, name in enumerate(PASSES)]


def circle_tapes():
    model = nn.MLP(2, [8, 1], "relu", "sigmoid", seed=0)
    objective = train.make_objective("bce", model)
    rng = np.random.default_rng(0)
    rows = np.c_[rng.uniform(-1, 1, (BATCH, 2)), rng.random(BATCH) < 0.5]
    fn = lambda a, b, t: objective.sample_loss(model, [a, b], t)  # noqa: E731
    return rows, [(label, trace(fn, rows[0], model.parameters(), passes=passes)) for label, passes in stages()]


def step_times(tapes, rows: np.ndarray, repeats: int, steps: int) -> list[list[float]]:
    """Seconds per training step (``Tape.mean_step`` with the parameters kept in the plan's
    vectors, as ``batched.Trainer`` calls it)."""
    plans = []
    for _, tape in tapes:
        plan = tape.plan(len(rows))
        plan.inputs_view[...] = rows.T
        plan.params[...] = [p.data for p in tape.used_params]
        plans.append((tape, plan, plan.params, plan.param_grads))
    times: list[list[float]] = [[] for _ in tapes]
    for _ in range(repeats):
        for i, (tape, plan, params, grads) in enumerate(plans):
            start = time.perf_counter()
            for _ in range(steps):
                tape.mean_step(plan, params, grads)
            times[i].append((time.perf_counter() - start) / steps)
    return times


def table(repeats: int, steps: int, show: bool = False) -> list[str]:
    rows, tapes = circle_tapes()
    times = step_times(tapes, rows, repeats, steps)
    base = statistics.median(times[0])
    lines = [f"The circle tape's training step (batch {BATCH}) after each pass; "
             f"us: median of {repeats} x {steps} steps, ratio to no passes from this run",
             f"{'passes':<26}{'groups':>7}{'NumPy calls':>13}{'us/step':>9}{'ratio':>8}"]
    for (label, tape), t in zip(tapes, times):
        calls = len(count_step_calls(tape, rows))
        m = statistics.median(t)
        lines.append(f"{label:<26}{tape.num_groups:>7}{calls:>13}{1e6 * m:>9.1f}{m / base:>7.2f}x")
    if show:
        for label, tape in tapes:
            lines += ["", f"{label}:", tape.show()]
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--show", action="store_true", help="print the tape's listing after each pass")
    args = parser.parse_args(argv)
    print("\n".join(table(args.repeats, args.steps, args.show)))


if __name__ == "__main__":
    main()
