"""The prediction service: a FastAPI app over one model, and the web page that opens it up.

    GET  /health                 liveness
    GET  /model                  architecture, classes, preprocessing, training summary
    POST /predict                one PNG/JPEG upload (multipart ``file``) or JSON {"input": array}
    POST /predict/batch          JSON {"inputs": [array, ...]} or several uploads (``files``)
    POST /explain                like /predict, plus every layer's activations (image layers: feature maps)
    GET  /neuron/{layer}/{unit}  a neuron's incoming weights (first layer: in the input's shape) and bias,
                                 or a convolution filter's kernels
    GET  /run/history            the run's history.csv as JSON (when serving a run folder)
    GET  /run/invocations        the run's invocation ledger (its last ``limit`` rows)
    GET  /run/timeline           the ledger as lanes per (phase, layer): occupancy in ``bins`` time bins
                                 over the steps ``step_from`` to ``step_to`` (see timeline.py)
    GET  /run/telemetry          every neuron's weight and gradient norm, mean activation, dead and saturated
                                 shares per sample, and the flagged units (see telemetry.py)
    GET  /run/telemetry/weights/{k}   the first layer's weights at its k-th snapshot (``change=true``: less
                                 those of the first), each unit as 8-bit levels from its least to its greatest
    GET  /                       the web page

/explain gives one entry per layer, in order (so ``layers[i]`` is ``/neuron/{i+1}/...``):

    dense       {"units": n, "activation": name, "a": [n floats]}
    conv2d,     {"units": C, "activation": name, "type": kind, "shape": [C, H, W], "a": [C means],
    max/avg       "range": [lo, hi], "maps": [C maps of H rows of W ints 0..255] or null}
    pool
    flatten     {"units": 0, "activation": "linear", "type": "flatten", "shape": [n]}

A map pixel ``q`` stands for ``lo + q * (hi - lo) / 255``, one scale for the whole layer
so its maps compare; a layer sends its first whole maps up to MAX_MAP_VALUES pixels
(``len(maps) < C`` then), and ``null`` if not even one fits. A conv filter's
/neuron is ``{"layer", "unit", "type": "conv2d", "bias", "shape": [C_in, k, k],
"kernels": [C_in kernels of k rows of k floats], "activation"}``.

The model is loaded once and shared. Arrays arrive raw, as in the training data
(pixels 0..255), and are preprocessed exactly as in training. The server never
fetches anything a client names.

Nothing a client sends, and nothing in the model or run folder, is trusted
(docs/security.md). Bodies are bounded before they are read in full; the Host header
must name this server (against DNS rebinding); a body is JSON only as ``application/json`` (UTF-8),
holding numbers only (true and false are not 1 and 0) and each key once; every answer carries a
Content-Security-Policy without inline script; decoding and inference run on a few
worker threads, so the event loop always answers; every error is JSON
``{"error": "..."}``, and a 5xx is a bug (or a run file that cannot be read: 503).
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from .core.layers import Layer
from .errors import ConfigError, RunFolderError
from .files import read_tail
from .images import as_input
from .model import Model, load_model
from .telemetry import FILE as TELEMETRY, as_json, levels, read_telemetry
from .timeline import lanes_json, read_invocations

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # one image
MAX_FORM_BYTES = 32 * 1024 * 1024  # a whole multipart body: a batch of uploads
MAX_JSON_BYTES = 8 * 1024 * 1024  # 256 MNIST images as JSON numbers take about 1 MB
MAX_PIXELS = 16 * 1024 * 1024  # decompression-bomb guard: far above any model's input
MAX_BATCH = 256
MAX_MAP_VALUES = 1 << 16  # feature-map pixels per layer in /explain: 64 maps of 32x32, about 200 kB of JSON
MAX_RUN_FILE_BYTES = 32 * 1024 * 1024  # the tail of a run's CSV that the dashboard reads
INFERENCE_THREADS = min(4, os.cpu_count() or 1)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WEB = Path(__file__).parent / "web"

# The page is three files of our own: nothing inline, nothing from elsewhere, never in a frame.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(k.encode(), v.encode()) for k, v in {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}.items()]
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]{0,251}[a-z0-9_.])?")

log = logging.getLogger(__name__)


# A table row may also name its values by the model's feature names: {"sepal_length": 5.1, ...}.
Example = list | dict[str, Any]


class ArrayInput(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a field the service does not read is a mistake, not noise

    input: Example = Field(description="one example, raw, in the model's input shape (e.g. 28x28 pixels 0..255), "
                                       "or a table row as {feature: value}")


class BatchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[Example] = Field(description="examples, raw, each in the model's input shape",
                                  max_length=MAX_BATCH)


class Prediction(BaseModel):
    label: str
    index: int
    probability: float
    probabilities: dict[str, float]


class Values(BaseModel):
    """A regression model's answer: each target's predicted value, by the target's name."""

    values: dict[str, float]


