"""localstripe, the stateful fake Stripe server from PyPI, as a peer of the tests and
the benchmarks: started as a subprocess on a free port, waited for, stopped at the
end. It is an optional dependency (the ``bench`` extra, which ``test`` includes).

``StripeObjects`` makes in one localstripe, through the official library, the
customers, cards and subscriptions a test or the billing jobs' due work needs.

Run as a module, this file starts localstripe with its disk persistence turned off.
Stock localstripe pickles its whole store to ``/tmp/localstripe.pickle`` after every
write: a cost that grows with the store (quadratic over a test session) and a file
shared by every localstripe on the machine. Nothing else about the server changes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from agnt_jobs.standins.child import ChildProcess

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_test_agnt_jobs"
GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # attaches, then every charge is declined
DECLINED_EVERY = 10
PLAN_AMOUNT = 50_000_000  # Rp 500,000 a month, in minor units


def available() -> bool:
    """Whether localstripe (the ``bench`` extra) is installed."""
    return importlib.util.find_spec("localstripe") is not None


class StripeObjects:
    """Makes customers, cards and subscriptions in one localstripe (the billing
    tests' ``StripeWorld`` builds on it)."""

    def __init__(self, url: str, api_key: str) -> None:
        import stripe

        client = stripe.StripeClient(
            api_key, base_addresses={"api": url}, max_network_retries=0
        )
        self.v1 = client.v1
        self._plans: dict[int, str] = {}

    def customer(self, card: str | None = GOOD_CARD) -> str:
        customer = self.v1.customers.create(params={"email": "venue@example.com"})
        if card is not None:
            self.set_card(customer.id, card)
        return customer.id

    def set_card(self, customer: str, card: str) -> str:
        """Save ``card`` as the customer's default payment method; returns it."""
        method = self.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {
                    "number": card,
                    "exp_month": 12,
                    "exp_year": 2035,
                    "cvc": "123",
                },
            }
        )
        self.v1.payment_methods.attach(method.id, params={"customer": customer})
        self.v1.customers.update(
            customer, params={"invoice_settings": {"default_payment_method": method.id}}
        )
        return method.id

    def customers(self, count: int, card: bool = True) -> list[str]:
        """``count`` customers; with cards, every ``DECLINED_EVERY``-th declines."""
        return [
            self.customer(
                None
                if not card
                else DECLINED_CARD
                if n % DECLINED_EVERY == 0
                else GOOD_CARD
            )
            for n in range(count)
        ]

    def subscription(self, customer: str, amount: int = PLAN_AMOUNT) -> dict[str, Any]:
        """A monthly subscription of ``customer`` to the plan of ``amount``."""
        if amount not in self._plans:
            product = self.v1.products.create(params={"name": "AGNT venue"})
            plan = self.v1.plans.create(
                params={
                    # unique: one localstripe may serve many of these objects
                    "id": f"plan-{uuid.uuid4().hex[:10]}",
                    "product": product.id,
                    "amount": amount,
                    "currency": "idr",
                    "interval": "month",
                }
            )
            self._plans[amount] = plan.id
        made = self.v1.subscriptions.create(
            params={"customer": customer, "items": [{"plan": self._plans[amount]}]}
        )
        return made.to_dict()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalStripe(ChildProcess):
    """``LocalStripe(log_path).start()``; ``.url`` is the API base to use."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> LocalStripe:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "agnt_jobs.standins.localstripe", str(self.port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"localstripe exited with {self._process.returncode}; "
                    f"see {self._log_path}"
                )
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(
                    f"{self.url}/v1/customers",
                    headers={"Authorization": f"Bearer {API_KEY}"},
                    timeout=1.0,
                )
                if answer.status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"localstripe did not answer on {self.url} in {timeout}s")


def main(port: str) -> None:
    import localstripe.resources
    from localstripe.server import start

    localstripe.resources.Store.dump_to_disk = lambda self: None
    sys.argv = ["localstripe", "--from-scratch", "--port", port]
    start()


if __name__ == "__main__":
    main(sys.argv[1])
