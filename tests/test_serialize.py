"""tinygrad_edu.serialize: JSON model files round-trip exactly, and bad files give clear errors."""

import json
import math
import struct

import pytest

from tinygrad_edu import nn
from tinygrad_edu.serialize import ModelFileError, load_checkpoint, load_model, model_to_dict, save_model


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def test_round_trip_is_bit_exact(tmp_path):
    model = nn.MLP(2, [8, 4, 1], "tanh", "sigmoid", seed=3)
    model.parameters()[0].data = 0.1 + 0.2  # a float whose shortest repr has 17 digits
    model.parameters()[1].data = 5e-324
    path = save_model(model, tmp_path / "m.json", metadata={"loss": "bce", "seed": 3})
    loaded = load_checkpoint(path)
    assert loaded.metadata == {"loss": "bce", "seed": 3}
    assert loaded.model.config() == model.config()
    assert [bits(p.data) for p in loaded.model.parameters()] == [bits(p.data) for p in model.parameters()]
    assert [p.label for p in loaded.model.parameters()] == [p.label for p in model.parameters()]
    assert loaded.model([0.3, -0.1]).data == model([0.3, -0.1]).data


def test_file_is_plain_readable_json(tmp_path):
    save_model(nn.MLP(2, [1], seed=0), tmp_path / "m.json")
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["format"] == "tinygrad_edu.mlp" and doc["version"] == 1
    assert doc["architecture"] == {"nin": 2, "sizes": [1], "activation": "relu", "output_activation": "linear"}
    assert list(doc["parameters"]) == ["layers.0.neurons.0.w.0", "layers.0.neurons.0.w.1", "layers.0.neurons.0.b"]


def test_non_finite_model_cannot_be_saved(tmp_path):
    model = nn.MLP(2, [1], seed=0)
    model.parameters()[0].data = math.nan
    with pytest.raises(ValueError, match="non-finite"):
        save_model(model, tmp_path / "m.json")
    assert list(tmp_path.iterdir()) == []  # no half-written file


def good_doc():
    return model_to_dict(nn.MLP(2, [2, 1], "relu", "sigmoid", seed=0))


def mutate(fn):
    doc = good_doc()
    fn(doc)
    return json.dumps(doc)


@pytest.mark.parametrize("text,message", [
    (json.dumps(good_doc())[:120], "not valid JSON .* truncated"),
    ("", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (mutate(lambda d: d.update(format="keras")), "not a tinygrad_edu model file"),
    (mutate(lambda d: d.update(version=2)), "version 2 is not supported"),
    (mutate(lambda d: d.pop("architecture")), "missing the 'architecture'"),
    (mutate(lambda d: d["architecture"].update(sizes=[2, 0])), "sizes must be a non-empty list"),
    (mutate(lambda d: d["architecture"].update(nin="2")), "nin must be a positive integer"),
    (mutate(lambda d: d["architecture"].update(activation="gelu")), "activation must be one of"),
    (mutate(lambda d: d["architecture"].update(sizes=[3, 1])), "has 9 parameters but 2-3-1 needs 13"),
    (mutate(lambda d: d["parameters"].pop("layers.1.neurons.0.b")), "first missing 'layers.1.neurons.0.b'"),
    (mutate(lambda d: d["parameters"].update({"layers.0.neurons.0.b": "0.5"})), "must be a finite number"),
    (mutate(lambda d: d["parameters"].update({"layers.0.neurons.0.b": True})), "must be a finite number"),
    (mutate(lambda d: d["parameters"].update({"layers.0.neurons.0.b": None})), "must be a finite number"),
    (json.dumps(good_doc()).replace("0.0", "NaN", 1), "NaN is not a finite number"),
    (mutate(lambda d: d.update(metadata=[1])), "'metadata' must be an object"),
])
def test_bad_files(tmp_path, text, message):
    path = tmp_path / "model.json"
    path.write_text(text)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_binary_file_is_a_model_file_error(tmp_path):
    path = tmp_path / "model.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(ModelFileError, match="not a text file"):
        load_model(path)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.json")
