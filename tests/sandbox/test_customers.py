"""Customer endpoints of the sandbox against the reference contract, over real HTTP."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import Api

ADDRESS_KEYS = {"name", "street1", "street2", "city", "province", "country", "postalCode", "phone", "email"}
CUSTOMER_KEYS = {
    "id",
    "customerCode",
    "businessName",
    "contactName",
    "dateCreated",
    "dateUpdated",
    "cellphone",
    "billingAddress",
    "shippingAddress",
    "cards",
}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def address(**overrides: str) -> dict[str, str]:
    base = {
        "name": "Ada Lovelace",
        "street1": "440 2 Ave SW",
        "street2": "Suite 100",
        "city": "Calgary",
        "province": "AB",
        "country": "CAN",
        "postalCode": "T2P 5E9",
        "phone": "403-555-0100",
        "email": "ada@example.com",
    }
    base.update(overrides)
    return base


def test_create_answers_200_with_the_live_shape(api: Api) -> None:
    response = api("POST", "/customers", json={"customerCode": "CRM-1", "contactName": "Ada Lovelace"})
    assert response.status_code == 200  # LIVE: 200, not 201
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == CUSTOMER_KEYS
    assert isinstance(body["id"], int)
    assert 20_000_000 < body["id"] < 40_000_000
    assert body["customerCode"] == "CRM-1"
    assert body["dateUpdated"] == "0000-00-00 00:00:00"  # zero-date on the create response only
    assert DATE.match(body["dateCreated"])
    assert body["billingAddress"] == ""  # a string, not an object, when missing
    assert body["shippingAddress"] == ""
    assert body["cards"] == []
    assert "cellPhone" not in body


def test_read_after_create_has_date_updated_equal_to_date_created(api: Api) -> None:
    created = api.create(contactName="Ada")
    read = api("GET", f"/customers/{created['id']}").json()
    assert read["dateUpdated"] == read["dateCreated"] == created["dateCreated"]


@pytest.mark.parametrize("key", ["cellPhone", "cellphone"])
def test_cellphone_is_accepted_in_both_casings_and_answered_lower_case(api: Api, key: str) -> None:
    body = api.create(**{"contactName": "Bob", key: "(403) 555-0199"})
    assert body["cellphone"] == "(403) 555-0199"
    assert "cellPhone" not in body


def test_codes_are_generated_in_sequence_when_none_is_sent(api: Api) -> None:
    first = api.create(contactName="One")["customerCode"]
    second = api.create(businessName="Two Ltd.")["customerCode"]
    assert re.fullmatch(r"CST\d+", first)
    assert int(second[3:]) == int(first[3:]) + 1


def test_generated_codes_skip_codes_already_taken(api: Api) -> None:
    first = api.create(contactName="One")["customerCode"]
    taken = f"CST{int(first[3:]) + 1}"
    api.create(contactName="Manual", customerCode=taken)
    assert api.create(contactName="Three")["customerCode"] == f"CST{int(first[3:]) + 2}"


def test_create_with_an_existing_code_is_refused(api: Api) -> None:
    api.create(customerCode="DUP-1", contactName="First")
    response = api("POST", "/customers", json={"customerCode": "DUP-1", "contactName": "Second"})
    assert response.status_code == 400
    assert response.json() == {"errors": {"customerCode": "Customer code DUP-1 already exists"}}
    assert len(api("GET", "/customers", params={"customerCode": "DUP-1"}).json()) == 1


def test_addresses_come_back_with_all_nine_keys(api: Api) -> None:
    body = api.create(
        contactName="Ada", billingAddress={"name": "Ada", "street1": "1 Main", "postalCode": "T2P1A1"}
    )
    assert set(body["billingAddress"]) == ADDRESS_KEYS
    assert body["billingAddress"]["city"] == ""
    assert body["shippingAddress"] == ""


NAME_ERROR = {"errors": "Contact name or business name should be filled"}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param({}, NAME_ERROR, id="no-name"),
        pytest.param({"contactName": "  ", "businessName": ""}, NAME_ERROR, id="blank-names"),
        pytest.param(
            {"contactName": "A", "billingAddress": {"city": "Calgary"}},
            {
                "billingAddress.name": "name is required",
                "billingAddress.street1": "street1 is required",
                "billingAddress.postalCode": "postalCode is required",
            },
            id="address-missing-required",
        ),
        pytest.param(
            {"contactName": "A", "shippingAddress": address(country="CA")},
            {"shippingAddress.country": "country must be an ISO 3166-1 alpha-3 code such as CAN or USA"},
            id="alpha2-country",
        ),
        pytest.param(
            {"contactName": "A", "billingAddress": address(country="USA", province="")},
            {"billingAddress.province": "province is required when country is USA"},
            id="usa-without-state",
        ),
        pytest.param(
            {"contactName": "A", "billingAddress": address(country="CAN", province="Alberta")},
            {"billingAddress.province": "ALBERTA is not a 2-letter province or state code of CAN"},
            id="province-name",
        ),
        pytest.param(
            {"contactName": "A", "billingAddress": address(country="USA", province="AB")},
            {"billingAddress.province": "AB is not a 2-letter province or state code of USA"},
            id="province-of-other-country",
        ),
        pytest.param(
            {"contactName": "A", "cellPhone": "555-0100"},
            {"cellPhone": "cellPhone must have 10 to 15 digits"},
            id="short-cellphone",
        ),
        pytest.param(
            {"contactName": "A", "billingAddress": address(phone="1234567890123456")},
            {"billingAddress.phone": "phone must have 10 to 15 digits"},
            id="long-phone",
        ),
        pytest.param(
            {"contactName": "A", "billingAddress": address(phone="403-CALL-NOW")},
            {"billingAddress.phone": "phone must have 10 to 15 digits"},
            id="letters-in-phone",
        ),
        pytest.param(
            {"contactName": "A", "billingAddress": address(email="ada@@example")},
            {"billingAddress.email": "email is not a valid email address"},
            id="bad-email",
        ),
        pytest.param(
            {"contactName": "A", "customerCode": "X" * 51},
            {"customerCode": "customerCode must be at most 50 printable characters"},
            id="code-too-long",
        ),
    ],
)
def test_create_validation_errors(api: Api, payload: dict[str, Any], expected: Any) -> None:
    response = api("POST", "/customers", json=payload)
    assert response.status_code == 400
    body = response.json()
    assert body == (expected if "errors" in expected else {"errors": expected})
    assert api("GET", "/customers").json() == []  # nothing was created


def test_a_non_object_body_is_refused(api: Api) -> None:
    response = api("POST", "/customers", data="not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"errors": "Request body is not valid JSON"}


def test_a_valid_full_customer_round_trips(api: Api) -> None:
    payload = {
        "customerCode": "CRM-77",
        "contactName": "Ada Lovelace",
        "businessName": "Analytical Engines Ltd.",
        "cellPhone": "+1 403 555 0100",
        "billingAddress": address(),
        "shippingAddress": address(name="Warehouse", country="USA", province="WA", postalCode="98101"),
    }
    created = api.create(**payload)
    read = api("GET", f"/customers/{created['id']}").json()
    assert read["billingAddress"] == address()
    assert read["shippingAddress"]["province"] == "WA"
    assert read["cellphone"] == "+1 403 555 0100"


@pytest.mark.parametrize("bad_id", ["999", "abc", "12.5"])
def test_unknown_or_non_numeric_customer_is_404(api: Api, bad_id: str) -> None:
    for method in ("GET", "PUT"):
        response = api(method, f"/customers/{bad_id}", json={"contactName": "x"})
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"errors": "Invalid customerId"}


def test_update_is_partial_and_moves_date_updated(api: Api) -> None:
    created = api.create(
        contactName="Ada", businessName="Engines", cellPhone="4035550100", billingAddress=address()
    )
    response = api("PUT", f"/customers/{created['id']}", json={"contactName": "Ada King"})
    assert response.status_code == 200
    body = response.json()
    assert body["contactName"] == "Ada King"
    assert body["businessName"] == "Engines"
    assert body["cellphone"] == "4035550100"
    assert body["billingAddress"] == address()
    assert body["dateUpdated"] != "0000-00-00 00:00:00"


def test_update_merges_address_keys(api: Api) -> None:
    created = api.create(contactName="Ada", billingAddress=address())
    body = api(
        "PUT", f"/customers/{created['id']}", json={"contactName": "Ada", "billingAddress": {"city": "Banff"}}
    ).json()
    assert body["billingAddress"] == address(city="Banff")


def test_update_with_an_all_empty_address_clears_it(api: Api) -> None:
    created = api.create(contactName="Ada", shippingAddress=address())
    empty = dict.fromkeys(ADDRESS_KEYS, "")
    body = api(
        "PUT", f"/customers/{created['id']}", json={"contactName": "Ada", "shippingAddress": empty}
    ).json()
    assert body["shippingAddress"] == ""


def test_update_needs_a_name_in_the_body(api: Api) -> None:
    created = api.create(contactName="Ada")
    response = api("PUT", f"/customers/{created['id']}", json={"cellPhone": "4035550100"})
    assert response.status_code == 400
    assert response.json() == NAME_ERROR


def test_update_cannot_take_another_customers_code(api: Api) -> None:
    api.create(customerCode="A-1", contactName="A")
    other = api.create(customerCode="B-1", contactName="B")
    response = api("PUT", f"/customers/{other['id']}", json={"contactName": "B", "customerCode": "A-1"})
    assert response.status_code == 400
    assert "A-1" in response.json()["errors"]["customerCode"]


def test_update_validates_like_create(api: Api) -> None:
    created = api.create(contactName="Ada")
    response = api(
        "PUT",
        f"/customers/{created['id']}",
        json={"contactName": "Ada", "billingAddress": address(country="XXX")},
    )
    assert response.status_code == 400
    assert "billingAddress.country" in response.json()["errors"]


class TestListing:
    @pytest.fixture
    def people(self, api: Api) -> list[dict[str, Any]]:
        return [
            api.create(
                customerCode="C-001",
                contactName="Grace Hopper",
                billingAddress=address(
                    name="Grace",
                    city="Arlington",
                    country="USA",
                    province="VA",
                    postalCode="22201",
                    phone="7035550111",
                    email="grace@navy.example",
                ),
            ),
            api.create(customerCode="C-002", businessName="Hopper Freight Inc.", cellPhone="6045550122"),
            api.create(
                customerCode="C-003",
                contactName="Alan Turing",
                shippingAddress=address(name="Alan", city="Manchester", email="alan@bletchley.example"),
            ),
        ]

    @pytest.mark.parametrize(
        ("term", "codes"),
        [
            pytest.param("hopper", ["C-001", "C-002"], id="contact-and-business-name"),
            pytest.param("C-00", ["C-001", "C-002", "C-003"], id="code"),
            pytest.param("arling", ["C-001"], id="billing-city"),
            pytest.param("manchester", ["C-003"], id="shipping-city"),
            pytest.param("5550122", ["C-002"], id="cellphone"),
            pytest.param("7035550111", ["C-001"], id="address-phone"),
            pytest.param("bletchley", ["C-003"], id="email"),
            pytest.param("nobody", [], id="no-match"),
            pytest.param("%", [], id="wildcards-are-literal"),
        ],
    )
    def test_search_is_partial_over_the_listed_fields(
        self, api: Api, people: list[dict[str, Any]], term: str, codes: list[str]
    ) -> None:
        response = api("GET", "/customers", params={"search": term})
        assert response.status_code == 200
        assert [c["customerCode"] for c in response.json()] == codes

    def test_customer_code_is_exact(self, api: Api, people: list[dict[str, Any]]) -> None:
        assert [c["id"] for c in api("GET", "/customers", params={"customerCode": "C-002"}).json()] == [
            people[1]["id"]
        ]
        assert api("GET", "/customers", params={"customerCode": "C-00"}).json() == []

    def test_pages_are_one_based_and_end_with_a_short_page(
        self, api: Api, people: list[dict[str, Any]]
    ) -> None:
        pages = [api("GET", "/customers", params={"limit": 2, "page": p}).json() for p in (1, 2, 3)]
        assert [len(p) for p in pages] == [2, 1, 0]
        assert [c["customerCode"] for c in pages[0] + pages[1]] == ["C-001", "C-002", "C-003"]

    @pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"page": 0}])
    def test_bad_paging_is_a_400(self, api: Api, params: dict[str, Any]) -> None:
        response = api("GET", "/customers", params=params)
        assert response.status_code == 400
        assert isinstance(response.json()["errors"], str)


def test_list_hides_cards_unless_include_cards_is_yes(api: Api, sandbox: Any) -> None:
    customer = api.create(contactName="Card Holder")
    sandbox.add_card(
        customer["id"], cardHolderName="Card Holder", cardNumber="4111111111111111", cardExpiry="0130"
    )
    plain = api("GET", "/customers").json()
    assert plain[0]["cards"] == []  # LIVE: [] even when cards exist
    with_cards = api("GET", "/customers", params={"includeCards": "yes"}).json()
    assert [c["cardF6L4"] for c in with_cards[0]["cards"]] == ["4111111111"]
    single = api("GET", f"/customers/{customer['id']}").json()
    assert len(single["cards"]) == 1


def test_duplicate_codes_can_be_allowed_to_emulate_the_worst_case(api: Api, sandbox: Any) -> None:
    sandbox.configure(duplicate_codes="allow")
    first = api.create(customerCode="TWICE", contactName="First")
    second = api.create(customerCode="TWICE", contactName="Second")
    assert first["id"] != second["id"]
    assert [c["id"] for c in api("GET", "/customers", params={"customerCode": "TWICE"}).json()] == [
        first["id"],
        second["id"],
    ]


# Documented maximum lengths (validation.MAX_LENGTHS): (field path, a valid value of exactly the limit,
# address overrides it needs). The pipeline enforces the same numbers, so they are spelled out here.
LENGTH_CASES = [
    ("contactName", 100, "C" * 100, {}),
    ("businessName", 100, "B" * 100, {}),
    ("cellPhone", 30, "403-555-0100" + "-" * 18, {}),
    ("billingAddress.name", 100, "N" * 100, {}),
    ("billingAddress.street1", 100, "S" * 100, {}),
    ("shippingAddress.street2", 100, "T" * 100, {}),
    ("billingAddress.city", 60, "Y" * 60, {}),
    ("billingAddress.province", 60, "P" * 60, {"country": "GBR"}),
    ("billingAddress.country", 3, "CAN", {}),
    ("shippingAddress.postalCode", 16, "T2P 5E9 " + "9" * 8, {}),
    ("billingAddress.phone", 30, "(403) 555-0100" + "." * 16, {}),
    ("billingAddress.email", 254, "a" * 242 + "@example.com", {}),
]


def _with(path: str, value: str, overrides: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"contactName": "Length Test"}
    if "." in path:
        label, key = path.split(".")
        body[label] = address(**{**overrides, key: value})
    else:
        body[path] = value
    return body


@pytest.mark.parametrize(
    ("path", "limit", "at_limit", "overrides"), LENGTH_CASES, ids=[c[0] for c in LENGTH_CASES]
)
def test_maximum_lengths_on_create(
    api: Api, path: str, limit: int, at_limit: str, overrides: dict[str, str]
) -> None:
    assert len(at_limit) == limit
    created = api("POST", "/customers", json=_with(path, at_limit, overrides))
    assert created.status_code == 200, created.text
    too_long = at_limit + ("M" if path.endswith("country") else at_limit[-1])
    refused = api("POST", "/customers", json=_with(path, too_long, overrides))
    assert refused.status_code == 400
    field = path.split(".")[-1]
    assert refused.json() == {"errors": {path: f"{field} must be at most {limit} characters"}}
    assert len(api("GET", "/customers").json()) == 1


@pytest.mark.parametrize(
    ("path", "limit", "at_limit", "overrides"), LENGTH_CASES, ids=[c[0] for c in LENGTH_CASES]
)
def test_maximum_lengths_on_update(
    api: Api, path: str, limit: int, at_limit: str, overrides: dict[str, str]
) -> None:
    customer = api.create(**_with(path, at_limit, overrides))
    too_long = at_limit + ("M" if path.endswith("country") else at_limit[-1])
    body = _with(path, too_long, overrides)
    if "." in path:  # an update may send just the one key; it is merged with the stored address
        label, key = path.split(".")
        body[label] = {key: too_long}
    refused = api("PUT", f"/customers/{customer['id']}", json=body)
    assert refused.status_code == 400
    assert refused.json() == {"errors": {path: f"{path.split('.')[-1]} must be at most {limit} characters"}}
    assert api("GET", f"/customers/{customer['id']}").json() == {
        **customer,
        "dateUpdated": customer["dateCreated"],
    }


def test_a_too_long_value_reports_its_length_not_its_format(api: Api) -> None:
    response = api(
        "POST",
        "/customers",
        json={
            "contactName": "A",
            "cellPhone": "1" * 31,
            "billingAddress": address(email="x" * 255, country="Canada"),
        },
    )
    assert response.status_code == 400
    assert response.json() == {
        "errors": {
            "cellPhone": "cellPhone must be at most 30 characters",
            "billingAddress.email": "email must be at most 254 characters",
            "billingAddress.country": "country must be at most 3 characters",
        }
    }


def test_lengths_count_the_value_without_surrounding_whitespace(api: Api) -> None:
    created = api("POST", "/customers", json={"contactName": "  " + "C" * 100 + "  "})
    assert created.status_code == 200
    assert created.json()["contactName"] == "C" * 100
