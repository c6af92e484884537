"""Poisoned answers (html, bad_json, wrong_shape, no_id, redirect, slow_body, huge_body) and the
op/skip/count settings, over real HTTP: what the client receives, and whether the request was performed."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from helcim_sandbox.faults import FaultConfig, FaultInjector
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import Api


def seed_for(spec: str, variant: int) -> str:
    """``spec`` plus a seed whose first request draws the wanted half of its kind's band."""
    for seed in itertools.count():
        draw = FaultInjector(FaultConfig.parse(f"{spec},seed={seed}")).draw("POST", "create-customer")
        if draw.kind and draw.variant == variant:
            return f"{spec},seed={seed}"
    raise AssertionError("unreachable")


def _codes(api: Api, code: str) -> int:
    return len(api("GET", "/customers", params={"customerCode": code}).json())


def _create(api: Api, code: str) -> Any:
    return api("POST", "/customers", json={"customerCode": code, "contactName": "Poison Test"})


def _not_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return True
    return False


class TestHtml:
    def test_first_half_performs_the_write_and_answers_a_200_page(
        self, api: Api, sandbox: SandboxProcess
    ) -> None:
        sandbox.configure(faults=seed_for("html=1", 0))
        response = _create(api, "H-200")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cf-ray"].endswith("-YYZ")
        assert "minute-limit-remaining" in response.headers
        assert "<title>" in response.text
        assert len(response.content) > 3000  # a whole page, not a one-liner
        assert _not_json(response.content)
        sandbox.configure(faults="")
        assert _codes(api, "H-200") == 1  # the origin did the work
        stats = sandbox.stats()
        assert stats["by_status"]["html:200"] == 1
        assert stats["by_operation"]["create-customer"] == {"html:200": 1}
        assert stats["faults_injected"] == {"html": 1}

    def test_second_half_is_a_502_page_and_nothing_is_performed(
        self, api: Api, sandbox: SandboxProcess
    ) -> None:
        sandbox.configure(faults=seed_for("html=1", 1))
        response = _create(api, "H-502")
        assert response.status_code == 502
        assert response.headers["content-type"].startswith("text/html")
        assert "<title>api.helcim.com | 502: Bad gateway</title>" in response.text
        assert len(response.content) > 3000
        sandbox.configure(faults="")
        assert _codes(api, "H-502") == 0
        assert sandbox.stats()["by_operation"]["create-customer"] == {"html:502": 1}


class TestBadJson:
    def test_performs_and_cuts_the_body_half_way(self, api: Api, sandbox: SandboxProcess) -> None:
        sandbox.configure(faults="bad_json=1")
        response = _create(api, "B-1")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert int(response.headers["content-length"]) == len(response.content) > 10
        assert response.content.startswith(b'{"id":')
        assert _not_json(response.content)
        sandbox.configure(faults="")
        assert _codes(api, "B-1") == 1
        assert sandbox.stats()["by_status"]["bad_json:200"] == 1

    def test_keeps_the_real_status_and_a_prefix_of_the_real_body(
        self, api: Api, sandbox: SandboxProcess
    ) -> None:
        real = api("GET", "/customers/77").content
        sandbox.configure(faults="bad_json=1")
        broken = api("GET", "/customers/77")
        assert broken.status_code == 404
        assert real.startswith(broken.content)
        assert 0 < len(broken.content) < len(real)

    def test_an_empty_answer_becomes_an_unfinished_object(self, api: Api, sandbox: SandboxProcess) -> None:
        customer = api.create(contactName="Card Holder")
        card = sandbox.add_card(customer["id"], cardF6L4="4111111111", cardExpiry="0130")
        sandbox.configure(faults="bad_json=1")
        response = api("DELETE", f"/customers/{customer['id']}/cards/{card['id']}")
        assert (response.status_code, response.content) == (200, b'{"id":')
        sandbox.configure(faults="")
        assert api("GET", f"/customers/{customer['id']}/cards").json() == []  # the delete happened
        assert sandbox.stats()["by_operation"]["delete-customer-card"] == {"bad_json:200": 1}


