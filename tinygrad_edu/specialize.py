"""The table's rules specialised for floats: one generated Python function per primitive, with the
rules' expressions written in place, for the scalar engine's hot path.

A rule in :mod:`tinygrad_edu.ops` is a Python function over a math namespace ``m``; calling it
costs a function call per input per node, about as much as the arithmetic it does. So for the
engine's ``backward()`` and its operators this module reads each rule's source (a ``lambda``, or
a ``def`` whose body is ``return <expression>``) and writes one function per primitive that
evaluates the expressions in place, with ``m`` bound to ``ops.FLOAT_MATH`` (the namespace for
floats) and its one-expression functions on plain names written out too (``m.step(x)`` becomes
``1.0 if x > 0.0 else ...``)::

    >>> print(backward_source(ops.MUL))
    def mul_backward(_node):
        _x0, _x1 = _node._prev
        g, a, b = _node.grad, _x0.data, _x1.data
        _x0.grad += g * b
        _x1.grad += g * a

The table stays the one place a rule is written: this is a second way to run the same
expressions, and it computes the same floats as calling the rules (the tests check every
primitive). A rule that is not one expression (``_gelu_tanh_vjp``), whose source cannot be read
(made by ``eval``, or a ``.pyc`` without its ``.py``), or that names globals outside
:mod:`~tinygrad_edu.ops` and :mod:`~tinygrad_edu.floatmath` (a custom primitive's rule may read
a module global that later changes) is called as it is, so every primitive works; only the speed
differs. :func:`backward_step` makes ``backward()``'s step, :func:`grad_step` ``grad()``'s (only
the needed inputs' rules), :func:`method` the ``Value`` operators; the ``*_source`` functions show
their code.
"""

from __future__ import annotations

import ast
import builtins
import copy
import dataclasses
import dis
import functools
import linecache
import types
import weakref
from typing import Any, Callable

from . import floatmath, ops
from .ops import FLOAT_MATH, Primitive

# The names the generated code uses itself; a rule that uses one of them is called, not inlined.
_RESERVED = frozenset({"_node", "_x0", "_x1", "_x", "_g", "_gp", "_old", "_grads", "_needed", "_M", "_make",
                       "_rule0", "_rule1", "_vjp", "_self", "_other", "_number", "_data", "_err", "_out", "_op",
                       "_parents"})


@dataclasses.dataclass(frozen=True)
class Inlined:
    """A rule as source to write in place: its parameter names, the ``expression`` its body returns
    (``None`` when the rule is to be called instead), and the values of the free names the
    expression reads (closure variables and globals of :mod:`~tinygrad_edu.ops`), bound by value."""

    params: tuple[str, ...]
    expression: str | None
    values: dict[str, Any]
    names: frozenset[str] = frozenset()  # every name the expression reads

    def reads(self) -> set[str]:
        """The parameter names the expression reads (none for a rule that is called)."""
        return set(self.names & set(self.params))


@functools.lru_cache(maxsize=64)
def _module_tree(filename: str) -> ast.Module | None:
    source = "".join(linecache.getlines(filename))
    if not source:
        return None
    try:
        return ast.parse(source, filename)
    except SyntaxError:
        return None


_SETUP = frozenset({"NOP", "RESUME", "CACHE", "PRECALL", "PUSH_NULL", "COPY_FREE_VARS", "MAKE_CELL", "EXTENDED_ARG"})
_SAME_AS = {"LOAD_METHOD": "LOAD_ATTR", "CALL_METHOD": "CALL_FUNCTION"}


def _shape(code: types.CodeType) -> tuple:
    """What ``code`` computes, read from its instructions without what the compiler may choose
    differently for one function in two places (method-call forms, jump offsets, set-up)."""
    shape = [code.co_argcount, code.co_varnames, code.co_freevars]
    for ins in dis.get_instructions(code):
        name = _SAME_AS.get(ins.opname, ins.opname)
        if name in _SETUP:
            continue
        arg = ins.argval
        if isinstance(arg, types.CodeType):
            arg = _shape(arg)
        elif "JUMP" in name:
            arg = None
        shape.append((name, arg))
    return tuple(shape)


