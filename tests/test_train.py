"""tinygrad_edu.train: fit's history, reproducibility, the clean Ctrl-C stop, objectives and the
engine step against finite differences; and the circle task learning on seeds 0-4 (reduced size)."""

import gc
import math
import re
import sys
import signal

import numpy as np
import pytest

from tinygrad_edu import Value, data, nn, optim, train


def circle_problem(seed: int, n: int = 300):
    a, b, c, d = (int(s) for s in np.random.SeedSequence(seed).generate_state(4))
    X, y = data.circle(n, seed=a)
    X_tr, X_te, y_tr, y_te = data.train_test_split(X, y, 0.2, seed=b)
    return nn.MLP(2, [8, 1], "relu", "sigmoid", seed=c), X_tr, X_te, y_tr, y_te, d


@pytest.mark.parametrize("seed", range(5))
def test_default_recipe_learns_the_circle_on_every_seed(seed):
    # The default recipe (2-8-1 ReLU/sigmoid, BCE, SGD lr 0.1) at a reduced size to keep the test
    # fast: 800 points, batch 4, 8 epochs instead of 5000, 32, 50. The full run is measured by
    # benchmarks/bench_circle.py (docs/performance.md).
    model, X_tr, X_te, y_tr, y_te, shuffle = circle_problem(seed, n=800)
    initial_loss, _ = train.evaluate(model, X_te, y_te)
    train.fit(model, X_tr, y_tr, epochs=8, batch_size=4, seed=shuffle, progress=False)
    loss, accuracy = train.evaluate(model, X_te, y_te)
    assert loss < 0.5 * initial_loss
    assert accuracy >= 0.92  # the majority class alone scores about 0.80


def test_history_shape_and_reproducibility():
    runs = []
    for _ in range(2):
        model, X_tr, X_te, y_tr, y_te, shuffle = circle_problem(0, n=100)
        h = train.fit(model, X_tr, y_tr, X_test=X_te, y_test=y_te, epochs=3, batch_size=16, seed=shuffle,
                      progress=False)
        runs.append((h, model.state_dict()))
    (h, state), (h2, state2) = runs
    assert h.epoch == [1, 2, 3] and len(h.train_loss) == len(h.test_accuracy) == 3
    assert h.steps == 3 * math.ceil(80 / 16) and not h.interrupted and h.seconds > 0
    assert h.to_dict()["test_loss"] == h.test_loss
    assert state == state2 and h.test_loss == h2.test_loss
    # the recorded metrics are those of the final model
    loss, acc = train.evaluate(model_from(state), X_te, y_te)
    assert loss == pytest.approx(h.test_loss[-1], rel=1e-12) and acc == h.test_accuracy[-1]


def model_from(state):
    model = nn.MLP(2, [8, 1], "relu", "sigmoid", seed=0)
    model.load_state_dict(state)
    return model


def test_keyboard_interrupt_from_callback_returns_history():
    model, X_tr, _, y_tr, _, _ = circle_problem(1, n=100)

    def stop_at_two(epoch, history):
        if epoch == 2:
            raise KeyboardInterrupt

    h = train.fit(model, X_tr, y_tr, epochs=10, batch_size=16, seed=0, progress=False, callback=stop_at_two)
    assert h.interrupted and h.epoch == [1, 2] and h.steps == 2 * 5 and h.test_loss == []


def test_ctrl_c_stops_after_the_current_batch():
    model, X_tr, X_te, y_tr, y_te, _ = circle_problem(2, n=100)
    calls = []

    def step(model, objective, Xb, yb):
        calls.append(len(Xb))
        value = train.scalar_step(model, objective, Xb, yb)
        if len(calls) == 7:  # in the middle of epoch 2 (5 batches per epoch)
            signal.raise_signal(signal.SIGINT)
        return value

    engine = train.Engine("interrupting", step, train.scalar_outputs)
    before = model.state_dict()
    h = train.fit(model, X_tr, y_tr, X_test=X_te, y_test=y_te, epochs=5, batch_size=16, seed=0,
                  engine=engine, progress=False)
    assert h.interrupted and h.steps == 7 == len(calls)
    assert h.epoch == [1, 1.4]  # the partial epoch is evaluated too
    assert model.state_dict() != before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_scalar_step_gradient_matches_finite_differences():
    model = nn.MLP(2, [3, 1], "tanh", "sigmoid", seed=4)
    Xb, yb = np.array([[0.3, -0.5], [-0.8, 0.1], [0.6, 0.6]]), np.array([1.0, 0.0, 1.0])
    objective = train.make_objective("bce", model)
    model.zero_grad()
    value = train.scalar_step(model, objective, Xb, yb)

    def batch_loss():
        p = 1 / (1 + np.exp(-np.array([model.logits(list(x)).data for x in Xb])))
        return float(np.mean(-(yb * np.log(p) + (1 - yb) * np.log(1 - p))))

    assert value == pytest.approx(batch_loss(), rel=1e-12)
    for p in model.parameters():
        old, h = p.data, 1e-6
        p.data = old + h
        up = batch_loss()
        p.data = old - h
        down = batch_loss()
        p.data = old
        assert p.grad == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9)


