"""Hostile input never gets a 5xx or a non-JSON error: ids, pages, searches, bodies, and a catch-all."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helcim_sandbox.app import MAX_BODY_BYTES, build_state, create_app
from helcim_sandbox.faults import FaultConfig
from helcim_sandbox.launcher import SandboxProcess
from helcim_sandbox.limits import LimitConfig
from tests.conftest import TOKEN, Api

# Every operation, with {c} customer, {k} card, {b} bank account and {p} PAD ids to fill in.
OPERATIONS = [
    ("GET", "/connection-test"),
    ("GET", "/customers"),
    ("POST", "/customers"),
    ("GET", "/customers/{c}"),
    ("PUT", "/customers/{c}"),
    ("GET", "/customers/{c}/cards"),
    ("GET", "/customers/{c}/cards/{k}"),
    ("DELETE", "/customers/{c}/cards/{k}"),
    ("PATCH", "/customers/{c}/cards/{k}/default"),
    ("GET", "/customers/{c}/bank-accounts"),
    ("POST", "/customers/{c}/bank-accounts"),
    ("GET", "/customers/{c}/bank-accounts/request-new"),
    ("GET", "/customers/{c}/bank-accounts/{b}"),
    ("DELETE", "/customers/{c}/bank-accounts/{b}"),
    ("PATCH", "/customers/{c}/bank-accounts/{b}/default"),
    ("GET", "/customers/{c}/pads"),
    ("GET", "/customers/{c}/bank-accounts/{b}/pads/{p}"),
    ("PUT", "/customers/{c}/bank-accounts/{b}/pads/{p}"),
]
HOSTILE_IDS = [
    str(2**63),
    str(2**63 - 1),
    "9" * 30,
    "1" * 5000,  # more digits than Python's int() takes
    "0" * 25 + "1",
    "-1",
    "0",
    "1e3",
    "0x1F",
    "²",
    "١٢",
    " 7",
    "null",
    "%00",
]
SANDBOX_BODY_ENDPOINTS = [
    ("PUT", "/_sandbox/config"),
    ("POST", "/_sandbox/seed"),
    ("POST", "/_sandbox/customers/{c}/cards"),
    ("POST", "/_sandbox/customers/{c}/bank-accounts"),
    ("PUT", "/_sandbox/customers/{c}/bank-accounts/{b}"),
    ("POST", "/_sandbox/customers/{c}/bank-accounts/{b}/pads"),
    ("PUT", "/_sandbox/pads/{p}"),
]
CA_BANK = {
    "accountCorporate": 1,
    "accountType": 1,
    "bankAccountNumber": "1234567",
    "streetAddress": "1 Main St",
    "city": "Calgary",
    "provinceAlpha2": "AB",
    "countryAlpha2": "CA",
    "postalCode": "T2P 1A1",
    "bankFinancialNumber": "001",
    "bankTransitNumber": "12345",
    "firstName": "Ada",
    "lastName": "Lovelace",
}


def assert_json_answer(response: requests.Response) -> None:
    """Below 500, and JSON (``application/json`` that parses), or an empty 204."""
    where = f"{response.request.method} {response.request.url!s:.150}"
    assert response.status_code < 500, f"{where} -> {response.status_code} {response.text[:200]}"
    if response.status_code == 204:
        assert response.content == b"", where
        return
    assert response.headers.get("content-type") == "application/json", where
    json.loads(response.content)


@pytest.fixture
def ids(api: Api, sandbox: SandboxProcess) -> dict[str, int]:
    """A customer with a card, a bank account and its PAD: real ids for the paths."""
    customer = api.create(contactName="Robust Customer")
    card = sandbox.add_card(customer["id"], cardF6L4="4111111111", cardExpiry="0130")
    bank = sandbox.add_bank(customer["id"], **CA_BANK, pad="pending")
    pad = api("GET", f"/customers/{customer['id']}/pads").json()["pads"][0]
    return {"c": customer["id"], "k": card["id"], "b": bank["id"], "p": pad["id"]}


def _path(template: str, ids: dict[str, Any]) -> str:
    return template.format(**{k: quote(str(v), safe="") for k, v in ids.items()})


@pytest.mark.parametrize(("method", "template"), [op for op in OPERATIONS if "{" in op[1]])
def test_ids_too_large_for_64_bits_are_the_404_of_a_text_id(
    api: Api, ids: dict[str, int], method: str, template: str
) -> None:
    for slot in sorted(set(re.findall(r"{(\w)}", template))):
        text = api(method, _path(template, {**ids, slot: "abc"}), json={})
        assert text.status_code in (400, 404)  # 400 only for a bad card id of set-default (LIVE)
        for hostile in (str(2**63), "9" * 40, "1" * 5000, str(2**63 - 1)):
            response = api(method, _path(template, {**ids, slot: hostile}), json={})
            assert (response.status_code, response.json()) == (text.status_code, text.json()), hostile


def test_page_that_would_overflow_the_offset_is_a_400(api: Api) -> None:
    assert api("GET", "/customers", params={"page": 10**16, "limit": 100}).json() == []
    for page in (10**16 + 1, 2**63, "9" * 40):
        response = api("GET", "/customers", params={"page": page})
        assert response.status_code == 400
        assert response.json()["errors"].startswith("page must be ")


def test_search_longer_than_200_characters_is_a_400(api: Api) -> None:
    api.create(contactName="x" * 100)
    assert len(api("GET", "/customers", params={"search": "x" * 200}).json()) == 0
    assert len(api("GET", "/customers", params={"search": "x" * 100}).json()) == 1
    for search in ("x" * 201, "%_" * 7_000):  # (a URL over 64 KiB never reaches the app: uvicorn refuses it)
        response = api("GET", "/customers", params={"search": search})
        assert (response.status_code, response.json()) == (
            400,
            {"errors": "search must be at most 200 characters"},
        )


@pytest.mark.parametrize(("method", "template"), SANDBOX_BODY_ENDPOINTS)
@pytest.mark.parametrize("body", [[1, 2], "text", 5, None], ids=["array", "string", "number", "null"])
def test_sandbox_endpoints_refuse_a_body_that_is_not_an_object(
    sandbox: SandboxProcess, ids: dict[str, int], method: str, template: str, body: Any
) -> None:
    response = requests.request(
        method, sandbox.root_url + _path(template, ids), data=json.dumps(body), timeout=10
    )
    assert response.status_code == 400
    assert_json_answer(response)
    assert isinstance(response.json()["errors"], str)


@pytest.mark.parametrize(
    ("template", "body"),
    [
        ("/_sandbox/config", {"faults": 5}),
        ("/_sandbox/seed", {"seed": float("inf")}),
        ("/_sandbox/customers/{c}/cards", {"cardF6L4": "4111111111", "cardExpiry": "²²²²"}),
        (
            "/_sandbox/customers/{c}/cards",
            {"cardF6L4": "4111111111", "cardExpiry": "0130", "dateCreated": {}},
        ),
        (
            "/_sandbox/customers/{c}/cards",
            {"cardF6L4": "4111111111", "cardExpiry": "0130", "cardHolderName": []},
        ),
    ],
)
def test_sandbox_endpoints_refuse_odd_values(
    sandbox: SandboxProcess, ids: dict[str, int], template: str, body: Any
) -> None:
    method = "PUT" if template.endswith("config") else "POST"
    data = json.dumps(body)  # not json=: requests refuses to send Infinity
    response = requests.request(method, sandbox.root_url + _path(template, ids), data=data, timeout=10)
    assert response.status_code == 400
    assert_json_answer(response)


def test_bodies_over_1_mib_are_a_413(api: Api, sandbox: SandboxProcess) -> None:
    padding = MAX_BODY_BYTES - len(b'{"contactName":"A","x":""}')
    at_limit = json.dumps({"contactName": "A", "x": "y" * padding}, separators=(",", ":")).encode()
    assert len(at_limit) == MAX_BODY_BYTES
    assert api("POST", "/customers", data=at_limit).status_code == 200  # the extra key is ignored
    too_large = at_limit[:-2] + b'y"}'
    response = api("POST", "/customers", data=too_large)
    assert (response.status_code, response.json()) == (413, {"errors": "Request body too large"})
    assert "minute-limit-remaining" in response.headers
    chunked = api("POST", "/customers", data=iter([too_large[:500_000], too_large[500_000:]]))
    assert chunked.status_code == 413
    assert api("GET", "/connection-test").status_code == 200  # the connection is still usable
    assert sandbox.stats()["by_operation"]["create-customer"] == {"200": 1, "413": 2}


def test_a_client_that_hangs_up_mid_body_is_not_performed(api: Api, sandbox: SandboxProcess) -> None:
    host, port = urlsplit(sandbox.base_url).hostname, urlsplit(sandbox.base_url).port
    body = b'{"contactName": "Half Sent", "customerCode": "GONE-1"}'
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(
            b"POST /v2/customers HTTP/1.1\r\nHost: sandbox\r\napi-token: " + TOKEN.encode()
            + b"\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (len(body) + 100)
            + body
        )  # fmt: skip
    deadline = time.monotonic() + 5
    while "disconnected" not in sandbox.stats()["by_status"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.stats()["by_operation"] == {"create-customer": {"disconnected": 1}}
    assert api("GET", "/customers", params={"customerCode": "GONE-1"}).json() == []


def test_deeply_nested_and_unpaired_surrogate_bodies_are_400s(api: Api, ids: dict[str, int]) -> None:
    deep = api("POST", "/customers", data=b"[" * 100_000 + b"]" * 100_000)
    assert (deep.status_code, deep.json()) == (400, {"errors": "Request body is nested too deeply"})
    response = api("POST", "/customers", data=b'{"contactName": "\\ud800"}')
    assert response.status_code == 400
    assert response.json() == {"errors": {"contactName": "contactName must be valid Unicode text"}}
    pad = api("PUT", _path("/customers/{c}/bank-accounts/{b}/pads/{p}", ids), data=b'{"accepted": 1e400}')
    assert pad.status_code == 400


def test_an_unhandled_exception_is_helcims_json_500_and_is_counted() -> None:
    """In process: make an endpoint raise, and look at exactly what the ASGI server is sent."""
    state = build_state(None, [TOKEN], LimitConfig.parse("off"), FaultConfig.parse(""))

    def explode(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug")

    state.store.list_customers = explode  # type: ignore[method-assign]
    app = create_app(state)

    async def call(path: str) -> list[dict[str, Any]]:
        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"api-token", TOKEN.encode())],
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(dict(message))

        await app(scope, receive, send)
        return sent

    sent = asyncio.run(call("/v2/customers"))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 500
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert b"minute-limit-remaining" in headers
    assert json.loads(sent[1]["body"]) == {"errors": "Internal Server Error"}
    assert state.stats.snapshot()["by_operation"] == {"get-customers": {"500": 1}}
    assert state.limiter.in_flight == 0

    state.store.counts = explode  # type: ignore[method-assign]
    sent = asyncio.run(call("/_sandbox/stats"))
    assert sent[0]["status"] == 500
    assert dict(sent[0]["headers"])[b"content-type"] == b"application/json"
    assert json.loads(sent[1]["body"]) == {"errors": "Internal Server Error"}


# -- fuzz: every operation, hostile everything ---------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=30)
_hostile_id = st.one_of(st.sampled_from(HOSTILE_IDS), _text, st.integers().map(str))
_query_value = st.one_of(
    st.sampled_from(["", "0", "1", "-1", "yes", "101", str(2**63), "9" * 40, "1e9", "x" * 300, "%_\\"]),
    _text,
    st.integers().map(str),
)
_query = st.dictionaries(
    st.sampled_from(
        [
            "page",
            "limit",
            "search",
            "customerCode",
            "includeCards",
            "cardToken",
            "bankToken",
            "verified",
            "ready",
        ]
    ),
    _query_value,
    max_size=4,
)
_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        _text,
        st.sampled_from(["\ud800", "x" * 5000, "\x00", 1e308, -(2**70)]),
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_field = st.sampled_from(
    [
        *("contactName", "businessName", "customerCode", "cellPhone", "billingAddress", "shippingAddress"),
        *("accepted", "status", "type", "ipAddress", *CA_BANK),
    ]
)
_object = st.dictionaries(_field, _json, max_size=6)
_body = st.one_of(
    st.none(),
    _object.map(lambda body: json.dumps(body).encode()),
    _json.map(lambda body: json.dumps(body).encode()),
    st.binary(max_size=40),
    st.sampled_from([b"{", b'{"contactName":', b"[" * 5000, b"\xff\xfe", b"NaN", b'{"a":1}garbage']),
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    operation=st.sampled_from(OPERATIONS),
    id_overrides=st.dictionaries(st.sampled_from("ckbp"), _hostile_id, max_size=2),
    query=_query,
    body=_body,
)
def test_fuzz_every_operation_answers_json_below_500(
    api: Api,
    ids: dict[str, int],
    operation: tuple[str, str],
    id_overrides: dict[str, str],
    query: dict[str, str],
    body: bytes | None,
) -> None:
    method, template = operation
    response = api(method, _path(template, {**ids, **id_overrides}), params=query, data=body)
    assert_json_answer(response)
