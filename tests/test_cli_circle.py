"""The ``circle``, ``predict`` and ``learning-curve`` subcommands, run in-process at small sizes:
outputs, the result line, Ctrl-C, and one-line errors with exit code 2 for bad input."""

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import svg_layout_available
from tinygrad_edu import train
from tinygrad_edu.cli import main
from tinygrad_edu.serialize import load_checkpoint

SMALL = ["--samples", "200", "--epochs", "2", "--quiet"]


def run_cli(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse errors
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def test_circle_writes_outputs_and_ends_with_the_accuracy_line(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = run_cli(["circle", *SMALL, "--out", str(out_dir), "--seed", "3"], capsys)
    if svg_layout_available():
        assert code == 0 and err == ""
    else:  # Python 3.10 without Graphviz: one line says graph.svg needs it, the rest is written
        assert code == 0 and err.count("\n") == 1 and "graph.svg not written" in err and "apt-get install" in err
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"test accuracy: \d{1,3}\.\d\d%", last)
    for name in ("decision_boundary.png", "curves.png", "model.json"):
        assert (out_dir / name).stat().st_size > 0
    checkpoint = load_checkpoint(out_dir / "model.json")
    assert checkpoint.model.config() == {"nin": 2, "sizes": [8, 1], "activation": "relu",
                                         "output_activation": "sigmoid"}
    meta = checkpoint.metadata
    assert meta["seed"] == 3 and meta["loss"] == "bce" and len(meta["history"]["epoch"]) == 2
    assert last == f"test accuracy: {100 * meta['test_accuracy']:.2f}%"

    # same seed, same model
    code, out2, _ = run_cli(["circle", *SMALL, "--out", str(tmp_path / "again"), "--seed", "3"], capsys)
    again = json.loads((tmp_path / "again" / "model.json").read_text())["parameters"]
    assert again == json.loads((out_dir / "model.json").read_text())["parameters"] and out2 == out

    # predict prints the saved model's probability
    model = checkpoint.model
    code, out, err = run_cli(["predict", "--model", str(out_dir / "model.json"), "0.1", "-0.2"], capsys)
    assert code == 0 and float(out) == pytest.approx(model([0.1, -0.2]).data, abs=1e-6)


def test_circle_progress_lines_and_options(tmp_path, capsys):
    code, out, err = run_cli(["circle", "--samples", "100", "--epochs", "2", "--hidden", "4,3", "--activation",
                              "tanh", "--optimizer", "adam", "--lr", "0.01", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert "MLP 2-4-3-1 (tanh, sigmoid)" in err and "Adam(lr=0.01" in err
    assert "epoch 2/2: train loss" in err and "wrote" in err


def test_circle_interrupted_still_writes_everything(tmp_path, capsys, monkeypatch):
    real_fit = train.fit

    def fit_interrupted_after_one_epoch(*args, **kwargs):
        def stop(epoch, history):
            raise KeyboardInterrupt

        return real_fit(*args, **kwargs, callback=stop)

    monkeypatch.setattr(train, "fit", fit_interrupted_after_one_epoch)
    code, out, err = run_cli(["circle", *SMALL, "--out", str(tmp_path)], capsys)
    assert code == 130
    assert "interrupted after 1 of 2 epochs; outputs written" in err
    assert out.startswith("test accuracy: ")
    assert all((tmp_path / n).exists() for n in ("decision_boundary.png", "curves.png", "model.json"))
    assert load_checkpoint(tmp_path / "model.json").metadata["interrupted"] is True


@pytest.mark.parametrize("args,message", [
    (["--samples", "0"], "--samples: must be >= 1"),
    (["--samples", "-5"], "--samples: must be >= 1"),
    (["--batch-size", "0"], "--batch-size: must be >= 1"),
    (["--lr", "-1"], "--lr: must be > 0.0"),
    (["--lr", "inf"], "--lr: must be a finite number, got inf"),
    (["--lr", "nan"], "--lr: must be a finite number, got nan"),
    (["--radius", "inf"], "--radius: must be a finite number"),
    (["--momentum", "inf"], "--momentum: must be a finite number"),
    (["--epochs", "0"], "--epochs: must be >= 1"),
    (["--activation", "swish"], "invalid choice: 'swish'"),
    (["--test-size", "1.5"], "must be between 0 and 1"),
    (["--samples", "1"], "no training or no test data"),
    (["--loss", "hinge"], "hinge loss needs a raw score"),
    (["--nesterov"], "--nesterov needs --momentum > 0"),
    (["--engine", "gpu"], "invalid choice: 'gpu'"),
])
def test_circle_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    code, out, err = run_cli(["circle", "--quiet", "--out", str(tmp_path), *args], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_circle_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, out, err = run_cli(["circle", *SMALL, "--out", str(blocker / "run")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot write to --out" in err


def test_circle_help_explains_the_learning_rate(capsys):
    code, out, _ = run_cli(["circle", "--help"], capsys)
    assert code == 0 and "0.01" in out and "85%" in out and "99%" in out


@pytest.mark.parametrize("content,message", [
    ('{"format": "tinygrad_edu.mlp", "vers', "not valid JSON"),
    ('{"format": "tinygrad_edu.mlp", "version": 1, "architecture": {"nin": 2, "sizes": [1], "activation": "relu", '
     '"output_activation": "sigmoid"}, "parameters": {"layers.0.neurons.0.w.0": 1.0}}', "needs 3"),
    ("\x00\xff", "not"),
])
def test_predict_bad_model_file(tmp_path, capsys, content, message):
    path = tmp_path / "model.json"
    path.write_bytes(content.encode("latin-1"))
    code, out, err = run_cli(["predict", "--model", str(path), "0", "0"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err


def test_predict_missing_file_and_wrong_point(tmp_path, capsys):
    code, _, err = run_cli(["predict", "--model", str(tmp_path / "nope.json"), "0", "0"], capsys)
    assert code == 2 and "nope.json" in err and len(err.strip().splitlines()) == 1
    code, _, _ = run_cli(["circle", *SMALL, "--out", str(tmp_path)], capsys)
    code, _, err = run_cli(["predict", "--model", str(tmp_path / "model.json"), "0.5"], capsys)
    assert code == 2 and "takes 2 coordinates, got 1" in err
    code, _, err = run_cli(["predict", "--model", str(tmp_path / "model.json"), "0.5", "nan"], capsys)
    assert code == 2 and "finite" in err


def test_learning_curve(tmp_path, capsys):
    code, out, err = run_cli(["learning-curve", "--sizes", "40,120", "--test-samples", "100", "--epochs", "2",
                              "--quiet", "--out", str(tmp_path)], capsys)
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].lstrip().startswith("40 training points: test accuracy")
    record = json.loads((tmp_path / "learning_curve.json").read_text())
    assert record["sizes"] == [40, 120] and len(record["test_accuracy"]) == 2
    assert (tmp_path / "learning_curve.png").stat().st_size > 0
    assert np.all(np.array(record["test_accuracy"]) <= 1.0)
    code, _, err = run_cli(["learning-curve", "--sizes", "10,0", "--out", str(tmp_path)], capsys)
    assert code == 2 and "positive integers" in err


def test_circle_draws_one_samples_loss_graph_clustered_by_layer(tmp_path, capsys, any_layout):
    import xml.etree.ElementTree as ET

    code, _, _ = run_cli(["circle", *SMALL, "--out", str(tmp_path)], capsys)
    assert code == 0
    svg = ET.parse(tmp_path / "graph.svg").getroot()
    ns = "{http://www.w3.org/2000/svg}"
    clusters = {t.text for g in svg.iter(f"{ns}g") if g.get("class") == "cluster" for t in g.findall(f"{ns}text")}
    assert {"layers.0", "layers.1"} <= clusters
    text = " ".join(t.text or "" for t in svg.iter(f"{ns}text"))
    # every parameter of the 2-8-1 model is drawn, and the root is the loss with gradient 1
    for i in range(8):
        assert f"layers.0.neurons.{i}.b" in text and f"layers.1.neurons.0.w.{i}" in text
    assert "loss" in text and "grad 1" in text
    # the title says which sample this is: the first training point, with its coordinates and target
    assert re.search(r"loss of training sample 0 \(x = \(-?[\d.e-]+, -?[\d.e-]+\), target [01]\) after backward", text)


def test_circle_without_dot_draws_the_graph_in_process(tmp_path, capsys, require_wasm_layout, no_dot):
    code, out, err = run_cli(["circle", *SMALL, "--out", str(tmp_path)], capsys)
    assert code == 0 and out.startswith("test accuracy:") and "warning" not in err
    assert ET.parse(tmp_path / "graph.svg").getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert all((tmp_path / n).stat().st_size > 0 for n in ("decision_boundary.png", "curves.png", "model.json"))


def test_circle_without_any_layout_still_writes_everything_else(tmp_path, capsys, no_dot, monkeypatch):
    from tinygrad_edu.viz import layout

    monkeypatch.setattr(layout._Wasm, "backend", None)
    monkeypatch.setattr(layout._Wasm, "missing", "the in-process layout is not installed")
    code, out, err = run_cli(["circle", *SMALL, "--out", str(tmp_path)], capsys)
    assert code == 0 and out.startswith("test accuracy:")
    assert "graph.svg not written" in err and "apt-get install graphviz" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "graph.dot").read_text().startswith("digraph")
    assert all((tmp_path / n).stat().st_size > 0 for n in ("decision_boundary.png", "curves.png", "model.json"))


# --- interrupts and crashes while the outputs are written ------------------------------------------

OUTPUTS = ("model.json", "decision_boundary.png", "curves.png", "graph.svg")


def _complete(path):
    """True when ``path`` holds a whole file of its kind (not zero bytes, not cut short)."""
    data = path.read_bytes()
    if path.suffix == ".png":
        return data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")
    if path.suffix == ".svg":
        return data.rstrip().endswith(b"</svg>")
    return bool(json.loads(data))


def test_ctrl_c_while_writing_still_writes_every_output_then_exits_130(tmp_path, capsys, monkeypatch,
                                                                       require_svg_layout):
    import os
    import signal

    from tinygrad_edu.viz import plots

    real = plots.plot_curves

    def interrupted_plot(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered in the middle of the output phase
        return real(*args, **kwargs)

    monkeypatch.setattr(plots, "plot_curves", interrupted_plot)
    code, out, err = run_cli(["circle", *SMALL, "--out", str(tmp_path)], capsys)
    assert code == 130
    assert out.startswith("test accuracy:") and "finishing the outputs" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUTS)
    assert all(_complete(tmp_path / name) for name in OUTPUTS)


def test_a_crash_mid_write_leaves_no_partial_file(tmp_path, capsys, monkeypatch):
    from tinygrad_edu import _io

    real_replace = _io.os.replace

    def crash(src, dst):
        if str(dst).endswith("curves.png"):
            with open(src, "r+b") as f:
                f.truncate(10)  # half a file in the temporary name, then the process dies
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(_io.os, "replace", crash)
    code, _, err = run_cli(["circle", *SMALL, "--out", str(tmp_path)], capsys)
    assert code == 130 and "interrupted" in err
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "curves.png" not in names and not [n for n in names if n.startswith(".")]
    assert all(_complete(tmp_path / name) for name in names)


def test_ctrl_c_while_the_command_is_still_importing_prints_one_line(tmp_path):
    import subprocess
    import sys

    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def interrupted(name, *args, **kwargs):\n"
        "    if name.startswith('matplotlib'):\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupted\n"
        "from tinygrad_edu.cli import main\n"
        "sys.exit(main(['circle', '--out', sys.argv[1]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130
    assert done.stderr == "tinygrad-edu: interrupted\n"


def test_the_command_starts_inside_its_interrupt_handler_before_loading_numpy():
    # The console script runs `from tinygrad_edu.cli import main` before main's try: that import must
    # load nothing heavy (NumPy, matplotlib, the subcommands), so Ctrl-C meanwhile is rare and short.
    import subprocess
    import sys

    code = ("import sys\nimport tinygrad_edu.cli\n"
            "print(sorted(m for m in ('numpy', 'matplotlib', 'argparse', 'tinygrad_edu.custom', 'tinygrad_edu.cli.circle')"
            " if m in sys.modules))\nimport tinygrad_edu\nprint(tinygrad_edu.primitive.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "tinygrad_edu.custom"]


# --- sizes that cannot fit, and diverging runs ------------------------------------------------

GB = 10**9


@pytest.mark.parametrize("command, args, message", [
    ("circle", ["--samples", "1000000000"], "--samples 1000000000 with a 2-8-1 network needs about"),
    ("circle", ["--samples", "99999999999999999999"], "--samples 99999999999999999999 with a 2-8-1 network"),
    ("circle", ["--hidden", "1000000000"], "--hidden gives a 2-1000000000-1 network with 4,000,000,001 parameters"),
    ("circle", ["--hidden", "500,500"], "at most 200,000"),
    ("circle", ["--hidden", ",".join(["2"] * 200)], "network of 201 layers; at most 100"),
    ("learning-curve", ["--sizes", "100,1000000000"], "--sizes 1000000000 with --test-samples 1000"),
    ("learning-curve", ["--test-samples", "10000000000"], "--test-samples 10000000000"),
])
def test_runs_that_cannot_fit_are_refused_up_front_naming_the_limit(tmp_path, capsys, monkeypatch,
                                                                    command, args, message):
    from tinygrad_edu.cli import _resources

    monkeypatch.setattr(_resources, "available_memory", lambda: 8 * GB)  # the same answer on every machine
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("started training"))
    code, out, err = run_cli([command, "--quiet", "--out", str(tmp_path / "run"), *args], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and message in err and len(err) < 600
    if "memory" in err:
        assert "6.4 GB this run may use (80% of the 8 GB available): at most about" in err


def test_the_memory_estimate_uses_what_this_machine_has(tmp_path, capsys):
    # 1e20 points need far more memory than any machine has.
    code, _, err = run_cli(["circle", "--quiet", "--samples", "99999999999999999999", "--out", str(tmp_path)], capsys)
    assert code == 2 and "needs about" in err and "available" in err


@pytest.mark.parametrize("radius, message", [
    ("1e155", "--radius 1e+155: every point of the square [-1, 1]² lies inside"),
    ("1.5", "--radius 1.5: every point"),
    ("1e-9", "--radius 1e-09 with --samples 5000 puts about 3.9e-15 points inside the circle"),
])
def test_a_radius_that_leaves_one_class_is_refused(tmp_path, capsys, radius, message):
    code, out, err = run_cli(["circle", "--quiet", "--radius", radius, "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "run").exists() or list((tmp_path / "run").iterdir()) == []


@pytest.mark.parametrize("args, option", [
    (["--lr", "1e6"], "try a smaller --lr (e.g. --lr 0.1)"),
    (["--momentum", "2"], "use a value below 1 (e.g. --momentum 0.9)"),
])
def test_a_diverging_run_stops_and_exits_2_naming_the_option(tmp_path, capsys, args, option):
    (tmp_path / "model.json").write_text("an earlier run's model")
    code, out, err = run_cli(["circle", "--quiet", "--epochs", "50", *args, "--out", str(tmp_path)], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "training diverged" in err and option in err
    assert re.search(r"the loss (exploded from [\d.]+ to [\d.e+]+|became (nan|inf)) at epoch 1, batch \d+", err), err
    # stopped: nothing half-written, and what was there before is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]
    assert (tmp_path / "model.json").read_text() == "an earlier run's model"


def test_learning_curve_keeps_the_sizes_that_finished_before_a_divergence(tmp_path, capsys, monkeypatch):
    from tinygrad_edu.cli import learning_curve

    real = learning_curve.fit_or_fail

    def diverge_on_the_second_size(model, objective, X, y, args, **kwargs):
        if len(X) > 50:
            raise learning_curve.CLIError("the loss became nan at epoch 1, batch 1: training diverged; try --lr")
        return real(model, objective, X, y, args, **kwargs)

    monkeypatch.setattr(learning_curve, "fit_or_fail", diverge_on_the_second_size)
    code, out, err = run_cli(["learning-curve", "--quiet", "--sizes", "50,200", "--test-samples", "100",
                              "--epochs", "1", "--out", str(tmp_path)], capsys)
    assert code == 2 and "200 training points: the loss became nan" in err and "sizes that finished" in err
    record = json.loads((tmp_path / "learning_curve.json").read_text())
    assert record["sizes"] == [50] and record["diverged"].startswith("200 training points")
    assert (tmp_path / "learning_curve.png").stat().st_size > 0


@pytest.mark.parametrize("make, message", [
    (lambda tmp: "/dev/zero", "is a device, not a model file"),
    (lambda tmp: str(tmp), "is a directory"),
    (lambda tmp: (tmp / "m.json").write_text('{"format": "tinygrad_edu.mlp", "version": 1, "architecture": '
                                             '{"nin": 9999990, "sizes": [2, 1], "activation": "relu", '
                                             '"output_activation": "sigmoid"}, "parameters": {}}') and str(tmp / "m.json"),
     "at most 200,000"),
])
def test_predict_refuses_hostile_model_files_in_one_line(tmp_path, capsys, make, message):
    import os

    path = make(tmp_path)
    if not os.path.exists(path):
        pytest.skip(f"no {path} here")
    code, out, err = run_cli(["predict", "--model", path, "0", "0"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err


@pytest.mark.parametrize("task", ["moons", "xor", "spirals", "blobs"])
def test_circle_trains_another_task_and_records_it(tmp_path, capsys, task):
    code, out, err = run_cli(["circle", "--task", task, "--samples", "300", "--epochs", "2", "--quiet",
                              "--noise", "0.1", "--out", str(tmp_path)], capsys)
    assert code == 0 and err.count("\n") <= 1 and re.fullmatch(r"test accuracy: \d{1,3}\.\d\d%\n", out)
    meta = load_checkpoint(tmp_path / "model.json").metadata
    assert meta["task"] == task and meta["noise"] == 0.1 and "radius" not in meta
    assert meta["history"]["epoch"] == [1, 2]


def test_a_model_trained_on_blobs_classifies_fresh_blobs(tmp_path, capsys):
    from tinygrad_edu.data import blobs

    code, _, _ = run_cli(["circle", "--task", "blobs", "--samples", "400", "--epochs", "10", "--quiet",
                          "--out", str(tmp_path)], capsys)
    assert code == 0
    model = load_checkpoint(tmp_path / "model.json").model
    X, y = blobs(500, seed=12345)  # points the run never saw; the two blobs barely overlap at noise 0.25
    predicted = np.array([model(list(x)).data > 0.5 for x in X])
    assert (predicted == (y == 1.0)).mean() >= 0.9


def test_task_data_follows_the_generators_and_the_seed(tmp_path, capsys):
    """Two tasks with the same seed train on different points; the same task twice on the same."""
    runs = {}
    for name, task in (("a", "moons"), ("b", "moons"), ("c", "blobs")):
        code, _, _ = run_cli(["circle", "--task", task, *SMALL, "--out", str(tmp_path / name)], capsys)
        assert code == 0
        runs[name] = json.loads((tmp_path / name / "model.json").read_text())["parameters"]
    assert runs["a"] == runs["b"] and runs["a"] != runs["c"]


def test_circle_default_out_dir_is_named_after_the_task(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = run_cli(["circle", "--task", "xor", *SMALL], capsys)
    assert code == 0 and (tmp_path / "runs" / "xor" / "model.json").is_file()
    assert not (tmp_path / "runs" / "circle").exists()


@pytest.mark.parametrize("args,message", [
    (["--task", "xor", "--radius", "0.3"], "--radius applies to --task circle"),
    (["--task", "rings"], "invalid choice: 'rings'"),
    (["--noise", "-0.1"], "--noise"),
    (["--noise", "nan"], "--noise"),
])
def test_task_options_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    for command in (["circle"], ["learning-curve", "--sizes", "40"]):
        code, out, err = run_cli([*command, "--quiet", "--out", str(tmp_path), *args], capsys)
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_learning_curve_on_another_task(tmp_path, capsys):
    code, out, err = run_cli(["learning-curve", "--task", "blobs", "--sizes", "40,120", "--test-samples", "100",
                              "--epochs", "2", "--quiet", "--out", str(tmp_path)], capsys)
    assert code == 0 and err == ""
    record = json.loads((tmp_path / "learning_curve.json").read_text())
    assert record["task"] == "blobs" and record["noise"] == 0.25 and record["sizes"] == [40, 120]


def test_learning_curve_refuses_a_radius_that_leaves_one_class(tmp_path, capsys):
    code, out, err = run_cli(["learning-curve", "--radius", "0.05", "--sizes", "10,100", "--out", str(tmp_path)],
                             capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "--sizes 10 puts about 0.02 points inside" in err and "more points (--sizes)" in err
