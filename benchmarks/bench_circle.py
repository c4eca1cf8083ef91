"""The full circle configuration (5000 points, 20% held out, 2-8-1 ReLU/sigmoid MLP, binary
cross-entropy from the logit, plain SGD lr 0.1, batch 32, 50 epochs) trained four ways, side by
side in one process, on the same data, initial weights and minibatch order:

- ``scalar``: ``train.fit(engine="scalar")``, a graph of Values per minibatch;
- ``scalar-gc``: the same with Python's cyclic garbage collector left on (``fit`` pauses it for the
  scalar engine), to measure what the pause saves (not in ``run.py``'s table: another slow run);
- ``batched``: ``train.fit(engine="batched")``, the traced tape replayed on NumPy arrays;
- ``torch``: the same minibatch loop in PyTorch on the CPU, one thread (``torch==2.13.0``);
- ``numpy``: a hand-written NumPy network of the same shape (matrix products, manual gradients);
- ``jax-jit``: the same loop in JAX on the CPU (float64), one ``jax.jit``-compiled step per minibatch;
- ``jax-scan``: JAX with ``lax.scan`` over each epoch's minibatches: one compiled call per epoch.

Every run evaluates train and test loss and accuracy after each epoch, as ``fit`` does. Each
implementation runs once untimed before the timed repeats (PyTorch's first training run in a
process is about 2.5x slower than the next); JAX's compilation is timed apart, on that first run,
and left out of its repeats. JAX and PyTorch are benchmark-only comparisons (the ``bench`` extra).

Run: python benchmarks/bench_circle.py [--repeats 5] [--scalar-repeats 1] [--skip scalar,torch]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from dataclasses import dataclass

import numpy as np

from tinygrad_edu import data, nn, optim, train
from tinygrad_edu.cli.circle import derived_seeds

SAMPLES, TEST_SIZE, HIDDEN, LR, BATCH, EPOCHS = 5000, 0.2, 8, 0.1, 32, 50
IMPLEMENTATIONS = ("scalar", "scalar-gc", "batched", "torch", "numpy", "jax-jit", "jax-scan")


def circle_problem(seed: int = 0):
    """Data, split, initial weights (as ``tinygrad-edu circle --seed``) and the shuffle seed."""
    data_seed, split_seed, init_seed, shuffle_seed = derived_seeds(seed)
    X, y = data.circle(SAMPLES, seed=data_seed)
    X_train, X_test, y_train, y_test = data.train_test_split(X, y, TEST_SIZE, seed=split_seed)
    model = nn.MLP(2, [HIDDEN, 1], "relu", "sigmoid", seed=init_seed)
    return (X_train, y_train, X_test, y_test), model, shuffle_seed


def initial_arrays(model: nn.MLP):
    """The MLP's weights as arrays: W1 (8, 2), b1 (8,), w2 (8,), b2 ()."""
    hidden, out = model.layers[0].neurons, model.layers[1].neurons[0]
    W1 = np.array([[w.data for w in n.w] for n in hidden])
    b1 = np.array([n.b.data for n in hidden])
    return W1, b1, np.array([w.data for w in out.w]), np.float64(out.b.data)


def run_ours(engine: str | train.Engine, seed: int = 0) -> tuple[float, float]:
    (X_train, y_train, X_test, y_test), model, shuffle_seed = circle_problem(seed)
    start = time.perf_counter()
    history = train.fit(model, X_train, y_train, X_test=X_test, y_test=y_test, loss="bce",
                        optimizer=optim.SGD(model.parameters(), lr=LR), epochs=EPOCHS, batch_size=BATCH,
                        seed=shuffle_seed, engine=engine, progress=False)
    return time.perf_counter() - start, history.test_accuracy[-1]


def _bce_logits(z: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0) - z * t + np.log1p(np.exp(-np.abs(z)))


def run_numpy(seed: int = 0) -> tuple[float, float]:
    """The network by hand: forward with matrix products, gradients written out, SGD in place."""
    (X_train, y_train, X_test, y_test), model, shuffle_seed = circle_problem(seed)
    W1, b1, w2, b2 = initial_arrays(model)
    rng = np.random.default_rng(shuffle_seed)

    def logits(X):
        return np.maximum(X @ W1.T + b1, 0.0) @ w2 + b2

    def evaluate(X, y):
        z = logits(X)
        return _bce_logits(z, y).mean(), ((z > 0) == (y > 0.5)).mean()

    start = time.perf_counter()
    for _ in range(EPOCHS):
        for Xb, yb in data.minibatches(X_train, y_train, BATCH, seed=rng):
            h_pre = Xb @ W1.T + b1
            h = np.maximum(h_pre, 0.0)
            z = h @ w2 + b2
            e = np.exp(-np.abs(z))
            p = np.where(z >= 0, 1.0, e) / (1.0 + e)
            dz = (p - yb) / len(yb)  # d(mean BCE)/dz
            dh = np.outer(dz, w2) * (h_pre > 0)
            w2 -= LR * (h.T @ dz)
            b2 -= LR * dz.sum()
            W1 -= LR * (dh.T @ Xb)
            b1 -= LR * dh.sum(axis=0)
        evaluate(X_train, y_train)
        _, accuracy = evaluate(X_test, y_test)
    return time.perf_counter() - start, float(accuracy)


