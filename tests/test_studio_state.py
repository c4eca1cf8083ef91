"""tinygrad_edu.studio.state: the studio's run is train.fit's run (same seeds as ``tinygrad-edu
circle``), steps and epochs count right, points and settings change what they should."""

import numpy as np
import pytest

from tinygrad_edu import data, nn, optim, train
from tinygrad_edu.cli.circle import derived_seeds
from tinygrad_edu.studio.config import ConfigError
from tinygrad_edu.studio.state import Studio, StudioError


def reference_history(samples, epochs, **kw):
    """The same run through train.fit, the way ``tinygrad-edu circle`` sets it up."""
    data_seed, split_seed, init_seed, shuffle_seed = derived_seeds(0)
    X, y = data.circle(samples, seed=data_seed)
    X_tr, X_te, y_tr, y_te = data.train_test_split(X, y, 0.2, seed=split_seed)
    model = nn.MLP(2, [8, 1], "relu", "sigmoid", seed=init_seed)
    return train.fit(model, X_tr, y_tr, X_test=X_te, y_test=y_te, optimizer=optim.SGD(model.parameters(), lr=0.1),
                     epochs=epochs, batch_size=32, seed=shuffle_seed, engine="batched", progress=False), model


def test_play_is_train_fit_with_the_circle_commands_seeds():
    studio = Studio({"samples": 1000, "epochs": 4})
    studio.play()
    studio.wait(60)
    ref, model = reference_history(1000, 4)
    h = studio.history
    assert studio.status == "done" and studio.epoch == 4 and h.epoch == [0, 1, 2, 3, 4]
    assert h.test_accuracy[1:] == ref.test_accuracy and h.train_loss[1:] == pytest.approx(ref.train_loss, rel=1e-12)
    assert studio.model.state_dict() == pytest.approx(model.state_dict(), rel=1e-12, abs=1e-15)


def test_steps_and_epochs_count_and_play_again_goes_on():
    studio = Studio({"samples": 200, "epochs": 2, "batch_size": 50})  # 160 training points: 4 batches
    studio.step()
    assert (studio.epoch, studio.batch, studio.status) == (0, 1, "paused")
    studio.run_epoch()  # to the end of the epoch in progress
    assert (studio.epoch, studio.batch, studio.history.steps) == (1, 0, 4)
    studio.play()
    studio.wait(60)
    assert studio.epoch == 2 and studio.status == "done"
    studio.play()  # done: another `epochs`
    studio.wait(60)
    assert studio.epoch == 4 and len(studio.norms["epoch"]) == 16  # every batch sampled: 4 per epoch


def test_gradient_norms_are_the_layers_gradient_norms():
    studio = Studio({"samples": 200, "hidden": [4, 3]})
    studio.step()
    studio.trainer.store()
    for layer, norm in zip(studio.model.layers, studio.norms["layers"]):
        grads = [p.grad for p in layer.parameters()]
        assert norm[-1] == pytest.approx(float(np.sqrt(np.sum(np.square(grads)))), rel=1e-12)
    snap = studio.snapshot()
    w = snap["network"]["layers"][1]["w"]
    assert w[2][1] == studio.model.layers[1].neurons[2].w[1].data
    assert snap["network"]["layers"][0]["gb"][3] == studio.model.layers[0].neurons[3].b.grad


def test_settings_reset_the_run_or_carry_on():
    studio = Studio({"samples": 200})
    studio.run_epoch()
    weights = studio.model.state_dict()
    studio.configure({"lr": 0.3, "momentum": 0.5, "epochs": 7})
    assert studio.epoch == 1 and studio.optimizer.lr == 0.3 and studio.optimizer.momentum == 0.5
    assert studio.model.state_dict() == weights
    studio.configure({"task": "moons", "noise": 0.1})
    assert studio.epoch == 0 and studio.history.steps == 0
    X, _ = data.moons(200, seed=derived_seeds(0)[0], noise=0.1)
    assert {tuple(r) for r in studio.X_train} <= {tuple(r) for r in X}
    with pytest.raises(ConfigError, match="momentum applies to SGD"):
        Studio({"optimizer": "adam"}).configure({"momentum": 0.9})


def test_points_change_the_training_set_and_the_next_epoch_uses_them():
    studio = Studio({"samples": 100, "batch_size": 100})
    n = len(studio.y_train)
    assert studio.add_point(0.9, 0.9, 1) == n + 1
    assert len(studio.trainer.batches) == 1 and studio.trainer.XY.shape[1] == n + 1
    assert studio.remove_point(n) == n
    with pytest.raises(ConfigError, match="label must be 0 or 1"):
        studio.add_point(0.0, 0.0, 3)
    with pytest.raises(ConfigError, match="x must be a number"):
        studio.add_point(float("nan"), 0.0, 1)
    small = Studio({"samples": 20, "test_size": 0.85})  # 17 test, 3 training points
    small.remove_point(0)
    with pytest.raises(StudioError, match="at least two points"):
        small.remove_point(0)


def test_every_task_trains():
    for task in data.TASKS:
        studio = Studio({"task": task, "samples": 200, "hidden": [6]})
        studio.run_epoch()
        assert studio.epoch == 1 and 0.0 <= studio.metrics["test_accuracy"] <= 1.0


def test_long_histories_are_thinned_in_the_snapshot_keeping_the_last_epoch():
    from tinygrad_edu.studio.state import MAX_SAMPLES, _thin

    assert _thin(list(range(10)), most=20) == list(range(10))
    thinned = _thin(list(range(4001)), most=2000)
    assert len(thinned) <= 2001 and thinned[0] == 0 and thinned[-1] == 4000
    assert thinned == sorted(set(thinned)) and max(b - a for a, b in zip(thinned, thinned[1:])) <= 3
    studio = Studio({"samples": 40, "batch_size": 40})
    studio.history.epoch = list(range(MAX_SAMPLES * 3))
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        setattr(studio.history, key, [0.5] * (MAX_SAMPLES * 3))
    h = studio.snapshot()["history"]
    assert len(h["epoch"]) <= MAX_SAMPLES + 1 and h["epoch"][-1] == MAX_SAMPLES * 3 - 1
    assert len(h["test_loss"]) == len(h["epoch"])
