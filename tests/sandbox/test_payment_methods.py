"""Card, bank-account and PAD endpoints of the sandbox, over real HTTP."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import Api

#: The set-default-card answer's record, key by key in the recorded order (the reference, LIVE).
INTERNAL_RECORD_KEYS = (
    "id dateCreated dateUpdated merchantId defaultCard defaultLanguage defaultBankAccount customerCode "
    "userGoogleId userFacebookId businessName contactName billingAddressId shippingAddressId createdBy "
    "password passwordExpiry loginStatus loginAttempts cellPhone lastIpAddress lastPIN lastLoginDate "
    "acceptsMarketing taxExempt wholesale vatNumber cards"
).split()
TOKEN_RE = re.compile(r"^[0-9a-f]{22}$")
CARD_KEYS = {
    "id",
    "cardHolderName",
    "cardF6L4",
    "cardToken",
    "cardExpiry",
    "dateCreated",
    "dateUpdated",
    "default",
}
BANK_KEYS = {
    "id",
    "customerId",
    "dateCreated",
    "dateUpdated",
    "dateLastUsed",
    "dateVerified",
    "bankToken",
    "accountType",
    "accountCorporate",
    "verified",
    "ready",
    "bankIdNumber",
    "transitNumber",
    "routingNumber",
    "bankAccountNumberL4",
    "address",
}
PAD_KEYS = {
    "id",
    "accepted",
    "bankAccountId",
    "customerId",
    "merchantId",
    "ipAddress",
    "type",
    "status",
    "dateCreated",
    "dateUpdated",
    "dateAccepted",
    "dateEarliestDebit",
    "dateRevoked",
}
ZERO = "0000-00-00 00:00:00"

CA_BANK = {
    "accountCorporate": 1,
    "accountType": 2,
    "bankAccountNumber": "123456789",
    "bankFinancialNumber": "003",
    "bankTransitNumber": "12345",
    "streetAddress": "440 2 Ave SW",
    "city": "Calgary",
    "provinceAlpha2": "AB",
    "countryAlpha2": "CA",
    "postalCode": "T2P 5E9",
    "firstName": "Ada",
    "lastName": "Lovelace",
}
US_BANK = {
    "accountCorporate": 2,
    "accountType": 1,
    "bankAccountNumber": "000123456789",
    "bankRoutingNumber": "021000021",
    "streetAddress": "1 Market St",
    "city": "San Francisco",
    "provinceAlpha2": "CA",
    "countryAlpha2": "US",
    "postalCode": "94105",
    "companyName": "Engines Inc.",
}


@pytest.fixture
def customer(api: Api) -> dict[str, Any]:
    return api.create(
        contactName="Ada Lovelace",
        billingAddress={
            "name": "Ada",
            "street1": "1 Main",
            "postalCode": "T2P1A1",
            "email": "ada@example.com",
        },
    )


@pytest.fixture
def cards(sandbox: SandboxProcess, customer: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        sandbox.add_card(
            customer["id"],
            cardHolderName="Ada",
            cardNumber="4111111111111111",
            cardExpiry="0130",
            default=True,
        ),
        sandbox.add_card(customer["id"], cardHolderName="Ada", cardF6L4="5454545454", cardExpiry="1224"),
    ]


class TestCards:
    def test_list_and_get(self, api: Api, customer: dict[str, Any], cards: list[dict[str, Any]]) -> None:
        listed = api("GET", f"/customers/{customer['id']}/cards").json()
        assert [c["id"] for c in listed] == [c["id"] for c in cards]
        for card in listed:
            assert set(card) == CARD_KEYS
            assert TOKEN_RE.match(card["cardToken"])
            assert isinstance(card["default"], bool)  # LIVE: a JSON boolean
        assert listed[0]["cardF6L4"] == "4111111111"  # first 6 + last 4, never the full number
        one = api("GET", f"/customers/{customer['id']}/cards/{cards[1]['id']}")
        assert one.status_code == 200
        assert one.json() == listed[1]

    def test_filter_by_token(self, api: Api, customer: dict[str, Any], cards: list[dict[str, Any]]) -> None:
        token = cards[1]["cardToken"]
        assert [
            c["id"]
            for c in api("GET", f"/customers/{customer['id']}/cards", params={"cardToken": token}).json()
        ] == [cards[1]["id"]]

    def test_no_cards_is_an_empty_array(self, api: Api, customer: dict[str, Any]) -> None:
        response = api("GET", f"/customers/{customer['id']}/cards")
        assert (response.status_code, response.json()) == (200, [])

    def test_unknown_customer(self, api: Api) -> None:
        response = api("GET", "/customers/1/cards")
        assert (response.status_code, response.json()) == (404, {"errors": "Invalid customerId"})

    def test_unknown_card(self, api: Api, customer: dict[str, Any]) -> None:
        assert api("GET", f"/customers/{customer['id']}/cards/1").status_code == 404

    def test_delete_then_delete_again(
        self, api: Api, customer: dict[str, Any], cards: list[dict[str, Any]]
    ) -> None:
        path = f"/customers/{customer['id']}/cards/{cards[0]['id']}"
        first = api("DELETE", path)
        assert first.status_code == 204
        assert first.content == b""
        again = api("DELETE", path)
        assert again.status_code == 404
        assert again.json() == []  # LIVE: body [] on an already-deleted card
        assert again.headers["content-type"] == "application/json"
        assert [c["id"] for c in api("GET", f"/customers/{customer['id']}/cards").json()] == [cards[1]["id"]]

    def test_set_default_answers_the_internal_record(
        self, api: Api, customer: dict[str, Any], cards: list[dict[str, Any]]
    ) -> None:
        before = api("GET", f"/customers/{customer['id']}").json()
        time.sleep(1.1)  # dates have whole seconds: a moved dateUpdated shows
        response = api("PATCH", f"/customers/{customer['id']}/cards/{cards[1]['id']}/default")
        assert response.status_code == 200
        body = response.json()
        assert list(body) == ["customer"]
        record = body["customer"]
        assert list(record) == INTERNAL_RECORD_KEYS  # the recorded keys, in the recorded order
        assert record["defaultCard"] == cards[1]["id"]
        assert record["customerCode"] == customer["customerCode"]
        assert record["defaultLanguage"] == 1  # an integer (LIVE)
        assert record["defaultBankAccount"] == 0
        assert (record["password"], record["passwordExpiry"]) == ("", "0000-00-00 00:00:00")
        assert record["cards"] == []  # LIVE: empty although the customer holds two cards
        for flag in ("acceptsMarketing", "taxExempt", "wholesale"):
            assert record[flag] == 0
        listed = api("GET", f"/customers/{customer['id']}/cards").json()
        assert [c["default"] for c in listed] == [False, True]
        # the card's dateUpdated moves; the customer's stays as it was, in the record and on a later read
        assert listed[1]["dateUpdated"] > cards[1]["dateUpdated"]
        assert record["dateUpdated"] == before["dateUpdated"]
        assert api("GET", f"/customers/{customer['id']}").json()["dateUpdated"] == before["dateUpdated"]
        (page,) = api("GET", "/customers", params={"customerCode": customer["customerCode"]}).json()
        assert page["dateUpdated"] == before["dateUpdated"]

    def test_set_default_with_a_bad_card(self, api: Api, customer: dict[str, Any]) -> None:
        response = api("PATCH", f"/customers/{customer['id']}/cards/999/default")
        assert (response.status_code, response.json()) == (400, {"errors": "Invalid card id."})
        response = api("PATCH", "/customers/999/cards/1/default")
        assert response.status_code == 404


class TestBankAccounts:
    def test_create_answers_201_with_data(
        self, api: Api, sandbox: SandboxProcess, customer: dict[str, Any]
    ) -> None:
        response = api("POST", f"/customers/{customer['id']}/bank-accounts", json=CA_BANK)
        assert response.status_code == 201
        data = response.json()["data"]
        bank_id = data["bankAccount"]["id"]
        assert isinstance(bank_id, int)
        assert data["message"].startswith(f"Successfully created new bank account with ID #{bank_id}.")
        assert "ada@example.com" in data["message"]
        assert {
            "customerId": customer["id"],
            "kind": "bank-authorization",
            "bankAccountId": bank_id,
        } in sandbox.outbox()
        bank = api("GET", f"/customers/{customer['id']}/bank-accounts/{bank_id}").json()
        assert set(bank) == BANK_KEYS
        assert bank["bankAccountNumberL4"] == "6789"
        assert (bank["bankIdNumber"], bank["transitNumber"], bank["routingNumber"]) == ("003", "12345", "")
        assert (bank["verified"], bank["ready"]) == (0, 0)
        assert (bank["accountType"], bank["accountCorporate"]) == ("SAVINGS", "PERSONAL")
        assert bank["address"]["country"] == "CAN"  # alpha-2 in, alpha-3 out
        assert bank["address"]["name"] == "Ada Lovelace"
        assert TOKEN_RE.match(bank["bankToken"])
        assert "123456789" not in response.text + str(bank)  # the full number is never returned

    def test_create_us(self, api: Api, customer: dict[str, Any]) -> None:
        response = api("POST", f"/customers/{customer['id']}/bank-accounts", json=US_BANK)
        assert response.status_code == 201
        bank_id = response.json()["data"]["bankAccount"]["id"]
        bank = api("GET", f"/customers/{customer['id']}/bank-accounts/{bank_id}").json()
        assert (bank["routingNumber"], bank["bankIdNumber"], bank["accountCorporate"]) == (
            "021000021",
            "",
            "CORPORATE",
        )

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            pytest.param({"bankAccountNumber": ""}, "bankAccountNumber is required", id="missing-number"),
            pytest.param({"bankAccountNumber": "123456"}, "7-12 digits", id="ca-too-short"),
            pytest.param(
                {"bankFinancialNumber": "12"}, "bankFinancialNumber must be 3 digits", id="ca-institution"
            ),
            pytest.param(
                {"bankTransitNumber": "1234x"}, "bankTransitNumber must be 5 digits", id="ca-transit"
            ),
            pytest.param({"countryAlpha2": "CAN"}, "countryAlpha2 must be CA or US", id="alpha3-country"),
            pytest.param({"provinceAlpha2": "WA"}, "not a province or state of CA", id="wrong-province"),
            pytest.param({"accountType": 3}, "accountType must be 1", id="account-type"),
            pytest.param({"accountCorporate": 0}, "accountCorporate must be 1", id="corporate"),
            pytest.param(
                {"firstName": "", "companyName": ""}, "Either firstName and lastName", id="no-names"
            ),
            pytest.param({"streetAddress": ""}, "streetAddress is required", id="no-street"),
        ],
    )
    def test_create_validation_ca(
        self, api: Api, customer: dict[str, Any], change: dict[str, Any], message: str
    ) -> None:
        response = api("POST", f"/customers/{customer['id']}/bank-accounts", json={**CA_BANK, **change})
        assert response.status_code == 400
        assert message in response.json()["message"]
        assert api("GET", f"/customers/{customer['id']}/bank-accounts").json() == []

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            pytest.param({"bankAccountNumber": "1234567"}, "8-12 digits", id="us-too-short"),
            pytest.param(
                {"bankRoutingNumber": "12345678"}, "bankRoutingNumber must be 9 digits", id="routing"
            ),
        ],
    )
    def test_create_validation_us(
        self, api: Api, customer: dict[str, Any], change: dict[str, Any], message: str
    ) -> None:
        response = api("POST", f"/customers/{customer['id']}/bank-accounts", json={**US_BANK, **change})
        assert response.status_code == 400
        assert message in response.json()["message"]

    def test_list_filters(self, api: Api, sandbox: SandboxProcess, customer: dict[str, Any]) -> None:
        cid = customer["id"]
        verified = sandbox.add_bank(cid, **CA_BANK, verified=True, pad="accepted")
        plain = sandbox.add_bank(cid, **US_BANK)
        path = f"/customers/{cid}/bank-accounts"
        assert [b["id"] for b in api("GET", path).json()] == [verified["id"], plain["id"]]
        assert [b["id"] for b in api("GET", path, params={"verified": 1}).json()] == [verified["id"]]
        assert [b["id"] for b in api("GET", path, params={"ready": 0}).json()] == [plain["id"]]
        assert [b["id"] for b in api("GET", path, params={"bankToken": plain["bankToken"]}).json()] == [
            plain["id"]
        ]
        assert api("GET", path, params={"verified": "yes"}).status_code == 400

    def test_request_new_is_a_get_with_a_side_effect(
        self, api: Api, sandbox: SandboxProcess, customer: dict[str, Any]
    ) -> None:
        response = api("GET", f"/customers/{customer['id']}/bank-accounts/request-new")
        assert response.status_code == 200
        assert {"customerId": customer["id"], "kind": "bank-request"} in sandbox.outbox()
        assert api("GET", "/customers/1/bank-accounts/request-new").status_code == 404

    def test_set_default(self, api: Api, sandbox: SandboxProcess, customer: dict[str, Any]) -> None:
        bank = sandbox.add_bank(customer["id"], **CA_BANK)
        time.sleep(1.1)  # dates have whole seconds: a moved dateUpdated shows
        response = api("PATCH", f"/customers/{customer['id']}/bank-accounts/{bank['id']}/default")
        assert response.status_code == 200
        assert [b["id"] for b in response.json()] == [bank["id"]]
        # like set-default-card, the customer's dateUpdated does not move
        assert api("GET", f"/customers/{customer['id']}").json()["dateUpdated"] == customer["dateCreated"]
        assert api("PATCH", f"/customers/{customer['id']}/bank-accounts/999/default").status_code == 404

    def test_delete_revokes_its_pads(
        self, api: Api, sandbox: SandboxProcess, customer: dict[str, Any]
    ) -> None:
        cid = customer["id"]
        bank = sandbox.add_bank(cid, **CA_BANK, verified=True, pad="accepted")
        path = f"/customers/{cid}/bank-accounts/{bank['id']}"
        assert api("GET", path).json()["ready"] == 1
        response = api("DELETE", path)
        assert (response.status_code, response.content) == (204, b"")
        assert api("GET", path).status_code == 404
        assert api("DELETE", path).status_code == 404
        (pad,) = api("GET", f"/customers/{cid}/pads").json()["pads"]
        assert pad["status"] == 2
        assert pad["dateRevoked"] != ZERO


class TestPads:
    def test_no_pads_is_204(self, api: Api, customer: dict[str, Any]) -> None:
        response = api("GET", f"/customers/{customer['id']}/pads")
        assert (response.status_code, response.content) == (204, b"")

    def test_creating_a_bank_account_starts_a_pending_pad(self, api: Api, customer: dict[str, Any]) -> None:
        cid = customer["id"]
        bank_id = api("POST", f"/customers/{cid}/bank-accounts", json=CA_BANK).json()["data"]["bankAccount"][
            "id"
        ]
        response = api("GET", f"/customers/{cid}/pads")
        assert response.status_code == 200
        (pad,) = response.json()["pads"]
        assert set(pad) == PAD_KEYS
        assert (pad["accepted"], pad["status"], pad["bankAccountId"], pad["dateRevoked"]) == (
            0,
            1,
            bank_id,
            ZERO,
        )
        single = api("GET", f"/customers/{cid}/bank-accounts/{bank_id}/pads/{pad['id']}")
        assert single.json() == {"pad": pad}

    def test_accepting_makes_the_bank_ready_and_unaccepting_undoes_it(
        self, api: Api, customer: dict[str, Any]
    ) -> None:
        cid = customer["id"]
        bank_id = api("POST", f"/customers/{cid}/bank-accounts", json=CA_BANK).json()["data"]["bankAccount"][
            "id"
        ]
        pad_id = api("GET", f"/customers/{cid}/pads").json()["pads"][0]["id"]
        pad_path = f"/customers/{cid}/bank-accounts/{bank_id}/pads/{pad_id}"
        bank_path = f"/customers/{cid}/bank-accounts/{bank_id}"
        response = api(
            "PUT", pad_path, json={"accepted": 1, "status": 1, "ipAddress": "203.0.113.9", "type": 2}
        )
        assert response.status_code == 200
        pad = response.json()["pad"]
        assert (pad["accepted"], pad["ipAddress"], pad["type"]) == (1, "203.0.113.9", 2)
        assert pad["dateAccepted"] != ZERO
        assert api("GET", bank_path).json()["ready"] == 1
        api("PUT", pad_path, json={"accepted": 0})
        assert api("GET", bank_path).json()["ready"] == 0
        api("PUT", pad_path, json={"accepted": 1})
        assert api("GET", bank_path).json()["ready"] == 1
        inactive = api("PUT", pad_path, json={"status": 2}).json()["pad"]
        assert inactive["dateRevoked"] != ZERO
        assert api("GET", bank_path).json()["ready"] == 0

    def test_only_one_active_pad_per_bank(
        self, api: Api, sandbox: SandboxProcess, customer: dict[str, Any]
    ) -> None:
        cid = customer["id"]
        bank = sandbox.add_bank(cid, **CA_BANK, pad="revoked")
        second = sandbox.add_pad(cid, bank["id"], "accepted")
        first_id = api("GET", f"/customers/{cid}/pads").json()["pads"][0]["id"]
        response = api(
            "PUT", f"/customers/{cid}/bank-accounts/{bank['id']}/pads/{first_id}", json={"status": 1}
        )
        assert response.status_code == 400
        assert f"#{second['id']}" in response.json()["message"]

    @pytest.mark.parametrize("body", [{"accepted": 2}, {"status": 0}, {"type": "x"}])
    def test_update_validation(self, api: Api, customer: dict[str, Any], body: dict[str, Any]) -> None:
        cid = customer["id"]
        bank_id = api("POST", f"/customers/{cid}/bank-accounts", json=CA_BANK).json()["data"]["bankAccount"][
            "id"
        ]
        pad_id = api("GET", f"/customers/{cid}/pads").json()["pads"][0]["id"]
        response = api("PUT", f"/customers/{cid}/bank-accounts/{bank_id}/pads/{pad_id}", json=body)
        assert response.status_code == 400
        assert "message" in response.json()

    def test_unknown_pad(self, api: Api, customer: dict[str, Any]) -> None:
        response = api("GET", f"/customers/{customer['id']}/bank-accounts/1/pads/1")
        assert (response.status_code, response.json()) == (404, {"message": "PAD not found."})

    def test_sandbox_moves_pad_states(
        self, api: Api, sandbox: SandboxProcess, customer: dict[str, Any]
    ) -> None:
        cid = customer["id"]
        bank = sandbox.add_bank(cid, **CA_BANK, pad="pending")
        pad_id = api("GET", f"/customers/{cid}/pads").json()["pads"][0]["id"]
        accepted = sandbox.set_pad_state(pad_id, "accepted")
        assert (accepted["accepted"], accepted["status"]) == (1, 1)
        assert api("GET", f"/customers/{cid}/bank-accounts/{bank['id']}").json()["ready"] == 1
        revoked = sandbox.set_pad_state(pad_id, "revoked")
        assert revoked["status"] == 2
        assert revoked["dateRevoked"] != ZERO
        assert api("GET", f"/customers/{cid}/bank-accounts/{bank['id']}").json()["ready"] == 0
