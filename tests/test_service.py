"""The prediction service through HTTP: every endpoint and every bad input."""

import base64
import csv
import html.parser
import io
import json
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import snn
from snn import service
from snn.errors import ConfigError, ModelFileError
from snn.service import MAX_FORM_BYTES, MAX_JSON_BYTES, MAX_UPLOAD_BYTES, create_app
from snn.telemetry import read_telemetry

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def client(cat_run_dir):
    return TestClient(create_app(cat_run_dir), base_url="http://127.0.0.1")


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


def test_the_run_s_telemetry_timeline_and_weights(client, cat_run_dir):
    model = snn.load_model(cat_run_dir)
    t = client.get("/run/telemetry").json()
    saved = read_telemetry(cat_run_dir, model.spec, True)
    assert t["epochs"] == saved.epochs.tolist() and t["examples"] == 105 and t["samples"] == len(saved.epochs)
    assert [(l["layer"], l["units"], l["activation"]) for l in t["layers"]] == [(1, 7, "relu"), (2, 1, "sigmoid")]
    assert t["layers"][0]["metrics"]["grad_norm"] == saved.metric(1, "grad_norm").tolist()
    assert t["snapshots"]["epochs"] == saved.snapshot_epochs.tolist() and t["snapshots"]["units"] == 7

    last = len(saved.snapshot_epochs) - 1
    w = client.get(f"/run/telemetry/weights/{last}").json()
    assert (w["epoch"], w["count"], w["shape"], w["units"]) == (300, last + 1, [64, 64, 3], 7)
    grey = np.frombuffer(base64.b64decode(w["levels"]), np.uint8).reshape(7, 12288)
    W = model.params.layers[0]["W"].astype(np.float16).astype(np.float64)
    assert np.abs(grey - 255 * (W - W.min(1, keepdims=True)) / np.ptp(W, 1, keepdims=True)).max() <= 0.5 + 1e-9
    assert w["ranges"][0] == pytest.approx([W[0].min(), W[0].max()])
    assert client.get("/run/telemetry/weights/0?change=true").json()["since"] == 1
    assert client.get(f"/run/telemetry/weights/{last + 1}").status_code == 404

    whole = client.get("/run/timeline?bins=100").json()
    assert whole["steps"] == [0, 299] and whole["bins"] == 100 and whole["invocations"] >= 300 * 5
    assert [l["label"] for l in whole["lanes"]][:2] == ["forward · layer 1", "forward · layer 2"]
    assert all(len(l["occupancy"]) == 100 for l in whole["lanes"])
    part = client.get("/run/timeline?step_from=10&step_to=11&bins=5000").json()
    assert part["step_from"] == 10 and part["bins"] == 2000 and part["invocations"] < whole["invocations"] / 100
    assert part["seconds"][0] > whole["seconds"][0]


def test_a_hostile_telemetry_file_or_ledger_is_a_503_of_one_line(cat_run_dir, tmp_path):
    run = copied(cat_run_dir, tmp_path / "run")
    c = app_for(run)
    (run / "telemetry.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    r = c.get("/run/telemetry")
    assert r.status_code == 503 and "not a readable safetensors file" in r.json()["error"]
    assert str(tmp_path) not in r.json()["error"]  # the file's name, never where the server keeps it
    (run / "telemetry.safetensors").unlink()
    assert c.get("/run/telemetry").status_code == 404
    (run / "invocations.csv").write_text("phase,layer,unit,step,attempt,duplicate,worker,start,end\nforward,0\n")
    r = c.get("/run/timeline")
    assert r.status_code == 503 and "row 2 is not an invocation snn wrote" in r.json()["error"]


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
    ({"json": {"input": np.full((64, 64, 3), "1").tolist()}}, 422, "input must be an array of finite numbers"),
    ({"json": {"input": np.full((64, 64, 3), True).tolist()}}, 422, "input must be an array of finite numbers"),
    ({"json": {"inputs": []}}, 422, "allowed: 'input' only"),
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
    c = TestClient(create_app(run.run_dir), base_url="http://127.0.0.1")
    assert c.post("/predict", files={"file": ("x.png", png(np.zeros((4, 4), np.uint8)), "image/png")}).status_code == 415
    assert c.post("/predict", json={"input": [0.5, -0.5]}).status_code == 200
    assert c.get("/run/invocations").json() == []  # trained in process: no ledger
    model_only = tmp_path / "model"
    run.model.save(model_only)
    assert TestClient(create_app(model_only), base_url="http://127.0.0.1").get("/run/history").status_code == 404


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


# --- hardening: what a hostile client, model file or run folder cannot do ------------------------------------------

WAIT = 60  # seconds: only ever reached when the code under test is broken


def app_for(folder, **kwargs) -> TestClient:
    return TestClient(create_app(folder, **kwargs), base_url="http://127.0.0.1")


def copied(src, dst):
    shutil.copytree(src, dst)
    return dst


class Tags(html.parser.HTMLParser):
    """Every tag of a page with its attributes, and the text inside each <script> or <style>."""

    def __init__(self):
        super().__init__()
        self.tags, self.inline, self._open = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._open = tag

    def handle_data(self, data):
        if self._open in ("script", "style") and data.strip():
            self.inline.append(data)

    def handle_endtag(self, tag):
        self._open = None


def test_the_page_has_no_inline_code_and_every_answer_a_strict_policy(client):
    page = Tags()
    page.feed(client.get("/").text)
    assert not page.inline
    assert all(not name.startswith("on") and name != "style" for _, attrs in page.tags for name in attrs)
    assert [a.get("src") for t, a in page.tags if t == "script"] == ["/static/charts.js", "/static/app.js"]
    answers = [client.get("/"), client.get("/static/app.js"), client.get("/health"), client.get("/nowhere"),
               client.post("/predict", content=b"{", headers={"content-type": "application/json"}),
               client.get("/health", headers={"host": "evil.example"})]
    assert [r.status_code for r in answers] == [200, 200, 200, 404, 400, 400]
    for r in answers:
        policy = dict(p.strip().split(" ", 1) for p in r.headers["content-security-policy"].split(";"))
        assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'", r.url
        assert "unsafe" not in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert "javascript" in answers[1].headers["content-type"]


@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1:8000", True), ("localhost", True), ("LOCALHOST:1", True), ("[::1]:8000", True), ("::1", True),
    ("evil.example", False), ("127.0.0.1.evil.example", False), ("localhost.evil.example:8000", False),
    ("[::1", False), ("", False), ("snn.example.org", False),
])
def test_the_host_header_must_name_this_server(client, host, allowed):
    r = client.get("/model", headers={"host": host})
    assert r.status_code == (200 if allowed else 400), r.text
    if not allowed:
        assert "not a name of this server" in r.json()["error"] and "--allowed-host" in r.json()["error"]