def test_objectives():
    sig = nn.MLP(2, [2, 1], output_activation="sigmoid", seed=0)
    lin = nn.MLP(2, [2, 1], output_activation="linear", seed=0)
    tanh = nn.MLP(2, [2, 1], output_activation="tanh", seed=0)
    bce = train.make_objective("bce", sig)
    assert bce.from_logits and bce.logit_output
    x = [0.2, 0.4]
    assert bce.output(sig, x).data == sig.logits(x).data
    np.testing.assert_allclose(bce.proba(np.array([0.0, 2.0, -800.0])), [0.5, 1 / (1 + math.exp(-2)), 0.0])
    assert not train.make_objective("bce", lin).from_logits
    hinge = train.make_objective("hinge", tanh)
    np.testing.assert_allclose(hinge.proba(np.array([-3.0, 0.0, 0.5])), [0.0, 0.5, 0.75])
    np.testing.assert_allclose(train.make_objective("mse", sig).proba(np.array([-0.1, 0.3, 1.2])), [0, 0.3, 1])
    with pytest.raises(ValueError, match="hinge loss needs a raw score"):
        train.make_objective("hinge", sig)
    with pytest.raises(ValueError, match="binary cross-entropy needs a sigmoid"):
        train.make_objective("bce", tanh)
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        train.make_objective("l1", sig)


@pytest.mark.parametrize("loss,out_act,opt", [("mse", "sigmoid", "sgd"), ("hinge", "linear", "adam")])
def test_other_losses_and_optimizers_reduce_the_loss(loss, out_act, opt):
    model = nn.MLP(2, [8, 1], "relu", out_act, seed=0)
    X, y = data.circle(120, seed=1)
    optimizer = optim.Adam(model.parameters(), lr=0.02) if opt == "adam" else optim.SGD(model.parameters(), lr=0.3)
    initial_loss, _ = train.evaluate(model, X, y, loss=loss)
    h = train.fit(model, X, y, loss=loss, optimizer=optimizer, epochs=6, batch_size=8, seed=0, progress=False)
    assert h.train_loss[-1] < 0.7 * initial_loss


def test_predict_proba_and_evaluate_agree_with_the_model():
    model = nn.MLP(2, [4, 1], "relu", "sigmoid", seed=0)
    X = np.array([[0.1, 0.2], [-0.5, 0.9]])
    probs = train.predict_proba(model, X)
    np.testing.assert_allclose(probs, [model(list(x)).data for x in X], rtol=1e-14)
    y = (probs > 0.5).astype(float)
    assert train.evaluate(model, X, y)[1] == 1.0 and train.evaluate(model, X, 1 - y)[1] == 0.0


def test_progress_lines_when_not_a_terminal(capsys):
    model, X_tr, X_te, y_tr, y_te, _ = circle_problem(0, n=60)
    train.fit(model, X_tr, y_tr, X_test=X_te, y_test=y_te, epochs=2, batch_size=16, seed=0, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1].startswith("epoch 2/2: train loss") and "test loss" in err[1]
    train.fit(model, X_tr, y_tr, epochs=1, seed=0, progress=False)
    assert capsys.readouterr().err == ""


def test_divergence_and_bad_arguments():
    model = nn.MLP(2, [4, 1], "relu", "linear", seed=0)
    X, y = data.circle(64, seed=0)
    with pytest.raises((FloatingPointError, OverflowError)):
        train.fit(model, X * 1e150, y, loss="mse", optimizer=optim.SGD(model.parameters(), lr=1e10), epochs=3,
                  progress=False)
    fresh = nn.MLP(2, [4, 1], seed=0)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        train.fit(fresh, X, y, epochs=0)
    with pytest.raises(ValueError, match="3 features but the model takes 2"):
        train.fit(fresh, np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match=r"y_train must have shape \(64,\)"):
        train.fit(fresh, X, y[:10])
    with pytest.raises(ValueError, match="unknown engine"):
        train.fit(fresh, X, y, engine="gpu")
    with pytest.raises(ValueError, match="both X_test and y_test"):
        train.fit(fresh, X, y, X_test=X)


def test_loss_and_accuracy_with_an_engine_loss_matches_the_exact_sum():
    rng = np.random.default_rng(0)
    model = nn.MLP(2, [3, 1], "relu", "sigmoid", seed=0)
    objective = train.make_objective("bce", model)
    outputs, y = rng.normal(0, 4, 4000), (rng.random(4000) < 0.3).astype(float)
    want = math.fsum(objective.criterion(Value(o), t).data for o, t in zip(outputs.tolist(), y.tolist())) / 4000
    loss, accuracy = train.loss_and_accuracy(objective, outputs, y, train.ENGINES["batched"].losses)
    assert loss == pytest.approx(want, rel=1e-14)
    assert accuracy == np.mean((outputs > 0) == (y > 0.5))


