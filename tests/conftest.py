"""Shared fixtures: a real helcim-sandbox process on 127.0.0.1 and a random free port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from helcim_sandbox.launcher import SandboxProcess, running_sandbox

TOKEN = "test-token-5f2a9c"


class Api:
    """A thin HTTP helper for contract tests: raw requests, no client logic."""

    def __init__(self, base_url: str, token: str = TOKEN) -> None:
        self.base_url = base_url
        self.token = token
        self.session = requests.Session()

    def __call__(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {"api-token": self.token if token is None else token, **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.base_url + path, headers=headers, **kwargs)

    def create(self, **fields: Any) -> dict[str, Any]:
        fields.setdefault("contactName", "Test Customer")
        response = self("POST", "/customers", json=fields)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """One sandbox per test worker, limits off; tests reset it through `sandbox`."""
    with running_sandbox(tokens=(TOKEN,), limits="off", workdir=tmp_path_factory.mktemp("sandbox")) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxProcess) -> SandboxProcess:
    """The shared sandbox, emptied, with limits off, no faults, duplicate codes refused, zeroed counters."""
    sandbox_server.configure(limits="off", faults="", duplicate_codes="refuse")
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def api(sandbox: SandboxProcess) -> Api:
    return Api(sandbox.base_url)
