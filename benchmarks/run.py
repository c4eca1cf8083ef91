"""The whole benchmark suite in one process, printed as tables (the numbers in docs/performance.md):

1. the scalar engine vs micrograd, per node: forward, backward, bytes (bench_engine.py);
2. the full circle configuration: wall time and test accuracy of our scalar and batched engines,
   PyTorch's CPU minibatch loop and a hand-written NumPy network, with the target ratios checked
   (bench_circle.py);
3. backward of 100k- vs 1M-node chains (bench_engine.py).

Run: python benchmarks/run.py [--repeats 5] [--scalar-repeats 1]   (needs the `bench` extra)
Takes about 3-4 minutes, most of it the scalar engine on the full circle task.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_circle  # noqa: E402
import bench_engine  # noqa: E402

# The targets for the batched engine, as (other implementation, bound, direction).
TARGETS = (
    ("numpy", 1.5, "at most {:.1f}x the hand-written NumPy network's time"),
    ("torch", 5.0, "at least {:.0f}x faster than the PyTorch CPU minibatch loop"),
    ("scalar", 100.0, "at least {:.0f}x faster than our scalar engine"),
)


def check_targets(results) -> list[str]:
    if "batched" not in results:
        return []
    ours, our_acc, _ = results["batched"]
    lines = ["Targets for the batched engine (ratios from this run):"]
    for name, bound, text in TARGETS:
        if name not in results:
            continue
        seconds, acc, _ = results[name]
        ratio = ours / seconds if name == "numpy" else seconds / ours
        met = ratio <= bound if name == "numpy" else ratio >= bound
        shown = f"{ratio:.2f}x its time" if name == "numpy" else f"{ratio:.1f}x faster"
        lines.append(f"  {'met ' if met else 'MISSED'} {text.format(bound)}: {shown}")
    same = all(abs(results[n][1] - our_acc) < 1e-12 for n in results)
    lines.append(f"  {'met ' if same else 'MISSED'} the same test accuracy: "
                 + ", ".join(f"{n} {100 * results[n][1]:.2f}%" for n in results))
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each fast measurement (medians)")
    parser.add_argument("--scalar-repeats", type=int, default=1,
                        help="repeats of the scalar engine on the full circle task (~1-2 min each)")
    args = parser.parse_args(argv)
    try:
        from micrograd.engine import Value as MicroValue
        import torch
    except ImportError as err:
        sys.exit(f"{err.name} is not installed: pip install -e '.[bench]'")

    print(f"tinygrad_edu benchmark suite | Python {platform.python_version()}, NumPy "
          f"{__import__('numpy').__version__}, torch {torch.__version__} (1 thread) | {os.cpu_count()} cores\n")
    print("(1) ", end="")
    bench_engine.per_node_table(args.repeats, MicroValue)
    print("\n(2) ", end="")
    results = bench_circle.measure(args.repeats, args.scalar_repeats, skip=set())
    print("\n".join(bench_circle.report(results)))
    print("\n".join(check_targets(results)))
    print("\n(3) ", end="")
    bench_engine.chain_table()


if __name__ == "__main__":
    main()