def _compiled(node: ast.Lambda | ast.FunctionDef, freevars: tuple[str, ...], filename: str) -> types.CodeType | None:
    """The code object that ``node`` compiles to when its free variables are a function's locals,
    as they were where it was defined (so closures compile to the same instructions)."""
    body: list[ast.stmt] = [stmt for v in freevars for stmt in ast.parse(f"{v} = None").body]
    if isinstance(node, ast.FunctionDef):
        body += [node, ast.Return(value=ast.Name(node.name, ast.Load()))]
    else:
        body.append(ast.Return(value=node))
    wrapper = ast.parse("def _wrapper():\n    pass").body[0]
    wrapper.body = body
    module = ast.fix_missing_locations(ast.Module(body=[wrapper], type_ignores=[]))
    try:
        code = compile(module, filename, "exec")
    except (SyntaxError, ValueError):
        return None
    wrapper_code = next(c for c in code.co_consts if isinstance(c, types.CodeType))
    found = [c for c in wrapper_code.co_consts if isinstance(c, types.CodeType)]
    return found[0] if len(found) == 1 else None


def _definition(code: types.CodeType) -> ast.Lambda | ast.FunctionDef | None:
    """The syntax tree of the function whose code is ``code``, found in its module's source by
    line and checked to compile to that code (two lambdas may share a line)."""
    tree = _module_tree(code.co_filename)
    if tree is None:
        return None
    found: dict[str, ast.Lambda | ast.FunctionDef] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda) and code.co_name == "<lambda>":
            line = node.lineno
        elif isinstance(node, ast.FunctionDef) and node.name == code.co_name:
            line = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        else:
            continue
        if line == code.co_firstlineno:
            candidate = _compiled(node, code.co_freevars, code.co_filename)
            if candidate is not None and _shape(candidate) == _shape(code):
                found[ast.unparse(node)] = node
    return next(iter(found.values())) if len(found) == 1 else None


def _returned_expression(node: ast.Lambda | ast.FunctionDef) -> ast.expr | None:
    if isinstance(node, ast.Lambda):
        return node.body
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring
    if len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value is not None:
        return body[0].value
    return None


def _parse(expression: str) -> ast.expr:
    return ast.parse(expression, mode="eval").body


def _names(expression: ast.expr) -> frozenset[str]:
    return frozenset(n.id for n in ast.walk(expression) if isinstance(n, ast.Name))


@dataclasses.dataclass(frozen=True)
class _Template:
    """What :func:`inline` finds in a rule's code, the same for every function made from it (the
    members of a family share their rules' code, with other closure values)."""

    params: tuple[str, ...]
    expression: str | None
    names: frozenset[str] = frozenset()
    closure_names: frozenset[str] = frozenset()  # their values come from each function's closure
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)  # globals and builtins, by value


_templates: weakref.WeakKeyDictionary[types.CodeType, dict[bool, _Template]] = weakref.WeakKeyDictionary()


def inline(rule: Callable[..., Any], expand: bool = True) -> Inlined:
    """``rule`` as an :class:`Inlined` expression, or marked to be called (``expression is None``).
    With ``expand``, calls of the math namespace's one-expression functions on names or constants
    (``m.relu(x)``, ``m.step(x)``) are written out too (``0.0 if x <= 0.0 else x``)."""
    code = getattr(rule, "__code__", None)
    if code is None or not isinstance(rule, types.FunctionType) or rule.__defaults__ or rule.__kwdefaults__:
        return Inlined((), None, {})
    by_expand = _templates.setdefault(code, {})
    template = by_expand.get(expand)
    if template is None:
        template = by_expand[expand] = _template(rule, expand)
    if template.expression is None:
        return Inlined(template.params, None, {})
    closure = dict(zip(code.co_freevars, (cell.cell_contents for cell in rule.__closure__ or ())))
    values = {**template.fixed, **{name: closure[name] for name in template.closure_names}}
    return Inlined(template.params, template.expression, values, template.names)


