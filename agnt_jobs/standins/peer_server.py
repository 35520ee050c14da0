"""A local stand-in for every system the jobs call, for the benchmarks: the channel
gateway (``POST /messages``), the venues' A2A agents (``POST /venues/{id}/a2a``:
202), webhook receivers and the alerts webhook (any other POST: 200), and the
three marketplaces' product APIs in their own response shapes (``marketplaces``;
a product's price is derived from its id, so runs are repeatable). It accepts
everything: failures, refusals and holds are the tests' stand-ins' (``server``).

It runs as its own process (uvicorn, a bare ASGI callable) so that it does not
share the interpreter lock with the sender being measured:

    server = PeerServer().start(); ...; server.stats(); server.stop()
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx

from agnt_jobs.standins import marketplaces
from agnt_jobs.standins.child import ChildProcess

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

COUNTS: Counter[str] = Counter()


def answer(method: str, path: str, query: dict[str, str], body: bytes) -> Any:
    """The (status, JSON body) a request gets; counts it by kind."""
    if method == "GET" and path == "/stats":
        return 200, dict(COUNTS)
    if method == "POST" and path == "/messages":
        COUNTS["messages"] += 1
        key = json.loads(body or b"{}").get("idempotency_key", "")
        return 201, {"id": f"gw-{key}"}
    if method == "POST" and path.startswith("/venues/") and path.endswith("/a2a"):
        # A venue agent (``venues.agent_endpoint``): it accepts every envelope.
        COUNTS["a2a"] += 1
        return 202, {"accepted": True}
    market = marketplaces.BY_PATH.get(path)
    if market is not None:
        COUNTS[market.name] += 1
        ref = market.ref(query, body)
        return market.answer(ref, marketplaces.derived_price(ref))
    if method == "POST":
        COUNTS["posts"] += 1
        return 200, {"ok": True}
    return 404, {"error": "not found"}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    query = {
        key: values[0]
        for key, values in parse_qs(scope.get("query_string", b"").decode()).items()
    }
    status, payload = answer(scope["method"], scope["path"], query, body)
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class PeerServer(ChildProcess):
    """The peer server as a child process on a socket bound here (no port race)."""

    def __init__(self, port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it a response's headers and
        # body meet the client's delayed ACK and every request takes 40 ms.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind(("127.0.0.1", port))
        self._socket.listen(1024)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> PeerServer:
        fd = self._socket.fileno()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "agnt_jobs.standins.peer_server", "--fd", str(fd)],
            pass_fds=[fd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.stats()
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the benchmark peer server did not start")

    def stats(self) -> dict[str, int]:
        counts: dict[str, int] = httpx.get(f"{self.url}/stats", timeout=5).json()
        return counts

    def stop(self) -> None:
        super().stop()
        self._socket.close()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="The benchmark peer server.")
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, fd=args.fd, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
