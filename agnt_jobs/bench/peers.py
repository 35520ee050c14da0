"""A local stand-in for every system the jobs call, for the benchmarks: the channel
gateway (``POST /messages``), the venues' A2A agents (``POST /venues/{id}/a2a``:
202), webhook receivers and the alerts webhook (any other POST: 200), and the
three marketplaces' product APIs in their own response shapes (a product's price
is derived from its id, so runs are repeatable).

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
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import httpx

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

COUNTS: Counter[str] = Counter()


def price_of(ref: str) -> int:
    """A product's price in rupiah, from its id: 50,000 to 149,900."""
    digits = "".join(ch for ch in ref if ch.isdigit()) or "0"
    return 50_000 + (int(digits) % 1000) * 100


def _shopee(query: dict[str, str]) -> Any:
    item = query.get("itemid", "0")
    return {
        "error": None,
        "data": {
            "itemid": int(item),
            "name": f"Shopee item {item}",
            "currency": "IDR",
            "price": price_of(item) * 100_000,
            "stock": 7,
        },
    }


def _tokopedia(body: Any) -> Any:
    key = body[0]["variables"]["productKey"]
    content = {
        "name": f"Tokopedia {key}",
        "price": {"value": price_of(key), "currency": "IDR"},
        "campaign": {"isActive": False},
        "stock": {"value": "12"},
    }
    layout = {
        "basicInfo": {"id": key, "status": "ACTIVE"},
        "components": [{"name": "product_content", "data": [content]}],
    }
    return [{"data": {"pdpGetLayout": layout}}]


def _lazada(query: dict[str, str]) -> Any:
    item = query.get("itemId", "0")
    sku = {"price": {"salePrice": {"value": price_of(item)}}, "stock": 3}
    fields = {"product": {"title": f"Lazada {item}"}, "skuInfos": {"0": sku}}
    return {"success": True, "data": {"root": {"fields": fields}}}


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
    if path == "/api/v4/item/get":
        COUNTS["shopee"] += 1
        return 200, _shopee(query)
    if path == "/graphql/PDPGetLayoutQuery":
        COUNTS["tokopedia"] += 1
        return 200, _tokopedia(json.loads(body))
    if path == "/pdp/api/item":
        COUNTS["lazada"] += 1
        return 200, _lazada(query)
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


class PeerServer:
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
            [sys.executable, "-m", "agnt_jobs.bench.peers", "--fd", str(fd)],
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
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._socket.close()

    def __enter__(self) -> PeerServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="The benchmark peer server.")
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, fd=args.fd, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
