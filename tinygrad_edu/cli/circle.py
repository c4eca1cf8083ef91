"""``tinygrad-edu circle``: train an MLP to tell points inside a circle from points outside it (the
article's task), then write the decision boundary, the training curves and the model. ``--task``
swaps in another two-class problem of :mod:`tinygrad_edu.data` (moons, XOR, spirals, blobs).

The option helpers here (data, model, training, output) are shared with ``learning-curve``.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from .. import Value, data, nn, optim, train
from ..serialize import save_model
from ..viz import GraphTooLargeError, GraphvizNotFoundError, draw_graph, plots, save_graph
from ..viz.layout import LayoutError
from ._common import CLIError, finish_outputs, fraction, non_negative_float, non_negative_int, positive_float, positive_int, shown
from ._resources import check_training_fits

LR_HELP = (
    "learning rate (default: %(default)s). Why not Keras's SGD default 0.01, which the article uses: with "
    "plain SGD, batch 32 and 50 epochs, 0.01 is still descending when training stops (88-91%% test accuracy "
    "on seeds 0-4; about 85%% in other implementations) and 0.03 reaches 96-98%%. 0.1 is the smallest rate "
    "that passes 98%% on every one of seeds 0-4 (98.2-99.5%%, about 99%%); 0.3 and 1.0 gain nothing"
)


def size_list(text: str) -> list[int]:
    """Comma-separated positive integers, e.g. ``8`` or ``16,16``."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {shown(text)}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {shown(text)}")
    return sizes


def add_task_arguments(group) -> None:
    """``--task``, ``--radius`` and ``--noise``: which data set of :data:`data.TASKS` to learn, the
    circle's radius and the noise."""
    group.add_argument("--task", choices=tuple(data.TASKS), default="circle",
                       help="the data: inside/outside a circle (the article's task), two moons, the XOR "
                            "quadrants, two spirals or two Gaussian blobs (default: %(default)s)")
    group.add_argument("--radius", type=positive_float, default=None,
                       help="radius of the circle; label 1 inside (default: 0.5; --task circle only)")
    group.add_argument("--noise", type=non_negative_float, default=None,
                       help="standard deviation of the Gaussian noise added to each point (default: the "
                            "task's own: " + ", ".join(f"{name} {_default_noise(name):g}" for name in data.TASKS) + ")")


def _default_noise(task: str) -> float:
    return inspect.signature(data.TASKS[task]).parameters["noise"].default


def task_noise(args: argparse.Namespace) -> float:
    """The noise the run uses: ``--noise``, or the task's default."""
    return _default_noise(args.task) if args.noise is None else args.noise