def _template(rule: types.FunctionType, expand: bool) -> _Template:
    code = rule.__code__
    params = code.co_varnames[:code.co_argcount]
    if code.co_flags & (0x04 | 0x08) or code.co_kwonlyargcount or code.co_posonlyargcount:  # *args, **kwargs
        return _Template(params, None)
    if len(code.co_varnames) != code.co_argcount:
        return _Template(params, None)  # local variables besides the parameters
    if _RESERVED & (set(code.co_varnames) | set(code.co_names) | set(code.co_freevars)):
        return _Template(params, None)
    node = _definition(code)
    expression = None if node is None else _returned_expression(node)
    if expression is None or any(isinstance(n, (ast.Lambda, ast.NamedExpr, ast.Yield, ast.YieldFrom, ast.Await,
                                                ast.comprehension)) for n in ast.walk(expression)):
        return _Template(params, None)  # not one expression, or scopes of its own
    closure_names, fixed = set(), {}
    for name in _names(expression) - set(params):
        if name in code.co_freevars:
            closure_names.add(name)
        elif rule.__globals__ in (vars(ops), vars(floatmath)) and name in rule.__globals__:
            fixed[name] = rule.__globals__[name]  # the rule modules' constants and helpers
        elif name not in rule.__globals__ and hasattr(builtins, name):
            fixed[name] = getattr(builtins, name)  # bound by value: the engine has a `sum` of its own
        else:
            return _Template(params, None)  # a global of another module: read it where it lives, when run
    if expand and params:
        expression = _ExpandMathCalls(params, closure_names, fixed).visit(copy.deepcopy(expression))
    return _Template(params, ast.unparse(expression), _names(expression), frozenset(closure_names), fixed)


@functools.lru_cache(maxsize=None)
def _float_math_inlined() -> dict[str, Inlined]:
    """FloatMath's functions that are one expression (``relu``, ``step``, ``sign``, ...), inlined."""
    found = {}
    for name, attr in vars(floatmath.FloatMath).items():
        if isinstance(attr, staticmethod) and isinstance(attr.__func__, types.FunctionType):
            rule = inline(attr.__func__, expand=False)
            if rule.expression is not None:
                found[name] = rule
    return found


class _ExpandMathCalls(ast.NodeTransformer):
    """Writes ``m.f(x, y)`` out as ``f``'s expression with ``x, y`` in place, where ``m`` is the
    rule's math namespace, ``f`` one of FloatMath's one-expression functions and the arguments are
    names or constants (so nothing is evaluated twice, or at all where it was not before)."""

    def __init__(self, params: tuple[str, ...], closure_names: set[str], fixed: dict[str, Any]):
        self.m, self.taken, self.fixed = params[0], set(params) | closure_names, fixed

    def visit_Call(self, node: ast.Call) -> ast.expr:
        self.generic_visit(node)
        f, args = node.func, node.args
        if not (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == self.m
                and not node.keywords and all(isinstance(a, (ast.Name, ast.Constant)) for a in args)):
            return node
        fn = _float_math_inlined().get(f.attr)
        if fn is None or len(args) != len(fn.params):
            return node
        for name, value in fn.values.items():
            if name in self.taken or self.fixed.get(name, value) is not value:
                return node  # its free names mean something else here
        self.fixed.update(fn.values)
        given = dict(zip(fn.params, args))

        class Substitute(ast.NodeTransformer):
            def visit_Name(self, name: ast.Name) -> ast.expr:
                return given.get(name.id, name)

        return Substitute().visit(_parse(fn.expression))


def _function_name(op: Primitive, suffix: str) -> str:
    if op.exponent is not None or op.base is not None:  # x ** c, c ** x: one source for every c
        stem = "pow_const" if op.exponent is not None else "rpow_const"
    else:
        stem = "".join(c if c.isalnum() else "_" for c in op.name).strip("_")
    return f"{stem}_{suffix}" if stem.isidentifier() else f"op_{suffix}"


