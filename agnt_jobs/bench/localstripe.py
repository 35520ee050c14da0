"""localstripe, the stateful fake Stripe server from PyPI, as a peer of the tests and
the benchmarks: started as a subprocess on a free port, waited for, stopped at the
end. It is an optional dependency (the ``bench`` extra, which ``test`` includes).

Run as a module, this file starts localstripe with its disk persistence turned off.
Stock localstripe pickles its whole store to ``/tmp/localstripe.pickle`` after every
write: a cost that grows with the store (quadratic over a test session) and a file
shared by every localstripe on the machine. Nothing else about the server changes.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_test_agnt_jobs"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalStripe:
    """``LocalStripe(log_path).start()``; ``.url`` is the API base to use."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> LocalStripe:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "agnt_jobs.bench.localstripe", str(self.port)],
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

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> LocalStripe:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(port: str) -> None:
    import localstripe.resources
    from localstripe.server import start

    localstripe.resources.Store.dump_to_disk = lambda self: None
    sys.argv = ["localstripe", "--from-scratch", "--port", port]
    start()


if __name__ == "__main__":
    main(sys.argv[1])