def _fail(status: int, message: str):
    raise HTTPException(status_code=status, detail=message)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# --- inputs: JSON arrays and images, each checked before the model sees it -------------------------------------------


def _from_array(model: Model, value: Any) -> np.ndarray:
    shape = model.preprocessing.shape
    if isinstance(value, dict):
        value = _named_row(model, value)
    if _holds_bool(value):
        _fail(422, f"input must be an array of finite numbers of shape {list(shape)}; true and false are not numbers")
    try:
        x = np.asarray(value)  # no dtype: text ("5.1") keeps its own, refused below
    except (ValueError, TypeError, OverflowError, RecursionError):  # ragged
        x = None
    if x is None or x.dtype.kind not in "iuf":  # object: 10**400, or a mix of numbers and lists
        _fail(422, f"input must be an array of finite numbers of shape {list(shape)}")
    x = x.astype(np.float64)
    if x.shape != tuple(shape):
        _fail(422, f"input has shape {list(x.shape)}; this model takes {list(shape)}")
    if not np.isfinite(x).all():
        _fail(422, "input holds NaN or infinity; only finite numbers are allowed")
    return x


def _holds_bool(value: Any) -> bool:
    """Whether true or false is anywhere in ``value``, at any depth. To Python and NumPy a bool is an int
    (``np.asarray([True, 2])`` is ``[1, 2]``), so a dtype check cannot see one mixed with numbers.
    Level by level, without recursion (JSON nests ~1000 deep), each level's types seen at C speed:
    a batch of 256 images of 64x64x3 takes about as long as its np.asarray."""
    level = [value]
    while level:
        kinds = set(map(type, level))
        if bool in kinds:
            return True
        if dict in kinds:  # a named row: its values, at this same level
            level = [v for x in level for v in (x.values() if type(x) is dict else [x])]
            continue
        if list not in kinds:
            return False
        level = list(chain.from_iterable(x for x in level if type(x) is list) if kinds != {list} else
                     chain.from_iterable(level))
    return False


def _named_row(model: Model, row: dict[str, Any]) -> list:
    """A table row given as {feature: value}, as a list in the model's order of features."""
    names = model.preprocessing.features
    if model.preprocessing.kind == "image":
        _fail(422, f"this model takes images: upload a PNG or JPEG, or send an array of shape "
                   f"{list(model.preprocessing.shape)}")
    if names is None:
        _fail(422, "this model does not know its features' names; send the row as an array of "
                   f"{math.prod(model.preprocessing.shape)} numbers, in the order it was trained on")
    missing, extra = [n for n in names if n not in row], sorted(set(row) - set(names))
    if missing or extra:
        what = f"no value for '{_shown(missing[0])}'" if missing else f"no feature '{_shown(extra[0])}'"
        _fail(422, f"{what}; allowed: one value for each feature: {_shown(', '.join(names))}")
    return [row[n] for n in names]