def _bindings(rules: list[Inlined], values_of: dict[int, str]) -> tuple[str, dict[str, Any]] | None:
    """One assignment that binds the parameters the rules' expressions read (``g, a, b =
    _node.grad, _x0.data, _x1.data``), and the free values they share (the math namespace among
    them, by the name the rules give it); ``None`` when two rules use one name for two things."""
    bound: dict[str, str] = {}
    shared: dict[str, Any] = {}
    for rule in rules:
        if rule.expression is None:
            continue
        free = {**rule.values, **({rule.params[0]: FLOAT_MATH} if rule.params[0] in rule.names else {})}
        for name, value in free.items():
            if shared.get(name, value) is not value:
                return None
            shared[name] = value
        for i, name in enumerate(rule.params[1:], 1):
            if name in rule.reads():
                if bound.get(name, values_of[i]) != values_of[i]:
                    return None
                bound[name] = values_of[i]
    if set(bound) & set(shared):
        return None
    order = sorted(bound, key=lambda n: list(values_of.values()).index(bound[n]))  # g, out, then the inputs
    line = f"{', '.join(order)} = {', '.join(bound[n] for n in order)}" if order else ""
    return line, shared


_factories: dict[tuple, Callable] = {}


def _factory(source: str, name: str, values: dict[str, Any], env: dict[str, Any]) -> Callable:
    """Compile ``source`` (one function ``name``) inside a ``_make`` taking ``values`` by name, so
    they are closure variables of the function; ``env`` is its globals. Compiled once per source."""
    key = (source, tuple(values), id(env))
    make = _factories.get(key)
    if make is None:
        body = "\n".join("    " + line for line in source.splitlines())
        text = f"def _make({', '.join(values)}):\n{body}\n    return {name}\n"
        scope: dict[str, Any] = {}
        exec(compile(text, f"<tinygrad_edu.specialize {name}>", "exec"), env, scope)  # noqa: S102  (our own source)
        make = _factories[key] = scope["_make"]
    return make(**values)


_NO_GLOBALS: dict[str, Any] = {"__builtins__": builtins}


@dataclasses.dataclass(frozen=True)
class _Kind:
    """One kind of generated step: its signature, where it reads the output's gradient, and how
    it adds an input's gradient (``{x}`` the input, ``{gp}`` the expression for its gradient)."""

    suffix: str
    signature: str
    g: str
    add: tuple[str, ...]
    generic: tuple[str, ...]  # the whole body for a primitive of any number of inputs


# backward(): into each parent's .grad.
_BACKWARD = _Kind("backward", "_node", "_node.grad", ("{x}.grad += {gp}",), (
    "for _x, _gp in zip(_node._prev, _vjp(_M, _node.grad, _node.data, *[_x.data for _x in _node._prev])):",
    "    _x.grad += _gp",
))
# grad(): into the dict _grads, only for the inputs in _needed (the rules of the others never run).
_GRAD = _Kind("grad", "_node, _g, _grads, _needed", "_g", (
    "if {x} in _needed:",
    "    _gp = {gp}",
    "    _old = _grads.get({x})",
    "    _grads[{x}] = _gp if _old is None else _old + _gp",
), (
    "for _x, _gp in zip(_node._prev, _vjp(_M, _g, _node.data, *[_x.data for _x in _node._prev])):",
    "    if _x in _needed:",
    "        _old = _grads.get(_x)",
    "        _grads[_x] = _gp if _old is None else _old + _gp",
))


def _step_parts(op: Primitive, kind: _Kind) -> tuple[str, dict[str, Any]]:
    name = _function_name(op, kind.suffix)
    rules = [inline(rule) for rule in op.vjps] if op.arity in (1, 2) else []
    inputs = ["_x0", "_x1"][:op.arity]
    values_of = {1: kind.g, 2: "_node.data", **{3 + i: f"{x}.data" for i, x in enumerate(inputs)}}
    bindings = _bindings(rules, values_of) if rules else None
    if bindings is None:  # any number of inputs (sum), or rules that disagree on a name: called
        body = list(kind.generic)
        free: dict[str, Any] = {"_M": FLOAT_MATH, "_vjp": op.vjp}
    else:
        line, free = bindings
        body = [f"{inputs[0]}, = _node._prev" if op.arity == 1 else "_x0, _x1 = _node._prev", *([line] if line else [])]
        for i, rule in enumerate(rules):
            gp = rule.expression
            if gp is None:
                free[f"_rule{i}"], free["_M"] = op.vjps[i], FLOAT_MATH
                gp = f"_rule{i}({', '.join(['_M', kind.g, '_node.data', *(x + '.data' for x in inputs)])})"
            body += [template.format(x=inputs[i], gp=gp) for template in kind.add]
    return "\n".join([f"def {name}({kind.signature}):", *("    " + line for line in body)]), free


