import json

import pytest

from conftest import EXAMPLES
from snn.config import Config, load_config, parse_config
from snn.errors import ConfigError

BASE = {"data": {"dataset": "xor"}, "network": {"layers": [{"units": 1, "activation": "sigmoid"}]},
        "training": {"epochs": 1}}


def with_(path, value):
    raw = json.loads(json.dumps(BASE))
    *parents, leaf = path
    node = raw
    for key in parents:
        node = node[key]
    node[leaf] = value
    return raw


@pytest.mark.parametrize("path, value, expected", [
    (("training", "optimizer"), {"name": "adam", "learning_rate": -1},
     "training.optimizer.learning_rate: got -1; input should be greater than 0"),
    (("training", "optimizer"), {"name": "sgd"}, "training.optimizer.name: got 'sgd'; input should be 'gd', 'momentum'"),
    (("network", "layers"), [{"units": 0, "activation": "relu"}], "network.layers.0.units: got 0"),
    (("network", "layers"), [{"units": 3, "activation": "swish"}], "network.layers.0.activation: got 'swish'"),
    (("network", "dtype"), "float16", "network.dtype: got 'float16'; input should be 'float64' or 'float32'"),
    (("training", "dropout"), 1.0, "training.dropout: got 1.0; input should be less than 1"),
    (("training", "epochs"), "many", "training.epochs: got 'many'"),
    (("network", "layer"), [], "network.layer: unknown field; allowed here: layers, loss, init"),
    (("training", "optimizer"), {"lr": 0.1}, "training.optimizer.lr: unknown field; allowed here: name, learning_rate"),
    (("data",), {}, "data.dataset: required, but missing"),
])
def test_errors_name_the_field_the_value_and_what_is_allowed(path, value, expected):
    with pytest.raises(ConfigError) as e:
        parse_config(with_(path, value), "my.json")
    assert str(e.value).startswith("my.json:")
    assert expected in str(e.value)


def test_seeds_parameters_json_is_accepted_unchanged():
    cfg = load_config(EXAMPLES / "parameters.json")
    assert [(l.units, l.activation) for l in cfg.network.layers] == [(3, "relu"), (1, "sigmoid")]
    assert cfg.training.epochs == 10 and cfg.training.optimizer.learning_rate == 0.0075
    assert cfg.network.random_mode == "legacy" and cfg.data.dataset == "catvnoncat"


def test_seeds_optional_keys():
    raw = {"epochs": 5, "layers": 1, "activations": {"layer1": "sigmoid"}, "neurons": {"layer1": 1},
           "learning_rate": 0.01, "weight": 0.05, "bias": 0.1, "lambda": 0.7, "optimizer": "adam",
           "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-7, "batch_size": 64, "threshold": 0.05}
    cfg = parse_config(raw)
    t = cfg.training
    assert (cfg.network.init, cfg.network.init_scale, cfg.network.bias_init) == ("scaled", 0.05, 0.1)
    assert (t.l2, t.optimizer.name, t.optimizer.beta1, t.optimizer.beta2, t.optimizer.epsilon) == (0.7, "adam", 0.8, 0.99, 1e-7)
    assert (t.batch_size, t.threshold) == (64, 0.05)
    with pytest.raises(ConfigError, match=r"unknown keys \['momentum'\]"):
        parse_config({**raw, "momentum": 0.9})
    with pytest.raises(ConfigError, match="layer1..layerN"):
        parse_config({**raw, "layers": 2})


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")) + sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_valid(path):
    assert isinstance(load_config(path), Config)


def test_issue_examples_say_what_the_issue_asks():
    two = load_config(EXAMPLES / "catvnoncat-2layer.json")
    assert [l.units for l in two.network.layers] == [7, 1]
    assert (two.network.init, two.network.random_mode, two.training.seed, two.training.epochs) == ("scaled", "legacy", 1, 2500)
    four = load_config(EXAMPLES / "catvnoncat-4layer.json")
    assert [l.activation for l in four.network.layers] == ["relu", "relu", "relu", "sigmoid"]
    assert (four.network.init, four.training.optimizer.name, four.training.optimizer.learning_rate) == ("xavier", "gd", 0.0075)
    assert four.training.batch_size is None and four.network.dtype == "float64"


def test_overrides_and_unreadable_files(tmp_path):
    cfg = load_config(EXAMPLES / "spiral.yaml", {"training.epochs": 3, "training.seed": None})
    assert cfg.training.epochs == 3 and cfg.training.seed == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.json")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(tmp_path / "list.yaml")
    assert parse_config(BASE).network.resolved_loss() == "bce"
