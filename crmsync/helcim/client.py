"""HelcimClient: one typed method per Customer API operation, paced and retried safely.

Every call goes through :meth:`HelcimClient._send`:

1. the shared :class:`~crmsync.helcim.limits.Pacer` admits it (concurrency,
   rolling windows, other integrations' usage, the call budget);
2. a 429 is *waited out*: the pacer holds every worker back, the call is sent
   again, and this never counts as a failed attempt;
3. other retriable failures (5xx, connection errors, timeouts) are retried by
   tenacity with exponential backoff and jitter, bounded in attempts and in
   total time — but only for operations that are safe to repeat;
4. anything else is classified once by :mod:`~crmsync.helcim.errors`.

``POST /customers`` is not idempotent. :meth:`create_customer` therefore never
re-posts blindly: after a lost answer, a timeout or a 5xx it looks the
customer up by ``customerCode`` and returns the one that exists (marked
``recovered``); a refusal because the code already exists is resolved the same
way. ``POST .../bank-accounts`` and ``GET .../request-new`` (which e-mails the
customer) are only resent when the request certainly never left.

The token is sent in the ``api-token`` header and appears nowhere else: not in
log lines, not in exception text (exceptions are rebuilt from the operation,
the status and Helcim's message, and chained from nothing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from crmsync import __version__
from crmsync.config import DEFAULT_URL, RateLimits, check_api_url, check_token
from crmsync.errors import (
    HelcimError,
    HelcimRequestError,
    HelcimUnavailable,
    ProtocolError,
)
from crmsync.helcim.errors import (
    NotJson,
    error_for_exception,
    error_for_redirect,
    error_for_response,
    is_error_body,
    parse_body,
    was_not_sent,
)
from crmsync.helcim.limits import Pacer
from crmsync.helcim.models import (
    BankAccount,
    BankAccountInput,
    Card,
    CreateResult,
    Customer,
    CustomerInput,
    DefaultCardRecord,
    Pad,
)
from crmsync.helcim.transport import AnswerTooLarge, CallTimedOut, bounded_call, bounded_session
from crmsync.stopping import StopSignal

log = logging.getLogger("crmsync.helcim")

PAGE_SIZE = 100

#: The largest answer each operation may send, in bytes (anything else: ``DEFAULT_MAX_BYTES``).
#: A page of 100 customers with their cards is about 200 kB; these leave ample room and stop
#: a runaway answer long before it costs memory.
MAX_BYTES = {
    "get-customers": 10_000_000,
    "get-customer-cards": 2_000_000,
    "get-customer-bank-accounts": 2_000_000,
    "get-pads": 2_000_000,
    "connection-test": 64_000,
}
DEFAULT_MAX_BYTES = 1_000_000

#: A shape check: None when the parsed body is what the operation documents, else what is wrong.
Check = Callable[[Any], str | None]


def _positive_id(item: Any) -> bool:
    raw = item.get("id") if isinstance(item, Mapping) else None
    if isinstance(raw, bool):
        return False
    if isinstance(raw, int):
        return raw > 0
    return isinstance(raw, str) and raw.isdigit() and int(raw) > 0


def an_object_with_id(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return f"the answer is {_kind(body)}, not an object"
    return None if _positive_id(body) else "the object has no id"


def a_list_with_ids(body: Any) -> str | None:
    if not isinstance(body, list):
        return f"the answer is {_kind(body)}, not a list"
    bad = sum(not _positive_id(item) for item in body)
    return f"{bad} of its {len(body)} items have no id" if bad else None


def one_object_with_id(body: Any) -> str | None:
    """An object, or (as the OpenAPI file has it) a one-element list of one."""
    if isinstance(body, list) and len(body) == 1:
        return an_object_with_id(body[0])
    return an_object_with_id(body)


def an_object(body: Any) -> str | None:
    return None if isinstance(body, Mapping) else f"the answer is {_kind(body)}, not an object"


def pads_answer(body: Any) -> str | None:
    """``{"pads": [...]}``, a bare list, or nothing (204)."""
    if body is None:
        return None
    pads = body.get("pads") if isinstance(body, Mapping) else body
    return a_list_with_ids(pads)


def default_card_answer(body: Any) -> str | None:
    record = body.get("customer") if isinstance(body, Mapping) else None
    return None if isinstance(record, Mapping) else "no customer record in the answer"


def a_message(body: Any) -> str | None:
    message = body.get("message") if isinstance(body, Mapping) else None
    return None if isinstance(message, str) and message.strip() else "no message in the answer"


def anything(_: Any) -> str | None:
    return None


def _kind(body: Any) -> str:
    if isinstance(body, NotJson):
        return str(body)
    if body is None:
        return "empty"
    names: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    return names.get(type(body), type(body).__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying retriable failures (429s are waited out separately)."""

    attempts: int = 6  # sends per call, the first one included
    max_seconds: float = 300.0  # give up retrying after this long
    backoff_base: float = 0.5  # exponential backoff with full jitter: up to base * 2**n seconds
    backoff_max: float = 30.0
    rate_limit_patience: float = 3900.0  # how long 429s may hold one call before RateLimited
    settle_after_drop: float = 2.0  # wait before looking up a create whose connection dropped unanswered


