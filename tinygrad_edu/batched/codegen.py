"""Code generation: a :class:`~.plan.Plan` written out as straight-line Python, one line per rule
call, store and gradient add, every rule, view and helper bound as a default argument (a local),
so a step runs no loop and looks nothing up. Each group's result is named after its primitive and
its place in the tape (``relu2``: the tape's third group, a ``relu``), its gradient ``d_relu2``,
and each view after the rows it reads (``p_0_16``: parameter rows 0 to 16; ``G_x_0_2``: the
gradient rows of inputs 0 and 1), as :meth:`Tape.show <tinygrad_edu.batched.Tape.show>` lists them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .layout import Group, Layout
from .lowering import lower
from .numpy_math import INLINE_NAMES, SMALL, TAPE_MATH, WRITES_INTO
from .plan import Plan, StackedMath

__all__ = ["compile_plan", "group_names", "describe_rows", "describe_slot"]


def group_names(layout: Layout) -> list[str]:
    """Each group's name: its primitive and its index in the tape (``mul0``, ``sum1``, ``relu2``)."""
    return [f"{_ident(g.op)}{i}" for i, g in enumerate(layout.groups)]


_SHORT = {"binary_cross_entropy_with_logits": "bce_logits"}  # names for the code, where a primitive's is long


def _ident(op) -> str:
    if getattr(op, "exponent", None) is not None:
        return "pow_c"
    if getattr(op, "base", None) is not None:
        return "rpow_c"
    name = _SHORT.get(op.name) or re.sub(r"\W+", "_", op.name).strip("_") or "op"
    return name if name.isidentifier() else "op_" + name  # a custom primitive's name may start with a digit


def describe_rows(layout: Layout, rows: np.ndarray, names: list[str] | None = None) -> str:
    """What ``rows`` (a slot's rows, in member order) hold: ``p[0:16]`` (parameters), ``x[1]``
    (an input), ``c[0]`` (a constant), ``relu2`` (all of a group's output, in its order),
    ``mul0[8:16]``; ``[i, j, ...]`` for other patterns."""
    names = names if names is not None else group_names(layout)
    rows = np.asarray(rows).reshape(-1)
    lo, hi = int(rows.min()), int(rows.max())
    P, I = len(layout.params), layout.num_inputs
    regions = [("p", 0, P, False), ("x", P, P + I, False), ("c", P + I, P + I + len(layout.const_rows), False)]
    regions += [(names[i], g.lo, g.hi, True) for i, g in enumerate(layout.groups)]
    for name, start, end, is_group in regions:
        if start <= lo and hi < end:
            offsets = rows - start
            if is_group and len(offsets) == end - start and np.array_equal(offsets, np.arange(end - start)):
                return name
            if np.all(offsets == offsets[0]):
                return f"{name}[{offsets[0]}]"
            if np.array_equal(offsets, np.arange(offsets[0], offsets[0] + len(offsets))):
                return f"{name}[{offsets[0]}:{offsets[0] + len(offsets)}]"
            shown = ", ".join(map(str, offsets[:6].tolist())) + (", ..." if len(offsets) > 6 else "")
            return f"{name}[{shown}]"
    return "rows[" + ", ".join(map(str, rows[:6].tolist())) + "]"


def describe_slot(layout: Layout, g: Group, k: int, names: list[str] | None = None) -> str:
    """What slot ``k`` of group ``g`` reads (:func:`describe_rows`), a slot that every member along
    some axis reads alike (a broadcast, stride 0) shown once per distinct row, marked ``[...]``."""
    view, rows, shape = g.views[k], g.slots[k], g.slot_shape(k)
    if view is None or not any(s == 0 and n > 1 for s, n in zip(view[1], shape)):
        return describe_rows(layout, rows, names)
    table = rows.reshape(shape)
    for axis, (s, n) in enumerate(zip(view[1], shape)):
        if s == 0 and n > 1:
            table = table.take([0], axis=axis)
    return describe_rows(layout, table, names) + "[...]"


@dataclass(frozen=True)
class Compiled:
    """A plan's generated code: ``run_forward()`` and ``run_backward()`` (every value and gradient
    in ``V`` and ``G``; backward adds into ``G``, zeroed and seeded first), and ``run_step()``, both
    passes, returning the first output's sum over the batch. ``run_step_zeroes`` says whether
    run_step, too, needs ``G`` zeroed and seeded before every call; else once is enough: it assigns
    every gradient row it writes."""

    source: str
    run_forward: Callable[[], None]
    run_backward: Callable[[], None]
    run_step: Callable[[], float]
    run_step_zeroes: bool


