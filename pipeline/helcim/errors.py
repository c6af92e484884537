"""Classify every HTTP outcome once: retriable, fatal, or success in disguise.

* **retriable**: 429, 5xx, connection errors, timeouts — tenacity retries these
  (a 429 is waited out by the pacer instead and never counts as an attempt);
* **fatal**: any other 4xx — retrying cannot help; 401 is its own class;
* **200 is not always success**: Helcim's docs say to check the body, so a
  2xx whose body is an ``{"errors": ...}`` object is treated as a refusal.

Error bodies come in every shape (a string, an object of field messages, an
array, ``[]``, ``{"message": ...}``); :func:`error_text` turns any of them into
one line. Messages are built from the operation, the status and Helcim's text
only: never from the request, so never with the token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import requests

from pipeline.errors import (
    AuthenticationError,
    HelcimError,
    HelcimRequestError,
    HelcimUnavailable,
    RateLimited,
)

TOKEN_HINT = (
    "check HELCIM_API_TOKEN: it must be an API token of this merchant account with access to the Customer API"
)


def error_text(body: Any, fallback: str = "") -> str:
    """One readable line from any of Helcim's error body shapes."""
    if body is None or body == "" or body == [] or body == {}:
        return fallback
    if isinstance(body, str):
        return body.strip() or fallback
    if isinstance(body, Mapping):
        for key in ("errors", "error", "message"):
            if key in body:
                return error_text(body[key], fallback)
        if "data" in body:
            return error_text(body["data"], fallback)
        return json.dumps(body, sort_keys=True)[:300]
    if isinstance(body, list):
        parts = [error_text(item) for item in body]
        return "; ".join(p for p in parts if p) or fallback
    return str(body)[:300]


def _field_errors(body: Any) -> str:
    if isinstance(body, Mapping) and isinstance(body.get("errors"), Mapping):
        return "; ".join(f"{k}: {error_text(v)}" for k, v in body["errors"].items())
    return error_text(body)


def parse_body(response: requests.Response) -> Any:
    """The JSON body, or the raw text when it is not JSON, or None when empty."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def is_error_body(body: Any) -> bool:
    """A 2xx body that is really a refusal (``{"errors": ...}`` and nothing else useful)."""
    return isinstance(body, Mapping) and "errors" in body and "id" not in body and bool(body["errors"])


def is_retriable_status(status: int) -> bool:
    return status == 429 or status >= 500


def error_for_response(operation: str, response: requests.Response, body: Any) -> HelcimError:
    """The exception for a non-success answer."""
    status = response.status_code
    detail = _field_errors(body) or response.reason or f"HTTP {status}"
    if status == 401:
        return AuthenticationError(
            f"{operation}: Helcim refused the API token (401 Unauthorized); {TOKEN_HINT}",
            operation=operation,
            status=status,
            detail=detail,
        )
    if status == 429:
        return RateLimited(
            f"{operation}: still rate limited (429) after waiting",
            operation=operation,
            status=status,
            detail=detail,
        )
    if status >= 500:
        return HelcimUnavailable(
            f"{operation}: Helcim answered {status} ({detail})",
            operation=operation,
            status=status,
            detail=detail,
        )
    return HelcimRequestError(
        f"{operation}: Helcim refused the request ({status}): {detail}",
        operation=operation,
        status=status,
        detail=detail,
    )


def error_for_exception(operation: str, base_url: str, exc: requests.RequestException) -> HelcimUnavailable:
    """The exception for a request that got no answer. Never quotes the request itself."""
    host = base_url.split("//", 1)[-1].split("/", 1)[0]
    if isinstance(exc, requests.Timeout):
        what = "timed out"
    elif isinstance(exc, requests.ConnectionError):
        what = "could not connect or the connection was dropped"
    else:
        what = f"failed ({type(exc).__name__})"
    error = HelcimUnavailable(f"{operation}: request to {host} {what}", operation=operation)
    error.timed_out = isinstance(exc, requests.ReadTimeout)
    return error


_NEVER_CONNECTED = (
    "newconnectionerror",
    "connection refused",
    "failed to resolve",
    "name or service not known",
)


def was_not_sent(exc: requests.RequestException) -> bool:
    """True when no connection was ever made, so the request cannot have reached Helcim."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout):
        text = repr(exc).lower()
        return any(marker in text for marker in _NEVER_CONNECTED)
    return False
