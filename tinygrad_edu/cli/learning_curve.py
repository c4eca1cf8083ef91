"""``tinygrad-edu learning-curve``: train the circle task (or another ``--task``) on growing training
sets and plot test accuracy against training-set size, the article's claim that more data helps,
measured."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .._io import write_text
from ..viz import plots
from ._common import CLIError, finish_outputs, positive_int
from ._resources import check_training_fits
from .circle import (add_model_arguments, add_task_arguments, add_training_arguments, build_model, derived_seeds,
                     check_two_classes, fit_or_fail, make_task_data, prepare_out, size_list, task_noise, task_radius)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "learning-curve", help="plot test accuracy against training-set size on the circle task (or --task)",
        description="For each training-set size, train the circle task's network (same options as 'circle') "
                    "on that many points and measure its accuracy on one fixed, separately drawn test set. "
                    "Writes DIR/learning_curve.png and DIR/learning_curve.json. Every size trains for the "
                    "same number of epochs, so larger sets also get more gradient steps, as in the article.")
    parser.add_argument("--sizes", type=size_list, default=[100, 300, 1000, 3000, 5000], metavar="N,N,...",
                        help="training-set sizes (default: 100,300,1000,3000,5000)")
    parser.add_argument("--test-samples", type=positive_int, default=1000,
                        help="size of the fixed test set (default: %(default)s)")
    parser.add_argument("--repeats", type=positive_int, default=1,
                        help="runs per size with different seeds; the plot shows their mean and range "
                             "(default: %(default)s)")
    add_task_arguments(parser.add_argument_group("data"))
    add_model_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output directory (default: runs/TASK, e.g. runs/circle)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sizes = sorted(set(args.sizes))
    check_training_fits(f"--sizes {max(sizes)} with --test-samples {args.test_samples}", 2, [*args.hidden, 1],
                        max(sizes) + args.test_samples)
    out = prepare_out(args.out or f"runs/{args.task}")
    if args.task == "circle":
        check_two_classes(task_radius(args), min(sizes), "the smallest of --sizes")
        check_two_classes(task_radius(args), args.test_samples, "--test-samples")
    test_acc: list[list[float]] = [[] for _ in sizes]
    train_acc: list[list[float]] = [[] for _ in sizes]
    interrupted = False
    diverged: CLIError | None = None  # the sizes that finished before are still written
    for repeat in range(args.repeats):
        data_seed, test_seed, init_seed, shuffle_seed = derived_seeds(args.seed + repeat)
        # One pool per repeat: each size trains on its first n points, so larger sets contain smaller ones.
        X_pool, y_pool = make_task_data(args, max(sizes), data_seed)
        X_test, y_test = make_task_data(args, args.test_samples, test_seed)
        for i, n in enumerate(sizes):
            model, objective = build_model(args, 2, init_seed)
            if not args.quiet:
                print(f"training on {n} points (seed {args.seed + repeat})", file=sys.stderr, flush=True)
            try:
                history = fit_or_fail(model, objective, X_pool[:n], y_pool[:n], args, seed=shuffle_seed,
                                      X_test=X_test, y_test=y_test)
            except CLIError as err:
                diverged = CLIError(f"{n} training points: {err}")
                break
            if history.interrupted:
                interrupted = True
                break
            test_acc[i].append(history.test_accuracy[-1])
            train_acc[i].append(history.train_accuracy[-1])
        if interrupted or diverged:
            break
    done = [i for i in range(len(sizes)) if test_acc[i]]
    if not done:
        raise diverged or CLIError("interrupted before any training-set size finished; nothing to plot")
    sizes = [sizes[i] for i in done]
    test_acc, train_acc = [test_acc[i] for i in done], [train_acc[i] for i in done]
    png = out / "learning_curve.png"
    record = {"task": args.task, "noise": task_noise(args), "sizes": sizes, "test_accuracy": test_acc, "train_accuracy": train_acc, "seed": args.seed,
              "repeats": args.repeats, "epochs": args.epochs, "test_samples": args.test_samples,
              "interrupted": interrupted, "diverged": str(diverged) if diverged else None}
    with finish_outputs("learning-curve") as interrupts:
        plots.plot_learning_curve(sizes, test_acc, png, train_accuracy=train_acc)
        write_text(out / "learning_curve.json", json.dumps(record, indent=1) + "\n")
    for n, accs in zip(sizes, test_acc):
        print(f"{n:>6} training points: test accuracy {100 * float(np.mean(accs)):.2f}%")
    if not args.quiet:
        print(f"wrote {png}\nwrote {out / 'learning_curve.json'}", file=sys.stderr)
    if interrupted:
        print("interrupted; the plot shows the sizes that finished", file=sys.stderr)
    if diverged:
        raise CLIError(f"{diverged} (the outputs show the sizes that finished before)")
    return 130 if interrupted or interrupts.count else 0