def test_allowed_hosts_add_names_and_are_checked(cat_run_dir):
    c = app_for(cat_run_dir, allowed_hosts=["snn.example.org", "10.0.0.5", "[fd00::5]"])
    for host in ["snn.example.org", "SNN.example.org:443", "10.0.0.5:8000", "[fd00::5]:80", "localhost"]:
        assert c.get("/health", headers={"host": host}).status_code == 200, host
    assert c.get("/health", headers={"host": "other.example"}).status_code == 400
    assert app_for(cat_run_dir, allowed_hosts=["*"]).get("/health", headers={"host": "any.example"}).status_code == 200
    for bad in ["http://snn.example.org", "snn.example.org:8000", "a b", "", "x/y", "[fd00::5"]:
        with pytest.raises(ConfigError, match="not a host name or IP address") as e:
            create_app(cat_run_dir, allowed_hosts=[bad])
        assert "\n" not in str(e.value)


def test_every_body_is_bounded_before_it_is_read(client):
    big_json = b" " * (MAX_JSON_BYTES + 1)
    declared = client.post("/predict", content=big_json, headers={"content-type": "application/json"})
    chunked = client.post("/predict/batch", content=iter([b"[" * 65536] * (MAX_JSON_BYTES // 65536 + 2)),
                          headers={"content-type": "application/json"})
    form = client.post("/predict/batch", files={"files": ("big.png", b"0" * (MAX_FORM_BYTES + 1), "image/png")})
    for r in (declared, chunked, form):
        assert r.status_code == 413, r.text
        assert "the request body is over" in r.json()["error"] and "help:" in r.json()["error"]
    assert "chunked" in chunked.request.headers.get("transfer-encoding", "")


@pytest.mark.parametrize("body, status, message", [
    (b'{"input": ' + str(10**400).encode() + b"}", 422, "shape [64, 64, 3]"),
    (b'{"input": [' + str(10**400).encode() + b"]}", 422, "finite numbers"),
    (b'{"input": 1' + b"0" * 5000 + b"}", 400, "thousands of digits"),
    (b'{"input": [1e400]}', 422, "shape"),
    (b"[" * 2000 + b"]" * 2000, 400, "nested too deeply"),
    (b'{"input": ' + b"[" * 2000 + b"]" * 2000 + b"}", 400, "nested too deeply"),
    (b'{"input": ' + b"[" * 900 + b"]" * 900 + b"}", 422, "finite numbers"),
    (b"[" * 200_000, 400, "nested too deeply"),
    (b'{"input": "\xff"}', 400, "not UTF-8"),
])
def test_hostile_numbers_and_nesting_are_4xx(client, body, status, message):
    for endpoint in ("/predict", "/explain"):
        r = client.post(endpoint, content=body, headers={"content-type": "application/json"})
        assert r.status_code == status and message in r.json()["error"], (endpoint, r.text)


def test_an_input_that_overflows_the_network_is_a_422(tmp_path):
    """The float32 xor model: 1e300 becomes inf in float32, and inf - inf is NaN inside the network."""
    c = app_for(copied(FIXTURES / "model-v1-xor", tmp_path / "xor"))
    answers = [c.post(endpoint, json={key: value}) for endpoint, key, value in [
        ("/predict", "input", [1e300, -1e300]), ("/explain", "input", [1e300, -1e300]),
        ("/predict/batch", "inputs", [[0.0, 1.0], [1e300, -1e300]])]]
    assert [r.status_code for r in answers] == [422] * 3, [r.text for r in answers]
    assert all("infinity or NaN" in r.json()["error"] for r in answers)
    assert c.post("/predict", json={"input": [1e30, 1e30]}).status_code == 200  # large, yet finite all the way


@pytest.mark.parametrize("classes", [[], ["only"], ["a", "b", "c"], ["same", "same"], ["x" * 201, "y"]])
def test_a_model_whose_classes_do_not_fit_is_refused_when_loaded(tmp_path, classes):
    folder = copied(FIXTURES / "model-v1-xor", tmp_path / "xor")
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "classes": classes}))
    with pytest.raises(ModelFileError, match="classes") as e:
        create_app(folder)
    assert "\n" not in str(e.value)