class TestWrongShape:
    def test_list_endpoint_gets_an_object(self, api: Api, sandbox: SandboxProcess) -> None:
        created = api.create(contactName="Shape")
        sandbox.configure(faults="wrong_shape=1")
        response = api("GET", "/customers")
        assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
        body = response.json()
        assert isinstance(body, dict)
        assert body == {"data": [{**created, "dateUpdated": created["dateCreated"]}]}

    def test_object_endpoint_loses_its_top_level_id_and_the_write_lands(
        self, api: Api, sandbox: SandboxProcess
    ) -> None:
        sandbox.configure(faults="wrong_shape=1")
        body = _create(api, "W-1").json()
        assert set(body) == {"data"}
        assert body["data"]["customerCode"] == "W-1"
        missing = api("GET", "/customers/12")
        assert (missing.status_code, missing.json()) == (200, {"data": {"errors": "Invalid customerId"}})
        sandbox.configure(faults="")
        assert _codes(api, "W-1") == 1
        assert sandbox.stats()["by_status"]["wrong_shape:200"] == 2


class TestNoId:
    def test_create_is_performed_and_answered_with_an_empty_object(
        self, api: Api, sandbox: SandboxProcess
    ) -> None:
        sandbox.configure(faults="no_id=1")
        response = _create(api, "N-1")
        assert (response.status_code, response.json()) == (200, {})
        sandbox.configure(faults="")
        assert _codes(api, "N-1") == 1
        assert sandbox.stats()["by_operation"]["create-customer"] == {"no_id:200": 1}

    def test_update_is_performed_and_reads_are_untouched(self, api: Api, sandbox: SandboxProcess) -> None:
        customer = api.create(contactName="Before")
        sandbox.configure(faults="no_id=1")
        update = api("PUT", f"/customers/{customer['id']}", json={"contactName": "After"})
        assert (update.status_code, update.json()) == (200, {})
        read = api("GET", f"/customers/{customer['id']}")
        assert read.status_code == 200
        assert read.json()["contactName"] == "After"  # a read draws no fault under no_id
        stats = sandbox.stats()
        assert stats["faults_injected"] == {"no_id": 1}
        assert stats["by_operation"]["get-customer"] == {"200": 1}


class TestRedirect:
    @pytest.mark.parametrize(("variant", "status"), [(0, 301), (1, 307)])
    def test_points_to_another_origin_and_performs_nothing(
        self, api: Api, sandbox: SandboxProcess, variant: int, status: int
    ) -> None:
        sandbox.configure(faults=seed_for("redirect=1", variant))
        response = api(
            "POST",
            "/customers",
            params={"a": "1", "b": "x y"},
            json={"customerCode": "R-1", "contactName": "A"},
            allow_redirects=False,
        )
        assert response.status_code == status
        assert response.headers["location"] == "http://127.0.0.2:9/v2/customers?a=1&b=x+y"
        sandbox.configure(faults="")
        assert _codes(api, "R-1") == 0
        assert sandbox.stats()["by_status"][f"redirect:{status}"] == 1

    def test_redirect_to_sets_the_target(self, api: Api, sandbox: SandboxProcess) -> None:
        sandbox.configure(faults="redirect=1,redirect_to=https://evil.example:8443/")
        response = api("GET", "/customers/5/cards", allow_redirects=False)
        location = urlsplit(response.headers["location"])
        assert (location.scheme, location.hostname, location.port) == ("https", "evil.example", 8443)
        assert location.path == "/v2/customers/5/cards"