class _DuplicateKey(Exception):  # not a ValueError: json.loads' own errors are those
    def __init__(self, key: str):
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object, whose keys must differ: json.loads alone keeps the last of a key given twice."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _from_json(model: Model, body: bytes, many: bool) -> np.ndarray:
    """The examples of a JSON body (in a worker thread: parsing a few MB takes a while)."""
    try:
        payload = json.loads(body, object_pairs_hook=_unique_keys)
    except _DuplicateKey as e:
        _fail(400, f"the JSON gives the key '{_shown(e.key)}' more than once; allowed: each key once")
    except RecursionError:
        _fail(400, "the JSON is nested too deeply")
    except json.JSONDecodeError as e:
        _fail(400, f"the body is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})")
    except UnicodeDecodeError:
        _fail(400, "the body is not valid JSON: it is not UTF-8 text")
    except ValueError:  # Python converts integers of at most 4300 digits
        _fail(400, "the body is not valid JSON here: a number in it has thousands of digits")
    field = "inputs" if many else "input"
    if isinstance(payload, dict) and set(payload) - {field}:
        extra = sorted(set(payload) - {field})[0]
        _fail(422, f"the body has a field {json.dumps(extra)[:60]} the service does not read; allowed: {field!r} only")
    if many and isinstance(payload, dict) and isinstance(payload.get(field), list) and len(payload[field]) > MAX_BATCH:
        _fail(422, f"{len(payload[field])} inputs; a batch holds at most {MAX_BATCH}")
    try:
        parsed = BatchInput.model_validate(payload) if many else ArrayInput.model_validate(payload)
    except (ValueError, RecursionError):
        _fail(422, f"expected JSON {{\"{field}\": ...}} with "
                   f"{'a list of arrays' if many else 'an array'} of shape {list(model.preprocessing.shape)}")
    values = parsed.inputs if many else [parsed.input]
    if not values:
        _fail(422, "no inputs given")
    return np.stack([_from_array(model, v) for v in values])


