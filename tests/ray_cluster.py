"""A Ray cluster as its users start it, and a training through it: run by ``test_ray_cluster.py``.

Run inside a network namespace of its own (the test makes it), where loopback is the
only interface: Ray then binds and advertises 127.0.0.1, so nothing listens beyond
this machine. The steps are the how-to of ``docs/deploy.md``:

1. ``ray get-auth-token --generate`` (into ``$HOME/.ray``, a folder of the test's);
2. ``ray start --head`` (token authentication is on once a token exists);
3. ``RAY_AUTH_MODE=token ray start --address HEAD``: a second node joins;
4. a Valkey every node can reach, and ``snn train ... --engine ray --address HEAD --store URL``,
   with ``RAY_AUTH_MODE=token``; and without it, with a wrong token, and with a store that
   nothing answers at, each of which must fail in one line;
5. both nodes stopped by the PIDs of their ``ray start --block`` processes.

Prints one JSON object: what the test checks.

    python tests/ray_cluster.py CONFIG RUN_DIR
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.path.dirname(sys.executable)
RAY = os.path.join(BIN, "ray")
START_TIMEOUT = 90.0  # seconds for a node to come up on a loaded 2-core machine
STOP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LOGS: list[str] = []


def node(args: list[str], log: str, env: dict) -> subprocess.Popen:
    """``ray start ... --block``: the node lives as long as this process, in its own process group."""
    LOGS.append(log)
    with open(log, "w") as out:
        return subprocess.Popen([RAY, "start", "--block", "--num-cpus", "1", "--disable-usage-stats", *args],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the node's ``ray start``, which stops what it started; its group killed if it hangs."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)


def alive_nodes(address: str, env: dict) -> int:
    """How many nodes the cluster counts, asked as a client would (a child, so this process never joins)."""
    ask = "import ray; ray.init(address=%r, log_to_driver=False); print(sum(n['Alive'] for n in ray.nodes()))"
    try:
        done = subprocess.run([sys.executable, "-c", ask % address], capture_output=True, text=True, env=env,
                              timeout=START_TIMEOUT / 3, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 0
    lines = done.stdout.strip().splitlines()
    return int(lines[-1]) if done.returncode == 0 and lines and lines[-1].isdigit() else 0


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(what: str, check, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not check():
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            logs = "".join(open(log).read()[-1500:] for log in LOGS)
            raise SystemExit(f"{what} did not happen within {START_TIMEOUT:g} s; the nodes' logs:\n{logs}")
        time.sleep(0.5)


def snn(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snn", *args], capture_output=True, text=True, env=env,
                          timeout=600, stdin=subprocess.DEVNULL)


def main() -> None:
    config, run_dir = sys.argv[1], sys.argv[2]
    from snn.runtime.stores.embedded import EmbeddedValkey

    base = {**os.environ}
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        base.pop(name, None)
    token = subprocess.run([RAY, "get-auth-token", "--generate"], capture_output=True, text=True, env=base,
                           timeout=60, check=True).stdout.strip()
    port = free_port()
    head_address = f"127.0.0.1:{port}"
    with_token = {**base, "RAY_AUTH_MODE": "token"}
    tmp = tempfile.mkdtemp(prefix="snnray-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    head = node(["--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", tmp],
                os.path.join(base["HOME"], "head.log"), base)
    procs = [head]
    result: dict = {"address": head_address, "token_chars": len(token), "head_pid": head.pid}
    try:
        wait_for("the head listening", lambda: listening(port), procs)
        wait_for("the head answering", lambda: alive_nodes(head_address, with_token) >= 1, procs)
        worker = node(["--address", head_address], os.path.join(base["HOME"], "worker.log"), with_token)
        procs.append(worker)
        result["worker_pid"] = worker.pid
        wait_for("the second node joining", lambda: alive_nodes(head_address, with_token) == 2, procs)
        result["nodes"] = 2
        with EmbeddedValkey() as store:
            args = ["train", config, "--engine", "ray", "--address", head_address, "--store", store.url,
                    "--granularity", "data:2", "--out", run_dir, "--json", "--quiet"]
            for case, env, store_url in (("without_token", base, store.url),
                                         ("wrong_token", {**with_token, "RAY_AUTH_TOKEN": "0" * 64}, store.url),
                                         ("unreachable_store", with_token, f"redis://127.0.0.1:{free_port()}")):
                failed = snn([*args[:6], "--store", store_url, *args[8:-4], "--out", f"{run_dir}-{case}", "--quiet"],
                             env)
                result[case] = {"exit": failed.returncode, "stderr": failed.stderr.strip()}
            trained = snn(args, with_token)
            result["with_token"] = {"exit": trained.returncode, "stderr": trained.stderr.strip()[-2000:]}
            if trained.returncode == 0:
                result["summary"] = json.loads(trained.stdout)
            import redis

            result["keys_left"] = redis.Redis.from_url(store.url).dbsize()
    finally:
        for proc in reversed(procs):
            stop(proc)
        result["stopped"] = [p.poll() is not None for p in procs]
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
