"""Who may use the admin view: the holder of ``INTERNAL_API_TOKEN``.

Scripts send it in ``X-Internal-Token`` on every request (``require_token``).
People sign in on the page once: the form posts the token, and the answer is a
session cookie (HttpOnly, SameSite=Strict, Secure over https, scoped to the page's
path) whose value is not the token but a signed ``issued.nonce.signature``; the
signing key is derived from the token, so changing the token ends every session,
and the server keeps no session state. Every POST from the page carries a CSRF
value derived from the session the same way (SameSite=Strict already keeps other
sites' forms from sending the cookie; the CSRF value is the second lock).

No token configured refuses every request (503), never opens the view. Tokens are
compared in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from agnt_jobs import logs
from agnt_jobs.admin.context import AdminContext, get_context
from agnt_jobs.scheduler import control
from agnt_jobs.settings import Settings

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Internal-Token"
SESSION_COOKIE = "agnt_admin_session"
DISABLED = (
    "the admin view is disabled: INTERNAL_API_TOKEN is not set on this server, "
    "so every request is refused"
)

token_header = APIKeyHeader(
    name=TOKEN_HEADER,
    auto_error=False,
    scheme_name="InternalToken",
    description="The server's INTERNAL_API_TOKEN.",
)


def configured_token(settings: Settings) -> bytes | None:
    """The token as bytes; None when unset or empty (an empty token is no token)."""
    secret = settings.internal_api_token
    value = secret.get_secret_value() if secret is not None else ""
    return value.encode() if value else None


LOCAL_TOKEN_FILE = "admin-token"
MIN_TOKEN_LENGTH = 32


def weak_token(settings: Settings) -> str | None:
    """Why the configured token is too weak to serve the view with, or None."""
    token = configured_token(settings)
    if token is None or len(token) >= MIN_TOKEN_LENGTH:
        return None
    return (
        f"INTERNAL_API_TOKEN has {len(token)} characters: use at least "
        f"{MIN_TOKEN_LENGTH}, e.g. python -c 'import secrets; "
        "print(secrets.token_urlsafe(32))'"
    )


def local_token(data_dir: Path) -> tuple[str, bool]:
    """The admin token of an embedded database's data directory, made at random
    the first time (mode 0600) and kept there; with whether it was made now. Only
    for the embedded default: a configured database needs INTERNAL_API_TOKEN set."""
    path = data_dir / LOCAL_TOKEN_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip(), False
    token = secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    return token, True


def matches(given: bytes, token: bytes) -> bool:
    return hmac.compare_digest(given, token)


def require_token(
    request: Request,
    given: str | None = Security(token_header),
    ctx: AdminContext = Depends(get_context),
) -> None:
    """401 without the header, 403 with a wrong one, 503 if no token is set."""
    token = configured_token(ctx.settings)
    if token is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, DISABLED)
    if not given:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"missing {TOKEN_HEADER} header"
        )
    # Header values arrive decoded as latin-1: encoding back gives the raw bytes.
    if not matches(given.encode("latin-1"), token):
        logger.warning(
            "admin request with a wrong token",
            extra=logs.event("admin_auth_refused", **_client(request)),
        )
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"wrong {TOKEN_HEADER}")


def audit(request: Request, action: str, schedule_id: str, **extra: Any) -> None:
    """Log an action taken through the admin view (never with the credentials)."""
    logger.info(
        f"{action.removeprefix('admin_')} {schedule_id} from the admin view",
        extra=logs.event(action, schedule_id=schedule_id, **_client(request), **extra),
    )


def actor(request: Request) -> control.Actor:
    """Who acts through the admin view, for a schedule's audit row: the view has
    one token, not users, so the client's address is what is known."""
    client = request.client.host if request.client else "unknown client"
    return control.Actor(by=f"admin view ({client})", source="admin")


def _client(request: Request) -> dict[str, str | None]:
    return {
        "client": request.client.host if request.client else None,
        "path": request.url.path,
    }


# --- page sessions ------------------------------------------------------------------


def _key(token: bytes, purpose: bytes) -> bytes:
    return hmac.new(token, b"agnt-jobs admin " + purpose, hashlib.sha256).digest()


def _sign(token: bytes, purpose: bytes, message: str) -> str:
    return hmac.new(_key(token, purpose), message.encode(), hashlib.sha256).hexdigest()


def new_session(token: bytes, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    payload = f"{issued}.{secrets.token_urlsafe(16)}"
    return f"{payload}.{_sign(token, b'session', payload)}"


def session_valid(
    value: str | None, token: bytes, max_age_seconds: float, now: float | None = None
) -> bool:
    """The cookie was made by ``new_session`` with this token, within max age."""
    if not value or value.count(".") != 2:
        return False
    payload, signature = value.rsplit(".", 1)
    if not hmac.compare_digest(
        signature.encode("latin-1", "replace"),
        _sign(token, b"session", payload).encode(),
    ):
        return False
    issued = int(payload.split(".", 1)[0])
    age = (time.time() if now is None else now) - issued
    return 0 <= age <= max_age_seconds


def csrf_value(session: str, token: bytes) -> str:
    return _sign(token, b"csrf", session)


def csrf_valid(given: str | None, session: str, token: bytes) -> bool:
    return given is not None and hmac.compare_digest(
        given.encode("utf-8"), csrf_value(session, token).encode()
    )
