"""A loopback TCP proxy that can go silent: while paused it keeps every connection
open and accepts new ones, but forwards nothing either way, as a database behind a
failed network path or a frozen host looks to its clients. Resumed, it forwards
again what it held. It can also lose every cancel request on its way, as PgBouncer
drops one for a client that has already gone: the statement it was to cancel
runs on.

It reaches its server on a loopback port or on a Unix socket (the embedded test
server listens only on one), so every test of a silent database runs on both."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

from psycopg.conninfo import conninfo_to_dict, make_conninfo


class SilentProxy:
    """``upstream``: a port on 127.0.0.1, or the path of a server's Unix socket."""

    @classmethod
    def before(cls, db_url: str) -> SilentProxy:
        """A proxy, started, to the server of ``db_url``."""
        info = conninfo_to_dict(db_url)
        host, port = str(info.get("host") or ""), int(info.get("port") or 5432)
        upstream: int | str = port
        if host.startswith("/"):
            upstream = f"{host}/.s.PGSQL.{port}"
        elif host not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the silent proxy needs a loopback server, not {host}")
        return cls(upstream).start()

    def url(self, db_url: str) -> str:
        """``db_url`` through this proxy, unencrypted: a cancel request is told
        from a connection's first message, which TLS would hide."""
        return make_conninfo(
            db_url, host="127.0.0.1", port=self.port, sslmode="disable"
        )

    def __init__(self, upstream: int | str) -> None:
        self.upstream = upstream
        #: Close each cancel request's connection unforwarded.
        self.lose_cancels = False
        self.lost_cancels = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        #: Client messages that arrived while paused, to be delivered on resume.
        self.held_requests = 0
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> SilentProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def pause(self) -> None:
        self._forwarding.clear()

    def resume(self) -> None:
        self._forwarding.set()

    def stop(self) -> None:
        self._closed.set()
        self._forwarding.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        if self.lose_cancels and _is_cancel_request(client):
            self.lost_cancels += 1
            client.close()
            return
        self._forwarding.wait()
        try:
            upstream = self._dial()
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, upstream]
        for source, target, requests in (
            (client, upstream, True),
            (upstream, client, False),
        ):
            threading.Thread(
                target=self._pump, args=(source, target, requests), daemon=True
            ).start()

    def _dial(self) -> socket.socket:
        if isinstance(self.upstream, int):
            return socket.create_connection(("127.0.0.1", self.upstream))
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            unix.connect(self.upstream)
        except OSError:
            unix.close()
            raise
        return unix

    def _pump(
        self, source: socket.socket, target: socket.socket, requests: bool
    ) -> None:
        try:
            while data := source.recv(65536):
                if requests and not self._forwarding.is_set():
                    self.held_requests += 1
                self._forwarding.wait()
                if self._closed.is_set():
                    return
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


# A connection's first message when it carries a cancel request: its length and
# the request code of the Postgres protocol.
CANCEL_REQUEST = (16, 80877102)


def _is_cancel_request(client: socket.socket) -> bool:
    try:
        head = client.recv(8, socket.MSG_PEEK | socket.MSG_WAITALL)
    except OSError:
        return False
    return len(head) == 8 and struct.unpack("!ii", head) == CANCEL_REQUEST
