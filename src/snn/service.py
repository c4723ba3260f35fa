"""The prediction service: a FastAPI app over one model, and the web page that opens it up.

    GET  /health                 liveness
    GET  /model                  architecture, classes, preprocessing, training summary
    POST /predict                one PNG/JPEG upload (multipart ``file``) or JSON {"input": array}
    POST /predict/batch          JSON {"inputs": [array, ...]} or several uploads (``files``)
    POST /explain                like /predict, plus every layer's activations
    GET  /neuron/{layer}/{unit}  a neuron's incoming weights (first layer: in the input's shape) and bias
    GET  /run/history            the run's history.csv as JSON (when serving a run folder)
    GET  /run/invocations        the run's invocation ledger, for the timeline
    GET  /                       the web page

The model is loaded once and shared. Arrays arrive raw, as in the training data
(pixels 0..255), and are preprocessed exactly as in training. The server never
fetches anything a client names.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from starlette.datastructures import UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from .files import read_table
from .images import as_input
from .model import Model, load_model

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 16 * 1024 * 1024  # decompression-bomb guard: far above any model's input
MAX_BATCH = 256
WEB = Path(__file__).parent / "web"


class ArrayInput(BaseModel):
    input: list = Field(description="one example, raw, in the model's input shape (e.g. 28x28 pixels 0..255)")


class BatchInput(BaseModel):
    inputs: list[list] = Field(description="examples, raw, each in the model's input shape", max_length=MAX_BATCH)


class Prediction(BaseModel):
    label: str
    index: int
    probability: float
    probabilities: dict[str, float]


def _fail(status: int, message: str):
    raise HTTPException(status_code=status, detail=message)


def _from_array(model: Model, value: Any) -> np.ndarray:
    shape = model.preprocessing.shape
    try:
        x = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        _fail(422, f"input must be an array of numbers of shape {list(shape)}")
    if x.shape != tuple(shape):
        _fail(422, f"input has shape {list(x.shape)}; this model takes {list(shape)}")
    if not np.isfinite(x).all():
        _fail(422, "input holds NaN or infinity; only finite numbers are allowed")
    return x


def _from_image(model: Model, data: bytes, name: str) -> np.ndarray:
    shape = model.preprocessing.shape
    if model.preprocessing.kind != "image":
        _fail(415, "this model takes table rows: send JSON {\"input\": [...]}, not an image")
    if not data:
        _fail(400, f"{name}: the upload is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        _fail(413, f"{name}: {len(data)} bytes; uploads are limited to {MAX_UPLOAD_BYTES} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in ("PNG", "JPEG"):
                    _fail(415, f"{name}: a {img.format} image; allowed: PNG or JPEG")
                if img.width * img.height > MAX_PIXELS:
                    _fail(413, f"{name}: {img.width}x{img.height} pixels; at most {MAX_PIXELS} are accepted")
                return as_input(img, shape).astype(np.float64)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        _fail(413, f"{name}: too many pixels (a decompression bomb?)")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        _fail(400, f"{name}: not a readable PNG or JPEG image ({type(e).__name__})")


def _predict(model: Model, raw: np.ndarray) -> list[dict]:
    probs = model.class_probabilities(model.preprocessing.columns(raw, model.dtype))
    out = []
    for p in probs.T:
        k = int(p.argmax())
        out.append({"label": model.classes[k], "index": k, "probability": float(p[k]),
                    "probabilities": {c: float(v) for c, v in zip(model.classes, p)}})
    return out


async def _examples(request: Request, model: Model, many: bool) -> np.ndarray:
    """The request's examples, raw, stacked: from uploads or from JSON."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        form = await request.form()
        files = [f for f in form.getlist("files" if many else "file") if isinstance(f, UploadFile)] or \
                [f for f in form.values() if isinstance(f, UploadFile)]
        if not files:
            _fail(400, f"no file in the upload; send it as the form field '{'files' if many else 'file'}'")
        if len(files) > (MAX_BATCH if many else 1):
            _fail(413, f"{len(files)} files; at most {MAX_BATCH if many else 1} per request")
        return np.stack([_from_image(model, await f.read(MAX_UPLOAD_BYTES + 1), f.filename or "upload") for f in files])
    if kind.startswith("application/json"):
        body = await request.body()
        if not body:
            _fail(400, "the request body is empty")
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            _fail(400, "the body is not valid JSON")
        try:
            parsed = BatchInput.model_validate(payload) if many else ArrayInput.model_validate(payload)
        except ValueError:
            _fail(422, f"expected JSON {{\"{'inputs' if many else 'input'}\": ...}} with "
                       f"{'a list of arrays' if many else 'an array'} of shape {list(model.preprocessing.shape)}")
        values = parsed.inputs if many else [parsed.input]
        if not values:
            _fail(422, "no inputs given")
        return np.stack([_from_array(model, v) for v in values])
    _fail(415, f"content type {kind or 'none'!r}; send multipart/form-data with an image, or application/json")