def make_task_data(args: argparse.Namespace, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of ``--task`` (with ``--radius`` for the circle), refusing an option that does
    not apply to it."""
    if args.task == "circle":
        return data.circle(n, radius=task_radius(args), seed=seed, noise=task_noise(args))
    if getattr(args, "radius", None) is not None:
        raise CLIError(f"--radius applies to --task circle, not --task {args.task}; leave it out")
    return data.make_task(args.task, n, noise=task_noise(args), seed=seed)


def task_radius(args: argparse.Namespace) -> float:
    """The circle's radius: ``--radius``, or the article's 0.5 (commands without ``--radius`` too)."""
    radius = getattr(args, "radius", None)
    return 0.5 if radius is None else radius


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--hidden", type=size_list, default=[8], metavar="SIZES",
                       help="hidden layer sizes, comma-separated (default: 8, the article's 2-8-1 network)")
    group.add_argument("--activation", choices=nn.ACTIVATIONS, default="relu",
                       help="activation of the hidden layers (default: %(default)s)")
    group.add_argument("--output-activation", choices=nn.ACTIVATIONS, default="sigmoid",
                       help="activation of the output neuron (default: %(default)s)")
    group.add_argument("--loss", choices=train.LOSSES, default="bce",
                       help="bce: binary cross-entropy (computed from the logit, so it never takes log(0)); "
                            "mse: squared error; hinge: needs a linear or tanh output (default: %(default)s)")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                       help="plain SGD as in the article, or Adam (default: %(default)s)")
    group.add_argument("--lr", type=positive_float, default=train.DEFAULT_LR, help=LR_HELP)
    group.add_argument("--momentum", type=non_negative_float, default=0.0,
                       help="SGD momentum (default: %(default)s)")
    group.add_argument("--nesterov", action="store_true", help="Nesterov momentum (SGD with --momentum > 0)")
    group.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                       help="L2 penalty added to the gradient (default: %(default)s)")
    group.add_argument("--batch-size", type=positive_int, default=32, help="minibatch size (default: %(default)s)")
    group.add_argument("--epochs", type=positive_int, default=50, help="passes over the training set (default: %(default)s)")
    group.add_argument("--seed", type=non_negative_int, default=0,
                       help="seeds everything: data, split, initial weights, shuffles (default: %(default)s)")
    group.add_argument("--engine", choices=sorted(train.ENGINES), default="batched",
                       help="how the loss and gradients are computed: batched replays the per-sample graph, "
                            "traced once, on NumPy arrays (about 100x faster on the full task, see docs/performance.md); scalar builds "
                            "a graph of Values per minibatch, the reference (default: %(default)s)")
    group.add_argument("--quiet", action="store_true", help="no progress output, only the result line")


def derived_seeds(seed: int) -> tuple[int, int, int, int]:
    """Independent seeds for the data, the split, the initial weights and the shuffles."""
    return tuple(int(s) for s in np.random.SeedSequence(seed).generate_state(4))


def build_model(args: argparse.Namespace, nin: int, seed: int) -> tuple[nn.MLP, train.Objective]:
    model = nn.MLP(nin, [*args.hidden, 1], args.activation, args.output_activation, seed=seed)
    try:
        objective = train.make_objective(args.loss, model)
    except ValueError as err:
        raise CLIError(f"{err} (--loss {args.loss} with --output-activation {args.output_activation})") from None
    return model, objective


def build_optimizer(args: argparse.Namespace, model: nn.Module) -> optim.Optimizer:
    if args.optimizer == "adam":
        if args.momentum or args.nesterov:
            raise CLIError("--momentum and --nesterov apply to --optimizer sgd; Adam has its own momentum")
        return optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    if args.nesterov and not args.momentum:
        raise CLIError("--nesterov needs --momentum > 0 (e.g. --momentum 0.9)")
    return optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                     nesterov=args.nesterov)


def prepare_out(path: str) -> Path:
    """Create the output directory and check that it is writable, before any training time is spent."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise CLIError(f"cannot write to --out {path}: {err.strerror or err}; choose another directory") from None
    return out


def fit_or_fail(model, objective, X_train, y_train, args, *, seed: int, X_test=None, y_test=None,
                optimizer=None, progress: bool | None = None) -> train.History:
    try:
        return train.fit(model, X_train, y_train, X_test=X_test, y_test=y_test, loss=objective,
                         optimizer=optimizer or build_optimizer(args, model), epochs=args.epochs,
                         batch_size=args.batch_size, seed=seed, engine=args.engine,
                         progress=not args.quiet if progress is None else progress)
    except train.TrainingDiverged as err:
        raise CLIError(f"{err.cause}: training diverged; {divergence_hint(args)}") from None
    except (FloatingPointError, OverflowError) as err:
        raise CLIError(f"{err} (e.g. --lr {args.lr / 10:g})") from None


def divergence_hint(args: argparse.Namespace) -> str:
    """Which option to change when training diverged, and to what."""
    if args.optimizer == "sgd" and args.momentum >= 1.0:
        return (f"--momentum {args.momentum:g} keeps every past step at full weight or more, so the steps grow: "
                "use a value below 1 (e.g. --momentum 0.9)")
    return f"try a smaller --lr (e.g. --lr {min(args.lr / 10, train.DEFAULT_LR):g})"


def check_two_classes(radius: float, samples: int, samples_option: str = "--samples") -> None:
    """Refuse a radius that leaves (all but surely) one class: the points are uniform in [-1, 1]²,
    so a circle of radius >= sqrt(2) holds all of them, and pi r² / 4 of them are expected inside."""
    if radius >= math.sqrt(2.0):
        raise CLIError(f"--radius {radius:g}: every point of the square [-1, 1]² lies inside a circle of radius "
                       f"{math.sqrt(2.0):.3f} or more, so there is only one class to learn; use a radius below "
                       "1.414 (the article's is 0.5)")
    expected = samples * math.pi * radius * radius / 4.0
    if expected < 1.0:
        raise CLIError(f"--radius {radius:g} with {samples_option} {samples} puts about {expected:.2g} points inside the "
                       "circle, so there is only one class to learn; use a larger radius (the article's is 0.5) "
                       f"or more points ({samples_option.split()[-1]})")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "circle", help="train the circle task and plot its decision boundary",
        description="Learn to tell points inside a circle of radius 0.5 from points outside it, from uniform "
                    "random points in [-1, 1]^2. The defaults are the article's configuration: 5000 samples, "
                    "20% held out, a 2-8-1 network (ReLU, then sigmoid), binary cross-entropy, SGD, batch 32, "
                    "50 epochs, seed 0 (with learning rate 0.1, see --lr); --task learns another of the data "
                    "sets instead (moons, xor, spirals, blobs). Writes DIR/decision_boundary.png, "
                    "DIR/curves.png, DIR/model.json and DIR/graph.svg (one training sample's loss graph after "
                    "backward, clustered by layer); prints 'test accuracy: NN.NN%' last. Ctrl-C stops "
                    "after the current batch and still writes everything.")
    group = parser.add_argument_group("data")
    group.add_argument("--samples", type=positive_int, default=5000, help="number of points (default: %(default)s)")
    group.add_argument("--test-size", type=fraction, default=0.2,
                       help="share of the points held out for testing (default: %(default)s)")
    add_task_arguments(group)
    add_model_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output directory (default: runs/TASK, e.g. runs/circle)")
    parser.set_defaults(func=run)


