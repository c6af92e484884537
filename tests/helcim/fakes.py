"""A scripted requests transport for unit tests of retry and parsing logic.

Contract tests use the real sandbox; these fakes only exist to reach branches a
server cannot be asked to take on demand (a body shape Helcim might send, a
read timeout on exactly the third call).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

Step = (
    Callable[[requests.PreparedRequest], requests.Response]
    | Exception
    | tuple[int, Any]
    | tuple[int, Any, dict[str, str]]
)

HEADERS = {"minute-limit-remaining": "90", "hour-limit-remaining": "2900"}


def make_response(
    request: requests.PreparedRequest, status: int, body: Any, headers: Mapping[str, str] | None = None
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.request = request
    response.url = request.url or ""
    response.reason = {
        200: "OK",
        201: "Created",
        204: "No Content",
        400: "Bad Request",
        401: "Unauthorized",
        404: "Not Found",
        429: "Too Many Requests",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }.get(status, "")
    response.headers = CaseInsensitiveDict({"content-type": "application/json", **HEADERS, **(headers or {})})
    if isinstance(body, bytes):  # a raw body: HTML, cut-off JSON
        response._content = body
    else:
        response._content = b"" if body is None else json.dumps(body).encode()
    response._content_consumed = True  # type: ignore[attr-defined]  # iter_content (the client streams) yields _content
    return response


class ScriptedAdapter(BaseAdapter):
    """Answers each request with the next scripted step; records what was sent."""

    def __init__(self, steps: Iterable[Step]) -> None:
        super().__init__()
        self.steps = list(steps)
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append(request)
        if not self.steps:
            raise AssertionError(f"unscripted request {request.method} {request.url}")
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(request)
        return make_response(request, *step)

    def close(self) -> None:
        pass

    def calls(self) -> list[str]:
        return [f"{r.method} {(r.path_url or '').split('?')[0]}" for r in self.sent]


def scripted_session(*steps: Step) -> tuple[requests.Session, ScriptedAdapter]:
    session = requests.Session()
    adapter = ScriptedAdapter(steps)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session, adapter
