"""How much memory a training command will need, estimated from its options before any data is
drawn or any model built, so that a run that cannot fit is refused at once with the limit named
(instead of running for minutes before NumPy's ``MemoryError``)."""

from __future__ import annotations

import os

from ..serialize import MAX_LAYERS, MAX_PARAMETERS, parameter_count
from ._common import CLIError

#: Share of the available memory a run may plan to use.
USABLE_SHARE = 0.8
_BASE = 150 * 2**20  # the interpreter, NumPy, Matplotlib
_PER_SAMPLE = 200  # the points, their labels, the split and the shuffled copy, in bytes
_PER_PARAMETER = 4096  # a parameter's Value, its optimizer state, its share of the traced graphs


def available_memory() -> int | None:
    """Bytes of memory available to this process now (Linux's MemAvailable), or the machine's
    physical memory where that is not known, or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def graph_rows(nin: int, sizes: list[int]) -> int:
    """About how many nodes one sample's graph has (a row of the batched engine's buffers):
    every parameter, a product per weight, a sum and an activation per neuron, the inputs."""
    return 2 * parameter_count(nin, sizes) + 2 * sum(sizes) + nin + 8


def training_memory(nin: int, sizes: list[int], samples: int, evaluated: int) -> int:
    """Estimated peak bytes of a run that draws ``samples`` points and evaluates the model on
    ``evaluated`` points in all (train, test, decision-boundary grid): the batched engine keeps
    one row of 8-byte values per graph node and evaluated point."""
    return (_BASE + _PER_SAMPLE * samples + 8 * graph_rows(nin, sizes) * evaluated
            + _PER_PARAMETER * parameter_count(nin, sizes))


def _size(n: float) -> str:
    """``n`` bytes in decimal units: ``952 GB``, ``9.52e+10 TB``."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def check_training_fits(what: str, nin: int, sizes: list[int], samples: int, extra_evaluated: int = 0,
                        hidden_option: str = "--hidden") -> None:
    """Raise :class:`CLIError` when the network has more parameters than a model file may hold,
    or when the run (``samples`` points, all evaluated, plus ``extra_evaluated`` more) needs more
    memory than this machine has available; ``what`` names the options, e.g. ``"--samples 10"``."""
    count = parameter_count(nin, sizes)
    shape = "-".join(map(str, [nin, *sizes]))
    shape = shape if len(shape) <= 40 else shape[:36] + " ..."
    if len(sizes) > MAX_LAYERS:
        raise CLIError(f"{hidden_option} gives a network of {len(sizes):,} layers; at most {MAX_LAYERS} (the "
                       "deepest model a model file holds)")
    if count > MAX_PARAMETERS:
        raise CLIError(f"{hidden_option} gives a {shape} network with {count:,} parameters; at most "
                       f"{MAX_PARAMETERS:,} (the largest model a model file holds)")
    available = available_memory()
    if available is None:
        return
    usable = USABLE_SHARE * available
    need = training_memory(nin, sizes, samples, samples + extra_evaluated)
    if need > usable:
        per_sample = training_memory(nin, sizes, 1, 1) - training_memory(nin, sizes, 0, 0)
        fixed = training_memory(nin, sizes, 0, extra_evaluated)
        most = max(0, int((usable - fixed) // per_sample))
        raise CLIError(f"{what} with a {shape} network needs about {_size(need)} of memory, more than the "
                       f"{_size(usable)} this run may use ({USABLE_SHARE:.0%} of the {_size(available)} available): "
                       f"at most about {most:,} points with these options")
