"""Marketplace responses parsed into one price, and the per-host rate limiter."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from agnt_jobs.clients.errors import PermanentError, RetryableError
from agnt_jobs.clients.marketplaces import (
    Lazada,
    Price,
    RateLimiter,
    Shopee,
    Tokopedia,
)


def test_shopee_prices_are_in_hundred_thousandths() -> None:
    body = {
        "error": None,
        "data": {
            "name": "Kopi",
            "currency": "IDR",
            "price": 14_950_000_000,
            "stock": 0,
        },
    }
    assert Shopee.parse(body) == Price(Decimal("149500"), "IDR", "Kopi", False)


def test_tokopedia_uses_the_campaign_price_only_while_active() -> None:
    def body(active: bool) -> list[dict]:
        content = {
            "name": "Sambal",
            "price": {"value": 50000, "currency": "IDR"},
            "campaign": {"isActive": active, "discountedPrice": 42000},
            "stock": {"value": "3"},
        }
        layout = {"components": [{"name": "product_content", "data": [content]}]}
        return [{"data": {"pdpGetLayout": layout}}]

    assert Tokopedia.parse(body(True)).amount == Decimal(42000)
    assert Tokopedia.parse(body(False)).amount == Decimal(50000)


def test_lazada_falls_back_to_the_original_price() -> None:
    sku = {"price": {"originalPrice": {"value": 99000.5}}, "stock": 1}
    body = {"success": True, "data": {"root": {"fields": {"skuInfos": {"0": sku}}}}}
    assert Lazada.parse(body) == Price(Decimal("99000.5"), "IDR", None, True)


def _client(cls: type, status: int, body: object) -> object:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    return cls("http://marketplace.test", rate_per_second=1000, transport=transport)


def test_unknown_shapes_and_missing_items_are_permanent() -> None:
    with pytest.raises(PermanentError, match="unexpected response"):
        _client(Lazada, 200, {"success": True, "data": {}}).fetch_price("1")
    with pytest.raises(PermanentError, match="item not found"):
        _client(Shopee, 200, {"error": 4, "data": None}).fetch_price("1.2")
    with pytest.raises(PermanentError, match="bad product ref"):
        _client(Tokopedia, 200, {}).fetch_price("no-slash")


def test_outages_and_rate_limits_are_retryable() -> None:
    with pytest.raises(RetryableError):
        _client(Shopee, 503, {}).fetch_price("1.2")
    with pytest.raises(RetryableError):
        _client(Lazada, 429, {}).fetch_price("7")


def test_rate_limiter_spaces_request_starts() -> None:
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))

    limiter = RateLimiter(2.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(4):
        limiter.acquire()
    assert slept == [0.5, 1.0, 1.5]  # the first goes at once, then every 0.5 s
    clock[0] += 10  # idle for a while: no debt carried over
    limiter.acquire()
    assert slept == [0.5, 1.0, 1.5]
