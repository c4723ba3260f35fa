"""MNIST 784-256-128-10 (float32, batch 128, Adam) on a Ray cluster started with ``ray start``.

The cluster is made as its users make it (``tests/ray_cluster.py`` does the same steps
for the test): a token (``ray get-auth-token --generate``), ``ray start --head`` with
token authentication on, an optional second node (``ray start --address``), a Valkey
every node reaches, and ``snn train ... --engine ray --address HEAD --store URL`` with
``RAY_AUTH_MODE=token``. It runs in a network namespace of its own whose only interface
is loopback when ``ip netns`` can make one (root and iproute2), so nothing it starts
listens beyond this machine.

For each granularity: seconds per epoch in the steady state (the median of the epochs
after the first, from ``history.csv``: the first one includes each worker's download
of the training set), next to the in-process network trained in the same run, as a
ratio; and where a step's time goes, from ``snn trace --json`` (the medians of each
stage's wait, load, compute and store write). Prints one JSON object. Not a test.

With ``--transport``, also what moving one step's state costs between two warm actors of
the cluster, whichever way it goes: the parameters and Adam state of the config's network
(float32, 2.8 MB for MNIST 256-128), read and rewritten once per call, through Ray's
object store (each call takes the last call's ObjectRef and returns the new state) and
through the Valkey (GET, then SET, by key), next to a call that moves nothing. A stateless
step has to move that state at least once, so this over the in-process step is a floor
on any stateless engine's ratio, before a unit computes anything.

    python bench/bench_ray_cluster.py [--granularities data:1,data:2,network] [--epochs 3] [--nodes 1]
                                      [--transport]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import ray_cluster as rc  # noqa: E402 - the cluster steps the test takes, shared

CONFIG = os.path.join(HERE, "..", "examples", "mnist-256-128.json")
PARTS = ("wait", "load", "compute", "store_write")


def steady_seconds(run_dir: str) -> tuple[float, list[float]]:
    """The median epoch after the first, and every epoch's seconds, from the run's history."""
    with open(os.path.join(run_dir, "history.csv")) as f:
        ends = [float(row["seconds"]) for row in csv.DictReader(f)]
    epochs = [b - a for a, b in zip([0.0, *ends], ends)]
    return statistics.median(epochs[1:] or epochs), epochs


def train(args: list[str], env: dict, run_dir: str) -> dict:
    done = rc.snn(["train", CONFIG, "--out", run_dir, "--json", "--quiet", *args], env)
    if done.returncode != 0:
        raise SystemExit(f"snn train {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    steady, epochs = steady_seconds(run_dir)
    return {"s_per_epoch": steady, "epochs_s": epochs, "summary": json.loads(done.stdout)}


def stages(run_dir: str, env: dict) -> dict:
    """Each phase's median duration and parts, in milliseconds, from ``snn trace --json``."""
    done = rc.snn(["trace", run_dir, "--json"], env)
    trace = json.loads(done.stdout)
    return {p["phase"]: {k: round(p[k]["p50"] * 1e3, 3) for k in ("duration", *PARTS)} for p in trace["by_phase"]}


PROBE_CALLS = 100