def run_torch(seed: int = 0) -> tuple[float, float]:
    """The same minibatch loop in PyTorch (CPU, float64, one thread): nn.Linear layers,
    BCEWithLogitsLoss, torch.optim.SGD."""
    import torch

    torch.set_num_threads(1)
    (X_train, y_train, X_test, y_test), model, shuffle_seed = circle_problem(seed)
    W1, b1, w2, b2 = initial_arrays(model)
    net = torch.nn.Sequential(torch.nn.Linear(2, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(W1))
        net[0].bias.copy_(torch.from_numpy(b1))
        net[2].weight.copy_(torch.from_numpy(w2[None, :]))
        net[2].bias.fill_(float(b2))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    rng = np.random.default_rng(shuffle_seed)
    Xtr, ytr = torch.from_numpy(X_train), torch.from_numpy(y_train)
    Xte, yte = torch.from_numpy(X_test), torch.from_numpy(y_test)

    def evaluate(X, y):
        with torch.no_grad():
            z = net(X)[:, 0]
            return loss_fn(z, y).item(), ((z > 0) == (y > 0.5)).double().mean().item()

    start = time.perf_counter()
    for _ in range(EPOCHS):
        for Xb, yb in data.minibatches(X_train, y_train, BATCH, seed=rng):
            opt.zero_grad()
            loss = loss_fn(net(torch.from_numpy(Xb))[:, 0], torch.from_numpy(yb))
            loss.backward()
            opt.step()
        evaluate(Xtr, ytr)
        _, accuracy = evaluate(Xte, yte)
    return time.perf_counter() - start, accuracy


class JaxCircle:
    """The circle task in JAX (CPU, float64): the same network, loss (binary cross-entropy from
    the logit), SGD step, data, initial weights and minibatch order as the others. The step and the
    per-epoch scan are compiled once per process (:meth:`compile`, timed apart)."""

    def __init__(self):
        import jax

        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_platforms", "cpu")
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp

        def logits(params, X):
            W1, b1, w2, b2 = params
            return jnp.maximum(X @ W1.T + b1, 0.0) @ w2 + b2

        def loss(params, X, y):
            z = logits(params, X)
            return jnp.mean(jnp.maximum(z, 0.0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))

        def step(params, X, y):
            grads = jax.grad(loss)(params, X, y)
            return tuple(p - LR * g for p, g in zip(params, grads))

        def epoch(params, Xs, ys):  # the epoch's minibatches stacked: (batches, BATCH, 2), (batches, BATCH)
            return jax.lax.scan(lambda p, xy: (step(p, *xy), None), params, (Xs, ys))[0]

        def evaluate(params, X, y):
            z = logits(params, X)
            loss = jnp.mean(jnp.maximum(z, 0.0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))
            return loss, jnp.mean(((z > 0) == (y > 0.5)).astype(jnp.float64))

        self.step, self.epoch, self.evaluate = jax.jit(step), jax.jit(epoch), jax.jit(evaluate)
        self.compile_seconds: dict[str, float] = {}

    def compile(self, problem, params) -> None:
        """Compile every shape the runs use (full and last batch, the scan, both evaluations)."""
        (X_train, y_train, X_test, y_test) = problem
        n, jnp = len(X_train), self.jnp
        full, rest = divmod(n, BATCH)
        work = {
            "jit step": [(self.step, (size, 2), (size,)) for size in (BATCH, rest) if size],
            "scan epoch": [(self.epoch, (full, BATCH, 2), (full, BATCH))],
            "evaluation": [(self.evaluate, (len(X), 2), (len(X),)) for X in (X_train, X_test)],
        }
        for name, calls in work.items():
            start = time.perf_counter()
            for fn, x_shape, y_shape in calls:  # a call, so that the jit cache holds the result
                self.jax.block_until_ready(fn(params, jnp.zeros(x_shape), jnp.zeros(y_shape)))
            self.compile_seconds[name] = time.perf_counter() - start

    def run(self, scan: bool, seed: int = 0) -> tuple[float, float]:
        jnp = self.jnp
        problem, model, shuffle_seed = circle_problem(seed)
        X_train, y_train, X_test, y_test = problem
        params = tuple(jnp.asarray(a) for a in initial_arrays(model))
        if not self.compile_seconds:
            self.compile(problem, params)
        rng = np.random.default_rng(shuffle_seed)
        n = len(X_train)
        full = n // BATCH * BATCH
        Xtr, ytr, Xte, yte = (jnp.asarray(a) for a in problem)
        start = time.perf_counter()
        for _ in range(EPOCHS):
            if scan:  # the same permutation data.minibatches draws, the full batches in one call
                order = data.batch_order(n, rng)
                Xs, ys = X_train[order], y_train[order]
                params = self.epoch(params, Xs[:full].reshape(-1, BATCH, 2), ys[:full].reshape(-1, BATCH))
                if full < n:
                    params = self.step(params, Xs[full:], ys[full:])
            else:
                for Xb, yb in data.minibatches(X_train, y_train, BATCH, seed=rng):
                    params = self.step(params, Xb, yb)
            float(self.evaluate(params, Xtr, ytr)[0])  # metrics as fit records them: on the host
            _, accuracy = self.evaluate(params, Xte, yte)
            accuracy = float(accuracy)
        return time.perf_counter() - start, accuracy


_JAX: list[JaxCircle] = []


def run_jax(scan: bool) -> tuple[float, float]:
    if not _JAX:
        _JAX.append(JaxCircle())
    return _JAX[0].run(scan)


def jax_compile_seconds() -> dict[str, float]:
    """Seconds JAX spent compiling, per runner (after a measurement; empty if JAX did not run)."""
    return dict(_JAX[0].compile_seconds) if _JAX else {}


RUNNERS = {
    "scalar": lambda: run_ours("scalar"),
    "scalar-gc": lambda: run_ours(dataclasses.replace(train.ENGINES["scalar"], pause_gc=False)),
    "batched": lambda: run_ours("batched"),
    "torch": run_torch,
    "numpy": run_numpy,
    "jax-jit": lambda: run_jax(scan=False),
    "jax-scan": lambda: run_jax(scan=True),
}


@dataclass
class Result:
    """One implementation's timed repeats (seconds) and its test accuracy."""

    times: list[float]
    accuracy: float

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def spread(self) -> str:
        """min-max of the repeats, relative to the median, e.g. "-3%/+8%"."""
        m = self.median
        return f"-{100 * (1 - min(self.times) / m):.0f}%/+{100 * (max(self.times) / m - 1):.0f}%"


def measure(repeats: int, scalar_repeats: int, skip: set[str]) -> dict[str, Result]:
    """name -> :class:`Result`. Every implementation but the scalar engine runs once untimed first
    (warm-up: imports, caches, PyTorch's first-run cost, JAX's compilation); then the repeats are
    interleaved across the implementations so that a noisy moment on the machine hits them all alike."""
    names = [name for name in IMPLEMENTATIONS if name not in skip]
    slow = ("scalar", "scalar-gc")
    for name in names:
        if name not in slow:
            RUNNERS[name]()
    results = {name: Result([], 0.0) for name in names}
    for r in range(max(repeats, scalar_repeats)):
        for name in names:
            if r >= (scalar_repeats if name in slow else repeats):
                continue
            seconds, acc = RUNNERS[name]()
            results[name].times.append(seconds)
            results[name].accuracy = acc
    return results


def report(results: dict[str, Result]) -> list[str]:
    steps = EPOCHS * -(-int(SAMPLES * (1 - TEST_SIZE)) // BATCH)
    lines = [f"Full circle configuration ({SAMPLES} samples, 2-{HIDDEN}-1, batch {BATCH}, {EPOCHS} epochs = {steps} steps, "
             f"SGD lr {LR}), median wall time, evaluation after every epoch included",
             f"{'implementation':<16}{'seconds':>10}{'us/step':>9}{'repeats':>9}{'spread':>13}{'test acc':>10}{'batched is':>16}"]
    ours = results["batched"].median if "batched" in results else None
    for name in IMPLEMENTATIONS:
        if name not in results:
            continue
        res = results[name]
        seconds = res.median
        if ours is None or name == "batched":
            ratio = ""
        elif seconds >= ours:
            ratio = f"{seconds / ours:.2f}x faster"
        else:
            ratio = f"{ours / seconds:.2f}x slower"
        lines.append(f"{name:<16}{seconds:>10.3f}{1e6 * seconds / steps:>9.1f}{len(res.times):>9}{res.spread:>13}"
                     f"{100 * res.accuracy:>9.2f}%{ratio:>16}")
    compiled = jax_compile_seconds()
    if compiled:
        lines.append("JAX compile time, not in the times above: "
                     + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in compiled.items()))
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the fast implementations")
    parser.add_argument("--scalar-repeats", type=int, default=1, help="repeats of the scalar engine (~1-2 min each)")
    parser.add_argument("--skip", default="", help="comma-separated implementations to leave out")
    args = parser.parse_args(argv)
    print("\n".join(report(measure(args.repeats, args.scalar_repeats, set(filter(None, args.skip.split(",")))))))


if __name__ == "__main__":
    main()
