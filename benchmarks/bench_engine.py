"""Scalar engine vs micrograd, side by side in one process: time per node for forward and
backward, and bytes per node, on the same graph (a 2-8-1 MLP on a batch of 32, written with the
operators both engines share), with this engine's design written by hand for those operations as
a floor (floor_engine.py); reverse mode with respect to some of the parameters (the rules
grad() runs, and its time); plus backward of 100k- vs 1M-node chains.

Run: python benchmarks/bench_engine.py [--repeats 7]   (needs the `bench` extra: micrograd)
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc

from floor_engine import FloorValue
from tinygrad_edu import Value as OurValue
from tinygrad_edu.engine import topological_order


def build_loss(V, params, batch):
    """2-8-1 MLP (ReLU hidden, linear output), mean squared error over the batch."""
    w1, b1, w2, b2 = params
    total = V(0.0)
    for (x0, x1), y in batch:
        hidden = [(w[0] * x0 + w[1] * x1 + b).relu() for w, b in zip(w1, b1)]
        out = b2
        for w, h in zip(w2, hidden):
            out = out + w * h
        total = total + (out - y) ** 2
    return total * (1.0 / len(batch))


def make_problem(V, seed=0):
    rng = random.Random(seed)
    w1 = [[V(rng.uniform(-1, 1)), V(rng.uniform(-1, 1))] for _ in range(8)]
    b1 = [V(0.0) for _ in range(8)]
    w2 = [V(rng.uniform(-1, 1)) for _ in range(8)]
    b2 = V(0.0)
    batch = [((rng.uniform(-1, 1), rng.uniform(-1, 1)), float(rng.random() < 0.5)) for _ in range(32)]
    return (w1, b1, w2, b2), batch


def count_nodes(root, engine):
    if engine == "tinygrad_edu":
        return len(topological_order(root))
    seen, stack = set(), [root]
    while stack:
        v = stack.pop()
        if v not in seen:
            seen.add(v)
            stack.extend(v._prev)
    return len(seen)


def time_engines(engines, repeats, collector=True, block=3):
    """Median seconds of forward and backward per engine, with Python's cyclic garbage collector
    on or off (micrograd's nodes hold closures that refer back to them: cycles only the collector
    frees). The engines take turns, ``block`` repeats at a time, so that a busy moment on the
    machine hits them alike. Each turn starts with a collection and one untimed run, so that no
    engine pays for another's garbage and each meets its own from the run before, as in training."""
    problems = {name: make_problem(V) for name, V in engines}
    fwd = {name: [] for name, _ in engines}
    bwd = {name: [] for name, _ in engines}
    nodes = {}
    was = gc.isenabled()
    if not collector:
        gc.disable()
    try:
        done = 0
        while done < repeats:
            turn = min(block, repeats - done)
            for name, V in engines:
                gc.collect()
                build_loss(V, *problems[name]).backward()
                for _ in range(turn):
                    t0 = time.perf_counter()
                    loss = build_loss(V, *problems[name])
                    t1 = time.perf_counter()
                    loss.backward()
                    t2 = time.perf_counter()
                    nodes[name] = count_nodes(loss, name)
                    fwd[name].append(t1 - t0)
                    bwd[name].append(t2 - t1)
                    del loss
                    if not collector:
                        gc.collect()  # outside the timed part: micrograd's cycles must go somewhere
            done += turn
    finally:
        if was:
            gc.enable()
    return {name: (nodes[name], statistics.median(fwd[name]), statistics.median(bwd[name])) for name, _ in engines}


def bytes_per_node(V, engine):
    params, batch = make_problem(V)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    loss = build_loss(V, params, batch)
    loss.backward()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count_nodes(loss, engine)


def chain_backward(n):
    x = OurValue(1.0)
    y = x
    for _ in range(n):
        y = y * 1.0000001
    t0 = time.perf_counter()
    y.backward()
    return time.perf_counter() - t0


