"""Who may use the admin view: the holder of ``INTERNAL_API_TOKEN``.

Scripts send it on every request (``require_token``), in ``X-Internal-Token`` or
as ``Authorization: Bearer`` (what Prometheus sends). People sign in on the page
once: the form posts the token, and the answer is a session cookie (HttpOnly,
SameSite=Strict, Secure over https, scoped to the page's path) whose value is not
the token but a signed ``issued.nonce.signature``. A session is live while its
signature holds (the key is derived from the token, so changing the token ends
every session) and its row in ``admin_sessions`` exists (signing out deletes it).
Every POST from the page carries a CSRF value derived from the session the same
way (SameSite=Strict already keeps other sites' forms from sending the cookie; the
CSRF value is the second lock).

The client address is the connection's, or, from a proxy named in
AGNT_ADMIN_TRUSTED_PROXIES, the one that proxy forwarded (the server decides it:
``agnt_jobs.admin.app.server_options``); the throttle, the audit trail and the
access log all use that one address. A request's text never names who acted: the
audit names the credential (``admin token``, or ``admin session`` and the
session's id) and the address.

A client address that sends more than AGNT_ADMIN_FAILURES_PER_MINUTE wrong tokens
in a minute gets 429 with Retry-After for the rest of that minute, whatever it
sends; the refusals are logged once per address and minute, not once a request.

No token configured refuses every request (503), never opens the view. Tokens are
compared in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from agnt_jobs import logs
from agnt_jobs.admin.context import AdminContext, get_context
from agnt_jobs.db import queries
from agnt_jobs.scheduler import operators
from agnt_jobs.settings import Settings

SQL = queries.load("admin.sql")

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


def closed(settings: Settings) -> str | None:
    """Why the view refuses every request (503), or None: no token is set, or it
    is too weak to guard anything (a backend that mounts the router gets the same
    refusal as ``agnt-jobs admin``, which will not start)."""
    if configured_token(settings) is None:
        return DISABLED
    weak = weak_token(settings)
    return f"the admin view is closed: {weak}" if weak is not None else None


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


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def require_token(
    request: Request,
    given: str | None = Security(token_header),
    ctx: AdminContext = Depends(get_context),
) -> None:
    """401 without a token, 403 with a wrong one, 429 after too many wrong ones
    from the client's address, 503 if no token is set."""
    reason = closed(ctx.settings)
    token = configured_token(ctx.settings)
    if reason is not None or token is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, reason or DISABLED)
    given = given or _bearer(request)
    if not given:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing {TOKEN_HEADER} or Authorization: Bearer header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    door = throttle(request, ctx.settings)
    door.refuse_if_throttled(client_address(request))
    # Header values arrive decoded as latin-1: encoding back gives the raw bytes.
    if not matches(given.encode("latin-1"), token):
        door.failed(client_address(request), request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"wrong {TOKEN_HEADER}")
    request.state.agnt_admin_credential = "admin token"


# --- throttling -----------------------------------------------------------------


# A host name as a test client or a Unix-socket server may give one; anything
# else that is not an address (text a misconfigured proxy let through) is unknown.
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}")


def client_address(request: Request) -> str:
    """The client's address as the server decided it (a trusted proxy's forward,
    else the connection's), checked to be an address: it reaches logs and audit
    rows."""
    host = request.client.host if request.client else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host if _HOST_NAME.fullmatch(host) else "unknown"


@dataclass
class _Window:
    started: float
    failures: int = 0


