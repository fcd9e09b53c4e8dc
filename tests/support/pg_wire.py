"""A TCP proxy in front of PostgreSQL that counts round trips, as the wire sees them.

A round trip is the client speaking after the server did (or first): a query and its answer, a
BEGIN, a COMMIT, a pre-ping's SELECT 1, a connection's start-up exchanges. Counting on the wire
rather than with SQLAlchemy's events is what makes the figure honest: on an AUTOCOMMIT connection
SQLAlchemy still fires its `begin` and `rollback` events although nothing is sent, and a pool's
pre-ping fires no event at all.

Used by tests/test_database_connections.py and bench/db_round_trips.py.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit


class RoundTripProxy:
    """Listens on a free loopback port and forwards every connection to `upstream_url`'s host."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        netloc = parts.netloc.rsplit("@", 1)
        userinfo = f"{netloc[0]}@" if len(netloc) == 2 else ""
        # The same database, user and options, through this proxy.
        self.url = urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{port}"))
        self._lock = threading.Lock()
        self._round_trips = 0
        self._connections = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def round_trips(self) -> int:
        with self._lock:
            return self._round_trips

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self._upstream)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Who spoke last on this connection: the client speaking again is a new round trip.
            spoke = ["server"]
            with self._lock:
                self._connections += 1
                self._sockets += [client, server]
            for pair in ((client, server, "client"), (server, client, "server")):
                threading.Thread(target=self._pump, args=(*pair, spoke), daemon=True).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, side: str, spoke: list[str]
    ) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if side == "client" and spoke[0] == "server":
                        self._round_trips += 1
                    spoke[0] = side
                sink.sendall(data)
        except OSError:
            pass  # the other pump closed this socket
        finally:
            # One side left: close the other, as a server or client dropping the line would.
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def __enter__(self) -> RoundTripProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
