"""A Stripe stand-in: an HTTP proxy in front of localstripe (a ``RecordingProxy``)
that adds the things of real Stripe (and of a real outage) that localstripe lacks.

* **Pause.** ``pause()`` holds every request that arrives, unanswered, as a frozen
  Stripe would; ``resume()`` then serves every held request, in the order it
  arrived, whether or not its client is still waiting for the answer (a client that
  timed out and re-sent a request gets each copy served, as the frozen server
  would once thawed). ``hold("POST", "/v1/invoices/.*/pay")`` holds only the
  requests whose path matches, until ``release()``; ``pause_after(...)`` turns a
  hold into a pause of every request once the held one has arrived.
* **Idempotency keys**, when ``honour_keys`` is set: a request whose
  ``Idempotency-Key`` was used before is not forwarded; the stored answer is
  replayed (``Idempotent-Replayed: true``), as Stripe does for 24 hours; a key
  reused with other parameters gets 400, as from Stripe. Unset, keys are ignored,
  as localstripe ignores them.
* **Declines** localstripe never gives: ``decline_next(path)`` answers the next
  matching POST with Stripe's 402 card error (kept under its key like any answer).

Requests reach localstripe one at a time, held ones in the order they arrived and
before any that came after. ``received`` keeps each request; ``writes`` the POSTs
(method, path, key).
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from typing import Any

from agnt_jobs.standins.server import Received, RecordingProxy, Reply

# Longer than any test pauses, shorter than a hung suite.
HOLD_LIMIT_SECONDS = 60.0


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    idempotency_key: str | None


def _error(status: int, kind: str, message: str) -> Reply:
    body: dict[str, Any] = {"error": {"type": kind, "message": message}}
    if kind == "card_error":
        body["error"]["code"] = "card_declined"
    return Reply(status, body)


class StripeStandIn(RecordingProxy):
    def __init__(self, upstream: str, honour_keys: bool = False) -> None:
        super().__init__(upstream)
        self.responder = self._serve
        self.honour_keys = honour_keys
        self._turn = threading.Condition()
        self._next_ticket = 0
        self._paused = False
        self._hold: tuple[str, re.Pattern[str]] | None = None
        self._held_tickets: set[int] = set()
        self._answers: dict[str, tuple[str, Reply]] = {}
        self._declines: list[re.Pattern[str]] = []

    def stop(self) -> None:
        self.resume()
        super().stop()

    # --- pauses -------------------------------------------------------------------

    def pause(self) -> None:
        with self._turn:
            self._paused = True

    def hold(self, method: str, path: str) -> None:
        """Hold only ``method`` requests whose path matches the regular expression
        ``path`` (the rest pass) until release()."""
        with self._turn:
            self._hold = (method, re.compile(path))

    def pause_after(self, method: str, path: str, seconds: float) -> threading.Thread:
        """Once a matching request arrives, pause everything for ``seconds`` (it
        stays held), then resume: an outage that begins as Stripe receives a
        write. Returns the thread doing it; join it after the run."""
        self.hold(method, path)

        def outage() -> None:
            with self._turn:
                self._turn.wait_for(lambda: self._held_tickets, HOLD_LIMIT_SECONDS)
                self._paused = True
            threading.Event().wait(seconds)
            self.resume()

        thread = threading.Thread(target=outage, daemon=True)
        thread.start()
        return thread

    def release_when_held(self, count: int) -> threading.Thread:
        """Release the held requests once ``count`` of them are held."""

        def release() -> None:
            with self._turn:
                self._turn.wait_for(
                    lambda: len(self._held_tickets) >= count, HOLD_LIMIT_SECONDS
                )
            self.release()

        thread = threading.Thread(target=release, daemon=True)
        thread.start()
        return thread

    def resume(self) -> None:
        with self._turn:
            self._paused, self._hold = False, None
            self._turn.notify_all()

    release = resume

    def decline_next(self, path: str) -> None:
        """Answer the next POST whose path matches ``path`` with Stripe's card
        decline (402) instead of forwarding it (localstripe never declines an
        invoice payment: it leaves the invoice open)."""
        with self._turn:
            self._declines.append(re.compile(path))

    def served(self, timeout: float = HOLD_LIMIT_SECONDS) -> None:
        """Wait until every held request has been served."""
        with self._turn:
            if not self._turn.wait_for(lambda: not self._held_tickets, timeout):
                raise TimeoutError("held requests still unserved")

    def held(self) -> int:
        """How many requests are held right now."""
        with self._turn:
            return len(self._held_tickets)

    def writes(self, path: str) -> list[Seen]:
        """The POSTs received whose path matches the regular expression ``path``."""
        pattern = re.compile(path)
        with self._lock:
            received = list(self.received)
        return [
            Seen(r.method, r.path.split("?")[0], r.headers.get("idempotency-key"))
            for r in received
            if r.method == "POST" and pattern.fullmatch(r.path.split("?")[0])
        ]

    # --- serving ------------------------------------------------------------------

    def _is_held(self, method: str, path: str) -> bool:
        if self._paused:
            return True
        if self._hold is None:
            return False
        held_method, pattern = self._hold
        return method == held_method and bool(pattern.fullmatch(path.split("?")[0]))

    def _serve(self, request: Received) -> Reply:
        method, path = request.method, request.path
        key = request.headers.get("idempotency-key") if method == "POST" else None
        with self._turn:
            held = self._is_held(method, path)
            if held:
                ticket = self._next_ticket
                self._next_ticket += 1
                self._held_tickets.add(ticket)
                self._turn.notify_all()
                self._turn.wait_for(
                    lambda: (
                        not self._is_held(method, path)
                        and min(self._held_tickets) == ticket
                    ),
                    HOLD_LIMIT_SECONDS,
                )
            else:
                # Once released, what was held is served before what came after.
                self._turn.wait_for(
                    lambda: (
                        not self._held_tickets or self._paused or self._hold is not None
                    ),
                    HOLD_LIMIT_SECONDS,
                )
            try:
                return self._answer(request, key)
            finally:
                if held:
                    self._held_tickets.discard(ticket)
                    self._turn.notify_all()

    def _answer(self, request: Received, key: str | None) -> Reply:
        """Under ``_turn``: one request at a time reaches localstripe."""
        method, path = request.method, request.path
        fingerprint = hashlib.sha256(f"{path}\n".encode() + request.body).hexdigest()
        if self.honour_keys and key is not None and key in self._answers:
            used_for, answer = self._answers[key]
            if used_for != fingerprint:
                return _error(
                    400,
                    "idempotency_error",
                    "keys for idempotent requests can only be used with the "
                    "same parameters they were first used with",
                )
            return Reply(answer.status, answer.body, {"Idempotent-Replayed": "true"})
        declined = next(
            (d for d in self._declines if method == "POST" and d.fullmatch(path)), None
        )
        if declined is not None:
            self._declines.remove(declined)
            answer = _error(402, "card_error", "Your card was declined.")
        else:
            answer = self.forward(request)
        # Stripe keeps the result of every request that began executing; a
        # refused parameter set (400) is not kept.
        if self.honour_keys and key is not None and answer.status != 400:
            self._answers[key] = (fingerprint, answer)
        return answer
