"""benchmarks/gradcheck_eval.py (the evaluation in docs/testing.md) on a tiny sample, so that the
script keeps working: broken rules are caught and named, the record is restored afterwards, and
correct functions near kinks and edges pass."""

import importlib.util
import math
import sys
from pathlib import Path

from tinygrad_edu import ops
from tinygrad_edu.engine import Value

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gradcheck_eval", ROOT / "benchmarks" / "gradcheck_eval.py")
gradcheck_eval = importlib.util.module_from_spec(spec)
sys.modules["gradcheck_eval"] = gradcheck_eval  # dataclasses look their module up there
spec.loader.exec_module(gradcheck_eval)


def test_a_broken_rule_is_restored_afterwards():
    original = ops.TANH.vjp
    with gradcheck_eval.broken(ops.TANH, lambda d: tuple(-x for x in d)):
        y = Value(0.5).tanh()
        y.backward()
        assert y.parents[0].grad == -(1 - math.tanh(0.5) ** 2)
    assert ops.TANH.vjp is original


def test_the_evaluation_runs_and_reports(capsys):
    assert gradcheck_eval.main(["--cases", "2", "--false-cases", "10", "--false-seeds", "0", "1",
                                "--only", "tanh", "mul", "ev_sin2x_chain"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert rows["tanh"].split("|")[4].strip() == "100.0%" and rows["tanh"].split("|")[5].strip() == "100.0%"
    assert rows["custom ev_sin2x_chain (chain rule factor 2 missing)"].split("|")[5].strip() == "100.0%"
    assert "- false failures: 0 (0.0%) in 20" in out
    assert rows["0"].split("|")[2].strip() == "10" and rows["1"].split("|")[3].strip() == "0 (0.0%)"  # one row per seed


def test_the_false_failure_part_can_check_second_derivatives_too(capsys):
    assert gradcheck_eval.main(["--cases", "1", "--only", "tanh", "--false-cases", "5", "--second-order"]) == 0
    out = capsys.readouterr().out
    assert "5 random expressions per seed (expressions(near_kinks=True, near_domain_edges=True)), gradcheck and " \
           "gradgradcheck" in out
    assert "| 0 | 5 | " in out