def per_node_table(repeats, MicroValue, turn=3):
    """Part (1) of the suite: ours vs micrograd per node (forward, backward, bytes), with Python's
    cyclic garbage collector on (the default) and off (as train.fit runs the scalar engine); and
    the floor, this engine's design written by hand for these five operations (floor_engine.py)."""
    print(f"Per node, 2-8-1 MLP on a batch of 32, median of {repeats} repeats; collector on and off")
    print(f"{'engine':<14}{'collector':>10}{'nodes':>8}{'fwd ns/node':>14}{'bwd ns/node':>14}{'total ns/node':>15}{'bytes/node':>12}")
    rows = {}
    engines = (("micrograd", MicroValue), ("tinygrad_edu", OurValue), ("floor", FloorValue))
    for name, V in engines:  # one untimed run: each operation's backward is generated on first use
        build_loss(V, *make_problem(V)).backward()
    mem = {name: bytes_per_node(V, name) for name, V in engines}
    for collector in (True, False):
        for name, (nodes, f, b) in time_engines(engines, repeats, collector, block=turn).items():
            rows[name, collector] = (f / nodes, b / nodes)
            print(f"{name:<14}{'on' if collector else 'off':>10}{nodes:>8}{f / nodes * 1e9:>14.0f}{b / nodes * 1e9:>14.0f}"
                  f"{(f + b) / nodes * 1e9:>15.0f}{mem[name]:>12.0f}")
    print("faster than micrograd by (and memory ratio):")
    for name in ("tinygrad_edu", "floor"):
        for collector in (True, False):
            mf, mb = rows["micrograd", collector]
            of, ob = rows[name, collector]
            print(f"{name:<14}{'on' if collector else 'off':>10}{'':>8}{mf / of:>13.2f}x{mb / ob:>13.2f}x"
                  f"{(mf + mb) / (of + ob):>14.2f}x{mem[name] / mem['micrograd']:>11.2f}x")
    return rows


def grad_table(repeats):
    """Reverse mode with respect to some inputs: ``grad()`` runs only the per-input rules on paths
    to the inputs asked for (``backward()`` gives every node its gradient). Rule counts are the
    same on every machine; times are medians, collector off."""
    from tinygrad_edu import grad
    from tinygrad_edu.functional import count_rule_calls

    params, batch = make_problem(OurValue)
    w1, b1, w2, b2 = params
    everything = [w for row in w1 for w in row] + b1 + w2 + [b2]
    loss = build_loss(OurValue, params, batch)
    cases = {"backward()": loss.backward, f"grad(loss, all {len(everything)} parameters)": lambda: grad(loss, everything),
             "grad(loss, the output layer's 9)": lambda: grad(loss, w2 + [b2]), "grad(loss, [b2])": lambda: grad(loss, [b2])}
    print(f"Reverse mode on the same graph ({count_nodes(loss, 'tinygrad_edu')} nodes), median of {repeats} repeats")
    print(f"{'call':<40}{'rules run':>10}{'ms':>8}")
    was = gc.isenabled()
    gc.disable()
    try:
        for name, call in cases.items():
            rules = count_rule_calls(call)[1].derivative
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                call()
                times.append(time.perf_counter() - t0)
            print(f"{name:<40}{rules:>10}{statistics.median(times) * 1e3:>8.2f}")
    finally:
        if was:
            gc.enable()


def chain_table():
    """Part (3) of the suite: backward of 100k- vs 1M-node chains."""
    print("Backward of a chain (y = y * c, repeated), median of 3")
    print(f"{'nodes':>10}{'backward s':>12}{'ns/node':>10}")
    times = {}
    for n in (100_000, 1_000_000):
        t = statistics.median(chain_backward(n) for _ in range(3))
        times[n] = t
        print(f"{n:>10}{t:>12.3f}{t / (2 * n + 1) * 1e9:>10.0f}")
    print(f"1M / 100k time ratio: {times[1_000_000] / times[100_000]:.1f} (10.0 is linear)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--turn", type=int, default=3, help="repeats per engine per turn in table 1 (default 3)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.turn < 1:
        parser.error("--repeats and --turn must be at least 1")
    try:
        from micrograd.engine import Value as MicroValue
    except ImportError:
        sys.exit("micrograd is not installed: pip install -e '.[bench]'")
    per_node_table(args.repeats, MicroValue, args.turn)
    print()
    grad_table(args.repeats)
    print()
    chain_table()


if __name__ == "__main__":
    main()