def test_health_answers_while_a_prediction_is_in_flight(cat_run_dir, cat, monkeypatch):
    """Inference runs on a worker thread: a prediction held on an event leaves the event loop free."""
    entered, release = threading.Event(), threading.Event()
    real = service._predict

    def held(model, raw):
        entered.set()
        release.wait()  # the test sets it, whatever happens
        return real(model, raw)

    monkeypatch.setattr(service, "_predict", held)
    with app_for(cat_run_dir) as c, ThreadPoolExecutor(2) as pool:  # `with`: one event loop for both requests
        try:
            prediction = pool.submit(c.post, "/predict", json={"input": cat.x_test[0].tolist()})
            assert entered.wait(WAIT), "the prediction never started"
            health = pool.submit(c.get, "/health")
            assert health.result(timeout=WAIT).json() == {"status": "ok"}
            assert not prediction.done()  # still held: /health answered while it ran
        finally:
            release.set()
        assert prediction.result(timeout=WAIT).status_code == 200


def test_a_bug_is_a_json_500_without_a_traceback(cat_run_dir, cat, monkeypatch, caplog):
    def broken(model, raw):
        raise ZeroDivisionError("a secret detail")

    monkeypatch.setattr(service, "_predict", broken)
    r = app_for(cat_run_dir).post("/predict", json={"input": cat.x_test[0].tolist()})
    assert r.status_code == 500 and r.json()["error"].startswith("internal error (ZeroDivisionError)")
    assert "secret" not in r.text and "Traceback" not in r.text and "content-security-policy" in r.headers
    assert "a secret detail" in caplog.text  # the traceback goes to the server's log


def test_a_hostile_run_folder_is_served_safely(cat_run_dir, tmp_path, monkeypatch):
    run = copied(cat_run_dir, tmp_path / "run")
    c = app_for(run)
    secret = tmp_path / "secret.txt"
    secret.write_text("epoch,cost\n1,do not show\n")

    (run / "history.csv").write_text("epoch,cost,train_accuracy\n1,nan,inf\n2,0.5\n3,0.25,1.0,extra\n")
    assert c.get("/run/history").json() == [{"epoch": 1.0, "cost": None, "train_accuracy": None},
                                            {"epoch": 2.0, "cost": 0.5, "train_accuracy": None},
                                            {"epoch": 3.0, "cost": 0.25, "train_accuracy": 1.0}]
    (run / "history.csv").write_bytes(b"epoch,cost\n1,\xff\n")
    assert c.get("/run/history").status_code == 503
    (run / "history.csv").write_bytes(b'epoch,cost\n1,"' + b"x" * 200_000 + b'"\n')  # past csv's field limit
    assert c.get("/run/history").status_code == 503
    (run / "history.csv").unlink()
    (run / "history.csv").symlink_to(secret)
    r = c.get("/run/history")
    assert r.status_code == 503 and "do not show" not in r.text
    (run / "history.csv").unlink()
    os.mkfifo(run / "history.csv")  # opening a FIFO to read would wait for a writer forever
    assert c.get("/run/history").status_code == 503

    ledger = (run / "invocations.csv").read_bytes()
    monkeypatch.setattr(service, "MAX_RUN_FILE_BYTES", 4096)  # the tail of a ledger longer than that
    tail = c.get("/run/invocations?limit=50000").json()
    rows = list(csv.DictReader(io.StringIO(ledger.decode())))
    assert 0 < len(tail) < len(rows) and set(tail[0]) == set(rows[0])
    # Whole rows only: exactly the ledger's last ones, the one the cut fell inside dropped.
    assert [r["start"] for r in tail] == [float(r["start"]) for r in rows[-len(tail):]]
