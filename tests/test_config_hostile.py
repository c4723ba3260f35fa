"""Configs as hostile input: whatever the document, a ConfigError or a valid Config, nothing else."""

import json
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn.config import Config, load_config, parse_config
from snn.documents import parse_document
from snn.errors import ConfigError

VALID = {"name": "ok", "data": {"dataset": "xor"},
         "network": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]},
         "training": {"epochs": 2, "optimizer": {"name": "adam", "learning_rate": 0.01}}}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["relu", "sigmoid", "softmax", "xor", "adam", "../x"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["units", "activation", "epochs", "name", "layers", "learning_rate",
                                     "dataset", "data", "network", "training", "runtime", "store", "x"]),
                    inner, max_size=5)), max_leaves=20)


def mutations(path=()):
    """A dotted path into VALID and a value to put there."""
    return st.tuples(st.sampled_from([
        ("name",), ("data", "dataset"), ("data", "validation_split"), ("network", "layers"),
        ("network", "layers", 0, "units"), ("network", "layers", 1, "activation"), ("network", "dtype"),
        ("training", "epochs"), ("training", "batch_size"), ("training", "optimizer", "learning_rate"),
        ("training", "threshold"), ("runtime", "store"), ("runtime", "granularity"), ("runtime", "chaos"),
    ]), values)


def put(raw, path, value):
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_every_field_mutated_is_an_error_or_a_config(mutation):
    raw = json.loads(json.dumps(VALID))
    put(raw, *mutation)
    try:
        assert isinstance(parse_config(raw, "c.json"), Config)
    except ConfigError as e:
        assert str(e).startswith("c.json")


@settings(max_examples=200, deadline=None)
@given(values)
def test_random_documents_are_an_error_or_a_config(doc):
    try:
        parse_config(doc)
    except ConfigError:
        pass


yaml_text = st.lists(st.one_of(
    st.sampled_from(["a: &x [1, 2]", "b: *x", "c: !!binary aGVsbG8=", "d: !!set {x}", "e: 2024-01-01",
                     "f: !!python/object/apply:os.system [echo]", "g: .nan", "h: .inf", "name: run", "name: r2",
                     "epochs: 1e9", "units: 1e9", "<<: *x", "? [1, 2]\n: v", "i: !!timestamp 2001-12-14",
                     "j: !custom 1", "k: [[[[[[[[[[]]]]]]]]]]", "l: {a: {b: {c: 1}}}", "training:\n  epochs: true"]),
    st.text(alphabet=string.printable, max_size=30)), max_size=8).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(yaml_text)
def test_random_yaml_with_aliases_and_tags_is_an_error_or_plain_data(text):
    try:
        data = parse_document(text, "c.yaml", as_yaml=True)
    except ConfigError as e:
        assert str(e).startswith("c.yaml") and "\n" not in str(e)
        return
    json.dumps(data, allow_nan=False)  # plain, finite data only
    try:
        parse_config(data if isinstance(data, dict) else {"x": data}, "c.yaml")
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60) | st.builds(json.dumps, values))
def test_random_json_text_is_an_error_or_plain_data(text):
    try:
        json.dumps(parse_document(text, "c.json", as_yaml=False), allow_nan=False)
    except ConfigError as e:
        assert str(e).startswith("c.json") and "\n" not in str(e)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="aliases"):
        load_config(bomb)
    assert len(yaml.safe_load("a: &a [1]\nb: [*a, *a]")["b"]) == 2  # the stock loader would have expanded it


@pytest.mark.parametrize("text, expected", [
    ('{"name": "a", "name": "b"}', "appears twice"),
    ('{"training": {"epochs": NaN}}', "NaN is not a number"),
    ('{"x": 1e999}', "finite number"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
])
def test_json_that_is_not_plain_data(tmp_path, text, expected):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_files_that_are_not_configs(tmp_path):
    (tmp_path / "latin1.json").write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "latin1.json")
    (tmp_path / "huge.json").write_text(" " * (2 << 20) + "{}")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(tmp_path / "huge.json")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(tmp_path)  # a folder


def with_(path, value):
    raw = json.loads(json.dumps(VALID))
    put(raw, path, value)
    return raw


@pytest.mark.parametrize("path, value, expected", [
    (("name",), "../../somewhere", "name"),
    (("name",), "/etc/cron.d/x", "name"),
    (("name",), "a\x00b", "name"),
    (("name",), "x" * 5000, "characters)"),  # the value is cut short in the message
    (("training", "epochs"), True, "valid integer"),
    (("training", "optimizer", "learning_rate"), float("inf"), "learning_rate"),
    (("network", "layers", 0, "units"), 1e9, "units"),
    (("network", "layers", 0, "units"), 10**9, "less than or equal"),
    (("network", "layers"), [{"units": 1, "activation": "softmax"}], "softmax output needs at least 2 units"),
    (("network", "layers"), [{"type": "conv2d", "filters": 2, "kernel": 3, "activation": "softmax"},
                             {"type": "flatten"}, {"units": 2, "activation": "softmax"}], "not a convolution's maps"),
    (("runtime", "store"), "ftp://x", "unknown store"),
    (("data", "validation_split"), 1.0, "validation_split"),
])
def test_values_that_are_refused(path, value, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_config(with_(path, value), "c.json")


def test_yaml_numbers_follow_yaml_1_2_and_dates_stay_text(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: n\ndata: {dataset: xor}\nnetwork: {layers: [{units: 1, activation: sigmoid}]}\n"
                    "training: {epochs: 2, optimizer: {learning_rate: 1e-3}}\n")
    assert load_config(path).training.optimizer.learning_rate == 0.001
    assert parse_document("d: 2024-01-01", "c.yaml", as_yaml=True) == {"d": "2024-01-01"}
