"""The service reads a JSON body as it was written (issue #20): numbers only, never true or false (which
Python and NumPy read as 1 and 0) at any depth of any input form; every key of every object once; and JSON
only when the body says application/json, not application/json-patch or text/json.

Two small models from the xor fixture: a table whose features have names (rows as lists or by name) and
an image of 1x1x2 pixels (nested lists), so every input form is exercised in milliseconds.
"""

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from snn.service import create_app

FIXTURES = Path(__file__).parent / "fixtures"
FEATURES = ["a", "b"]


def _model(folder: Path, **preprocessing) -> Path:
    shutil.copytree(FIXTURES / "model-v1-xor", folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["preprocessing"].update(preprocessing)
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    table = _model(root / "table", features=FEATURES)
    image = _model(root / "image", kind="image", shape=[1, 1, 2], scale=255.0)
    with TestClient(create_app(table), base_url="http://127.0.0.1") as t, \
            TestClient(create_app(image), base_url="http://127.0.0.1") as i:
        yield {"table": t, "image": i}


# Each input form: the model it is for, where it goes, and the body holding one example's two values.
FORMS = {
    "row": ("table", "/predict", lambda a, b: {"input": [a, b]}),
    "named row": ("table", "/predict", lambda a, b: {"input": {"a": a, "b": b}}),
    "rows": ("table", "/predict/batch", lambda a, b: {"inputs": [[0.5, 1], [a, b]]}),
    "named rows": ("table", "/predict/batch", lambda a, b: {"inputs": [{"a": 1, "b": 0}, {"b": b, "a": a}]}),
    "explained row": ("table", "/explain", lambda a, b: {"input": {"a": a, "b": b}}),
    "image": ("image", "/predict", lambda a, b: {"input": [[[a, b]]]}),
    "images": ("image", "/predict/batch", lambda a, b: {"inputs": [[[[0, 255]]], [[[a, b]]]]}),
    "explained image": ("image", "/explain", lambda a, b: {"input": [[[a, b]]]}),
}


def post(clients, form: str, a, b, content_type: str = "application/json"):
    kind, path, body = FORMS[form]
    return send(clients, kind, path, json.dumps(body(a, b)).encode(), content_type)


def send(clients, kind: str, path: str, body: bytes, content_type: str = "application/json"):
    r = clients[kind].post(path, content=body, headers={"content-type": content_type})
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        error = r.json()["error"]
        assert isinstance(error, str) and "\n" not in error
    return r


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("a, b", [(True, 1), (1, False), (True, False)])
def test_true_or_false_among_numbers_is_refused_in_every_form(clients, form, a, b):
    assert post(clients, form, 1, 1).status_code == 200  # the same body with numbers is answered
    r = post(clients, form, a, b)
    assert r.status_code == 422 and "true and false are not numbers" in r.json()["error"]


@pytest.mark.parametrize("kind, path, body, key", [
    ("table", "/predict", b'{"input": [1, 1], "input": [0, 0]}', "input"),
    ("table", "/predict", b'{"input": {"a": 1, "a": 0, "b": 1}}', "a"),
    ("table", "/predict/batch", b'{"inputs": [{"a": 1, "b": 0}, {"a": 1, "b": 0, "b": 1}]}', "b"),
    ("table", "/explain", b'{"input": {"b": 1, "a": 1, "b": 0}}', "b"),
    ("image", "/predict/batch", b'{"inputs": [[[[1, 2]]]], "inputs": [[[[3, 4]]]]}', "inputs"),
])
def test_a_key_given_twice_is_refused_at_any_depth(clients, kind, path, body, key):
    once = json.dumps(json.loads(body)).encode()  # the last of each key, as json.loads alone reads it
    assert send(clients, kind, path, once).status_code == 200
    r = send(clients, kind, path, body)
    assert r.status_code == 400 and f"key '{key}' more than once" in r.json()["error"]


@pytest.mark.parametrize("content_type", ["application/json-patch", "application/json-patch+json", "text/json",
                                          "application/jsonx", "application/json5", "application/x-json",
                                          "application/json; charset=latin-1", "application/json;charset=utf-16",
                                          "multipart/form-datax; boundary=b"])
def test_only_application_json_is_read_as_json(clients, content_type):
    r = post(clients, "row", 1, 0, content_type)
    assert r.status_code == 415 and "allowed: multipart/form-data" in r.json()["error"]


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON", "application/json; charset=utf-8",
                                          'application/json;charset="UTF-8"', "application/json ; foo=bar"])
def test_application_json_with_its_parameters_is_read(clients, content_type):
    assert post(clients, "named row", 1, 0, content_type).status_code == 200


# Values of every JSON kind, some nested at random depths; only a plain number fits a slot.
numbers = st.integers(-1000, 1000) | st.floats(-1e3, 1e3, allow_nan=False)
leaves = numbers | st.booleans() | st.none() | st.text(max_size=4)
slots = st.one_of(numbers, numbers, leaves, st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) |
                                                         st.dictionaries(st.sampled_from(FEATURES), inner,
                                                                         max_size=2), max_leaves=6))


def _number(value) -> bool:
    return type(value) in (int, float)


@settings(max_examples=150, deadline=None)
@given(form=st.sampled_from(list(FORMS)), a=slots, b=slots)
def test_generated_values_are_answered_only_when_all_are_numbers(clients, form, a, b):
    r = post(clients, form, a, b)
    assert (r.status_code == 200) == (_number(a) and _number(b)), (form, a, b, r.status_code, r.text[:200])


@pytest.mark.parametrize("path, body", [("/predict", {"input": [1, 2], "extra": 1}),
                                        ("/predict", {"input": [1, 2], "inputs": [[1, 2]]}),
                                        ("/explain", {"input": [1, 2], "target": 99}),
                                        ("/predict/batch", {"inputs": [[1, 2]], "input": [1, 2]})])
def test_a_field_the_service_does_not_read_is_refused(clients, path, body):
    r = send(clients, "table", path, json.dumps(body).encode())
    assert r.status_code == 422 and "does not read" in r.json()["error"], r.text


def test_a_batch_past_its_limit_says_the_limit(clients):
    r = send(clients, "table", "/predict/batch", json.dumps({"inputs": [[1, 2]] * 257}).encode())
    assert r.status_code == 422 and "at most 256" in r.json()["error"], r.text
