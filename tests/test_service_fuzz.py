"""Every endpoint of the service under generated requests (hypothesis).

Whatever the body, path, query, method, content type or Host, the answer comes within
a bound, is 2xx or 4xx (never a 5xx), and, from the API, is JSON: an ``error`` of one
line, or an answer that makes sense (probabilities of the model's classes summing to 1).
Two models are served: the cat run folder (images, relu, a ledger) and the xor model
(table rows, float32, where large inputs overflow).
"""

import io
import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from snn.service import create_app

FIXTURES = Path(__file__).parent / "fixtures"
WAIT = 60  # seconds for one answer: a hang, not a slow machine, is what overruns it
PREDICTING = ["/predict", "/predict/batch", "/explain"]
FUZZ = settings(max_examples=80, deadline=None)


@pytest.fixture(scope="module")
def apps(cat_run_dir, tmp_path_factory):
    xor = shutil.copytree(FIXTURES / "model-v1-xor", tmp_path_factory.mktemp("fuzz") / "xor")
    # `with`: each client keeps one event loop, as a real server does, and requests reach it from a thread.
    with TestClient(create_app(cat_run_dir), base_url="http://127.0.0.1") as image, \
            TestClient(create_app(xor), base_url="http://127.0.0.1") as table, ThreadPoolExecutor(1) as pool:
        yield {"image": image, "table": table}, pool


def ask(apps, kind: str, method: str, url: str, **kwargs):
    """The answer to one request, within WAIT seconds; checked to be 2xx or 4xx, and JSON from the API."""
    clients, pool = apps
    r = pool.submit(clients[kind].request, method, url, **kwargs).result(timeout=WAIT)
    assert 200 <= r.status_code < 500, (method, url, r.status_code, r.text[:500])
    path = r.request.url.path  # as sent: the client resolves `..` in a path
    if method != "HEAD" and not (path.startswith("/static/") and r.status_code == 200) and path != "/":
        body = r.json()
        if r.status_code >= 400:
            assert isinstance(body["error"], str) and "\n" not in body["error"] and "Traceback" not in r.text
    return r


def sensible(r, many: bool) -> None:
    """A prediction is a probability per class, summing to 1, with the likeliest named."""
    if r.status_code != 200:
        return
    for p in r.json() if many else [r.json()]:
        assert math.isclose(sum(p["probabilities"].values()), 1.0, rel_tol=1e-6)
        assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)


numbers = st.one_of(st.integers(-(10**600), 10**600), st.floats(), st.floats(-1e6, 1e6), st.integers(0, 255))
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=40)


@st.composite
def shaped(draw, kind: str):
    """An example of (nearly) the model's shape: any row for xor, one value throughout for the cat model."""
    if kind == "table":
        return draw(st.lists(numbers, min_size=2, max_size=2) | st.lists(numbers, max_size=4))
    shape = draw(st.sampled_from([[64, 64, 3]] * 4 + [[64, 64], [64, 64, 4], [3, 64, 64], [0], []]))
    return np.full(shape, draw(numbers), dtype=object).tolist()


@st.composite
def json_bodies(draw, kind: str, many: bool) -> bytes:
    """Mostly the document the endpoint asks for, with values of every kind; else anything at all."""
    example = shaped(kind)
    value = draw(st.one_of(st.lists(example, min_size=1, max_size=3) if many else example, json_values))
    proper = {"inputs" if many else "input": value}
    document = draw(st.sampled_from([proper, proper, value, {**proper, "x": 1}, {"inputs" if not many else "input": value}]))
    text = json.dumps(document, allow_nan=True)  # NaN and Infinity: Python's JSON reads them back
    depth = draw(st.integers(0, 3000))
    nested = b"[" * depth + b"]" * draw(st.integers(0, depth))
    cut = text.encode()[: draw(st.integers(0, len(text)))]
    return draw(st.sampled_from([text.encode()] * 3 + [nested, cut, draw(st.binary(max_size=200))]))


JSON_TYPES = ["application/json"] * 4 + ["application/json; charset=utf-8", "text/plain", "",
                                         "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"]
KINDS = st.sampled_from(["image", "image", "table"])