def _from_image(model: Model, data: bytes, name: str) -> np.ndarray:
    shape = model.preprocessing.shape
    if model.preprocessing.kind != "image":
        _fail(415, "this model takes table rows: send JSON {\"input\": [...]}, not an image")
    if not data:
        _fail(400, f"{name}: the upload is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        _fail(413, f"{name}: {len(data)} bytes; uploads are limited to {MAX_UPLOAD_BYTES} bytes")
    # No warnings.catch_warnings here: it is not thread-safe. Pillow's bomb warning (at 89 Mpx) comes
    # after our own, lower, limit below; where warnings are errors (the tests) it is caught as one.
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("PNG", "JPEG"):
                _fail(415, f"{name}: a {img.format} image; allowed: PNG or JPEG")
            if img.width * img.height > MAX_PIXELS:
                _fail(413, f"{name}: {img.width}x{img.height} pixels; at most {MAX_PIXELS} are accepted")
            return as_input(img, shape).astype(np.float64)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        _fail(413, f"{name}: too many pixels (a decompression bomb?)")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        _fail(400, f"{name}: not a readable PNG or JPEG image ({type(e).__name__})")


async def _uploads(request: Request, many: bool) -> list[tuple[bytes, str]]:
    """The uploaded files' bytes (each read to one byte past its limit) and names."""
    field, most = ("files", MAX_BATCH) if many else ("file", 1)
    async with request.form(max_files=MAX_BATCH + 1, max_fields=MAX_BATCH + 1) as form:
        files = [f for f in form.getlist(field) if isinstance(f, UploadFile)] or \
                [f for f in form.values() if isinstance(f, UploadFile)]
        if not files:
            _fail(400, f"no file in the upload; send it as the form field '{field}'")
        if len(files) > most:
            _fail(413, f"{len(files)} files; at most {most} per request")
        return [(await f.read(MAX_UPLOAD_BYTES + 1), _shown(f.filename or "upload")) for f in files]


def _shown(name: str) -> str:
    """A client's file name as our messages quote it: printable, on one line, short."""
    return "".join(c if c.isprintable() else "?" for c in name[:80])


# --- the model's answers, computed on worker threads --------------------------------------------------------------


def _finite(*arrays: np.ndarray) -> None:
    if not all(np.isfinite(a).all() for a in arrays):
        _fail(422, "the input drives the network to infinity or NaN; send raw values in the range it was "
                   "trained on (e.g. pixels 0..255)")


def _predict(model: Model, raw: np.ndarray) -> list[dict]:
    with np.errstate(all="ignore"):  # an overflow shows as inf or NaN, refused just below
        outputs = model.outputs(raw)
    _finite(outputs)
    return model.answers(outputs)


def _explain(model: Model, raw: np.ndarray) -> dict:
    net = model.network
    with np.errstate(all="ignore"):
        cache = net.forward(model.params, model.preprocessing.columns(raw, model.dtype))
        output = net.activations[-1].forward(cache.Z[-1])
    activations = cache.A[1:-1] + [output]
    _finite(*activations)
    layers = [_activations(layer, a) for layer, a in zip(net.layers, activations)]
    return {**_predict(model, raw)[0], "layers": layers, "input": raw[0].tolist() if raw[0].size <= 4096 else None}


def _activations(layer: Layer, a: np.ndarray) -> dict:
    """One layer's output for the one example of ``a``, as /explain shows it (see the module's doc)."""
    if a.ndim == 4:  # (m, C, H, W): an image layer
        return _feature_maps(layer, a[0])
    if layer.spec.kind == "flatten":  # the maps before it, in a row: nothing new to show, so not sent again
        return {"units": 0, "activation": layer.activation.name, "type": "flatten", "shape": list(layer.out_shape)}
    return {"units": int(a.shape[0]), "activation": layer.activation.name, "a": a[:, 0].tolist()}


def _feature_maps(layer: Layer, maps: np.ndarray) -> dict:
    """An image layer's ``(C, H, W)`` output as 8-bit maps on the layer's own scale, bounded in size."""
    C, H, W = maps.shape
    lo, hi = float(maps.min()), float(maps.max())
    sent = maps[: MAX_MAP_VALUES // (H * W)]
    levels = np.rint((sent - lo) * (255 / (hi - lo))) if hi > lo else np.zeros(sent.shape)
    return {"units": C, "activation": layer.activation.name, "type": layer.spec.kind, "shape": [C, H, W],
            "a": maps.mean(axis=(1, 2)).tolist(), "range": [lo, hi],
            "maps": levels.astype(np.uint8).tolist() if len(sent) else None}


def _neuron(model: Model, layer: int, unit: int) -> dict:
    """What /neuron answers: a dense neuron's weights, or a convolution filter's kernels."""
    built = model.spec.built
    if not 1 <= layer <= len(built):
        _fail(404, f"layer {layer}: this model has layers 1..{len(built)}")
    this, tensors = built[layer - 1], model.params.layers[layer - 1]
    kind, activation = this.spec.kind, this.activation.name
    if not this.weights:  # pooling and flatten
        having = ", ".join(str(l) for l, b in enumerate(built, start=1) if b.weights)
        _fail(404, f"layer {layer} ({kind}) has no neurons or weights; layers with neurons: {having}")
    W, b = tensors["W"], tensors["b"]
    if not 0 <= unit < W.shape[0]:
        _fail(404, f"unit {unit}: layer {layer} has units 0..{W.shape[0] - 1}")
    if kind == "conv2d":
        return {"layer": layer, "unit": unit, "type": kind, "bias": float(b[unit, 0]), "shape": list(W.shape[1:]),
                "kernels": W[unit].tolist(), "activation": activation}
    shape = list(model.preprocessing.shape) if layer == 1 else [W.shape[1]]
    return {"layer": layer, "unit": unit, "bias": float(b[unit, 0]), "shape": shape, "weights": W[unit].tolist(),
            "activation": activation}


class _Workers:
    """Decoding and inference off the event loop, at most INFERENCE_THREADS at a time.

    A thread pool of its own (not the event loop's limiter) works under any event loop,
    including the one per request that a test client without ``with`` starts. Its idle
    threads end when the app is garbage-collected.
    """

    def __init__(self, threads: int = INFERENCE_THREADS):
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="snn-inference")

    async def run(self, fn, *args):
        return await asyncio.wrap_future(self.pool.submit(fn, *args))


async def _examples(request: Request, model: Model, workers: _Workers, many: bool) -> np.ndarray:
    """The request's examples, raw, stacked: from uploads or from JSON."""
    kind = request.headers.get("content-type", "")
    media, charset = _media_type(kind)
    if media == "multipart/form-data":
        uploads = await _uploads(request, many)
        return await workers.run(lambda: np.stack([_from_image(model, data, name) for data, name in uploads]))
    if media == "application/json" and charset in (None, "utf-8", "utf8"):
        body = await request.body()
        if not body:
            _fail(400, "the request body is empty")
        return await workers.run(_from_json, model, body, many)
    _fail(415, f"content type {_shown(kind) or 'none'!r}; allowed: multipart/form-data with an image, or "
               "application/json (UTF-8)")


def _media_type(header: str) -> tuple[str, str | None]:
    """A Content-Type's media type, exactly (``application/json-patch`` is not JSON), and its charset if given."""
    media, *params = header.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset


# --- the app ---------------------------------------------------------------------------------------------------------


def create_app(path: str | Path, allowed_hosts: Iterable[str] | None = None) -> FastAPI:
    """An app serving the model at ``path`` (a model folder or a run folder).

    Requests must name this server in their Host header (any port): 127.0.0.1,
    localhost or ::1, or one of ``allowed_hosts``: host names or IP addresses without
    scheme or port, such as the address bound to or the name a reverse proxy forwards;
    ``"*"`` accepts any Host (only behind a proxy that checks it). A bad name there,
    or a model that does not load, is an ``SnnError`` of one line.
    """
    path = Path(path)
    hosts = _allowed_hosts(allowed_hosts or ())
    model = load_model(path)
    is_run = _is_run(path)
    description = _describe(model, is_run)
    workers = _Workers()
    app = FastAPI(title="snn prediction service", version="1", docs_url=None, redoc_url=None,
                  description="Predictions, and a look inside every neuron, of one snn model.")

    @app.get("/health")
    async def health() -> dict:  # async: it answers from the event loop itself, so it shows the loop is free
        return {"status": "ok"}

    @app.get("/model")
    def describe() -> dict:
        return description

    answer = Values if model.task == "regression" else Prediction

    @app.post("/predict", response_model=answer, responses={400: {}, 413: {}, 415: {}, 422: {}},
              openapi_extra=_body_doc(many=False))
    async def predict(request: Request) -> dict:
        raw = await _examples(request, model, workers, many=False)
        return (await workers.run(_predict, model, raw))[0]

    @app.post("/predict/batch", response_model=list[answer], responses={400: {}, 413: {}, 415: {}, 422: {}},
              openapi_extra=_body_doc(many=True))
    async def predict_batch(request: Request) -> list[dict]:
        return await workers.run(_predict, model, await _examples(request, model, workers, many=True))

    @app.post("/explain", responses={400: {}, 413: {}, 415: {}, 422: {}}, openapi_extra=_body_doc(many=False))
    async def explain(request: Request) -> dict:
        return await workers.run(_explain, model, await _examples(request, model, workers, many=False))

    @app.get("/neuron/{layer}/{unit}")
    def neuron(layer: int, unit: int) -> dict:
        return _neuron(model, layer, unit)

    @app.get("/run/history")
    def history() -> list[dict]:
        return _read_run_table(_run_file(path, is_run, "history.csv"))

    @app.get("/run/invocations")
    def invocations(limit: int = 5000) -> list[dict]:
        rows = _read_run_table(_run_file(path, is_run, "invocations.csv"), missing_ok=True)
        return rows[-max(1, min(limit, 50_000)):]

    read = _RunFiles()
    images = model.preprocessing.kind == "image"

    def telemetry_of():
        return read(_run_file(path, is_run, TELEMETRY), lambda p: read_telemetry(p.parent, model.spec, images))

    @app.get("/run/timeline")
    def timeline(step_from: int | None = None, step_to: int | None = None, bins: int = 600) -> dict:
        ledger = read(_run_file(path, is_run, "invocations.csv"), read_invocations)
        return lanes_json(ledger, step_from, step_to, bins, len(model.spec.built))

    @app.get("/run/telemetry")
    def telemetry() -> dict:
        return as_json(telemetry_of(), model.spec)

    @app.get("/run/telemetry/weights/{index}")
    def snapshot(index: int, change: bool = False) -> dict:
        t = telemetry_of()
        count = len(t.snapshot_epochs) if t.snapshots is not None else 0
        if not 0 <= index < count:
            _fail(404, f"snapshot {index}: this run has snapshots 0..{count - 1}" if count else
                  "this run keeps no snapshots of its first layer (it is not dense on images)")
        W = t.snapshots[index].astype(np.float32)
        grey, ranges = levels(W - t.snapshots[0] if change else W)
        return {"index": index, "count": count, "epoch": int(t.snapshot_epochs[index]),
                "since": int(t.snapshot_epochs[0]) if change else None,
                "shape": list(model.preprocessing.shape), "units": int(grey.shape[0]), "ranges": ranges.tolist(),
                "levels": base64.b64encode(grey.tobytes()).decode("ascii")}

    app.mount("/static", StaticFiles(directory=WEB), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(WEB / "index.html")

    @app.exception_handler(StarletteHTTPException)  # ours, and the router's 404 and 405
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)  # a path or query parameter of the wrong type
    async def parameter_error(request: Request, exc: RequestValidationError):
        problems = ["/".join(map(str, e["loc"])) + f": {e['msg']}" for e in exc.errors()[:3]]
        return _error(422, "; ".join(problems))

    # Added innermost first: the guard sees every answer, then the Host check, then the body limit.
    app.add_middleware(BodyLimit)
    app.add_middleware(HostCheck, allowed=hosts)
    app.add_middleware(Guard)
    return app


def _layer(layer) -> dict:
    """A layer as /model shows it: units and activation, as every version has; other kinds add their spec and shape."""
    out = {"units": layer.units, "activation": layer.activation.name}
    if layer.spec.kind != "dense":
        out.update(layer.spec.to_json(), output_shape=list(layer.out_shape))
    return out


def _describe(model: Model, is_run: bool) -> dict:
    """What /model answers, from the model as loaded and checked (never the file read again)."""
    spec = model.spec
    return {"architecture": {"n_input": spec.n_input, "input_shape": list(spec.input_shape),
                             "layers": [_layer(layer) for layer in spec.built],
                             "loss": spec.loss, "dtype": str(model.dtype)},
            "classes": list(model.classes), "preprocessing": model.preprocessing.to_json(),
            "training": model.summary, "is_run": is_run}


# --- the Host check ------------------------------------------------------------------------------------------------


def _allowed_hosts(extra: Iterable[str]) -> frozenset[str]:
    """The loopback names and ``extra``, each checked to be a bare host name or address."""
    names = set(LOOPBACK_HOSTS)
    for given in extra:
        name = _host_name(given) if given.startswith("[") else given.strip().lower().rstrip(".")
        if name != "*" and not _HOST_NAME.fullmatch(name) and not _is_ipv6(name):
            raise ConfigError(f"allowed host {given[:100]!r}: not a host name or IP address; allowed: a name such "
                              "as snn.example.org, an address such as 10.0.0.5 or ::1, or '*' for any; "
                              "help: give it without scheme, port or path")
        names.add(name)
    return frozenset(names)


def _is_ipv6(name: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(name).version == 6
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The name a Host header gives, lower case, without its port; an IPv6 address without brackets."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    return (value.rsplit(":", 1)[0] if value.count(":") == 1 else value).rstrip(".")


def _header(scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), "")


class HostCheck:
    """A request whose Host is not this server's name is refused (400): a page on another site
    that rebinds its DNS name to 127.0.0.1 sends its own name, so it cannot read this server."""

    def __init__(self, app, allowed: frozenset[str]):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and "*" not in self.allowed:
            host = _header(scope, b"host")
            if _host_name(host) not in self.allowed:
                names = ", ".join(sorted(self.allowed))
                return await _error(400, f"Host {host[:100]!r} is not a name of this server; allowed: {names}; "
                                         "help: start it with `snn serve --allowed-host NAME` for a name of "
                                         "yours")(scope, receive, send)
        await self.app(scope, receive, send)


# --- the body limit ------------------------------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


class BodyLimit:
    """A request body larger than its limit is refused (413) before it is read in full:
    by its Content-Length when it gives one, by counting as it arrives when it does not."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        form = _media_type(_header(scope, b"content-type"))[0] == "multipart/form-data"
        limit = MAX_FORM_BYTES if form else MAX_JSON_BYTES
        declared = _header(scope, b"content-length")
        if declared and not declared.isdigit():
            return await _error(400, f"Content-Length {declared[:40]!r} is not a number")(scope, receive, send)
        if declared and int(declared) > limit:
            return await _too_large(limit, form)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _too_large(limit, form)(scope, receive, send)


def _too_large(limit: int, form: bool) -> JSONResponse:
    what = "a multipart upload" if form else "a JSON or other body"
    return _error(413, f"the request body is over {limit} bytes, the limit for {what}; "
                       "help: send fewer examples per request")


# --- the last line: headers on every answer, and no traceback ever ------------------------------------------------


class Guard:
    """Adds the security headers to every answer, and turns an exception that escaped
    everything else into a JSON 500 (its traceback goes to the server's log, never to
    the client). Outermost, so it covers the Host check and the body limit too."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        except Exception as e:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            await _error(500, f"internal error ({type(e).__name__}): a bug in snn; help: report it with the "
                              "server's log")(scope, receive, with_headers)