class _Unsent(HelcimUnavailable):
    """A failure where the request certainly never reached Helcim."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


class HelcimClient:
    """Helcim Customer API v2 client, safe to share between up to ``concurrent`` worker threads."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str = "",
        session: requests.Session | None = None,
        *,
        limits: RateLimits | None = None,
        max_calls: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        deadline: float | None = None,
        sleep: Callable[[float], None] | None = None,
        stop: StopSignal | None = None,
        token_source: str = "HELCIM_API_TOKEN",
        url_source: str = "HELCIM_API_URL",
        proxy: str = "",
        ca_bundle: str | None = None,
    ) -> None:
        self.base_url = check_api_url(base_url, name=url_source, token_name=token_source)
        self.token_source, self.url_source = token_source, url_source  # what messages name
        self.stop = stop
        self.pacer = Pacer(limits, max_calls=max_calls, stop=stop)
        self.retry = retry or RetryPolicy()
        self._retries = 0  # retriable failures retried (429s are waited out, not counted here)
        self._retry_lock = threading.Lock()
        self.timeout = timeout
        # the whole call (connect, headers, body): the read timeout unless given
        self.deadline = float(deadline if deadline is not None else _read_timeout(timeout))
        self._sleep = sleep or self.pause
        if session is None:
            session = bounded_session(
                max(10, self.pacer.limits.concurrent * 2), proxy=proxy, ca_bundle=ca_bundle
            )
        self.session = session
        self._headers = {
            "api-token": check_token(token, name=token_source),
            "accept": "application/json",
            "user-agent": f"crmsync/{__version__}",
        }

    def pause(self, seconds: float) -> None:
        """Sleep, ending early when the run is asked to stop (the next send then raises Interrupted)."""
        if self.stop is not None:
            self.stop.wait(seconds)
        else:
            time.sleep(seconds)

    def __repr__(self) -> str:  # never shows the token
        return f"HelcimClient({self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HelcimClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------

    def _exchange(
        self, operation: str, method: str, path: str, params: Mapping[str, Any] | None, body: Any
    ) -> tuple[int, str, Mapping[str, str], Any]:
        """One paced exchange: (status, reason, headers, parsed body). Raises for no usable answer."""
        ticket = self.pacer.acquire(operation)
        started = time.perf_counter()
        try:
            raw = bounded_call(
                self.session,
                method,
                self.base_url + path,
                params=params,
                body=body,
                headers=self._headers,
                timeout=self.timeout,
                deadline_seconds=self.deadline,
                max_bytes=MAX_BYTES.get(operation, DEFAULT_MAX_BYTES),
            )
        except (CallTimedOut, AnswerTooLarge) as cut:
            self.pacer.release(ticket, cut.headers, cut.status)
            error: HelcimUnavailable
            if isinstance(cut, AnswerTooLarge):
                error = ProtocolError(
                    f"{operation}: Helcim's answer was {cut} (the most this call accepts); not read",
                    operation=operation,
                    status=cut.status,
                )
            else:
                error = HelcimUnavailable(
                    f"{operation}: no whole answer within {self.deadline:g} s (the call's deadline)",
                    operation=operation,
                    status=cut.status,
                )
                error.timed_out = True
            log.debug("%s %s: %s", operation, method, error)
            raise error from None
        except requests.RequestException as exc:
            self.pacer.release(ticket)
            log.debug("%s %s: no answer (%s)", operation, method, type(exc).__name__)
            unanswered = error_for_exception(operation, self.base_url, exc)
            if was_not_sent(exc):
                raise _Unsent(str(unanswered), operation=operation) from None
            raise unanswered from None
        self.pacer.release(ticket, raw.headers, raw.status)
        log.debug(
            "%s %s -> %s in %.0f ms (minute-limit-remaining %s)",
            operation,
            method,
            raw.status,
            (time.perf_counter() - started) * 1000,
            raw.headers.get("minute-limit-remaining", "?"),
        )
        parsed = parse_body(raw.content, raw.headers.get("content-type", ""))
        return raw.status, raw.reason, raw.headers, parsed

    def _send_once(
        self,
        operation: str,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Any,
        ok: tuple[int, ...],
        check: Check = anything,
    ) -> Answer:
        """Send one request, waiting out 429s; classify the outcome and check the answer's shape."""
        consecutive_429 = 0
        patience_ends = time.monotonic() + self.retry.rate_limit_patience
        while True:
            status, reason, headers, parsed = self._exchange(operation, method, path, params, body)
            if status == 429:
                consecutive_429 += 1
                wait = self.pacer.hold_after_429(consecutive_429)
                if time.monotonic() + wait > patience_ends:
                    raise error_for_response(operation, status, reason, parsed, self.token_source) from None
                log.info("%s: rate limited (429), holding all requests %.2f s", operation, wait)
                self._sleep(wait)
                continue
            if 300 <= status < 400:
                location = headers.get("location", "")
                raise error_for_redirect(operation, self.base_url, status, location, self.url_source)
            if status not in ok or is_error_body(parsed):
                raise error_for_response(operation, status, reason, parsed, self.token_source) from None
            problem = f"it is {parsed}" if isinstance(parsed, NotJson) else check(parsed)
            if problem:
                raise ProtocolError(
                    f"{operation}: Helcim answered {status}, but not as documented: {problem}",
                    operation=operation,
                    status=status,
                    detail=problem,
                )
            return Answer(status, parsed, headers)

    def _retrying(self, retriable: Callable[[BaseException], bool]) -> Retrying:
        policy = self.retry

        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            with self._retry_lock:
                self._retries += 1
            log.info("%s; retry %d/%d in %.1f s", error, state.attempt_number, policy.attempts - 1, wait)

        return Retrying(
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_seconds),
            wait=wait_random_exponential(multiplier=policy.backoff_base, max=policy.backoff_max),
            retry=retry_if_exception(retriable),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        ok: tuple[int, ...] = (200,),
        repeatable: bool = True,
        check: Check = anything,
    ) -> Answer:
        """One operation with retries: all retriable failures if ``repeatable``, else only unsent ones."""

        def retriable(error: BaseException) -> bool:
            return isinstance(error, _Unsent) or (repeatable and isinstance(error, HelcimUnavailable))

        for attempt in self._retrying(retriable):
            with attempt:
                return self._send_once(operation, method, path, params, body, ok, check)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    @property
    def settle_seconds(self) -> float:
        """How long a request that timed out may still take to land: the call's deadline."""
        return self.deadline

    def stats(self) -> dict[str, Any]:
        """Calls made by operation and status, 429s met, time spent waiting for the limits."""
        with self._retry_lock:
            retries = self._retries
        return {**self.pacer.snapshot(), "retries": retries}

    # -- 0: connection test ------------------------------------------------------

    def connection_test(self) -> Answer:
        """GET /connection-test: the answer, with the limit headers."""
        return self._call("connection-test", "GET", "/connection-test", check=a_message)

    # -- 1-4: customers ----------------------------------------------------------

    def list_customers(
        self,
        *,
        search: str = "",
        customer_code: str = "",
        limit: int = PAGE_SIZE,
        page: int = 1,
        include_cards: bool = False,
    ) -> list[Customer]:
        params: dict[str, Any] = {"limit": limit, "page": page}
        if search:
            params["search"] = search
        if customer_code:
            params["customerCode"] = customer_code
        if include_cards:
            params["includeCards"] = "yes"
        answer = self._call("get-customers", "GET", "/customers", params=params, check=a_list_with_ids)
        return [Customer.from_api(row) for row in answer.body]

    def iter_customers(self, *, include_cards: bool = True) -> Iterator[tuple[int, list[Customer]]]:
        """Every customer, a page (of 100) at a time, until a short page: yields (page number, customers).

        Only a short page that parsed as a list ends the listing: an answer of
        any other shape is a :class:`ProtocolError`, never an empty page.
        """
        page = 1
        while True:
            batch = self.list_customers(limit=PAGE_SIZE, page=page, include_cards=include_cards)
            yield page, batch
            if len(batch) < PAGE_SIZE:
                return
            page += 1

    def find_customer_by_code(self, code: str) -> Customer | None:
        """The customer whose customerCode is exactly ``code`` (the oldest, if Helcim holds several)."""
        found = [c for c in self.list_customers(customer_code=code) if c.code == code]
        if len(found) > 1:
            log.warning("customerCode %s is held by %d Helcim customers; using the oldest", code, len(found))
        return min(found, key=lambda c: c.id) if found else None

    def create_customer(self, data: CustomerInput) -> CreateResult:
        """POST /customers without ever creating a duplicate of ``data.code``.

        After a lost answer, a timeout or a 5xx, the next attempt first looks
        the code up and returns the existing customer instead of posting again.
        After a timeout (or a 502/504) it first waits :attr:`settle_seconds`,
        after a dropped connection ``retry.settle_after_drop``: Helcim may
        still be working on the request, and a look-up too early would miss
        it. A 500/503 answer needs no wait.
        An answer without a customer id (or not JSON at all) is as uncertain as
        a lost one: the look-up decides. Any 400 is looked up too before it is
        reported, whatever Helcim's wording: it may mean the code exists.
        Without a code there is nothing to look up, so ambiguous failures are
        not retried.
        """
        code = data.code
        if not code:
            answer = self._call(
                "create-customer", "POST", "/customers", body=data.to_api(), repeatable=False,
                ok=(200, 201), check=an_object_with_id,
            )  # fmt: skip
            return CreateResult(Customer.from_api(answer.body))
        uncertain, settle = False, 0.0
        for attempt in self._retrying(lambda e: isinstance(e, HelcimUnavailable)):
            with attempt:
                if settle:  # an unanswered POST may still be performed: give it time before looking
                    self._sleep(settle)
                    settle = 0.0
                if uncertain:
                    existing = self.find_customer_by_code(code)
                    if existing is not None:
                        log.info("create-customer %s: the earlier attempt did land; using it", code)
                        return CreateResult(existing, recovered=True)
                try:
                    answer = self._send_once(
                        "create-customer", "POST", "/customers", None, data.to_api(), (200, 201),
                        an_object_with_id,
                    )  # fmt: skip
                except _Unsent:
                    raise
                except HelcimUnavailable as unavailable:
                    # Helcim may still be working on it: after a timeout or a gateway's error for
                    # as long as we were willing to wait for it, after a dropped connection briefly
                    uncertain = True
                    if unavailable.timed_out or unavailable.status in (502, 504):
                        settle = self.settle_seconds
                    elif unavailable.status is None:
                        settle = self.retry.settle_after_drop
                    raise
                except HelcimRequestError as refused:
                    if refused.status == 400:  # "already exists", in whatever words: look before failing
                        existing = self.find_customer_by_code(code)
                        if existing is not None:
                            log.info(
                                "create-customer %s: refused (%s), but the code exists", code, refused.detail
                            )
                            return CreateResult(existing, recovered=True)
                    raise
                return CreateResult(Customer.from_api(answer.body))
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def get_customer(self, customer_id: int) -> Customer:
        answer = self._call("get-customer", "GET", f"/customers/{customer_id}", check=an_object_with_id)
        return Customer.from_api(answer.body)

    def update_customer(self, customer_id: int, data: CustomerInput) -> Customer:
        """PUT /customers/{id}: idempotent (the same body twice leaves the same customer)."""
        answer = self._call(
            "update-customer", "PUT", f"/customers/{customer_id}", body=data.to_api(), check=an_object_with_id
        )
        return Customer.from_api(answer.body)

    # -- 5-8: cards --------------------------------------------------------------

    def list_cards(self, customer_id: int, card_token: str = "") -> list[Card]:
        params = {"cardToken": card_token} if card_token else None
        answer = self._call(
            "get-customer-cards",
            "GET",
            f"/customers/{customer_id}/cards",
            params=params,
            check=a_list_with_ids,
        )
        return [Card.from_api(c) for c in answer.body]

    def get_card(self, customer_id: int, card_id: int) -> Card:
        """GET one card: answered as an object, or (per the OpenAPI file) a one-element array."""
        answer = self._call(
            "get-customer-card", "GET", f"/customers/{customer_id}/cards/{card_id}", check=one_object_with_id
        )
        return Card.from_api(_single(answer.body, "get-customer-card"))

    def delete_card(self, customer_id: int, card_id: int) -> bool:
        """DELETE a card: True if deleted now, False if it was already gone (404 with body [])."""
        try:
            self._call(
                "delete-customer-card", "DELETE", f"/customers/{customer_id}/cards/{card_id}", ok=(204, 200)
            )
        except HelcimRequestError as error:
            if error.status == 404 and error.detail in ("", "Not Found"):
                return False
            raise
        return True

    def set_default_card(self, customer_id: int, card_id: int) -> DefaultCardRecord:
        """PATCH .../default: Helcim answers its internal record ``{"customer": {...}}``."""
        answer = self._call(
            "set-customer-card-default",
            "PATCH",
            f"/customers/{customer_id}/cards/{card_id}/default",
            check=default_card_answer,
        )
        return DefaultCardRecord.from_api(answer.body)

    # -- 9-14: bank accounts -----------------------------------------------------

    def list_bank_accounts(
        self,
        customer_id: int,
        *,
        verified: bool | None = None,
        ready: bool | None = None,
    ) -> list[BankAccount]:
        params: dict[str, Any] = {}
        if verified is not None:
            params["verified"] = int(verified)
        if ready is not None:
            params["ready"] = int(ready)
        answer = self._call(
            "get-customer-bank-accounts",
            "GET",
            f"/customers/{customer_id}/bank-accounts",
            params=params or None,
            check=a_list_with_ids,
        )
        return [BankAccount.from_api(b) for b in answer.body]

    def create_bank_account(self, customer_id: int, data: BankAccountInput) -> int:
        """POST a bank account (Helcim e-mails the customer an authorisation); returns its id."""
        answer = self._call(
            "create-bank-account",
            "POST",
            f"/customers/{customer_id}/bank-accounts",
            body=data.to_api(),
            ok=(201, 200),
            repeatable=False,
        )
        body = answer.body if isinstance(answer.body, Mapping) else {}
        data_part = body.get("data", body)
        bank = data_part.get("bankAccount", {}) if isinstance(data_part, Mapping) else {}
        bank_id = bank.get("id") if isinstance(bank, Mapping) else None
        if not isinstance(bank_id, int) or isinstance(bank_id, bool) or bank_id <= 0:
            raise ProtocolError(  # not resent: it e-mails the customer; a person checks
                "create-bank-account: Helcim's answer carries no bank account id",
                operation="create-bank-account",
                status=answer.status,
            )
        return bank_id

    def request_new_bank_account(self, customer_id: int) -> str:
        """GET .../request-new: e-mails the customer a request for bank details (a GET with a side effect)."""
        answer = self._call(
            "request-new-bank-account",
            "GET",
            f"/customers/{customer_id}/bank-accounts/request-new",
            repeatable=False,
        )
        return _message(answer.body)

    def get_bank_account(self, customer_id: int, bank_id: int) -> BankAccount:
        answer = self._call(
            "get-customer-bank-account",
            "GET",
            f"/customers/{customer_id}/bank-accounts/{bank_id}",
            check=one_object_with_id,
        )
        return BankAccount.from_api(_single(answer.body, "get-customer-bank-account"))

    def delete_bank_account(self, customer_id: int, bank_id: int) -> None:
        """DELETE a bank account; Helcim revokes its PADs too."""
        self._call(
            "delete-customer-bank-account",
            "DELETE",
            f"/customers/{customer_id}/bank-accounts/{bank_id}",
            ok=(204, 200),
        )

    def set_default_bank_account(self, customer_id: int, bank_id: int) -> None:
        self._call(
            "set-customer-bank-account-default",
            "PATCH",
            f"/customers/{customer_id}/bank-accounts/{bank_id}/default",
        )

    # -- 15-17: PADs -------------------------------------------------------------

    def list_pads(self, customer_id: int) -> list[Pad]:
        """GET .../pads: ``{"pads": [...]}``, or 204 when the customer has none."""
        answer = self._call(
            "get-pads", "GET", f"/customers/{customer_id}/pads", ok=(200, 204), check=pads_answer
        )
        body = answer.body
        pads = body.get("pads") if isinstance(body, Mapping) else body
        return [Pad.from_api(p) for p in pads or []]

    def get_pad(self, customer_id: int, bank_id: int, pad_id: int) -> Pad:
        answer = self._call(
            "get-pad",
            "GET",
            f"/customers/{customer_id}/bank-accounts/{bank_id}/pads/{pad_id}",
            check=lambda b: one_object_with_id(b.get("pad", b) if isinstance(b, Mapping) else b),
        )
        body = answer.body
        return Pad.from_api(_single(body.get("pad", body) if isinstance(body, Mapping) else body, "get-pad"))

    def update_pad(
        self,
        customer_id: int,
        bank_id: int,
        pad_id: int,
        *,
        accepted: bool | None = None,
        active: bool | None = None,
        ip_address: str | None = None,
    ) -> Pad | None:
        """PUT a PAD; accepting an active one makes the bank account ready. Returns the PAD if echoed."""
        body: dict[str, Any] = {}
        if accepted is not None:
            body["accepted"] = int(accepted)
        if active is not None:
            body["status"] = 1 if active else 2
        if ip_address is not None:
            body["ipAddress"] = ip_address
        answer = self._call(
            "update-pad",
            "PUT",
            f"/customers/{customer_id}/bank-accounts/{bank_id}/pads/{pad_id}",
            body=body,
            check=an_object,
        )
        echoed = answer.body.get("pad") if isinstance(answer.body, Mapping) else None
        return Pad.from_api(echoed) if isinstance(echoed, Mapping) else None