@FUZZ
@given(data=st.data(), kind=KINDS, endpoint=st.sampled_from(PREDICTING), content_type=st.sampled_from(JSON_TYPES))
def test_generated_bodies_for_every_prediction_endpoint(apps, data, kind, endpoint, content_type):
    many = endpoint.endswith("batch")
    body = data.draw(json_bodies(kind, many))
    headers = {"content-type": content_type} if content_type else {}
    sensible(ask(apps, kind, "POST", endpoint, content=body, headers=headers), many)


@st.composite
def images(draw) -> bytes:
    """A real PNG or JPEG of any size and mode, or a broken one, or bytes that are none."""
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "P", "1", "I;16"]))
    fmt = draw(st.sampled_from(["PNG", "JPEG"]))
    size = (draw(st.integers(1, 90)), draw(st.integers(1, 90)))
    pixels = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, size[::-1], dtype=np.uint8)
    img = Image.fromarray(pixels).convert(mode if not (fmt == "JPEG" and mode not in ("L", "RGB")) else "RGB")
    out = io.BytesIO()
    img.save(out, format=fmt)
    data = out.getvalue()
    return draw(st.sampled_from([data, data[: draw(st.integers(0, len(data)))], draw(st.binary(max_size=300))]))


@FUZZ
@given(kind=KINDS, endpoint=st.sampled_from(PREDICTING),
       parts=st.lists(st.tuples(st.sampled_from(["file", "files", "other"]), st.text(max_size=20), images(),
                                st.sampled_from(["image/png", "image/jpeg", "text/plain"])), max_size=4),
       fields=st.dictionaries(st.sampled_from(["file", "files", "input", "x"]), st.text(max_size=20), max_size=2))
def test_generated_uploads_for_every_prediction_endpoint(apps, kind, endpoint, parts, fields):
    files = [(field, (name, data, mime)) for field, name, data, mime in parts]
    r = ask(apps, kind, "POST", endpoint, files=files or None, data=fields or None,
            headers={} if files or fields else {"content-type": "multipart/form-data; boundary=x"})
    sensible(r, many=endpoint.endswith("batch"))


path_parts = st.one_of(st.integers(-(10**30), 10**30), st.text(max_size=30),
                       st.sampled_from(["0", "1", "2", "3", "-1", "..", "%2e%2e", "%00", "1.5", "1e3", " 1"]))
static_names = st.one_of(st.sampled_from(["app.js", "style.css", "index.html", "", "..", "../service.py",
                                          "..%2f..%2fservice.py", "%00", "app.js%00", "//etc/passwd", "web"]),
                         st.text(max_size=30).map(lambda t: quote(t, safe="/")))


@FUZZ
@given(kind=KINDS, data=st.data(),
       which=st.sampled_from(["neuron", "invocations", "static", "fixed"]))
def test_generated_paths_and_queries_for_every_read_endpoint(apps, kind, data, which):
    if which == "neuron":
        url = "/neuron/" + "/".join(quote(str(data.draw(path_parts)), safe="") for _ in range(2))
    elif which == "invocations":
        url = "/run/invocations?limit=" + quote(str(data.draw(path_parts)), safe="")
    elif which == "static":
        url = "/static/" + data.draw(static_names)
    else:
        url = data.draw(st.sampled_from(["/", "/health", "/model", "/run/history", "/run/invocations",
                                         "/openapi.json", "/docs", "/nowhere"]))
    r = ask(apps, kind, "GET", url)
    if url == "/static/app.js":
        assert r.status_code == 200 and "innerHTML" not in r.text


hosts = st.one_of(st.sampled_from(["127.0.0.1", "localhost:8000", "[::1]:1", "evil.example", "127.0.0.1.nip.io",
                                   "", "[", "[::1", ":", "localhost:", "::1"]),
                  st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40))


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
       url=st.sampled_from(["/", "/health", "/model", "/predict", "/predict/batch", "/explain", "/neuron/1/0",
                            "/run/history", "/run/invocations", "/static/app.js"]),
       host=hosts, body=st.binary(max_size=64))
def test_any_method_and_any_host_on_every_endpoint(apps, method, url, host, body):
    r = ask(apps, "image", method, url, content=body or None, headers={"host": host})
    name = (host.lower().rpartition(":")[0] if host.count(":") == 1 else host.lower()).rstrip(".")
    if name not in ("127.0.0.1", "localhost") and not host.startswith("[::1]") and host != "::1":
        assert r.status_code == 400, (host, r.status_code)
