"""The tests' transport for stand-ins: a local HTTP server on 127.0.0.1, on a free
port, in a thread of the test's process, which records what it received, and can
be told to fail (``fail_next``) or to hold a request (``hold_next``). The peers
built on it are in ``gateway``, ``venue_agent``, ``ops`` and ``llm``;
``RecordingProxy`` forwards to a real peer and keeps what it was sent."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from agnt_jobs.standins.base import StandIn


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    """An answer: ``body`` is sent as JSON, or as it is when it is bytes."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return b"" if self.body is None else json.dumps(self.body).encode()


Responder = Callable[[Received], Reply]

# Longer than any test waits, shorter than a hung suite: a held request that no
# test releases is answered after this anyway.
HOLD_LIMIT_SECONDS = 30.0


@dataclass
class Held:
    """A request a peer holds unanswered, as a slow peer would: ``arrived`` is set
    once it is being held; after ``release()`` the peer answers it with ``reply``,
    or, without one, as it would have answered at once."""

    reply: Reply | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    _released: threading.Event = field(default_factory=threading.Event)

    def wait_arrived(self, timeout: float = 10.0) -> None:
        if not self.arrived.wait(timeout):
            raise TimeoutError("the held request never arrived")

    def release(self) -> None:
        self._released.set()

    def hold(self) -> None:
        """In the server's thread: say the request arrived, wait for release."""
        self.arrived.set()
        self._released.wait(HOLD_LIMIT_SECONDS)


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 refuses connections when a job sends concurrently.
    request_queue_size = 256
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up before its answer: nothing to report."""


class LocalServer(StandIn):
    """A threaded HTTP server answering every request with ``responder``."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._holds: list[Held] = []
        self._failures: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with server._lock:
                    server.received.append(request)
                    held = server._holds.pop(0) if server._holds else None
                if held is not None:
                    held.hold()
                reply = (held and held.reply) or server.responder(request)
                payload = reply.payload()
                # A client that gave up before its answer: nothing to answer.
                with contextlib.suppress(OSError):
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        # A short poll interval: stop() waits for it, once per test per server,
        # which adds up over a suite that starts many peers.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    def hold_next(self, reply: Reply | None = None) -> Held:
        """Hold the next request not yet held until the returned ``Held`` is
        released; holds apply to requests in the order they arrive."""
        held = Held(reply)
        with self._lock:
            self._holds.append(held)
        return held

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` requests with ``status`` (for the peers whose
        responder asks ``next_failure``)."""
        with self._lock:
            self._failures.extend([status] * count)

    def next_failure(self) -> int | None:
        """The status of a failure still owed, once; call it holding ``_lock``."""
        return self._failures.pop(0) if self._failures else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class RecordingProxy(LocalServer):
    """Forwards every request to ``upstream`` and answers with its reply, keeping
    what was sent in ``received``: for what a peer is sent but does not keep (the
    idempotency keys localstripe ignores)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(self.forward)
        self._client = httpx.Client(base_url=upstream, timeout=30)

    def forward(self, request: Received) -> Reply:
        """``request`` as the upstream answers it."""
        headers = {
            k: v
            for k, v in request.headers.items()
            if k not in ("host", "content-length", "connection")
        }
        response = self._client.request(
            request.method, request.path, headers=headers, content=request.body
        )
        return Reply(response.status_code, response.content)

    def stop(self) -> None:
        super().stop()
        self._client.close()
