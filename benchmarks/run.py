"""The whole benchmark suite in one process, printed as tables (the numbers in docs/performance.md):

1. the scalar engine vs micrograd, per node: forward, backward, bytes (bench_engine.py);
2. the full circle configuration: wall time and test accuracy of our scalar and batched engines,
   PyTorch's CPU minibatch loop, a hand-written NumPy network and JAX (a jit-compiled step, and
   lax.scan over each epoch; compile time apart), with the target ratios checked (bench_circle.py);
3. backward of 100k- vs 1M-node chains (bench_engine.py);
4. the batched engine's optimisation passes one by one: groups, NumPy calls and time per step
   (bench_passes.py);
5. forward mode, Jacobians, Hessians and HVPs against torch.func, and the derivatives at kinks
   against PyTorch's autograd (bench_functional.py).

Run: python benchmarks/run.py [--repeats 9] [--scalar-repeats 1]   (needs the `bench` extra)
Takes about a minute on a quiet machine, most of it the scalar engine on the full circle task.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_circle  # noqa: E402
import bench_engine  # noqa: E402
import bench_passes  # noqa: E402

# The targets for the batched engine, as (other implementation, bound, text): our median
# time divided by theirs must be at most the bound.
TARGETS = (
    ("numpy", 0.8, "at most {:.1f}x the hand-written NumPy network's time"),
    ("jax-jit", 1.0, "no slower than a jit-compiled JAX step ({:.1f}x its time)"),
    ("torch", 0.2, "at least 5x faster than the PyTorch CPU minibatch loop ({:.1f}x its time)"),
)


def check_targets(results) -> list[str]:
    if "batched" not in results:
        return []
    ours = results["batched"]
    lines = ["Targets for the batched engine (ratios of medians from this run):"]
    for name, bound, text in TARGETS:
        if name not in results:
            continue
        ratio = ours.median / results[name].median
        lines.append(f"  {'met   ' if ratio <= bound else 'MISSED'} {text.format(bound)}: {ratio:.3f}x its time")
    same = all(abs(r.accuracy - ours.accuracy) < 1e-9 for r in results.values())  # 1/1000 apart, or equal
    lines.append(f"  {'met   ' if same else 'MISSED'} the same test accuracy: "
                 + ", ".join(f"{n} {100 * r.accuracy:.2f}%" for n, r in results.items()))
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9,
                        help="repeats of each fast measurement (medians; with fewer, one slow repeat moves them)")
    parser.add_argument("--scalar-repeats", type=int, default=1,
                        help="repeats of the scalar engine on the full circle task (about 15 s each on a quiet machine)")
    args = parser.parse_args(argv)
    try:
        from micrograd.engine import Value as MicroValue
        import torch
        import jax
    except ImportError as err:
        sys.exit(f"{err.name} is not installed: pip install -e '.[bench]'")

    print(f"tinygrad_edu benchmark suite | Python {platform.python_version()}, NumPy "
          f"{__import__('numpy').__version__}, torch {torch.__version__} (1 thread), jax {jax.__version__} (CPU) | "
          f"{os.cpu_count()} cores\n")
    print("(1) ", end="")
    bench_engine.per_node_table(args.repeats, MicroValue)
    print("\n(2) ", end="")
    results = bench_circle.measure(args.repeats, args.scalar_repeats, skip={"scalar-gc"})
    print("\n".join(bench_circle.report(results)))
    print("\n".join(check_targets(results)))
    print("\n(3) ", end="")
    bench_engine.chain_table()
    print("\n(4) ", end="")
    print("\n".join(bench_passes.table(max(args.repeats, 5), 2000)))
    print("\n(5) Forward mode and higher derivatives against torch.func (float64), median of "
          f"{args.repeats} repeats")
    import bench_functional  # imports torch: only once the check above has passed

    bench_functional.functional_table(args.repeats)
    bench_functional.kink_table()


if __name__ == "__main__":
    main()