class Throttle:
    """Wrong tokens per client address in fixed one-minute windows. It lives in
    the process (a table would let each wrong guess cost a database write);
    with several admin processes each counts its own."""

    WINDOW_SECONDS = 60.0
    # Addresses remembered at most: past it the oldest windows are forgotten, so a
    # flood from many addresses cannot grow the process without bound.
    MAX_ADDRESSES = 10_000

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def _window(self, address: str, now: float) -> _Window | None:
        window = self._windows.get(address)
        if window is not None and now - window.started >= self.WINDOW_SECONDS:
            del self._windows[address]
            return None
        return window

    def retry_after(self, address: str, now: float | None = None) -> int | None:
        """Seconds until ``address`` may try again, or None if it may now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            window = self._window(address, now)
            if window is None or window.failures < self.limit:
                return None
            return max(1, math.ceil(window.started + self.WINDOW_SECONDS - now))

    def refuse_if_throttled(self, address: str) -> None:
        wait = self.retry_after(address)
        if wait is not None:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"too many wrong tokens from this address: try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )

    def failed(self, address: str, path: str, now: float | None = None) -> None:
        """Count a wrong token; log the first of a window and the one that starts
        the throttling, never the others."""
        now = time.monotonic() if now is None else now
        with self._lock:
            window = self._window(address, now)
            if window is None:
                if len(self._windows) >= self.MAX_ADDRESSES:
                    oldest = min(self._windows, key=lambda a: self._windows[a].started)
                    del self._windows[oldest]
                window = self._windows[address] = _Window(started=now)
            window.failures += 1
            failures = window.failures
        if failures == 1:
            logger.warning(
                "wrong admin token; further ones from this address within a "
                "minute are counted, not logged",
                extra=logs.event("admin_auth_refused", client=address, path=path),
            )
        elif failures == self.limit:
            logger.warning(
                f"{failures} wrong admin tokens within a minute: refusing this "
                "address for the rest of the minute",
                extra=logs.event(
                    "admin_auth_throttled", client=address, failures=failures
                ),
            )


_THROTTLE_LOCK = threading.Lock()


def throttle(request: Request, settings: Settings) -> Throttle:
    """The throttle of the application serving the request (one per app, so a
    backend that mounts the router gets its own)."""
    state = request.app.state
    with _THROTTLE_LOCK:
        door: Throttle | None = getattr(state, "agnt_admin_throttle", None)
        if door is None or door.limit != settings.admin_failures_per_minute:
            door = Throttle(settings.admin_failures_per_minute)
            state.agnt_admin_throttle = door
    return door


def audit(request: Request, action: str, schedule_id: str, **extra: Any) -> None:
    """Log an action taken through the admin view (never with the credentials)."""
    logger.info(
        f"{action.removeprefix('admin_')} {schedule_id} from the admin view",
        extra=logs.event(action, schedule_id=schedule_id, **_client(request), **extra),
    )


def actor(request: Request) -> operators.Actor:
    """Who acts through the admin view, for an audit row: the credential that was
    checked for this request (the view has one token, not users: ``admin token``,
    or ``admin session`` with the session's id, as ``admin_sessions`` keeps it)
    and the client's address."""
    credential = getattr(request.state, "agnt_admin_credential", None)
    if credential is None:  # a route that checked no credential acts for no one
        raise RuntimeError("an admin action without a checked credential")
    return operators.Actor(
        by=f"{credential} from {client_address(request)}", source="admin"
    )


def session_id(session: str) -> str:
    """A session's short public name: the start of its nonce's SHA-256, which
    ``admin_sessions.nonce_sha256`` holds (the nonce itself is the secret)."""
    return _nonce_sha256(session)[:12]


def _client(request: Request) -> dict[str, str | None]:
    return {"client": client_address(request), "path": request.url.path}


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


def _nonce_sha256(session: str) -> str:
    nonce = session.split(".")[1]
    return hashlib.sha256(nonce.encode("latin-1", "replace")).hexdigest()


def start_session(ctx: AdminContext, token: bytes, client: str) -> str:
    """A new signed-in session: its cookie value, with its row recorded."""
    session = new_session(token)
    with ctx.engine.begin() as connection:
        connection.exec_driver_sql(
            SQL["session_start"],
            {
                "nonce_sha256": _nonce_sha256(session),
                "seconds": ctx.settings.admin_session_hours * 3600,
                "client": client,
            },
        )
    return session


def session_live(ctx: AdminContext, value: str | None) -> bool:
    """The cookie is a session this server signed with the current token, within
    its age, and not signed out."""
    token = configured_token(ctx.settings)
    if token is None or not session_valid(
        value, token, ctx.settings.admin_session_hours * 3600
    ):
        return False
    assert value is not None
    with ctx.engine.connect() as connection:
        return bool(
            connection.exec_driver_sql(
                SQL["session_live"], {"nonce_sha256": _nonce_sha256(value)}
            ).scalar_one()
        )


def end_session(ctx: AdminContext, value: str | None) -> None:
    """Sign a session out: its cookie signs no one in from now on, anywhere."""
    if not value or value.count(".") != 2:
        return
    with ctx.engine.begin() as connection:
        connection.exec_driver_sql(
            SQL["session_end"], {"nonce_sha256": _nonce_sha256(value)}
        )


def page_session(request: Request, ctx: AdminContext) -> str | None:
    """The request's live session cookie, or None. A live session is the
    credential the request acts with (``actor``)."""
    value = request.cookies.get(SESSION_COOKIE)
    if not session_live(ctx, value):
        return None
    assert value is not None
    request.state.agnt_admin_credential = f"admin session {session_id(value)}"
    return value


def page_csrf(ctx: AdminContext, session: str) -> str:
    """The CSRF value every form of a live session carries."""
    token = configured_token(ctx.settings)
    assert token is not None  # a live session implies a token
    return csrf_value(session, token)


def page_csrf_valid(ctx: AdminContext, given: str | None, session: str) -> bool:
    """A form's CSRF value is its session's, under the token configured now."""
    token = configured_token(ctx.settings)
    return token is not None and csrf_valid(given, session, token)


def csrf_value(session: str, token: bytes) -> str:
    return _sign(token, b"csrf", session)


def csrf_valid(given: str | None, session: str, token: bytes) -> bool:
    return given is not None and hmac.compare_digest(
        given.encode("utf-8"), csrf_value(session, token).encode()
    )
