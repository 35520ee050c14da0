"""The webhook signature scheme as a receiver uses it: HMAC-SHA256 over
``timestamp.body``, rejected when tampered, re-dated or too old."""

from __future__ import annotations

import hashlib
import hmac

from agnt_jobs.clients.webhooks import body_bytes, sign, verify

SECRET = "whsec_abc"
BODY = body_bytes({"event": "booking.confirmed", "booking_id": 9})
NOW = 1_795_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(
        SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256
    ).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"v1={expected}"


def test_receiver_accepts_a_fresh_untouched_request() -> None:
    assert verify(SECRET, str(NOW), sign(SECRET, NOW, BODY), BODY, now=NOW + 299)


def test_receiver_rejects_tampering_and_replays() -> None:
    signature = sign(SECRET, NOW, BODY)
    tampered = BODY.replace(b"9", b"8")
    assert not verify(SECRET, str(NOW), signature, tampered, now=NOW)
    assert not verify("other", str(NOW), signature, BODY, now=NOW)
    # A replay an hour later: too old with its own timestamp, and re-dating it
    # breaks the signature.
    assert not verify(SECRET, str(NOW), signature, BODY, now=NOW + 3600)
    assert not verify(SECRET, str(NOW + 3600), signature, BODY, now=NOW + 3600)
    assert not verify(SECRET, "yesterday", signature, BODY, now=NOW)


def test_body_is_stable_across_retries() -> None:
    assert body_bytes({"b": 1, "a": [1, 2]}) == body_bytes({"a": [1, 2], "b": 1})
    assert body_bytes({"a": 1}) == b'{"a":1}'