# --- the run's files -----------------------------------------------------------------------------------------------


class _RunFiles:
    """What was read from a run file, kept while the file stays the same (inode, size, modification time):
    a finished run's 167,500-row ledger is parsed once, not at every look. One read at a time, so memory
    holds one parse in progress at most."""

    def __init__(self):
        self.lock, self.kept = threading.Lock(), {}

    def __call__(self, path: Path, read: Callable[[Path], Any]):
        with self.lock:
            try:
                info = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                _fail(404, f"{path.name} is not written yet")
            except OSError as e:
                _fail(503, f"{path.name} cannot be read ({e.strerror or type(e).__name__})")
            version = (info.st_ino, info.st_size, info.st_mtime_ns)
            if path.name in self.kept and self.kept[path.name][0] == version:
                return self.kept[path.name][1]
            try:
                value = read(path)
            except RunFolderError as e:
                said = str(e).replace(str(path), path.name)  # the file's name, not where the server keeps it
                _fail(503, said if "help:" in said else f"{said}; help: serve a run folder that snn wrote")
            if value is None:
                _fail(404, f"{path.name} is not written yet")
            self.kept[path.name] = (version, value)
            return value


def _is_run(path: Path) -> bool:
    return path.is_dir() and ((path / "history.csv").exists() or (path / "config.json").exists())


