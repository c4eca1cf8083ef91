"""benchmarks/bench_engine.py and its floor (benchmarks/floor_engine.py) on the benchmark's graph:
the floor computes the engine's loss and gradients, so the two are timed on the same work, and the
per-node timing runs without micrograd installed."""

import math
import sys
from pathlib import Path

import pytest

from tinygrad_edu import Value

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_engine  # noqa: E402
from floor_engine import FloorValue  # noqa: E402


def flat(params):
    w1, b1, w2, b2 = params
    return [w for row in w1 for w in row] + b1 + w2 + [b2]


def test_the_floor_computes_the_engines_loss_and_gradients():
    ours, floor = bench_engine.make_problem(Value), bench_engine.make_problem(FloorValue)
    loss, floor_loss = bench_engine.build_loss(Value, *ours), bench_engine.build_loss(FloorValue, *floor)
    loss.backward()
    floor_loss.backward()
    assert math.isclose(floor_loss.data, loss.data, rel_tol=1e-12)
    for mine, theirs in zip(flat(ours[0]), flat(floor[0])):
        assert math.isclose(theirs.grad, mine.grad, rel_tol=1e-12, abs_tol=1e-15)
    assert any(p.grad != 0.0 for p in flat(ours[0]))
    assert bench_engine.count_nodes(floor_loss, "floor") == bench_engine.count_nodes(loss, "tinygrad_edu") == 2468


def test_the_floor_squares_only():
    with pytest.raises(NotImplementedError):
        FloorValue(2.0) ** 3


def test_engines_take_turns_and_report_per_engine_medians():
    result = bench_engine.time_engines((("tinygrad_edu", Value), ("floor", FloorValue)), repeats=2, collector=False)
    assert set(result) == {"tinygrad_edu", "floor"}
    for nodes, forward, backward in result.values():
        assert nodes == 2468 and forward > 0 and backward > 0
