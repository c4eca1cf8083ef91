"""Chapter 8: why a scalar engine is slow, and how the batched engine replays the tape.

Measures the time of one training step (mean loss of a minibatch, backward) of the circle
network on the scalar engine and on the batched engine, for growing batch sizes, and plots the
time per sample. Medians of several repeats; on a shared machine only the ratios are meaningful.
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np

from _common import parse_args, save
from tinygrad_edu.data import circle
from tinygrad_edu.nn import MLP
from tinygrad_edu.train import ENGINES, make_objective


def step_seconds(engine: str, batch: int, repeats: int) -> float:
    """Median wall time of one training step on ``batch`` samples (the tape is traced before timing)."""
    model = MLP(2, [8, 1], activation="relu", output_activation="sigmoid", seed=0)
    objective = make_objective("bce", model)
    X, y = circle(batch, seed=0)
    ENGINES[engine].step(model, objective, X, y)  # warm up: traces the tape once
    times = []
    for _ in range(repeats):
        model.zero_grad()
        start = time.perf_counter()
        ENGINES[engine].step(model, objective, X, y)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    batches = [1, 8, 32, 256] if args.quick else [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096]
    repeats = 3 if args.quick else 15

    fig, ax = plt.subplots(figsize=(7, 4.3))
    per_sample = {}
    for engine, color in (("scalar", "tab:purple"), ("batched", "tab:green")):
        # The scalar engine's cost per sample is flat: cap its largest batches to keep the run short.
        sizes = [b for b in batches if engine == "batched" or b <= 1024]
        per_sample[engine] = {b: step_seconds(engine, b, repeats) / b for b in sizes}
        ax.loglog(sizes, [1e6 * per_sample[engine][b] for b in sizes], "-o", color=color, label=f"{engine} engine")
    for b in batches:
        if b in per_sample["scalar"]:
            print(f"batch {b:>5}: scalar {1e6 * per_sample['scalar'][b]:8.1f} µs/sample, "
                  f"batched {1e6 * per_sample['batched'][b]:8.1f} µs/sample, "
                  f"ratio {per_sample['scalar'][b] / per_sample['batched'][b]:6.1f}x")
    ax.set(xlabel="batch size (samples per step)", ylabel="time per sample (µs, log scale)",
           title="One training step of the 2-8-1 circle network: forward + backward")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    save(fig, args.out, "ch08-time-per-sample.png", dpi=60 if args.quick else 110)


if __name__ == "__main__":
    main()