@dataclass(frozen=True)
class ConnectionReport:
    """What ``crmsync ping`` found: where, who answered, and the limits left."""

    url: str
    api: str
    message: str
    minute_remaining: int | None
    hour_remaining: int | None
    elapsed_ms: float

    def lines(self) -> list[str]:
        limits = (
            f"{self.minute_remaining} requests left this minute, {self.hour_remaining} this hour"
            if self.minute_remaining is not None
            else "no limit headers in the answer"
        )
        return [
            f"reached {self.api} at {self.url} in {self.elapsed_ms:.0f} ms: {self.message}",
            f"rate limits: {limits}",
        ]


def check_connection(client: HelcimClient) -> ConnectionReport:
    """GET /connection-test and say which API answered and how much of the limits is left."""
    started = time.perf_counter()
    answer = client.connection_test()
    elapsed = (time.perf_counter() - started) * 1000
    message = _message(answer.body)  # the check made sure there is one
    sandbox = answer.headers.get("x-helcim-sandbox")
    if sandbox:
        api = f"helcim-sandbox {sandbox} (a local emulator, not Helcim)"
    elif client.base_url == DEFAULT_URL:
        api = "Helcim's production API"
    else:
        api = "a Helcim-compatible API"

    def header(name: str) -> int | None:
        raw = answer.headers.get(name, "")
        return int(raw) if raw.isdigit() else None

    return ConnectionReport(
        client.base_url,
        api,
        message,
        header("minute-limit-remaining"),
        header("hour-limit-remaining"),
        elapsed,
    )


def _read_timeout(timeout: float | tuple[float, float]) -> float:
    return float(timeout[1] if isinstance(timeout, tuple) else timeout)


def _as_list(body: Any) -> list[Mapping[str, Any]]:
    if isinstance(body, list):
        return [item for item in body if isinstance(item, Mapping)]
    if isinstance(body, Mapping) and body:
        return [body]
    return []


def _single(body: Any, operation: str) -> Mapping[str, Any]:
    """An object answered as itself or as a one-element array."""
    items = _as_list(body)
    if len(items) != 1:
        raise HelcimError(
            f"{operation}: expected one object, Helcim answered {len(items)}", operation=operation
        )
    return items[0]


def _message(body: Any) -> str:
    return str(body.get("message", "")) if isinstance(body, Mapping) else ""


__all__ = ["DEFAULT_URL", "Answer", "ConnectionReport", "HelcimClient", "RetryPolicy", "check_connection"]