def _run_file(path: Path, is_run: bool, name: str) -> Path:
    if not is_run:
        _fail(404, "this server was started on a model, not a run folder: there is no run to show")
    return path / name


def _read_run_table(path: Path, missing_ok: bool = False) -> list[dict]:
    """A run's CSV as JSON rows; of a long file only the last MAX_RUN_FILE_BYTES (a ledger grows)."""
    try:
        raw = _tail(path)
    except FileNotFoundError:
        if missing_ok:
            return []
        _fail(404, f"{path.name} is not written yet")
    except OSError as e:
        _fail(503, f"{path.name} cannot be read ({e.strerror or type(e).__name__}); help: serve a run folder "
                   "that snn wrote, holding plain files")
    try:
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as e:
        _fail(503, f"{path.name} is not a table snn wrote ({type(e).__name__}); help: serve a run folder "
                   "that snn wrote")
    return [{k: _cell(v) for k, v in row.items() if isinstance(k, str)} for row in rows]


def _tail(path: Path) -> bytes:
    """The header line and the last whole lines of a regular file (never a link, a FIFO or a device)."""
    return read_tail(path, MAX_RUN_FILE_BYTES)[0]


def _cell(value: str | None):
    """A CSV cell as JSON: empty (or a short row's missing cell) as null, numbers, booleans,
    and NaN or infinity (which JSON has not) as null."""
    if value is None or value == "":
        return None
    if value in ("True", "False"):
        return value == "True"
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else None


def _body_doc(many: bool) -> dict:
    """The request bodies for the OpenAPI document: an image upload, or JSON arrays."""
    field = "files" if many else "file"
    upload = {"type": "array", "items": {"type": "string", "format": "binary"}} if many else \
        {"type": "string", "format": "binary"}
    schema = (BatchInput if many else ArrayInput).model_json_schema()
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {field: upload}, "required": [field]}},
        "application/json": {"schema": schema}}}}
