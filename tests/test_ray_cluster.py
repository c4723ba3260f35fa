"""A real Ray cluster, started with ``ray start`` as its users start it, with token authentication.

The cluster (a head and a second node) and its store run in a network namespace made for
this test, whose only interface is loopback: Ray binds and advertises 127.0.0.1 there, and
nothing it starts can be reached from outside this machine. ``ray_cluster.py`` does the
steps; this test checks what came of them and removes the namespace.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import snn
from test_runtime_parity import small

HERE = Path(__file__).parent


@pytest.fixture
def namespace():
    """A network namespace with loopback up (root and iproute2 needed: `make test` installs iproute2)."""
    if shutil.which("ip") is None:
        pytest.fail("the `ip` command (iproute2) is needed to give the cluster a namespace: `make test` installs it")
    name = f"snn-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def test_a_cluster_started_with_ray_start_trains_through_address_with_a_token(namespace, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    cfg = {**small(epochs=2, batch_size=20)}
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(cfg))
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, str(HERE / "ray_cluster.py"), str(config),
                           str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=900,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["nodes"] == 2 and result["token_chars"] > 0 and all(result["stopped"])

    # Each failure is one line: what failed, and what to do.
    for case, says in (("without_token", "RAY_AUTH_MODE is not 'token' here"),
                       ("wrong_token", "is not the cluster's"), ("unreachable_store", "cannot be reached")):
        failed = result[case]
        assert failed["exit"] == 2 and len(failed["stderr"].splitlines()) == 1, (case, failed)
        assert says in failed["stderr"] and "help: " in failed["stderr"], (case, failed)
    assert f"the Ray cluster at {result['address']} refused this machine" in result["without_token"]["stderr"]

    assert result["with_token"]["exit"] == 0, result["with_token"]["stderr"]
    assert result["summary"]["engine"] == "ray" and result["summary"]["granularity"] == "data:2"
    assert result["keys_left"] == 0  # the run deleted every key it wrote in the cluster's store
    whole = snn.train(cfg, save=False)
    model = snn.load_model(tmp_path / "run")
    assert np.abs(model.params.flat - whole.model.params.flat).max() <= 1e-9
    # Every invocation is on the ledger, from the cluster's worker processes, each effective once.
    rows = (tmp_path / "run" / "invocations.csv").read_text().splitlines()[1:]
    assert len(rows) == result["summary"]["invocations"] > 0