@pytest.mark.parametrize("engine", sorted(train.ENGINES))
def test_divergence_in_the_last_step_of_an_epoch_raises(engine):
    # One batch per epoch: its loss is finite, the step it drives sends the weights to ~1e298, and
    # only the evaluation after the epoch sees the NaN loss; fit must not return that history.
    model = nn.MLP(2, [8, 1], "relu", "sigmoid", seed=5)
    X, y = data.circle(40, seed=0)
    with pytest.raises(FloatingPointError, match="loss became nan after epoch 1: training diverged"):
        train.fit(model, X, y, optimizer=optim.SGD(model.parameters(), lr=1e300), epochs=1, batch_size=64,
                  engine=engine, progress=False)


def _collector_engine(log, fail_at=None, error=RuntimeError):
    """The scalar engine with pause_gc, its step logging whether the collector is on."""
    def step(model, objective, Xb, yb):
        log.append(("step", gc.isenabled()))
        if len(log) == fail_at:
            raise error("stop here")
        return train.scalar_step(model, objective, Xb, yb)

    def outputs(model, objective, X):
        log.append(("eval", gc.isenabled()))
        return train.scalar_outputs(model, objective, X)

    return train.Engine("logging", step, outputs, pause_gc=True)


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_scalar_engine_pauses_the_collector_for_training_and_evaluation(collector_on):
    assert train.ENGINES["scalar"].pause_gc and not train.ENGINES["batched"].pause_gc
    model, X_tr, X_te, y_tr, y_te, _ = circle_problem(0, n=60)
    log = []
    h = train.fit(model, X_tr, y_tr, X_test=X_te, y_test=y_te, epochs=2, batch_size=16, seed=0,
                  engine=_collector_engine(log), progress=False,
                  callback=lambda epoch, history: log.append(("callback", gc.isenabled())))
    assert h.epoch == [1, 2] and gc.isenabled()
    assert [kind for kind, _ in log] == (["step"] * 3 + ["eval"] * 2 + ["callback"]) * 2
    assert all(not on for kind, on in log if kind != "callback")  # paused for the batches and metrics
    assert all(on for kind, on in log if kind == "callback")  # the user's code runs with it on


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_the_collector_comes_back_after_an_error_or_ctrl_c(collector_on, error):
    model, X_tr, _, y_tr, _, _ = circle_problem(0, n=60)
    log = []
    engine = _collector_engine(log, fail_at=6, error=error)  # 3 batches and 1 evaluation per epoch: epoch 2, batch 2
    if error is RuntimeError:
        with pytest.raises(RuntimeError, match="stop here"):
            train.fit(model, X_tr, y_tr, epochs=3, batch_size=16, seed=0, engine=engine, progress=False)
    else:  # Ctrl-C raising inside a step (the second press): fit stops and returns
        h = train.fit(model, X_tr, y_tr, epochs=3, batch_size=16, seed=0, engine=engine, progress=False)
        assert h.interrupted and h.epoch == [1, round(1 + 1 / 3, 3)]
        assert log[6] == ("eval", False)  # the partial epoch's evaluation: paused again
    assert log[5] == ("step", False) and gc.isenabled()


def test_a_collector_the_user_turned_off_stays_off():
    was = gc.isenabled()
    gc.disable()
    try:
        model, X_tr, _, y_tr, _, _ = circle_problem(0, n=40)
        log = []
        train.fit(model, X_tr, y_tr, epochs=1, batch_size=16, seed=0, engine=_collector_engine(log), progress=False,
                  callback=lambda epoch, history: log.append(("callback", gc.isenabled())))
        assert not gc.isenabled() and log[-1] == ("callback", False)
    finally:
        if was:
            gc.enable()


@pytest.mark.parametrize("activation,output_activation,loss,on_arrays", [
    ("relu", "sigmoid", "bce", True),  # the circle network: its logit is mul, sum, relu
    ("tanh", "linear", "mse", True),
    ("relu", "sigmoid", "mse", False),  # a sigmoid output: exp, whose NumPy form may differ in the last bits
])
def test_scalar_outputs_evaluate_on_arrays_only_where_the_bits_are_the_same(
        monkeypatch, activation, output_activation, loss, on_arrays):
    from tinygrad_edu import batched

    model = nn.MLP(2, [8, 1], activation, output_activation, seed=3)
    objective = train.make_objective(loss, model)
    X = np.random.default_rng(0).normal(0, 3, (500, 2))
    want = np.array([objective.output(model, x).data for x in X.tolist()])  # graphs of Values
    replays = []
    forward = batched.Tape.forward
    monkeypatch.setattr(batched.Tape, "forward", lambda tape, X: replays.append(len(X)) or forward(tape, X))
    got = train.scalar_outputs(model, objective, X)
    assert np.array_equal(got, want)  # the same numbers, on either path
    assert replays == ([500] if on_arrays else [])