def backward_source(op: Primitive) -> str:
    """The Python source of ``op``'s generated backward step (what :func:`backward_step` runs)."""
    return _step_parts(op, _BACKWARD)[0]


def backward_step(op: Primitive) -> Callable[[Any], None]:
    """``op``'s backward for one node of floats, ``step(node)``: adds ``node.grad`` times each
    local derivative to each parent's ``grad``. ``backward()`` runs it as ``op.float_backward``."""
    source, free = _step_parts(op, _BACKWARD)
    return _factory(source, _function_name(op, _BACKWARD.suffix), free, _NO_GLOBALS)


def grad_source(op: Primitive) -> str:
    """The Python source of ``op``'s generated step for ``grad()`` (what :func:`grad_step` runs)."""
    return _step_parts(op, _GRAD)[0]


def grad_step(op: Primitive) -> Callable[[Any, float, dict, set], None]:
    """``op``'s step of ``grad()`` for one node of floats, ``step(node, g, grads, needed)``: for
    each parent in ``needed``, adds ``g`` times its local derivative to ``grads[parent]``; the
    rules of the other parents do not run. ``grad()`` runs it as ``op.float_grad``."""
    source, free = _step_parts(op, _GRAD)
    return _factory(source, _function_name(op, _GRAD.suffix), free, _NO_GLOBALS)


def method_source(op: Primitive, name: str, leaf: str, record: str) -> tuple[str, dict[str, Any]] | None:
    """The source of a ``Value`` method ``name`` that applies ``op`` with its forward expression in
    place: ``_self`` (and ``_other``, which the engine's ``leaf`` lines make a ``Value`` when it is
    a number) in, the new node out, made by the engine's ``record`` lines (which read ``_data``,
    ``_op`` and ``_parents``). ``None`` when the forward rule must be called (then the engine's
    general method serves)."""
    rule = inline(op.forward)
    if rule.expression is None or len(rule.params) != op.arity + 1:
        return None
    inputs = ("_self", "_other")[:op.arity]
    bindings = _bindings([rule], {1 + i: f"{x}.data" for i, x in enumerate(inputs)})
    if bindings is None:
        return None
    line, free = bindings
    lines = [f"def {name}({', '.join(inputs)}):"]
    if op.arity == 2:
        lines += ["    " + line for line in leaf.splitlines()]
    if line:
        lines.append("    " + line)
    data = f"({', '.join(x + '.data' for x in inputs)}{',' if op.arity == 1 else ''})"
    parents = f"({', '.join(inputs)}{',' if op.arity == 1 else ''})"
    lines += ["    try:", f"        _data = {rule.expression}", "    except _ARITHMETIC_ERRORS as _err:",
              f"        raise _math_error(_op, {data}, _err) from None", f"    _parents = {parents}"]
    lines += ["    " + line for line in record.splitlines()]
    return "\n".join(lines), {"_op": op, **free}


_method_codes: set[types.CodeType] = set()


def method(op: Primitive, name: str, leaf: str, record: str, env: dict[str, Any]) -> Callable | None:
    """Compile :func:`method_source` in the engine's globals ``env`` (``None`` when it has none)."""
    parts = method_source(op, name, leaf, record)
    if parts is None:
        return None
    source, free = parts
    fn = _factory(source, name, free, env)
    _method_codes.add(fn.__code__)
    return fn


def method_codes() -> frozenset[types.CodeType]:
    """The code of every generated ``Value`` method: a call of one applies its primitive's forward
    rule (``functional.count_rule_calls`` counts them so)."""
    return frozenset(_method_codes)
