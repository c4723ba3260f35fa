import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

# scikit-learn's array API checks of the estimators run only when SciPy reads this at import.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets. Their absence is a failure, never a skip."""
    root = Path(os.environ.get("SNN_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (root / "catvnoncat" / "train_catvnoncat.h5").exists():
        pytest.fail(f"real datasets not found under {root}; set SNN_DATA_DIR (make test does)")
    return root


@pytest.fixture(scope="session")
def cat(data_root):
    from snn.data import load_dataset

    return load_dataset("catvnoncat", data_root)


@pytest.fixture
def mirror(tmp_path, data_root):
    """A real HTTP server on loopback serving a copy of the cat files."""
    served = tmp_path / "served"
    shutil.copytree(data_root / "catvnoncat", served)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def valkey():
    """A real Valkey server (embedded, loopback only) for the whole session."""
    from snn.runtime.stores.embedded import EmbeddedValkey

    with EmbeddedValkey() as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """Debian's redis-server on a free loopback port for the whole session, stopped by its PID."""
    import socket
    import subprocess
    import time

    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server not found: `make test` installs Debian's redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(folder), "--daemonize", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(200):  # 10 s at most
            try:
                if redis.Redis.from_url(url, socket_connect_timeout=1).ping():
                    break
            except redis.ConnectionError:
                assert proc.poll() is None, "redis-server exited at start"
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not answer within 10 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every Ray test (engines then use it and leave it running)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(params=["local", "ray", "lithops"])
def engine(request):
    """Every engine, on its real local runtime."""
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    return request.param


@pytest.fixture(scope="session")
def cat_run_dir(tmp_path_factory, data_root):
    """A real cat run folder (2-layer, 300 epochs, neuron by neuron so it has a ledger)."""
    import snn

    folder = tmp_path_factory.mktemp("served") / "cat"
    snn.train(EXAMPLES / "catvnoncat-2layer.json", data_root=data_root, run_dir=folder,
              **{"training.epochs": 300, "runtime.granularity": "layer"})
    return folder