def test_slow_body_sends_headers_at_once_and_trickles_the_body(api: Api, sandbox: SandboxProcess) -> None:
    customer = api.create(contactName="Slow Reader", customerCode="S-1")
    sandbox.configure(faults="slow_body=1,trickle_s=2")
    started = time.perf_counter()
    response = api("GET", f"/customers/{customer['id']}", stream=True, timeout=0.5)  # 0.5 s per read
    assert response.status_code == 200
    assert time.perf_counter() - started < 0.5  # status and headers come at once
    arrivals, received = [], b""
    for piece in response.iter_content(chunk_size=1):
        arrivals.append(time.perf_counter())
        received += piece
    assert arrivals[0] - started < 0.5  # so does the first byte
    assert arrivals[-1] - started >= 1.5  # the whole answer is slow
    assert max(b - a for a, b in itertools.pairwise(arrivals)) < 0.4  # no single read is
    assert len(received) == int(response.headers["content-length"])
    assert json.loads(received)["customerCode"] == "S-1"
    assert sandbox.stats()["by_status"]["slow_body:200"] == 1


def test_huge_body_streams_a_valid_array_of_the_real_elements(api: Api, sandbox: SandboxProcess) -> None:
    first, second = api.create(contactName="One"), api.create(contactName="Two")
    sandbox.configure(faults="huge_body=1,huge_mb=5")
    response = api("GET", "/customers", params={"limit": 2}, stream=True)
    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    assert "content-length" not in response.headers
    raw = b"".join(response.iter_content(chunk_size=1 << 16))
    assert len(raw) >= 5 * 1024 * 1024
    items = json.loads(raw)
    assert {item["id"] for item in items} == {first["id"], second["id"]}
    assert len(items) > 1000
    assert sandbox.stats()["by_status"]["huge_body:200"] == 1


def test_huge_body_performs_the_write(api: Api, sandbox: SandboxProcess) -> None:
    sandbox.configure(faults="huge_body=1,huge_mb=0.25")
    items = _create(api, "HB-1").json()
    assert len(json.dumps(items)) >= 256 * 1024
    assert {item["customerCode"] for item in items} == {"HB-1"}
    sandbox.configure(faults="")
    assert _codes(api, "HB-1") == 1


class TestSelection:
    def test_op_picks_the_operations_that_may_fault(self, api: Api, sandbox: SandboxProcess) -> None:
        customer = api.create(contactName="Picked")
        sandbox.configure(faults="error500=1,op=get-customer|get-customer-cards")
        assert api("GET", "/customers").status_code == 200
        assert api("GET", f"/customers/{customer['id']}").status_code == 500
        assert api("GET", f"/customers/{customer['id']}/cards").status_code == 500
        assert api("POST", "/customers", json={"contactName": "Other"}).status_code == 200
        by_operation = sandbox.stats()["by_operation"]
        assert by_operation["get-customers"] == {"200": 1}
        assert by_operation["get-customer"] == {"500": 1}
        assert by_operation["create-customer"] == {"200": 2}

    def test_skip_lets_the_first_eligible_requests_through(self, api: Api, sandbox: SandboxProcess) -> None:
        sandbox.configure(faults="error503=1,op=create-customer,skip=2")
        statuses = []
        for n in range(4):
            api("GET", "/connection-test")  # not eligible: does not use up the skip
            statuses.append(api("POST", "/customers", json={"contactName": f"C{n}"}).status_code)
        assert statuses == [200, 200, 503, 503]

    def test_count_caps_the_faults_in_total(self, api: Api, sandbox: SandboxProcess) -> None:
        sandbox.configure(faults="no_id=1,count=2")
        bodies = [_create(api, f"CNT-{n}").json() for n in range(4)]
        assert bodies[:2] == [{}, {}]
        assert [b["customerCode"] for b in bodies[2:]] == ["CNT-2", "CNT-3"]
        stats = sandbox.stats()
        assert stats["faults_injected"] == {"no_id": 2}
        assert stats["by_operation"]["create-customer"] == {"no_id:200": 2, "200": 2}

    def test_the_config_endpoint_shows_and_refuses_the_settings(self, sandbox: SandboxProcess) -> None:
        spec = sandbox.configure(faults="html=0.5,op=get-customers,skip=1,count=3,trickle_s=2")["faults"]
        assert FaultConfig.parse(spec) == FaultConfig.parse(
            "html=0.5,op=get-customers,skip=1,count=3,trickle_s=2"
        )
        assert "op=get-customers" in spec
        with pytest.raises(Exception, match="400"):
            sandbox.configure(faults="op=no-such-operation")
