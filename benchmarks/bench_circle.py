"""The full circle configuration (5000 points, 20% held out, 2-8-1 ReLU/sigmoid MLP, binary
cross-entropy from the logit, plain SGD lr 0.1, batch 32, 50 epochs) trained four ways, side by
side in one process, on the same data, initial weights and minibatch order:

- ``scalar``: ``train.fit(engine="scalar")``, a graph of Values per minibatch;
- ``batched``: ``train.fit(engine="batched")``, the traced tape replayed on NumPy arrays;
- ``torch``: the same minibatch loop in PyTorch on the CPU, one thread (``torch==2.13.0``);
- ``numpy``: a hand-written NumPy network of the same shape (matrix products, manual gradients).

Every run evaluates train and test loss and accuracy after each epoch, as ``fit`` does.

Run: python benchmarks/bench_circle.py [--repeats 5] [--scalar-repeats 1] [--skip scalar,torch]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tinygrad_edu import data, nn, optim, train
from tinygrad_edu.cli.circle import derived_seeds

SAMPLES, TEST_SIZE, HIDDEN, LR, BATCH, EPOCHS = 5000, 0.2, 8, 0.1, 32, 50
IMPLEMENTATIONS = ("scalar", "batched", "torch", "numpy")


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


def run_ours(engine: str, seed: int = 0) -> tuple[float, float]:
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


RUNNERS = {
    "scalar": lambda: run_ours("scalar"),
    "batched": lambda: run_ours("batched"),
    "torch": run_torch,
    "numpy": run_numpy,
}


def measure(repeats: int, scalar_repeats: int, skip: set[str]) -> dict[str, tuple[float, float, int]]:
    """name -> (median seconds, test accuracy, repeats); the repeats are interleaved across the
    implementations so that a noisy moment on the machine hits them all alike."""
    times: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS if name not in skip}
    accuracy: dict[str, float] = {}
    for r in range(max(repeats, scalar_repeats)):
        for name in times:
            if r >= (scalar_repeats if name == "scalar" else repeats):
                continue
            seconds, acc = RUNNERS[name]()
            times[name].append(seconds)
            accuracy[name] = acc
    return {name: (statistics.median(t), accuracy[name], len(t)) for name, t in times.items()}


def report(results: dict[str, tuple[float, float, int]]) -> list[str]:
    lines = [f"Full circle configuration ({SAMPLES} samples, 2-{HIDDEN}-1, batch {BATCH}, {EPOCHS} epochs, "
             f"SGD lr {LR}), median wall time",
             f"{'implementation':<16}{'seconds':>10}{'repeats':>9}{'test acc':>10}{'batched is':>16}"]
    ours = results.get("batched", (None,))[0]
    for name in IMPLEMENTATIONS:
        if name not in results:
            continue
        seconds, acc, n = results[name]
        if ours is None or name == "batched":
            ratio = ""
        elif seconds >= ours:
            ratio = f"{seconds / ours:.1f}x faster"
        else:
            ratio = f"{ours / seconds:.2f}x slower"
        lines.append(f"{name:<16}{seconds:>10.3f}{n:>9}{100 * acc:>9.2f}%{ratio:>16}")
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