def create_app(path: str | Path) -> FastAPI:
    """An app serving the model at ``path`` (a model folder or a run folder)."""
    path = Path(path)
    model = load_model(path)
    net = model.network
    app = FastAPI(title="snn prediction service", version="1", docs_url=None, redoc_url=None,
                  description="Predictions, and a look inside every neuron, of one snn model.")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/model")
    def describe() -> dict:
        meta = json.loads((path if path.is_dir() else path.parent).joinpath("model.json").read_text())
        return {"architecture": meta["architecture"], "classes": meta["classes"],
                "preprocessing": meta["preprocessing"], "training": meta["training"], "is_run": _is_run(path)}

    @app.post("/predict", response_model=Prediction, responses={400: {}, 413: {}, 415: {}, 422: {}},
              openapi_extra=_body_doc(many=False))
    async def predict(request: Request) -> dict:
        return _predict(model, await _examples(request, model, many=False))[0]

    @app.post("/predict/batch", response_model=list[Prediction], responses={400: {}, 413: {}, 415: {}, 422: {}},
              openapi_extra=_body_doc(many=True))
    async def predict_batch(request: Request) -> list[dict]:
        return _predict(model, await _examples(request, model, many=True))

    @app.post("/explain", responses={400: {}, 413: {}, 415: {}, 422: {}}, openapi_extra=_body_doc(many=False))
    async def explain(request: Request) -> dict:
        raw = await _examples(request, model, many=False)
        cache = net.forward(model.params, model.preprocessing.columns(raw, model.dtype))
        A = model.network.activations[-1].forward(cache.Z[-1])
        layers = [{"units": int(a.shape[0]), "activation": g.name, "a": a[:, 0].tolist()}
                  for a, g in zip(cache.A[1:-1] + [A], net.activations)]
        return {**_predict(model, raw)[0], "layers": layers,
                "input": raw[0].tolist() if raw[0].size <= 4096 else None}

    @app.get("/neuron/{layer}/{unit}")
    def neuron(layer: int, unit: int) -> dict:
        if not 1 <= layer <= len(model.params.W):
            _fail(404, f"layer {layer}: this model has layers 1..{len(model.params.W)}")
        W, b = model.params.W[layer - 1], model.params.b[layer - 1]
        if not 0 <= unit < W.shape[0]:
            _fail(404, f"unit {unit}: layer {layer} has units 0..{W.shape[0] - 1}")
        shape = list(model.preprocessing.shape) if layer == 1 else [W.shape[1]]
        return {"layer": layer, "unit": unit, "bias": float(b[unit, 0]), "shape": shape,
                "weights": W[unit].tolist(), "activation": net.activations[layer - 1].name}

    @app.get("/run/history")
    def history() -> list[dict]:
        return _read_csv(_run_file(path, "history.csv"))

    @app.get("/run/invocations")
    def invocations(limit: int = 5000) -> list[dict]:
        rows = _read_csv(_run_file(path, "invocations.csv"), missing_ok=True)
        return rows[-max(1, min(limit, 50_000)):]

    app.mount("/static", StaticFiles(directory=WEB), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(WEB / "index.html")

    @app.exception_handler(HTTPException)
    async def errors(request: Request, exc: HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    return app


def _is_run(path: Path) -> bool:
    return (path / "history.csv").exists() or (path / "config.json").exists()


def _run_file(path: Path, name: str) -> Path:
    if not path.is_dir() or not _is_run(path):
        _fail(404, "this server was started on a model, not a run folder: there is no run to show")
    return path / name


def _read_csv(path: Path, missing_ok: bool = False) -> list[dict]:
    if not path.exists():
        if missing_ok:
            return []
        _fail(404, f"{path.name} is not written yet")
    return read_table(path)


def _body_doc(many: bool) -> dict:
    """The request bodies for the OpenAPI document: an image upload, or JSON arrays."""
    field = "files" if many else "file"
    upload = {"type": "array", "items": {"type": "string", "format": "binary"}} if many else \
        {"type": "string", "format": "binary"}
    schema = (BatchInput if many else ArrayInput).model_json_schema()
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {field: upload}, "required": [field]}},
        "application/json": {"schema": schema}}}}
