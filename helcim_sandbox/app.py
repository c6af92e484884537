"""The sandbox's HTTP application: Helcim's Customer API under ``/v2``.

Every ``/v2`` request passes through :class:`Gate`, a raw ASGI layer that does
what Helcim's edge does, in this order: authenticate the ``api-token`` header
(401), admit the request against the merchant's rate limits (429), read the
body (over 1 MiB: 413), draw an injected fault, run the endpoint, add
``minute-limit-remaining`` and ``hour-limit-remaining`` to the answer, and
count the request by operation and status for ``/_sandbox/stats``.

Every answer of the app is JSON in Helcim's error shape: an exception nothing
else handled becomes ``500 {"errors": "Internal Server Error"}`` (logged, and
counted as a 500), on ``/v2`` and ``/_sandbox`` alike. Input that cannot be
stored is refused before it reaches SQLite: ids too large for its int64 are
the 404 of a text id, ``page`` is capped at :data:`MAX_PAGE`, ``search`` at
:data:`MAX_SEARCH_LENGTH` characters.

``/_sandbox/...`` endpoints are **not part of Helcim**: they let tests and
demos add cards, bank accounts and PADs (which the real API cannot create),
change PAD states, reset data, seed, change limits and faults at run time,
and read request counts. They need no token and are never rate limited.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from helcim_sandbox import __version__, poison
from helcim_sandbox.faults import FaultConfig, FaultInjector
from helcim_sandbox.limits import LimitConfig, RateLimiter
from helcim_sandbox.operations import operation_for
from helcim_sandbox.store import Store, StoreError
from helcim_sandbox.validation import (
    ValidationFailed,
    as_text,
    clean_bank_account,
    clean_customer,
    clean_pad_update,
    text_problem,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOG = logging.getLogger("uvicorn.error")
#: Request bodies over this many bytes on /v2 get 413 (sandbox choice; Helcim's limit is not documented).
MAX_BODY_BYTES = 1024 * 1024
#: The largest id there can be (SQLite's int64): a bigger one is unknown, a 404 like a text id.
MAX_ID = 2**63 - 1
#: ``page`` above this would overflow SQLite's OFFSET: 400 (10**16 * 100 < 2**63).
MAX_PAGE = 10**16
#: ``search`` longer than this is a 400 (sandbox choice: SQLite refuses LIKE patterns over 50 kB).
MAX_SEARCH_LENGTH = 200

# The one header Helcim does not send: it lets a client tell it reached the sandbox.
SANDBOX_HEADER = (b"x-helcim-sandbox", __version__.encode())


class Stats:
    """Request counts by operation and status, for tests that count calls."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}

    def record(self, op: str, status: int | str) -> None:
        by_status = self.counts.setdefault(op, {})
        key = str(status)
        by_status[key] = by_status.get(key, 0) + 1

    def reset(self) -> None:
        self.counts.clear()

    def snapshot(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for statuses in self.counts.values():
            for status, n in statuses.items():
                by_status[status] = by_status.get(status, 0) + n
        return {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "by_operation": {op: dict(s) for op, s in sorted(self.counts.items())},
        }


@dataclass
class SandboxState:
    store: Store
    tokens: frozenset[str]
    limiter: RateLimiter
    faults: FaultInjector
    stats: Stats = field(default_factory=Stats)
    outbox: list[dict[str, Any]] = field(default_factory=list)


def _json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def json_response(body: Any, status: int = 200) -> Response:
    return Response(content=_json_bytes(body), status_code=status, media_type="application/json")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def abort_connection(send: Send) -> None:
    """Close the client's connection without a byte of answer.

    ASGI has no verb for "hang up", so this reaches the server's transport
    through the ``send`` callable uvicorn hands to the application (a bound
    method of its request cycle). The cycle is marked disconnected so uvicorn
    does not try to send its own 500 afterwards.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("this ASGI server does not expose its transport; cannot drop the connection")
    transport.close()
    cycle.disconnected = True  # type: ignore[union-attr]


@dataclass
class Captured:
    """The answer the endpoint gave, held back from the client."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


def _client_gone(send: Send) -> bool:
    """True once uvicorn saw the client hang up (its sends are then silently dropped)."""
    return bool(getattr(getattr(send, "__self__", None), "disconnected", False))


class Gate:
    """Authentication, rate limits, fault injection and counting for ``/v2``."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def _answer(self, send: Send, status: int, body: Any, minute: int, hour: int) -> None:
        await self._answer_bytes(send, status, _json_bytes(body), b"application/json", minute, hour)

    async def _answer_bytes(
        self,
        send: Send,
        status: int,
        payload: bytes,
        content_type: bytes,
        minute: int,
        hour: int,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(payload)).encode()),
                    *_limit_headers(minute, hour),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _perform(self, scope: Scope, receive: Receive) -> Captured:
        """Run the endpoint (a write is committed) and keep its answer."""
        captured = Captured()
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured.status = message["status"]
                captured.headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        captured.body = b"".join(chunks)
        return captured

    async def _poisoned(
        self,
        kind: str,
        variant: int,
        scope: Scope,
        receive: Receive,
        send: Send,
        raw_send: Send,
        minute: int,
        hour: int,
    ) -> str:
        """Send a poisoned answer; return the stats key it is counted under."""
        cfg = self.state.faults.config
        if kind == "redirect":
            status = 301 if variant == 0 else 307
            query = scope.get("query_string", b"")
            target = cfg.redirect_to.encode() + (scope.get("raw_path") or scope["path"].encode())
            target += b"?" + query if query else b""
            extra = [(b"location", target), *_edge_headers()]
            await self._answer_bytes(send, status, poison.redirect_page(status), HTML, minute, hour, extra)
            return f"redirect:{status}"
        if kind == "html" and variant == 1:
            ray = poison.ray_id()
            await self._answer_bytes(
                send, 502, poison.edge_page(502, ray), HTML, minute, hour, _edge_headers(ray)
            )
            return "html:502"
        real = await self._perform(scope, receive)
        if kind == "html":
            ray = poison.ray_id()
            await self._answer_bytes(
                send, 200, poison.edge_page(200, ray), HTML, minute, hour, _edge_headers(ray)
            )
            return "html:200"
        if kind == "bad_json":
            status = real.status if real.body else 200  # a 204 cannot carry the broken body
            await self._answer_bytes(send, status, poison.truncated_json(real.body), JSON, minute, hour)
            return f"bad_json:{status}"
        if kind == "wrong_shape":
            await self._answer_bytes(send, 200, poison.wrapped(real.body), JSON, minute, hour)
            return "wrong_shape:200"
        if kind == "no_id":
            await self._answer_bytes(send, 200, b"{}", JSON, minute, hour)
            return "no_id:200"
        if kind == "slow_body":
            await self._trickle(send, raw_send, real, cfg.trickle_s, minute, hour)
            return f"slow_body:{real.status}"
        if kind == "huge_body":
            total = max(1, int(cfg.huge_mb * poison.MIB))
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", JSON), *_limit_headers(minute, hour)],  # chunked
                }
            )
            for chunk in poison.huge_array(real.body, total):
                if _client_gone(raw_send):
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return "huge_body:200"
        raise AssertionError(f"not a poisoned answer: {kind}")

    async def _trickle(
        self, send: Send, raw_send: Send, real: Captured, seconds: float, minute: int, hour: int
    ) -> None:
        """Status and headers now, then the body in pieces spread over ``seconds``."""
        pieces = poison.trickle_chunks(real.body) if real.status != 204 else [b""]
        headers = [(k, v) for k, v in real.headers if k.lower() != b"content-length"]
        if real.status != 204:
            headers.append((b"content-length", str(sum(map(len, pieces))).encode()))
        await send(
            {
                "type": "http.response.start",
                "status": real.status,
                "headers": [*headers, *_limit_headers(minute, hour)],
            }
        )
        pause = seconds / max(1, len(pieces) - 1)
        for i, piece in enumerate(pieces):
            if i:
                await asyncio.sleep(pause)
            if _client_gone(raw_send):
                return
            await send({"type": "http.response.body", "body": piece, "more_body": i < len(pieces) - 1})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v2" or path.startswith("/v2/")):
            await _guarded(self.app, scope, receive, send)
            return
        st = self.state
        method = scope["method"]
        op = operation_for(method, path)
        token = _header(scope, b"api-token")
        if token is None or token not in st.tokens:
            minute, hour = st.limiter.remaining()
            await self._answer(send, 401, {"errors": "Unauthorized"}, minute, hour)
            st.stats.record(op, 401)
            return
        admission = st.limiter.acquire()
        minute, hour = admission.minute_remaining, admission.hour_remaining
        if not admission.admitted:
            await self._answer(send, 429, {"errors": "Too Many Requests"}, minute, hour)
            st.stats.record(op, 429)
            return
        answer = _Tracked(send)
        try:
            st.stats.record(op, await self._handle(scope, receive, answer, send, op, minute, hour))
        except _ClientGone:
            st.stats.record(op, "disconnected")
        except Exception:
            # Any bug or unforeseen input: Helcim's JSON 500, counted, never Starlette's plain text.
            LOG.exception("unhandled error in %s %s", method, path)
            if not answer.started:
                await self._answer(send, 500, {"errors": "Internal Server Error"}, minute, hour)
            st.stats.record(op, 500)
        finally:
            st.limiter.release()

    async def _handle(
        self, scope: Scope, receive: Receive, send: _Tracked, raw_send: Send, op: str, minute: int, hour: int
    ) -> int | str:
        """Fault, then endpoint; return the stats key of the request.

        ``raw_send`` is uvicorn's own callable: hanging up and noticing a
        client that hung up need it; everything else goes through ``send``.
        """
        st = self.state
        body_receive = await _read_limited(receive, MAX_BODY_BYTES)
        if body_receive is None:
            await self._answer(send, 413, {"errors": "Request body too large"}, minute, hour)
            return 413
        receive = body_receive
        draw = st.faults.draw(scope["method"], op)
        if draw.latency_s:
            await asyncio.sleep(draw.latency_s)
        kind = draw.kind
        if kind in ("error500", "error503", "error429"):
            status = int(kind[-3:])
            message = {500: "Internal Server Error", 503: "Service Unavailable", 429: "Too Many Requests"}
            await self._answer(send, status, {"errors": message[status]}, minute, hour)
            return status
        if kind == "reset":
            abort_connection(raw_send)
            return "reset"
        if kind in POISONED:
            return await self._poisoned(kind, draw.variant, scope, receive, send, raw_send, minute, hour)
        if kind == "timeout":
            # Read the body first: the client will have hung up by the time
            # the stalled request is performed, and the write must still land.
            receive = await _buffered(receive)
            await asyncio.sleep(st.faults.config.timeout_s)
        if kind == "drop_after_commit":
            captured = await self._perform(scope, receive)
            abort_connection(raw_send)
            return f"dropped:{captured.status}"

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_limit_headers(minute, hour)]
            await send(message)

        await self.app(scope, receive, send_with_limits)
        return send.status if kind != "timeout" else "timeout"


class _Tracked:
    """A send() that remembers whether, and with which status, the answer started."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0

    @property
    def started(self) -> bool:
        return self.status != 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


async def _guarded(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``app`` outside ``/v2`` (``/_sandbox``, docs) with the same JSON 500 on a bug."""
    answer = _Tracked(send)
    try:
        await app(scope, receive, answer)
    except Exception:
        if scope["type"] != "http":
            raise
        LOG.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
        if not answer.started:
            await answer(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", JSON), SANDBOX_HEADER],
                }
            )
            await answer(
                {"type": "http.response.body", "body": _json_bytes({"errors": "Internal Server Error"})}
            )


class _ClientGone(Exception):
    """The client hung up before its request body was complete."""


async def _read_limited(receive: Receive, limit: int) -> Receive | None:
    """Read the request body now; ``None`` if it is over ``limit`` bytes (the rest is read and dropped).

    Otherwise a receive() that replays the body, then hands over to the server's.
    Raises :class:`_ClientGone` if the client hangs up first: that request is
    never performed.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        if size <= limit:
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size > limit:
        return None
    replay: Message | None = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    async def receive_again() -> Message:
        nonlocal replay
        if replay is not None:
            message, replay = replay, None
            return message
        return await receive()

    return receive_again


JSON = b"application/json"
HTML = b"text/html; charset=UTF-8"
POISONED = frozenset({"html", "bad_json", "wrong_shape", "no_id", "redirect", "slow_body", "huge_body"})


def _limit_headers(minute: int, hour: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"minute-limit-remaining", str(minute).encode()),
        (b"hour-limit-remaining", str(hour).encode()),
        SANDBOX_HEADER,
    ]


def _edge_headers(ray: str | None = None) -> list[tuple[bytes, bytes]]:
    """The Ray ID Cloudflare adds to the pages it serves itself (uvicorn sends its own Server header)."""
    return [(b"cf-ray", (ray or poison.ray_id()).encode())]


async def _buffered(receive: Receive) -> Receive:
    """Read the whole request body now; return a receive() that replays it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    replay: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return replay
        await asyncio.Event().wait()  # no more messages until the server gives up
        return {"type": "http.disconnect"}

    return receive_again


def _int_id(raw: str, error: StoreError) -> int:
    """A path id, or ``error`` (a 404 as for a text id) when it is not one SQLite can hold."""
    if not _digits(raw) or len(raw.lstrip("0")) > 19 or int(raw) > MAX_ID:
        raise error
    return int(raw)


def _customer_id(raw: str) -> int:
    return _int_id(raw, StoreError(404, {"errors": "Invalid customerId"}))


async def _json_body(request: Request, *, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ValidationFailed({"errors": "Request body must be a JSON object"})
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ValidationFailed({"errors": "Request body is not valid JSON"}) from None
    except RecursionError:  # valid JSON, nested deeper than the parser goes
        raise ValidationFailed({"errors": "Request body is nested too deeply"}) from None


async def _json_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The body of a sandbox endpoint: a JSON object (``{}`` when optional and empty), else 400."""
    if not required and not (await request.body()).strip():
        return {}
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise ValidationFailed({"errors": "Request body must be a JSON object"})
    return body


def _sandbox_text(body: dict[str, Any], key: str) -> str:
    try:
        return as_text(body.get(key))
    except TypeError as exc:
        raise ValidationFailed({"errors": text_problem(key, exc)}) from None


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$", re.ASCII)


def _sandbox_date(body: dict[str, Any]) -> str | None:
    """``dateCreated`` of a sandbox-made record: ``YYYY-MM-DD HH:MM:SS`` or absent."""
    value = body.get("dateCreated")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValidationFailed({"errors": "dateCreated must be YYYY-MM-DD HH:MM:SS"})
    return value


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _query_int(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationFailed({"errors": f"{name} must be an integer {bound}"})
    return value


def _flag(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw not in ("0", "1"):
        raise ValidationFailed({"errors": f"{name} must be 0 or 1"})
    return int(raw)


def create_app(state: SandboxState) -> ASGIApp:
    """Build the ASGI application around one sandbox state."""
    api = FastAPI(
        title="helcim-sandbox",
        description="A local emulator of Helcim's Customer API v2 (under /v2). /_sandbox/* is not part of Helcim.",
        version="2.2.0-sandbox",
    )
    store = state.store

    @api.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> Response:
        return json_response(exc.body, exc.status)

    @api.exception_handler(ValidationFailed)
    async def _validation_error(_: Request, exc: ValidationFailed) -> Response:
        return json_response(exc.body, 400)

    @api.exception_handler(Exception)
    async def _unhandled(_: Request, exc: Exception) -> Response:
        # Starlette's ServerErrorMiddleware sends this, then re-raises for the Gate to log and count.
        return json_response({"errors": "Internal Server Error"}, 500)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return json_response({"errors": str(exc.detail)}, exc.status_code)

    # -- Helcim Customer API ----------------------------------------------------

    @api.get("/v2/connection-test")
    async def connection_test() -> Response:
        return json_response({"message": "Connected Successfully"})

    @api.get("/v2/customers")
    async def get_customers(request: Request) -> Response:
        limit = _query_int(request, "limit", 100, 1, 100)
        page = _query_int(request, "page", 1, 1, MAX_PAGE)
        include = request.query_params.get("includeCards", "").lower() in ("yes", "true", "1")
        code = request.query_params.get("customerCode")
        search = request.query_params.get("search", "").strip()
        if len(search) > MAX_SEARCH_LENGTH:
            raise ValidationFailed({"errors": f"search must be at most {MAX_SEARCH_LENGTH} characters"})
        return json_response(store.list_customers(search, code or None, limit, page, include))

    @api.post("/v2/customers")
    async def create_customer(request: Request) -> Response:
        fields = clean_customer(await _json_body(request))
        return json_response(store.create_customer(fields))  # LIVE: 200, not 201

    @api.get("/v2/customers/{customer_id}")
    async def get_customer(customer_id: str) -> Response:
        return json_response(store.get_customer(_customer_id(customer_id)))

    @api.put("/v2/customers/{customer_id}")
    async def update_customer(customer_id: str, request: Request) -> Response:
        cid = _customer_id(customer_id)
        current = store.get_customer(cid, include_cards=False)
        fields = clean_customer(await _json_body(request), current)
        return json_response(store.update_customer(cid, fields))

    @api.get("/v2/customers/{customer_id}/cards")
    async def get_cards(customer_id: str, request: Request) -> Response:
        cid = _customer_id(customer_id)
        store.require_customer(cid)
        return json_response(store.list_cards(cid, request.query_params.get("cardToken") or None))

    @api.get("/v2/customers/{customer_id}/cards/{card_id}")
    async def get_card(customer_id: str, card_id: str) -> Response:
        cid = _customer_id(customer_id)
        return json_response(
            store.get_card(cid, _int_id(card_id, StoreError(404, {"errors": "Invalid cardId"})))
        )

    @api.delete("/v2/customers/{customer_id}/cards/{card_id}")
    async def delete_card(customer_id: str, card_id: str) -> Response:
        cid = _customer_id(customer_id)
        store.delete_card(cid, _int_id(card_id, StoreError(404, [])))
        return Response(status_code=204)

    @api.patch("/v2/customers/{customer_id}/cards/{card_id}/default")
    async def set_default_card(customer_id: str, card_id: str) -> Response:
        cid = _customer_id(customer_id)
        card = _int_id(card_id, StoreError(400, {"errors": "Invalid card id."}))
        return json_response(store.set_default_card(cid, card))

    @api.get("/v2/customers/{customer_id}/bank-accounts")
    async def get_banks(customer_id: str, request: Request) -> Response:
        cid = _customer_id(customer_id)
        return json_response(
            store.list_banks(
                cid,
                request.query_params.get("bankToken") or None,
                _flag(request, "verified"),
                _flag(request, "ready"),
            )
        )

    @api.post("/v2/customers/{customer_id}/bank-accounts")
    async def create_bank(customer_id: str, request: Request) -> Response:
        cid = _customer_id(customer_id)
        customer = store.get_customer(cid, include_cards=False)
        cleaned = clean_bank_account(await _json_body(request))
        bank_id = store.add_bank(cid, cleaned)
        email = (customer["billingAddress"] or {}).get("email") or "the customer"
        state.outbox.append({"customerId": cid, "kind": "bank-authorization", "bankAccountId": bank_id})
        message = (
            f"Successfully created new bank account with ID #{bank_id}. "
            f"A bank authorization email was also emailed to {email}."
        )
        return json_response({"data": {"message": message, "bankAccount": {"id": bank_id}}}, 201)

    @api.get("/v2/customers/{customer_id}/bank-accounts/request-new")
    async def request_new_bank(customer_id: str) -> Response:
        cid = _customer_id(customer_id)
        store.require_customer(cid)
        state.outbox.append({"customerId": cid, "kind": "bank-request"})  # a GET with a side effect (sic)
        return json_response({"message": "Successfully sent bank account request email to customer."})

    def _bank_id(raw: str) -> int:
        return _int_id(raw, StoreError(404, {"message": "Bank account not found."}))

    @api.get("/v2/customers/{customer_id}/bank-accounts/{bank_id}")
    async def get_bank(customer_id: str, bank_id: str) -> Response:
        return json_response(store.get_bank(_customer_id(customer_id), _bank_id(bank_id)))

    @api.delete("/v2/customers/{customer_id}/bank-accounts/{bank_id}")
    async def delete_bank(customer_id: str, bank_id: str) -> Response:
        store.delete_bank(_customer_id(customer_id), _bank_id(bank_id))
        return Response(status_code=204)

    @api.patch("/v2/customers/{customer_id}/bank-accounts/{bank_id}/default")
    async def set_default_bank(customer_id: str, bank_id: str) -> Response:
        return json_response(store.set_default_bank(_customer_id(customer_id), _bank_id(bank_id)))

    @api.get("/v2/customers/{customer_id}/pads")
    async def get_pads(customer_id: str) -> Response:
        pads = store.list_pads(_customer_id(customer_id))
        if not pads:
            return Response(status_code=204)
        return json_response({"pads": pads})

    def _pad_ids(customer_id: str, bank_id: str, pad_id: str) -> tuple[int, int, int]:
        missing = StoreError(404, {"message": "PAD not found."})
        return _customer_id(customer_id), _int_id(bank_id, missing), _int_id(pad_id, missing)

    @api.get("/v2/customers/{customer_id}/bank-accounts/{bank_id}/pads/{pad_id}")
    async def get_pad(customer_id: str, bank_id: str, pad_id: str) -> Response:
        return json_response({"pad": store.get_pad(*_pad_ids(customer_id, bank_id, pad_id))})

    @api.put("/v2/customers/{customer_id}/bank-accounts/{bank_id}/pads/{pad_id}")
    async def update_pad(customer_id: str, bank_id: str, pad_id: str, request: Request) -> Response:
        ids = _pad_ids(customer_id, bank_id, pad_id)
        store.get_pad(*ids)
        changes = clean_pad_update(await _json_body(request, required=False))
        return json_response({"pad": store.update_pad(*ids, changes)})

    # -- sandbox-only control endpoints (not part of Helcim) ---------------------

    @api.get("/_sandbox/stats", tags=["sandbox only"])
    async def sandbox_stats() -> Response:
        snapshot = state.stats.snapshot()
        snapshot["faults_injected"] = dict(state.faults.injected)
        snapshot["in_flight"] = state.limiter.in_flight
        minute, hour = state.limiter.remaining()
        snapshot["limits"] = {
            "spec": state.limiter.config.spec(),
            "minute_remaining": minute,
            "hour_remaining": hour,
        }
        snapshot["data"] = store.counts()
        return json_response(snapshot)

    @api.post("/_sandbox/stats/reset", tags=["sandbox only"])
    async def sandbox_stats_reset() -> Response:
        state.stats.reset()
        state.faults.injected.clear()
        return json_response({"ok": True})

    @api.post("/_sandbox/reset", tags=["sandbox only"])
    async def sandbox_reset() -> Response:
        store.reset()
        state.stats.reset()
        state.faults.injected.clear()
        state.limiter.reset()
        state.outbox.clear()
        return json_response({"ok": True})

    def config_view() -> dict[str, str]:
        return {
            "limits": state.limiter.config.spec(),
            "faults": state.faults.config.spec(),
            "duplicate_codes": "allow" if store.allow_duplicate_codes else "refuse",
        }

    @api.get("/_sandbox/config", tags=["sandbox only"])
    async def sandbox_config() -> Response:
        return json_response(config_view())

    @api.put("/_sandbox/config", tags=["sandbox only"])
    async def sandbox_set_config(request: Request) -> Response:
        body = await _json_body(request)
        expected = 'expected {"limits": SPEC, "faults": SPEC, "duplicate_codes": ...} with SPEC a string'
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k, ""), str) for k in ("limits", "faults")
        ):
            raise ValidationFailed({"errors": expected})
        try:
            limits = LimitConfig.parse(body["limits"]) if "limits" in body else None
            faults = FaultConfig.parse(body["faults"]) if "faults" in body else None
        except ValueError as exc:
            raise ValidationFailed({"errors": str(exc)}) from None
        duplicates = body.get("duplicate_codes")
        if duplicates not in (None, "allow", "refuse"):
            raise ValidationFailed({"errors": "duplicate_codes must be allow or refuse"})
        if limits is not None:
            state.limiter.reconfigure(limits)
        if faults is not None:
            state.faults.reconfigure(faults)
        if duplicates is not None:
            store.allow_duplicate_codes = duplicates == "allow"
        return json_response(config_view())

    @api.get("/_sandbox/outbox", tags=["sandbox only"])
    async def sandbox_outbox() -> Response:
        return json_response(state.outbox)

    @api.post("/_sandbox/seed", tags=["sandbox only"])
    async def sandbox_seed(request: Request) -> Response:
        from helcim_sandbox.seed import SeedOptions, seed_store

        body = await _json_object(request, required=False)
        try:
            options = SeedOptions.from_mapping(body)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValidationFailed({"errors": str(exc)}) from None
        return json_response(seed_store(store, options))

    @api.post("/_sandbox/customers/{customer_id}/cards", tags=["sandbox only"])
    async def sandbox_add_card(customer_id: str, request: Request) -> Response:
        body = await _json_object(request)
        number = _sandbox_text(body, "cardNumber").replace(" ", "")
        f6l4 = _sandbox_text(body, "cardF6L4") or (number[:6] + number[-4:] if len(number) >= 12 else "")
        expiry = _sandbox_text(body, "cardExpiry")
        if not (_digits(f6l4) and len(f6l4) == 10):
            raise ValidationFailed({"errors": "give cardNumber (12-19 digits) or cardF6L4 (10 digits)"})
        if not (_digits(expiry) and len(expiry) == 4 and 1 <= int(expiry[:2]) <= 12):
            raise ValidationFailed({"errors": "cardExpiry must be MMYY"})
        card = store.add_card(
            _customer_id(customer_id),
            holder=_sandbox_text(body, "cardHolderName"),
            f6l4=f6l4,
            expiry=expiry,
            default=bool(body.get("default", False)),
            date_created=_sandbox_date(body),
        )
        return json_response(card, 201)

    @api.post("/_sandbox/customers/{customer_id}/bank-accounts", tags=["sandbox only"])
    async def sandbox_add_bank(customer_id: str, request: Request) -> Response:
        """Body: the create-bank fields, plus ``verified`` (bool) and ``pad`` (pending|accepted|revoked|none)."""
        body = await _json_object(request)
        cleaned = clean_bank_account(body)
        cid = _customer_id(customer_id)
        pad = _sandbox_text(body, "pad") or "none"
        if pad not in ("none", "pending", "accepted", "revoked"):
            raise ValidationFailed({"errors": "pad must be none, pending, accepted or revoked"})
        bank_id = store.add_bank(
            cid,
            cleaned,
            verified=bool(body.get("verified", False)),
            with_pad=False,
            date_created=_sandbox_date(body),
        )
        if pad != "none":
            store.add_pad(cid, bank_id, pad, date_created=_sandbox_date(body))
        return json_response(store.get_bank(cid, bank_id), 201)

    @api.put("/_sandbox/customers/{customer_id}/bank-accounts/{bank_id}", tags=["sandbox only"])
    async def sandbox_set_bank(customer_id: str, bank_id: str, request: Request) -> Response:
        body = await _json_object(request)
        verified = bool(body.get("verified"))
        return json_response(store.set_bank_flags(_customer_id(customer_id), _bank_id(bank_id), verified))

    @api.post("/_sandbox/customers/{customer_id}/bank-accounts/{bank_id}/pads", tags=["sandbox only"])
    async def sandbox_add_pad(customer_id: str, bank_id: str, request: Request) -> Response:
        body = await _json_object(request, required=False)
        pad = store.add_pad(
            _customer_id(customer_id),
            _bank_id(bank_id),
            _sandbox_text(body, "state") or "pending",
            date_created=_sandbox_date(body),
        )
        return json_response(pad, 201)

    @api.put("/_sandbox/pads/{pad_id}", tags=["sandbox only"])
    async def sandbox_set_pad(pad_id: str, request: Request) -> Response:
        state_name = _sandbox_text(await _json_object(request), "state")
        return json_response(
            store.set_pad_state(_int_id(pad_id, StoreError(404, {"message": "PAD not found."})), state_name)
        )

    return Gate(api, state)


def build_state(
    db: str | None,
    tokens: list[str],
    limits: LimitConfig,
    faults: FaultConfig,
    timezone: str | None = None,
    allow_duplicate_codes: bool = False,
) -> SandboxState:
    store = Store(db, timezone) if timezone else Store(db)
    store.allow_duplicate_codes = allow_duplicate_codes
    return SandboxState(store, frozenset(tokens), RateLimiter(limits), FaultInjector(faults))
