"""tinygrad_edu.serialize: JSON model files round-trip exactly, and bad files give clear errors."""

import json
import re
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
    (mutate(lambda d: d["architecture"].update(activation="swish")), "activation must be one of"),
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


# --- hostile files: refused before anything is built, in one short line ------------------------

def arch_doc(nin, sizes):
    doc = good_doc()
    doc["architecture"].update(nin=nin, sizes=sizes)
    return doc


HOSTILE = [
    ("[" * 1000 + "]" * 1000, "model.json: "),  # nested too deeply, or (where C's recursion limit is higher) no object
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    (json.dumps(good_doc()).replace('"layers.0.neurons.0.b": 0.0', '"layers.0.neurons.0.b": ' + "9" * 400),
     "an integer of 400 digits"),
    (json.dumps(arch_doc(2, [1] * 1_000_000)), "1000000 layers; a model file may have at most 100"),
    (json.dumps(arch_doc(9_999_990, [2, 1])), "9999990-2-1 has 19,999,985 parameters; a model file may have at most 200,000"),
    (json.dumps(arch_doc(2, [100_000, 100_000, 1])), "parameters; a model file may have at most"),
    (mutate(lambda d: d.update(version=True)), "version True is not supported"),
    (mutate(lambda d: d.update(version=1.0)), "version 1.0 is not supported"),
    (mutate(lambda d: d["architecture"].update(nin=True)), "nin must be a positive integer, got True"),
    (mutate(lambda d: d.update(extra=1)), "unexpected key 'extra'"),
    (mutate(lambda d: d["architecture"].update(dropout=0.5)), "unexpected key architecture.'dropout'"),
    (mutate(lambda d: d["architecture"].pop("activation")), "missing architecture.'activation'"),
    (json.dumps(good_doc())[:-1] + ', "format": "tinygrad_edu.mlp"}', "the key 'format' appears twice"),
    (mutate(lambda d: d.update(format="x" * 1_000_000)), "not a tinygrad_edu model file"),
    (mutate(lambda d: d["parameters"].update({"y" * 1_000_000: 1.0})), "unexpected 'yyyy"),
    (json.dumps(good_doc()).replace("0.0", "1e999", 1), "must be a finite number, got inf"),
]


@pytest.mark.parametrize("text, message", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_files_are_refused_before_building_in_one_short_line(tmp_path, monkeypatch, text, message):
    import tinygrad_edu.serialize as serialize

    path = tmp_path / "model.json"
    path.write_text(text)
    if "unexpected 'yyyy" not in message:  # every other case is refused before any model is built
        monkeypatch.setattr(serialize, "MLP", lambda *a, **k: pytest.fail("built a model from a bad file"))
    with pytest.raises(ModelFileError, match=re.escape(message)) as info:
        load_model(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_a_file_larger_than_the_limit_is_refused_unread(tmp_path):
    from tinygrad_edu.serialize import MAX_FILE_BYTES

    path = tmp_path / "model.json"
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk needed
    with pytest.raises(ModelFileError, match="larger than 16 MiB"):
        load_model(path)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_not_read(device):
    import os

    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    with pytest.raises(ModelFileError, match="is a device, not a model file"):
        load_model(device)


def test_a_directory_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="is a directory"):
        load_model(tmp_path)


def test_the_largest_allowed_model_round_trips(tmp_path):
    from tinygrad_edu.serialize import MAX_PARAMETERS, parameter_count

    sizes = [400, 1]
    assert parameter_count(2, sizes) <= MAX_PARAMETERS
    model = nn.MLP(2, sizes, seed=1)
    save_model(model, tmp_path / "m.json")
    assert load_model(tmp_path / "m.json").state_dict() == model.state_dict()