def compile_plan(plan: Plan, skip_unused: bool = False, reuse: bool = False) -> Compiled:
    """Python source for ``plan``'s step and the three functions it defines: ``run_forward()`` and
    ``run_backward()`` (every value and gradient in ``V`` and ``G``), and ``run_step()``, both
    passes in one function, where (for small batches) a group's result that is only ever read whole
    (by slots laid out as the group itself) stays a local variable: no store, and its gradient is
    the sum of its consumers' contributions, no zeroed rows to add into. ``skip_unused``: the
    ``skip_unused_gradients`` pass (:mod:`.passes`): a rule that can be lowered (:mod:`.lowering`)
    is written out line by line, computing only the gradients something reads. ``reuse``: the
    ``reuse_forward_values`` pass: the forward rules are written out line by line too; in run_step
    the backward pass reuses any expression the forward pass computed (the loss's softplus in its
    derivative's sigmoid, :data:`~.numpy_math.EXPANSIONS`) instead of computing it again, and a
    result made by one call that can write into an array (``WRITES_INTO``) is written straight
    where it goes: the next layer's staged buffer, or its rows of ``V`` where it is stored (large
    batches, evaluation), instead of into a new array that is then copied."""
    layout, V = plan.layout, plan.V
    names = group_names(layout)
    reserved = set(names) | {f"d_{n}" for n in names}  # the locals of run_step
    env: dict[str, Any] = dict(INLINE_NAMES)  # the NumPy functions of the lowered rules' expressions
    bound: dict[int, str] = {}

    def bind(obj, name: str) -> str:
        """The local name of ``obj`` in the generated code (``name``, made unique)."""
        got = bound.get(id(obj))
        if got is None:
            got = name = re.sub(r"\W+", "_", name).strip("_")
            if name in reserved:  # a view of a whole group's output, not the group's local result
                got = name = name + "_view"
            n = 1
            while got in env:
                n += 1
                got = f"{name}_{n}"
            bound[id(obj)] = got
            env[got] = obj
        return got

    groups = layout.groups
    index = {id(g): i for i, g in enumerate(groups)}
    owner = np.full(V.shape[0], -1)
    for i, g in enumerate(groups):
        owner[g.lo:g.hi] = i
    output_rows = layout.output_rows

    described: dict[tuple[int, int], str] = {}

    def slot(g: Group, k: int) -> str:
        """What slot ``k`` of ``g`` reads (:func:`describe_slot`), worked out once."""
        key = (id(g), k)
        if key not in described:
            described[key] = describe_slot(layout, g, k, names)
        return described[key]

    def slot_name(g: Group, k: int, prefix: str = "") -> str:
        return prefix + slot(g, k)

    # exact[i][k]: the group whose whole output slot k of group i reads in its own layout, or None.
    exact: list[list[int | None]] = []
    in_V: set[int] = set()  # results that must be stored in V, for their readers (run_step)
    for step in plan.forward:
        g = step.group
        if g is None:
            continue
        stacked = len(step.math.members) if isinstance(step.math, StackedMath) else 0
        row = []
        for k in range(len(g.views)):
            p = owner[g.slots[k][0]] if k >= stacked else -1
            p = int(p) if p >= 0 and g.reads_whole(k, groups[p]) else None
            row.append(p)
            if p is None:
                in_V.update(owner[g.slots[k]].tolist())
        exact.append(row)
    in_V.discard(-1)
    outputs = set(owner[output_rows].tolist()) - {-1}  # stored too, except by run_step
    # Gradients kept local: every contribution is a plain add from a slot that reads it whole.
    contributions = [0] * len(groups)
    in_G = set(owner[output_rows].tolist())
    for step in plan.backward:
        i = index[id(step.group)]
        for k, _ in step.plain:
            if exact[i][k] is None:
                in_G.update(owner[step.group.slots[k]].tolist())
            else:
                contributions[exact[i][k]] += 1
        for add in step.other:
            for k in add.slots:
                in_G.update(owner[step.group.slots[k]].tolist())
    in_G.update(i for i, n in enumerate(contributions) if n == 0)

    def arg_names(i: int, g: Group, args: tuple, local: bool) -> list[str]:
        return [bind(a, f"{names[i]}_in") if k in g.staged
                else names[exact[i][k]] if local and exact[i][k] is not None else bind(a, slot_name(g, k))
                for k, a in enumerate(args)]

    def writes_into(line: str, name: str) -> bool:
        """Whether ``line`` makes ``name`` by one call that takes ``out=`` (``WRITES_INTO``)."""
        if not line.startswith(name + " = ") or not line.endswith(")"):
            return False
        call = line[len(name) + 3:].split("(")[0]
        return call.split(".")[-1] in WRITES_INTO and call.split(".")[0] in (bind(TAPE_MATH, "m"), call)

    def small(g: Group) -> bool:
        """Whether NumpyMath computes on ``g``'s arrays with its formulas for small arrays, which
        the lowering then writes out (:data:`~.numpy_math.EXPANSIONS`)."""
        return g.size * V.shape[1] <= SMALL

    def comment(i: int, g: Group) -> str:
        reads = ", ".join(slot(g, k) for k in range(len(g.slots)))
        return f"# {names[i]}: {g.op.name} of {reads}; {g.size} node{'s' if g.size > 1 else ''} as {g.shape}"

    def forward_lines(local: bool, temp: Callable[[], str], known: dict[str, str] | None) -> list[str]:
        """The forward pass; ``local``: run_step's, results in locals where they can be, the
        outputs not stored (run_step returns the first output's sum over the batch). ``known``
        (the ``reuse_forward_values`` pass, in run_step): rules written out line by line, each
        expression remembered for the backward pass to reuse."""
        lines = []
        made_at: dict[str, tuple[int, str]] = {}  # a local result made by one call that can write into out=
        if plan.params_in_V:  # a slot reads parameters mixed with other rows: their rows of V
            lines.append(f"{bind(plan.V_params, 'V_params')}[...] = {bind(plan.params[:, None], 'params_column')}")
        for step in plan.forward:
            g = step.group
            if g is None and step.source is not None:  # a staged slot, copied above its row of ones
                sg, k = step.source
                i = index[id(sg)]
                src = names[exact[i][k]] if local and exact[i][k] is not None else bind(step.args[0], slot_name(sg, k))
                top = bind(step.out, f"{names[i]}_in_top")
                if src in made_at:  # the call that made it writes into the buffer instead of a new array
                    at, line = made_at.pop(src)
                    lines[at] = line[:-1] + f", out={top})"
                else:
                    lines.append(f"{top}[...] = {src}")
                continue
            if g is None:  # a gathered slot
                Vb, rows = step.args
                lines.append(f"{bind(step.out, 'gathered')}[...] = {bind(Vb, 'V')}.take({bind(rows, 'rows')}, 0)")
                continue
            i = index[id(g)]
            math = bind(step.math, "m" if step.math is TAPE_MATH else f"m_{names[i]}")
            args = arg_names(i, g, step.args, local)
            lines.append(comment(i, g))
            lowered = None
            if known is not None and step.math is TAPE_MATH:
                lowered = lower(lambda m, *xs, rule=step.rule: (rule(m, *xs),), args, [0], math,
                                lambda c: bind(c, "const"), temp, known, remember=True, expand=small(g),
                                inline=True)
            if lowered is not None:
                body, (call,) = lowered
                for j, line in enumerate(body):
                    if writes_into(line, call):
                        made_at[names[i]] = (len(lines) + j, line)
                lines += body
            else:
                call = f"{bind(step.rule, _ident(g.op) + '_forward')}({', '.join([math] + args)})"
            if not local:
                target = bind(step.out, "V_" + names[i])
                if names[i] in made_at:  # made by one call: written straight into its rows of V
                    at, line = made_at.pop(names[i])
                    lines[at] = line[:-1] + f", out={target})"
                else:
                    lines.append(f"{target}[...] = {call}")
            else:
                lines.append(f"{names[i]} = {call}")
                if i in in_V or (i in outputs and i != first_owner):
                    lines.append(f"{bind(step.out, 'V_' + names[i])}[...] = {names[i]}")
        return lines

    # run_step returns the first output's sum over the batch (the mean loss's numerator): from its
    # local when it is a group of one node, without storing it, else from its row of V.
    first_row = int(output_rows[0])
    first_owner = int(owner[first_row])
    if first_owner >= 0 and groups[first_owner].size == 1 and first_owner not in in_V:
        first_sum = f"{bind(np.add.reduce, 'reduce')}({names[first_owner]}, None)"
    else:
        first_owner = -1
        first_sum = f"{bind(np.add.reduce, 'reduce')}({bind(V[first_row], 'V_out')})"

    # Without accumulating adds (a run, a reduction or a scatter) and with every gradient row that
    # run_step writes written once, each write can assign rather than add: G needs no zeroing.
    written: list[int] = []
    zeroing = False
    for step in plan.backward:
        i = index[id(step.group)]
        zeroing |= bool(step.other)
        for k, _ in step.plain:
            p = exact[i][k]
            if p is None or p in in_G:
                written += step.group.slots[k].tolist()
    rows_written = set(written)
    zeroing |= len(rows_written) != len(written) or bool(rows_written & set(output_rows.tolist()))

    def backward_lines(local: bool, temp: Callable[[], str], known: dict[str, str] | None) -> list[str]:
        lines = []
        # run_step assigns the parameters' gradients when each is written once, else zeroes them
        # first (run_backward adds into them: the tape zeroes them with G)
        assign_params = local and plan.params_written_once
        if local and not assign_params and len(plan.param_grads):
            lines.append(f"{bind(plan.param_grads, 'param_grads')}.fill(0.0)")
        started = set()
        for step in plan.backward:
            g = step.group
            i = index[id(g)]
            gname = f"d_{names[i]}" if local and i not in in_G else bind(step.grad, "G_" + names[i])
            oname = names[i] if local else bind(step.out, "V_" + names[i])
            inputs = [gname, oname] + arg_names(i, g, step.args, local)
            used = sorted(step.used)
            lowered = lower(step.vjp, inputs, used if skip_unused else range(len(step.args)), bind(TAPE_MATH, "m"),
                            lambda c: bind(c, "const"), temp, known, expand=small(g), inline=True) \
                if skip_unused or known is not None else None
            body_at, rewritten = -1, set()
            if lowered is not None:  # only the gradients in use, line by line
                body, d = lowered
                lines.append(f"# {names[i]} backward: the gradients of {', '.join(f'slot {k}' for k in used)}")
                body_at = len(lines)
                lines += body
            else:
                call = f"{bind(step.vjp, _ident(g.op) + '_vjp')}({', '.join([bind(TAPE_MATH, 'm')] + inputs)})"
                d = [f"d{k}" for k in range(len(step.args))]
                lines.append(f"# {names[i]} backward: the gradients of its inputs")
                lines.append(", ".join(d[k] if k in used else "_" for k in range(len(step.args))) + ", = " + call)
            for k, t in step.plain:
                p = exact[i][k]
                if not local or p is None or p in in_G:
                    lines.append(f"{bind(t, slot_name(g, k, 'G_'))}{' +=' if zeroing or not local else '[...] ='} {d[k]}")
                elif p in started:
                    lines.append(f"d_{names[p]} = d_{names[p]} + {d[k]}")
                else:
                    lines.append(f"d_{names[p]} = {d[k]}")
                    started.add(p)
            for add in step.other:
                lines += add.code(d, lambda obj, prefix: bind(obj, f"{prefix}_{names[i]}"))
            for add in step.params:
                target = bind(add.target, slot_name(g, add.k, "G_"))
                if assign_params and not add.axes and body_at >= 0 and add.target.flags.c_contiguous:
                    # a gradient made by a matrix product is written straight into its target
                    at = next((j for j, line in enumerate(body) if writes_into(line, d[add.k])), None)
                    if at is not None and at not in rewritten:
                        lines[body_at + at] = body[at][:-1] + f", out={target})"
                        rewritten.add(at)
                        continue
                lines += add.code(d, bind, target, assign_params)
        if plan.params_in_G:  # the parameters' rows of G, summed over the batch
            lines.append(f"{bind(plan.param_grads, 'param_grads')} += "
                         f"{bind(np.dot, 'dot')}({bind(plan.G_params, 'G_params')}, {bind(plan.ones, 'ones')})")
        return lines

    # Locals only while the arrays are small: a live temporary larger than glibc's mmap threshold
    # (128 KiB) is fresh, page-faulting memory each call (the step gets 1.5-4x slower), where a
    # stored one is freed at once and its memory reused.
    local = max(g.size for g in groups) * V.shape[1] * 8 <= 128 * 1024 if groups else False
    if not local:
        zeroing = True
        if first_owner >= 0:
            first_sum = f"{bind(np.add.reduce, 'reduce')}({bind(V[first_row], 'V_out')})"
            first_owner = -1
    def temps() -> Callable[[], str]:
        count = iter(range(1 << 30))
        return lambda: f"_t{next(count)}"

    known: dict[str, str] | None = {} if reuse else None
    step_temp = temps()
    bodies = {"run_forward": forward_lines(False, temps(), {} if reuse else None),
              "run_backward": backward_lines(False, temps(), None),
              "run_step": forward_lines(local, step_temp, known) + backward_lines(local, step_temp, known)
              + [f"return {first_sum}"]}
    defaults = ", ".join(f"{name}={name}" for name in env)
    source = "\n".join(line for name, body in bodies.items()
                       for line in [f"def {name}({defaults}):", *("    " + b for b in body or ["pass"])])
    namespace = dict(env)
    exec(compile(source, "<tinygrad_edu.batched step>", "exec"), namespace)
    return Compiled(source, *(namespace[name] for name in bodies), zeroing)
