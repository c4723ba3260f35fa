"""The prediction service through HTTP: every endpoint and every bad input."""

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import snn
from snn.service import MAX_UPLOAD_BYTES, create_app


@pytest.fixture(scope="module")
def client(cat_run_dir):
    return TestClient(create_app(cat_run_dir))


def png(array, fmt="PNG") -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt)
    return out.getvalue()


def test_health_and_model(client):
    assert client.get("/health").json() == {"status": "ok"}
    meta = client.get("/model").json()
    assert meta["classes"] == ["non-cat", "cat"] and meta["is_run"]
    assert meta["architecture"]["layers"] == [{"units": 7, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]
    assert meta["preprocessing"] == {"kind": "image", "shape": [64, 64, 3], "scale": 255.0}
    assert meta["training"]["epochs"] == 300


def test_predict_an_upload_exactly_as_training_does(client, cat, cat_run_dir):
    model = snn.load_model(cat_run_dir)
    for i in range(5):
        got = client.post("/predict", files={"file": ("c.png", png(cat.x_test[i]), "image/png")}).json()
        expected = model.class_probabilities(model.preprocessing.columns(cat.x_test[i : i + 1]))[:, 0]
        assert got["probabilities"]["cat"] == pytest.approx(float(expected[1]), abs=1e-12)
        assert got["label"] == model.classes[int(expected.argmax())]
    jpeg = client.post("/predict", files={"file": ("c.jpg", png(cat.x_test[0], "JPEG"), "image/jpeg")})
    assert jpeg.status_code == 200 and jpeg.json()["label"] in ("cat", "non-cat")


def test_predict_json_and_batch(client, cat, cat_run_dir):
    model = snn.load_model(cat_run_dir)
    one = client.post("/predict", json={"input": cat.x_test[3].tolist()}).json()
    assert one["index"] == int(model.predict_raw(cat.x_test[3:4])[0])
    batch = client.post("/predict/batch", json={"inputs": [x.tolist() for x in cat.x_test[:4]]}).json()
    assert [b["index"] for b in batch] == model.predict_raw(cat.x_test[:4]).tolist()
    files = [("files", (f"{i}.png", png(cat.x_test[i]), "image/png")) for i in range(3)]
    uploads = client.post("/predict/batch", files=files).json()
    assert [u["index"] for u in uploads] == model.predict_raw(cat.x_test[:3]).tolist()


def test_explain_and_neurons(client, cat):
    out = client.post("/explain", json={"input": cat.x_test[0].tolist()}).json()
    assert [l["units"] for l in out["layers"]] == [7, 1]
    assert out["layers"][1]["a"][0] == pytest.approx(out["probabilities"]["cat"])
    n = client.get("/neuron/1/3").json()
    assert n["shape"] == [64, 64, 3] and len(n["weights"]) == 12288 and isinstance(n["bias"], float)
    assert client.get("/neuron/2/0").json()["shape"] == [7]
    assert client.get("/neuron/3/0").status_code == 404 and "layers 1..2" in client.get("/neuron/3/0").json()["error"]
    assert client.get("/neuron/1/7").status_code == 404


def test_run_dashboard_data(client):
    history = client.get("/run/history").json()
    assert len(history) == 300 and history[0]["epoch"] == 1 and history[0]["cost"] > history[-1]["cost"]
    ledger = client.get("/run/invocations?limit=50").json()
    assert len(ledger) == 50 and {"phase", "worker", "start", "end", "duplicate"} <= set(ledger[0])


def test_page_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "Inside the network" in page.text and "cdn" not in page.text.lower()
    assert client.get("/static/app.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/health", "/model", "/predict", "/predict/batch", "/explain", "/neuron/{layer}/{unit}"} <= set(spec["paths"])
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}


@pytest.mark.parametrize("kwargs, status, message", [
    ({"files": {"file": ("x.png", b"", "image/png")}}, 400, "empty"),
    ({"files": {"file": ("x.png", b"not an image", "image/png")}}, 400, "not a readable PNG or JPEG"),
    ({"files": {"file": ("x.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/gif")}}, 400, "not a readable"),
    ({"files": {"other": ("x.png", b"abc", "image/png")}}, 400, "not a readable"),
    ({"json": {"input": [1, 2, 3]}}, 422, "this model takes [64, 64, 3]"),
    ({"json": {"input": "cat"}}, 422, "expected JSON"),
    ({"json": {"inputs": []}}, 422, "expected JSON"),
    ({"content": json.dumps({"input": np.full((64, 64, 3), np.nan).tolist()}).encode(),
      "headers": {"content-type": "application/json"}}, 422, "NaN or infinity"),
    ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "body is empty"),
    ({"content": b"{", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"content": b"abc", "headers": {"content-type": "text/plain"}}, 415, "content type 'text/plain'"),
])
def test_bad_input_gets_a_clear_4xx(client, kwargs, status, message):
    r = client.post("/predict", **kwargs)
    assert r.status_code == status, r.text
    if message:
        assert message in r.json()["error"]


def test_too_large_uploads_and_bombs(client):
    big = b"\x89PNG" + b"0" * (MAX_UPLOAD_BYTES + 10)
    r = client.post("/predict", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and "limited to" in r.json()["error"]
    bomb = io.BytesIO()
    Image.new("L", (10000, 10000)).save(bomb, format="PNG")  # 100 Mpx, a few hundred KB compressed
    r = client.post("/predict", files={"file": ("bomb.png", bomb.getvalue(), "image/png")})
    assert r.status_code == 413


def test_wrong_kind_of_model(tmp_path):
    run = snn.train({"data": {"dataset": "xor"}, "network": {"layers": [{"units": 1, "activation": "sigmoid"}]},
                     "training": {"epochs": 2}}, run_dir=tmp_path / "xor")
    c = TestClient(create_app(run.run_dir))
    assert c.post("/predict", files={"file": ("x.png", png(np.zeros((4, 4), np.uint8)), "image/png")}).status_code == 415
    assert c.post("/predict", json={"input": [0.5, -0.5]}).status_code == 200
    assert c.get("/run/invocations").json() == []  # trained in process: no ledger
    model_only = tmp_path / "model"
    run.model.save(model_only)
    assert TestClient(create_app(model_only)).get("/run/history").status_code == 404


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048), shape=st.lists(st.integers(0, 70), max_size=4),
       kind=st.sampled_from(["upload", "json", "raw"]))
def test_fuzz_never_a_server_error(client, data, shape, kind):
    if kind == "upload":
        r = client.post("/predict", files={"file": ("f.png", data, "image/png")})
    elif kind == "json":
        r = client.post("/predict", json={"input": np.zeros(shape).tolist() if np.prod(shape) < 20000 else []})
    else:
        r = client.post("/predict/batch", content=data, headers={"content-type": "application/json"})
    assert 200 <= r.status_code < 500, r.text
    json.loads(r.text)
