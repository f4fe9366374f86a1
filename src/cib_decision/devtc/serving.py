"""`ServerThread`: a bound `socketserver` server served in a daemon thread of this process, the
way the local deployment's fixtures (dev-taskcluster, moto, the Azure fake) run their servers."""

from __future__ import annotations

import socketserver
import threading


class ServerThread:
    """`server` served (`serve_forever`, checking for `stop` every `poll_interval` seconds) in
    a daemon thread named `name` from `start()` to `stop()`. `stop` shuts the server down,
    closes its socket and waits for the thread (at most `join_timeout` seconds, if given).
    Both are idempotent; a stopped server is not started again."""

    def __init__(self, server: socketserver.BaseServer, *, name: str,
                 poll_interval: float = 0.1, join_timeout: float | None = None):
        self.server = server
        self.join_timeout = join_timeout
        self._thread = threading.Thread(target=server.serve_forever, name=name,
                                        kwargs={"poll_interval": poll_interval}, daemon=True)
        self._stopped = False

    def start(self) -> ServerThread:
        """Serve in the background; returns self."""
        if not self._stopped and not self._started:
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the thread."""
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            self.server.shutdown()
        self.server.server_close()
        if self._started:
            self._thread.join(self.join_timeout)

    @property
    def _started(self) -> bool:
        return self._thread.ident is not None

    def is_alive(self) -> bool:
        """Whether the serving thread is running."""
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait (at most `timeout` seconds) for the serving thread to end."""
        self._thread.join(timeout)
