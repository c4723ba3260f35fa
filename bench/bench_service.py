"""The prediction service under load, on loopback only, with a bounded number of requests.

Trains the cat 4-layer network for a few hundred epochs (or uses --run), then measures:
* one prediction in process (preprocess + forward, one 64x64x3 image), next to the
  plain forward pass as the baseline;
* the HTTP service (uvicorn on 127.0.0.1): ``--requests`` PNG uploads to /predict from
  ``--concurrency`` client threads: throughput and p50/p99 latency.

Prints one JSON object. Not a test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import uvicorn
from PIL import Image

import snn
from snn.service import create_app

HERE = os.path.dirname(os.path.abspath(__file__))


def percentile(values, q):
    return float(np.percentile(np.array(values), q))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--run", default=None, help="a run folder to serve (default: train one now)")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    run_dir = args.run or snn.train(os.path.join(HERE, "..", "examples", "catvnoncat-4layer.json"), data_root=args.data,
                                    run_dir=tempfile.mkdtemp() + "/cat", **{"training.epochs": 300}).run_dir
    model = snn.load_model(run_dir)
    ds = snn.load_dataset("catvnoncat", args.data)
    x = ds.x_test[:1]

    def one():
        return model.class_probabilities(model.preprocessing.columns(x, model.dtype))

    X = model.preprocessing.columns(x, model.dtype)
    timings = {}
    for name, fn in (("predict_one_ms", one), ("bare_forward_ms", lambda: model.network.output(model.params, X))):
        fn()
        samples = []
        for _ in range(300):
            t = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t) * 1e3)
        timings[name] = statistics.median(samples)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(run_dir), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    buf = io.BytesIO()
    Image.fromarray(ds.x_test[1]).save(buf, format="PNG")
    png = buf.getvalue()
    url = f"http://127.0.0.1:{port}/predict"
    latencies = []

    def request(client):
        t = time.perf_counter()
        r = client.post(url, files={"file": ("cat.png", png, "image/png")})
        latencies.append((time.perf_counter() - t) * 1e3)
        return r.status_code

    with httpx.Client(timeout=30) as client:
        request(client)  # warm up
        latencies.clear()
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            codes = list(pool.map(lambda _: request(client), range(args.requests)))
        wall = time.perf_counter() - started
    server.should_exit = True
    print(json.dumps({
        **timings, "predict_vs_bare_forward": timings["predict_one_ms"] / timings["bare_forward_ms"],
        "http": {"requests": args.requests, "concurrency": args.concurrency, "ok": codes.count(200),
                 "throughput_per_s": args.requests / wall, "p50_ms": percentile(latencies, 50),
                 "p99_ms": percentile(latencies, 99)},
    }, indent=2))


if __name__ == "__main__":
    main()