def test_scalar_outputs_off_the_tape_record_no_graph(monkeypatch):
    model = nn.MLP(2, [4, 1], "relu", "sigmoid", seed=3)  # a sigmoid output: evaluated on Values
    objective = train.make_objective("mse", model)
    made = []
    output = train.Objective.output
    monkeypatch.setattr(train.Objective, "output", lambda self, m, x: made.append(output(self, m, x)) or made[-1])
    got = train.scalar_outputs(model, objective, np.array([[0.5, -1.0], [2.0, 0.25]]))
    # the first is the batched engine's trace of one row (it decides the tape is not used here)
    assert len(made) == 3 and all(v.is_leaf for v in made[1:])  # no graph behind the numbers
    want = [model([0.5, -1.0]).data, model([2.0, 0.25]).data]
    assert list(got) == want


def _run_on_a_terminal(columns: int, fn):
    """Run ``fn()`` with stderr on a pseudo-terminal ``columns`` wide; its result and what it showed."""
    import fcntl
    import os
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    chunks = []

    def read():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    saved = sys.stderr
    sys.stderr = os.fdopen(slave, "w", buffering=1)
    try:
        result = fn()
        sys.stderr.flush()
    finally:
        sys.stderr.close()
        sys.stderr = saved
        reader.join(timeout=5)
        os.close(master)
    return result, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_on_a_terminal_each_epochs_full_line_is_printed_above_the_bar(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    model, X_tr, X_te, y_tr, y_te, _ = circle_problem(0, n=60)
    h, shown = _run_on_a_terminal(80, lambda: train.fit(model, X_tr, y_tr, X_test=X_te, y_test=y_te, epochs=2,
                                                        batch_size=16, seed=0, progress=True))
    screen = re.split(r"[\r\n]", shown)
    assert any("batch" in line for line in screen)  # a tqdm bar was drawn
    for i, epoch in enumerate((1, 2)):
        numbers = (f"{h.train_loss[i]:.4f}", f"{100 * h.train_accuracy[i]:.2f}%", f"{h.test_loss[i]:.4f}",
                   f"{100 * h.test_accuracy[i]:.2f}%")
        lines = [line for line in screen if line.startswith(f"epoch {epoch}/2")]
        assert lines, f"no line for epoch {epoch}"
        assert any(all(n in line for n in numbers) for line in lines), lines  # the whole summary, cut nowhere


# --- divergence: non-finite or exploding loss ---------------------------------------------------

@pytest.mark.parametrize("lr, momentum", [(1e6, 0.0), (0.1, 2.0)])
def test_an_exploding_loss_stops_training_during_the_first_epoch(lr, momentum):
    X, y = data.circle(2000, seed=1)
    model = nn.MLP(2, [8, 1], seed=2)
    seen = []
    with pytest.raises(train.TrainingDiverged) as info:
        train.fit(model, X, y, optimizer=optim.SGD(model.parameters(), lr=lr, momentum=momentum), epochs=20,
                  engine="batched", progress=False, callback=lambda epoch, history: seen.append(epoch))
    err = info.value
    assert isinstance(err, FloatingPointError) and "training diverged" in str(err)
    assert "at epoch 1," in err.cause and err.history is not None and err.history.epoch == seen == []


def test_the_divergence_check_compares_with_the_first_loss():
    # Batch losses 999x the first are not divergence, 1001x are (the factor is relative).
    import dataclasses

    X, y = data.circle(64, seed=0)
    model = nn.MLP(2, [2, 1], seed=0)
    losses = iter([0.5, 499.0, 0.4, 500.5])
    engine = dataclasses.replace(train.ENGINES["scalar"], step=lambda *args: next(losses))
    with pytest.raises(train.TrainingDiverged, match=r"exploded from 0.5 to 500.5 at epoch 1, batch 4"):
        train.fit(model, X, y, epochs=1, batch_size=16, engine=engine, progress=False)
    assert train.DIVERGENCE_FACTOR == 1000.0


@pytest.mark.parametrize("lr", [0.1, 10.0])
def test_healthy_and_merely_wild_runs_are_not_divergence(lr):
    X, y = data.circle(1000, seed=1)
    model = nn.MLP(2, [8, 1], seed=2)
    history = train.fit(model, X, y, optimizer=optim.SGD(model.parameters(), lr=lr), epochs=3, engine="batched",
                        progress=False)
    assert history.epoch == [1, 2, 3]
