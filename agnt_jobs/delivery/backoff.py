"""Exponential backoff, the one retry schedule of every retrying job (send queue,
A2A dispatch, fee collection, webhooks): base, 2x base, 4x base... up to a ceiling."""

from __future__ import annotations


def backoff_seconds(attempts: int, base: float, ceiling: float) -> float:
    """Delay before the next try after ``attempts`` failed tries (attempts >= 1)."""
    exponent = max(attempts - 1, 0)
    # Cap the exponent first: 2**1000 would overflow a float long before min() helps.
    return min(base * 2.0 ** min(exponent, 32), ceiling)
