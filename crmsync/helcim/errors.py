"""Classify every HTTP outcome once: retriable, fatal, or success in disguise.

* **retriable**: 429, 5xx, connection errors, timeouts, and answers that are
  not Helcim's documented shape (:class:`~crmsync.errors.ProtocolError`: an
  HTML page, cut-off JSON, an object where a list belongs, a customer without
  an id) — tenacity retries these (a 429 is waited out by the pacer instead
  and never counts as an attempt);
* **fatal**: any other 4xx — retrying cannot help; 401 and 403 are an
  authentication failure; a 3xx is a redirect crmsync never follows;
* **200 is not always success**: Helcim's docs say to check the body, so a
  2xx whose body is an ``{"errors": ...}`` object is treated as a refusal, and
  one that does not parse or has the wrong shape as a protocol error.

Error bodies come in every shape (a string, an object of field messages, an
array, ``[]``, ``{"message": ...}``, and at Helcim's Cloudflare edge an HTML
page); :func:`error_text` turns any of them into one short line. Messages are
built from the operation, the status and Helcim's text only: never from the
request, so never with the token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from crmsync.errors import (
    AuthenticationError,
    HelcimError,
    HelcimRequestError,
    HelcimUnavailable,
    RateLimited,
    RedirectRefused,
)
from crmsync.helcim.transport import NotSent


def token_hint(source: str = "HELCIM_API_TOKEN") -> str:
    """What a refused token's message asks; ``source`` is where the token was given (an account's token_env)."""
    return f"check {source}: it must be an API token of this merchant account with access to the Customer API"


@dataclass(frozen=True)
class NotJson:
    """A body that is not JSON, described in a few words (never pasted whole)."""

    description: str

    def __str__(self) -> str:
        return self.description


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"\s+")


def describe_non_json(content: bytes, content_type: str = "") -> NotJson:
    """``an HTML page ("502 Bad gateway")`` or ``a non-JSON answer ("Service unav…")``: at most ~100 chars."""
    head = content[:4096]
    title = _TITLE.search(head)
    if title or "html" in content_type.lower() or head.lstrip().startswith(b"<"):
        text = title.group(1).decode("utf-8", "replace") if title else ""
        text = _SPACES.sub(" ", text).strip()[:80]
        return NotJson(f'an HTML page ("{text}")' if text else "an HTML page")
    text = _SPACES.sub(" ", head[:200].decode("utf-8", "replace")).strip()
    shown = text if len(text) <= 60 else text[:60] + "…"
    return NotJson(f'a non-JSON answer ("{shown}")' if shown else "a non-JSON answer")


def error_text(body: Any, fallback: str = "") -> str:
    """One readable line from any of Helcim's error body shapes."""
    if body is None or body == "" or body == [] or body == {}:
        return fallback
    if isinstance(body, NotJson):
        return body.description
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


def parse_body(content: bytes, content_type: str = "") -> Any:
    """The JSON body, :class:`NotJson` when it is not JSON, or None when empty."""
    if not content.strip():
        return None
    try:
        return json.loads(content)
    except ValueError:  # UnicodeDecodeError is one
        return describe_non_json(content, content_type)


def is_error_body(body: Any) -> bool:
    """A 2xx body that is really a refusal (``{"errors": ...}`` and nothing else useful)."""
    return isinstance(body, Mapping) and "errors" in body and "id" not in body and bool(body["errors"])


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, without any user:password part."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}" if parts.scheme else f"{host}{port}"


def error_for_redirect(
    operation: str, base_url: str, status: int, location: str, url_source: str = "HELCIM_API_URL"
) -> RedirectRefused:
    target = origin_of(location) if location else "nowhere (no Location header)"
    return RedirectRefused(
        f"{operation}: {origin_of(base_url)} answered {status}, a redirect to {target}; crmsync follows no "
        f"redirect (the API token and customer data would go with it): set {url_source} to the API itself",
        operation=operation,
        status=status,
        detail=f"redirect to {target}",
    )


def error_for_response(
    operation: str, status: int, reason: str, body: Any, token_source: str = "HELCIM_API_TOKEN"
) -> HelcimError:
    """The exception for a non-success answer; a refused token's names ``token_source``."""
    detail = _field_errors(body) or reason or f"HTTP {status}"
    if status in (401, 403):
        what = "401 Unauthorized" if status == 401 else "403 Forbidden: it lacks a permission this call needs"
        return AuthenticationError(
            f"{operation}: Helcim refused the API token ({what}); {token_hint(token_source)}",
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
    elif isinstance(exc, NotSent):
        what = f"could not be made on this machine ({exc})"
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