def probe(address: str, store_url: str, nbytes: int) -> dict:
    """Milliseconds per call (medians) to warm actors: moving nothing, and ``nbytes`` of state each way."""
    import numpy as np
    import ray

    from snn.runtime.stores.redis import RedisStore

    ray.init(address=address, log_to_driver=False)

    @ray.remote(num_cpus=1)
    class Holder:
        def __init__(self, url):
            self.store = RedisStore(url)  # snn's own encoding and round trips

        def nothing(self, x):
            return x

        def state(self, n):
            return np.zeros(n // 4, np.float32)

        def step(self, state):  # the object store: the state comes as a (zero-copy) array, a new one goes back
            return np.add(state, 1.0, dtype=np.float32)

        def step_store(self, key, new_key):  # the store: read the state by key, write the new one
            state = self.store.unpack(self.store.get_many([key])[0])
            self.store.put_many({new_key: self.store.pack(np.add(state, 1.0, dtype=np.float32), owned=True)})
            return new_key

    a, b = Holder.remote(store_url), Holder.remote(store_url)
    ray.get([a.nothing.remote(0), b.nothing.remote(0)])

    def median_ms(call) -> float:
        times = []
        for i in range(PROBE_CALLS):
            started = time.perf_counter()
            call(i)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1e3

    ref = a.state.remote(nbytes)
    ray.wait([ref])
    refs = [ref]

    def hop(i):
        refs[0] = (a if i % 2 else b).step.remote(refs[0])
        ray.wait([refs[0]])

    store = RedisStore(store_url)
    store.put_many({"probe:0": store.pack(np.zeros(nbytes // 4, np.float32), owned=True)})
    out = {"state_bytes": nbytes,
           "nothing_ms": median_ms(lambda i: ray.get((a if i % 2 else b).nothing.remote(i))),
           "object_store_ms": median_ms(hop),
           "valkey_ms": median_ms(lambda i: ray.get((a if i % 2 else b).step_store.remote(f"probe:{i}",
                                                                                           f"probe:{i + 1}")))}
    store.delete([f"probe:{i}" for i in range(PROBE_CALLS + 1)])
    store.close()
    ray.shutdown()
    return out


def state_bytes(run_dir: str) -> int:
    """The trained network's parameters and Adam's two moments, in float32."""
    from snn import load_model

    return 3 * 4 * load_model(run_dir).spec.n_params


def step_ms(run: dict) -> float:
    """The in-process run's milliseconds per step (mini-batch) in the steady state."""
    from snn import load_config

    batch = load_config(CONFIG).training.batch_size
    return 1e3 * run["s_per_epoch"] / -(-run["summary"]["n_train"] // batch)


def inside(options) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")}
    base["HOME"] = tempfile.mkdtemp(prefix="snnbench-home-")
    work = tempfile.mkdtemp(prefix="snnbench-")
    subprocess.run([rc.RAY, "get-auth-token", "--generate"], capture_output=True, env=base, timeout=60, check=True)
    token = {**base, "RAY_AUTH_MODE": "token"}
    port = rc.free_port()
    address = f"127.0.0.1:{port}"
    tmp = tempfile.mkdtemp(prefix="snnray-", dir="/tmp")  # Ray's socket paths must fit in 107 bytes
    cpus = str(max(1, (os.cpu_count() or 2) // options.nodes))
    head = rc.node(["--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", tmp,
                    "--num-cpus", cpus], os.path.join(work, "head.log"), base)
    procs = [head]
    out: dict = {"config": "examples/mnist-256-128.json", "nodes": options.nodes, "cpus_per_node": int(cpus),
                 "epochs": options.epochs, "granularities": {}}
    try:
        rc.wait_for("the head listening", lambda: rc.listening(port), procs)
        rc.wait_for("the head answering", lambda: rc.alive_nodes(address, token) >= 1, procs)
        for n in range(1, options.nodes):
            procs.append(rc.node(["--address", address, "--num-cpus", cpus], os.path.join(work, f"node{n}.log"), token))
        rc.wait_for("every node joining", lambda: rc.alive_nodes(address, token) == options.nodes, procs)
        epochs = ["--epochs", str(options.epochs)]
        local = train(epochs, token, os.path.join(work, "in-process"))
        out["in_process_s_per_epoch"] = local["s_per_epoch"]
        from snn.runtime.stores.embedded import EmbeddedValkey

        with EmbeddedValkey() as store:
            for g in options.granularities.split(","):
                run_dir = os.path.join(work, g.replace(":", "-"))
                run = train([*epochs, "--engine", "ray", "--address", address, "--store", store.url,
                             "--granularity", g], token, run_dir)
                s = run["summary"]
                out["granularities"][g] = {
                    "s_per_epoch": run["s_per_epoch"], "vs_in_process": run["s_per_epoch"] / local["s_per_epoch"],
                    "epochs_s": run["epochs_s"], "invocations": s["invocations"], "speculative": s["speculative"],
                    "stage_ms_p50": stages(run_dir, token)}
            if options.transport:
                done = subprocess.run([sys.executable, os.path.abspath(__file__), "--probe", address, store.url,
                                       str(state_bytes(os.path.join(work, "in-process")))],
                                      capture_output=True, text=True, env=token, timeout=600)
                if done.returncode != 0:
                    raise SystemExit(f"the transport probe failed: {done.stderr.strip()[-2000:]}")
                t = json.loads(done.stdout.strip().splitlines()[-1])
                step = step_ms(local)
                t.update(in_process_step_ms=step, floor_vs_in_process={
                    "object_store": t["object_store_ms"] / step, "valkey": t["valkey_ms"] / step})
                out["transport"] = t
    finally:
        for proc in reversed(procs):
            rc.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(base["HOME"], ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--granularities", default="data:1,data:2,network")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=1, help="ray start nodes (the CPUs are shared among them)")
    ap.add_argument("--transport", action="store_true", help="also time one step's state moving between actors")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)  # already in the namespace
    ap.add_argument("--probe", nargs=3, help=argparse.SUPPRESS)  # ADDRESS STORE_URL BYTES: run by --transport
    options = ap.parse_args()
    if options.probe:
        address, url, nbytes = options.probe
        print(json.dumps(probe(address, url, int(nbytes))))
        return
    if options.inside or shutil.which("ip") is None or os.geteuid() != 0:
        print(json.dumps(inside(options), indent=1))
        return
    name = f"snn-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True, capture_output=True)
        done = subprocess.run(["ip", "netns", "exec", name, sys.executable, os.path.abspath(__file__), "--inside",
                               *sys.argv[1:]], stdin=subprocess.DEVNULL)
        sys.exit(done.returncode)
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


if __name__ == "__main__":
    main()
