"""``tinygrad-edu predict``: the probability a saved model gives one point (e.g. inside the circle)."""

from __future__ import annotations

import argparse

import numpy as np

from .. import train
from ..serialize import ModelFileError, load_checkpoint
from ._common import CLIError, finite_float


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="print a saved model's probability for a point",
        description="Load a model written by 'tinygrad-edu circle' (DIR/model.json) and print its probability "
                    "that the point X Y belongs to class 1 (inside the circle), e.g. "
                    "'tinygrad-edu predict --model runs/circle/model.json 0.1 -0.2'.")
    parser.add_argument("--model", required=True, metavar="PATH", help="a model.json file")
    parser.add_argument("coordinates", nargs="+", type=finite_float, metavar="X",
                        help="the point's coordinates, one per model input (two for the circle task: X Y)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        checkpoint = load_checkpoint(args.model)
    except ModelFileError as err:
        raise CLIError(str(err)) from None
    model = checkpoint.model
    if len(args.coordinates) != model.nin:
        raise CLIError(f"the model takes {model.nin} coordinates, got {len(args.coordinates)}")
    loss = checkpoint.metadata.get("loss", "bce")
    try:
        objective = train.make_objective(loss, model)
    except ValueError as err:
        raise CLIError(f"{args.model}: metadata.loss: {err}") from None
    probability = train.predict_proba(model, np.array([args.coordinates]), loss=objective)[0]
    print(f"{probability:.6f}")
    return 0