def draw_sample_graph(model: nn.Module, objective: train.Objective, x, target: float, path: Path,
                      index: int = 0) -> Path | None:
    """Draw one training sample's loss graph after backward, clustered by layer, to ``path``; its
    title says which sample (``index`` in the training set, its point and target). Returns the
    path, or ``None`` (with a one-line warning) when it could not be rendered; a missing picture
    never costs the rest of the run's outputs."""
    inputs = [Value(float(v), label=f"x{i}") for i, v in enumerate(x)]
    model.zero_grad()
    loss = objective.sample_loss(model, inputs, float(target))
    loss.label = "loss"
    loss.backward()
    try:
        point = ", ".join(f"{float(v):.4g}" for v in x)
        title = (f"The {objective.loss} loss of training sample {index} (x = ({point}), target {float(target):g}) "
                 f"after backward")
        return save_graph(draw_graph(loss, cluster=True, title=title), path)
    except GraphvizNotFoundError as err:  # the message names the file and what was written instead
        print(f"warning: {err}", file=sys.stderr)
        return None
    except LayoutError as err:
        print(f"warning: {path.name} not drawn: {err}", file=sys.stderr)
        return None
    except GraphTooLargeError as err:
        print(f"warning: {path.name} not drawn: {err}", file=sys.stderr)
        return None
    finally:
        model.zero_grad()  # the picture's gradients are one sample's, not the optimizer's


def _say(args, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    check_training_fits(f"--samples {args.samples}", 2, [*args.hidden, 1], args.samples,
                        extra_evaluated=len(plots.decision_grid()))
    out = prepare_out(args.out or f"runs/{args.task}")
    data_seed, split_seed, init_seed, shuffle_seed = derived_seeds(args.seed)
    X, y = make_task_data(args, args.samples, data_seed)
    try:
        X_train, X_test, y_train, y_test = data.train_test_split(X, y, args.test_size, seed=split_seed)
    except ValueError as err:
        raise CLIError(f"--samples {args.samples} with --test-size {args.test_size}: {err}") from None
    if args.task == "circle":
        check_two_classes(task_radius(args), args.samples)
    model, objective = build_model(args, 2, init_seed)
    optimizer = build_optimizer(args, model)
    arch = "-".join(map(str, [2, *model.sizes]))
    _say(args, f"{args.task}: {len(X_train)} training / {len(X_test)} test points, MLP {arch} ({args.activation}, "
               f"{args.output_activation}), {args.loss}, {optimizer!r}, batch {args.batch_size}, "
               f"{args.epochs} epochs, seed {args.seed}, {args.engine} engine")

    history = fit_or_fail(model, objective, X_train, y_train, args, seed=shuffle_seed, X_test=X_test,
                          y_test=y_test, optimizer=optimizer)
    if history.epoch:
        accuracy = history.test_accuracy[-1]
    else:  # interrupted before the first batch finished
        accuracy = train.evaluate(model, X_test, y_test, loss=objective, engine=args.engine)[1]

    metadata = {
        "task": args.task, "loss": args.loss, "seed": args.seed, "samples": args.samples,
        "test_size": args.test_size, "noise": task_noise(args),
        **({"radius": task_radius(args)} if args.task == "circle" else {}), "optimizer": repr(optimizer),
        "batch_size": args.batch_size, "epochs": args.epochs, "epochs_done": history.epoch[-1] if history.epoch else 0,
        "interrupted": history.interrupted, "test_accuracy": accuracy, "engine": args.engine,
        "history": history.to_dict(),
    }
    with finish_outputs("circle") as interrupts:
        paths = [save_model(model, out / "model.json", metadata=metadata)]
        paths.append(out / "decision_boundary.png")
        plots.plot_decision_boundary(
            lambda pts: train.predict_proba(model, pts, loss=objective, engine=args.engine), X_test, y_test,
            paths[-1], radius=task_radius(args) if args.task == "circle" else None,
            class_names=data.CLASS_NAMES[args.task],
            title=f"MLP {arch}: {100 * accuracy:.2f}% of test points correct")
        paths.append(out / "curves.png")
        plots.plot_curves(history, paths[-1])
        graph_path = draw_sample_graph(model, objective, X_train[0], y_train[0], out / "graph.svg", index=0)
        if graph_path is not None:
            paths.append(graph_path)
    for path in paths:
        _say(args, f"wrote {path}")
    if history.interrupted:
        print(f"interrupted after {history.epoch[-1] if history.epoch else 0} of {args.epochs} epochs; "
              "outputs written", file=sys.stderr)
    elif interrupts.count:
        print("interrupted while writing; all outputs written", file=sys.stderr)
    print(f"test accuracy: {100 * accuracy:.2f}%")
    return 130 if history.interrupted or interrupts.count else 0
