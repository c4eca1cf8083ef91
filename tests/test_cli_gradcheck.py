"""tinygrad-edu gradcheck: exit 0 when the gradient holds (at --set points or drawn ones), 1 with
the report when it does not (a wrong rule named, a wrong hand-written derivative shown against
the engine and the numbers), 2 with one line on bad input."""

import math

import pytest

from tinygrad_edu import primitive
from tinygrad_edu.cli import main

# A one-input custom primitive is callable from expressions; its derivative is wrong (sign).
primitive("cli_wrong_sin", math.sin, lambda x: -math.cos(x))


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_at_a_given_point_it_passes_and_shows_the_gradient(capsys):
    code, out, err = run(capsys, "gradcheck", "tanh(x*w + b)", "--set", "x=0.5", "--set", "w=-1.5", "--set", "b=0.2")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "gradcheck passed: tanh(x*w + b) at b = 0.2, w = -1.5, x = 0.5"
    t = math.tanh(0.5 * -1.5 + 0.2)
    assert lines[1:] == [f"  d/db = {1 - t * t:.6g}", f"  d/dw = {0.5 * (1 - t * t):.6g}", f"  d/dx = {-1.5 * (1 - t * t):.6g}"]


def test_without_set_it_checks_points_drawn_in_the_domain(capsys):
    code, out, _ = run(capsys, "gradcheck", "log(x) * sqrt(y) + relu(x - y)", "--examples", "30", "--second-order")
    assert code == 0
    assert out.startswith("gradcheck passed at ") and "(x, y in [-3, 3], seed 0) (second derivatives too)" in out


def test_a_wrong_rule_fails_with_the_culprit(capsys):
    code, out, _ = run(capsys, "gradcheck", "cli_wrong_sin(x * w) + w", "--set", "x=0.5", "--set", "w=2")
    assert code == 1
    assert out.startswith("gradcheck failed for f(w, x) = cli_wrong_sin(x*w) + w")  # the user's names
    assert "- cli_wrong_sin at cli_wrong_sin(x*w) = 0.841471, inputs 1" in out
    assert "d/dx cli_wrong_sin(1): rule -0.540302, numeric 0.540302" in out


def test_strict_kinks_fails_where_the_conventions_compose_outside_the_subgradients(capsys):
    code, out, _ = run(capsys, "gradcheck", "relu(x) - relu(-x)", "--set", "x=0")  # slope 1, conventions give 0
    assert code == 0 and "d/dx = 0" in out
    code, out, _ = run(capsys, "gradcheck", "relu(x) - relu(-x)", "--set", "x=0", "--strict-kinks")
    assert code == 1 and "the chain rule combined the rules' conventions" in out


def test_drawn_points_find_and_shrink_a_counterexample(capsys):
    code, out, _ = run(capsys, "gradcheck", "cli_wrong_sin(x)", "--examples", "20")
    assert code == 1
    assert out.splitlines()[0].startswith("counterexample (after ") and out.splitlines()[0].endswith("x = 0")
    assert "Culprit: 1 of 1 primitive applications" in out


def test_a_hand_written_derivative_is_checked(capsys):
    right = "x=sigmoid(x) * (1 + x * (1 - sigmoid(x)))"
    code, out, _ = run(capsys, "gradcheck", "x * sigmoid(x)", "--derivative", right, "--set", "x=1")
    assert code == 0 and "d/dx = 0.927671 = your derivative" in out
    code, out, _ = run(capsys, "gradcheck", "x * sigmoid(x)", "--derivative", "x=sigmoid(x) * (1 - sigmoid(x))",
                       "--set", "x=1")
    assert code == 1
    s = 1 / (1 + math.exp(-1))
    assert out.strip() == (f"d/dx: your derivative sigmoid(x) * (1 - sigmoid(x)) = {s * (1 - s):.6g} at x = 1, but "
                           f"the engine gives {s * (2 - s):.6g} and central differences {s * (2 - s):.6g} "
                           "(atol=1e-05, rtol=0.001)")
    code, out, _ = run(capsys, "gradcheck", "x * y", "--derivative", "x=x", "--examples", "20")
    assert code == 1 and "counterexample" in out and "your derivative x = " in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["x +"], "cannot use the expression: not a valid expression"),
        (["3 * 4"], "the expression has no variables"),
        (["x * y", "--set", "z=1"], "--set z: not used in the expression (its variables: x, y)"),
        (["x", "--set", "x=1", "--set", "x=2"], "--set x is given twice"),
        (["x * y", "--derivative", "z=1"], "--derivative z: z is not a variable of the expression (x, y)"),
        (["x * y", "--derivative", "x=z"], "the derivative for x uses z, which the expression does not"),
        (["x * y", "--derivative", "x=y", "--derivative", "x=y"], "--derivative x is given twice"),
        (["x * y", "--derivative", "x=(("], "cannot use the derivative for x: not a valid expression"),
        (["log(x)", "--set", "x=-1"], "cannot check at x = -1: "),
        (["log(-x*x - 1)"], "found no point inside the domain of log(-x*x - 1)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, "gradcheck", *argv)
    assert code == 2 and out == ""
    assert err.startswith("tinygrad-edu gradcheck: error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("argv", [["x", "--derivative", "x"], ["x", "--set", "x=inf"], ["x", "--examples", "0"]])
def test_bad_options_are_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(["gradcheck", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err


def test_an_expression_may_start_with_a_minus(capsys):
    assert main(["gradcheck", "--seed", "1", "-x*x", "--set", "x=2"]) == 0
    assert "gradcheck passed: -x*x" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["graph", "gradcheck"])
def test_every_option_that_takes_a_value_is_listed_for_the_leading_minus(command):
    import importlib

    from tinygrad_edu.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if a.choices and command in a.choices)
    parser = subparsers.choices[command]
    takes_value = {s for a in parser._actions if a.option_strings and a.nargs != 0 for s in a.option_strings}
    module = importlib.import_module(f"tinygrad_edu.cli.{command}")
    assert takes_value == set(module.EXPRESSION_VALUE_OPTIONS)
