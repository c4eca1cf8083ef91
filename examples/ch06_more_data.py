"""Chapter 6: more data helps.

The learning curve of the circle task: train the same network (2-8-1, SGD lr 0.1, batch 32) for
the same number of gradient steps on training sets of growing size, and measure the accuracy on
one fixed test set (and on the training set itself). Several seeds per size; the plot shows the
mean and the range. Uses the batched engine, which computes exactly what the scalar one does.
"""

from __future__ import annotations

import numpy as np

from _common import parse_args, save
from tinygrad_edu.data import circle, minibatches
from tinygrad_edu.nn import MLP
from tinygrad_edu.optim import SGD
from tinygrad_edu.train import ENGINES, evaluate, make_objective
from tinygrad_edu.viz.plots import plot_learning_curve

ENGINE = "batched"


def train_for_steps(X: np.ndarray, y: np.ndarray, steps: int, seed: int) -> MLP:
    """The circle network trained for exactly ``steps`` minibatch steps, cycling over (X, y)."""
    model = MLP(2, [8, 1], activation="relu", output_activation="sigmoid", seed=seed)
    objective, optimizer = make_objective("bce", model), SGD(model.parameters(), lr=0.1)
    step, rng = 0, np.random.default_rng(seed)
    while step < steps:
        for Xb, yb in minibatches(X, y, batch_size=32, seed=rng):
            optimizer.zero_grad()
            ENGINES[ENGINE].step(model, objective, Xb, yb)
            optimizer.step()
            step += 1
            if step == steps:
                break
    return model


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    if args.quick:
        sizes, seeds, steps = [16, 64, 256], range(1), 200
    else:
        sizes, seeds, steps = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096], range(5), 3000

    X_test, y_test = circle(2000, seed=12345)  # one fixed test set, never trained on
    test_acc = [[] for _ in sizes]
    train_acc = [[] for _ in sizes]
    for seed in seeds:
        X_pool, y_pool = circle(max(sizes), seed=seed)  # each size takes the first n points
        for i, n in enumerate(sizes):
            model = train_for_steps(X_pool[:n], y_pool[:n], steps, seed)
            train_acc[i].append(evaluate(model, X_pool[:n], y_pool[:n], engine=ENGINE)[1])
            test_acc[i].append(evaluate(model, X_test, y_test, engine=ENGINE)[1])
    for n, tr, te in zip(sizes, train_acc, test_acc):
        print(f"{n:>5} training points: train accuracy {100 * np.mean(tr):6.2f}%, test accuracy {100 * np.mean(te):6.2f}%")

    fig = plot_learning_curve(sizes, test_acc, train_accuracy=train_acc)
    fig.axes[0].set_title(f"More data helps: {steps} steps of SGD on each training set "
                          f"({len(seeds)} seed{'s' if len(seeds) > 1 else ''})", fontsize=10)
    save(fig, args.out, "ch06-learning-curve.png", dpi=60 if args.quick else 110)


if __name__ == "__main__":
    main()
