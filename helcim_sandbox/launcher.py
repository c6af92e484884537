"""Start and stop a real sandbox process on a free port (tests, benchmarks, demo).

    with running_sandbox(limits="fast", faults="error500=0.05") as sandbox:
        requests.get(sandbox.base_url + "/connection-test", headers=sandbox.headers)
        sandbox.stats()["total"]

The server runs in its own process, as in production, so a test's client and
the server do not share an interpreter lock or an event loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

DEFAULT_TOKEN = "sandbox-token"


@dataclass
class SandboxProcess:
    """A running sandbox: its URLs, token and control helpers."""

    process: subprocess.Popen[bytes]
    base_url: str  # http://127.0.0.1:PORT/v2
    token: str
    log_path: Path

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v2")

    @property
    def headers(self) -> dict[str, str]:
        return {"api-token": self.token}

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.root_url}/_sandbox/{path}", json=body, timeout=600)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._control("GET", "stats")
        return result

    def reset_stats(self) -> None:
        self._control("POST", "stats/reset")

    def reset(self) -> None:
        self._control("POST", "reset")

    def configure(
        self, *, limits: str | None = None, faults: str | None = None, duplicate_codes: str | None = None
    ) -> dict[str, Any]:
        pairs = (("limits", limits), ("faults", faults), ("duplicate_codes", duplicate_codes))
        body = {k: v for k, v in pairs if v is not None}
        result: dict[str, Any] = self._control("PUT", "config", body)
        return result

    def seed(self, customers: int, seed: int = 0, today: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"customers": customers, "seed": seed}
        if today:
            body["today"] = today
        result: dict[str, Any] = self._control("POST", "seed", body)
        return result

    def add_card(self, customer_id: int, **card: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._control("POST", f"customers/{customer_id}/cards", card)
        return result

    def add_bank(self, customer_id: int, **bank: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._control("POST", f"customers/{customer_id}/bank-accounts", bank)
        return result

    def add_pad(self, customer_id: int, bank_id: int, state: str = "pending") -> dict[str, Any]:
        path = f"customers/{customer_id}/bank-accounts/{bank_id}/pads"
        result: dict[str, Any] = self._control("POST", path, {"state": state})
        return result

    def set_pad_state(self, pad_id: int, state: str) -> dict[str, Any]:
        result: dict[str, Any] = self._control("PUT", f"pads/{pad_id}", {"state": state})
        return result

    def outbox(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._control("GET", "outbox")
        return result

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def start_sandbox(
    *,
    limits: str = "off",
    faults: str | None = None,
    db: str | os.PathLike[str] | None = None,
    tokens: Sequence[str] = (DEFAULT_TOKEN,),
    host: str = "127.0.0.1",
    port: int = 0,
    extra_args: Sequence[str] = (),
    workdir: str | os.PathLike[str] | None = None,
    startup_timeout: float = 60.0,
) -> SandboxProcess:
    """Start ``helcim-sandbox serve`` and wait until it listens."""
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="helcim-sandbox-"))
    folder.mkdir(parents=True, exist_ok=True)
    url_file = folder / f"sandbox-{os.getpid()}-{time.monotonic_ns()}.url"
    log_path = url_file.with_suffix(".log")
    cmd = [sys.executable, "-m", "helcim_sandbox", "serve", "--host", host, "--port", str(port)]
    cmd += ["--limits", limits, "--url-file", str(url_file)]
    if faults:
        cmd += ["--faults", faults]
    if db is not None:
        cmd += ["--db", str(db)]
    for token in tokens:
        cmd += ["--token", token]
    cmd += list(extra_args)
    env = {k: v for k, v in os.environ.items() if k != "HELCIM_API_TOKEN"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + startup_timeout
    while not url_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"helcim-sandbox did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.02)
    base_url = url_file.read_text().strip()
    return SandboxProcess(process, base_url, tokens[0] if tokens else "", log_path)


@contextmanager
def running_sandbox(**kwargs: Any) -> Iterator[SandboxProcess]:
    """Context manager around :func:`start_sandbox`; the process is stopped on exit."""
    sandbox = start_sandbox(**kwargs)
    try:
        yield sandbox
    finally:
        sandbox.stop()
