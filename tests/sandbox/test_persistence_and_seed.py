"""Persistence across restarts, seeding (CLI and HTTP) and the serve command's errors."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helcim_sandbox.cli import main as sandbox_cli
from helcim_sandbox.launcher import SandboxProcess, running_sandbox
from helcim_sandbox.seed import SeedOptions, seed_store
from helcim_sandbox.store import Store
from tests.conftest import TOKEN, Api


def test_data_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.db"
    with running_sandbox(db=db, tokens=(TOKEN,), workdir=tmp_path) as first:
        api = Api(first.base_url)
        created = api.create(
            contactName="Ada", billingAddress={"name": "A", "street1": "1 Main", "postalCode": "X"}
        )
        auto = api.create(contactName="Auto")["customerCode"]
        card = first.add_card(created["id"], cardHolderName="Ada", cardF6L4="4111111111", cardExpiry="0130")
    with running_sandbox(db=db, tokens=(TOKEN,), workdir=tmp_path) as second:
        api = Api(second.base_url)
        again = api("GET", f"/customers/{created['id']}").json()
        assert again["billingAddress"] == created["billingAddress"]
        assert [c["cardToken"] for c in again["cards"]] == [card["cardToken"]]
        later = api.create(contactName="Later")
        assert later["id"] > created["id"]  # ids continue
        assert later["customerCode"] == f"CST{int(auto[3:]) + 1}"  # and so does the code sequence


def _fingerprint(store: Store) -> list[Any]:
    rows = store.db.execute(
        "SELECT customer_code, contact_name, business_name, cellphone, billing FROM customers"
    )
    cards = store.db.execute("SELECT customer_id, card_f6l4, card_expiry, card_token, is_default FROM cards")
    return [tuple(r) for r in rows] + [tuple(c) for c in cards]


def test_seed_is_deterministic_for_a_seed_and_a_day() -> None:
    stores = [Store(), Store(), Store()]
    seed_store(stores[0], SeedOptions(150, seed=3, today=date(2026, 11, 25)))
    seed_store(stores[1], SeedOptions(150, seed=3, today=date(2026, 11, 25)))
    seed_store(stores[2], SeedOptions(150, seed=4, today=date(2026, 11, 25)))
    assert _fingerprint(stores[0]) == _fingerprint(stores[1])
    assert _fingerprint(stores[0]) != _fingerprint(stores[2])


def test_seed_has_the_realistic_mix() -> None:
    store = Store()
    summary = seed_store(store, SeedOptions(2000, seed=1, today=date(2026, 11, 25)))
    assert summary["customers"] == 2000
    assert 900 < summary["CAN"] < 1300
    assert 700 < summary["USA"] < 1100
    for key in (
        "cards_expired",
        "cards_expiring",
        "cards_valid",
        "customers_without_cards",
        "customers_without_default_card",
        "customers_with_two_default_cards",
        "cards_shared",
        "bank_accounts_verified",
        "bank_accounts_unverified",
        "pads_accepted",
        "pads_pending",
        "pads_revoked",
        "pads_none",
    ):
        assert summary.get(key, 0) > 0, key
    db = store.db
    # every stored customer passes the sandbox's own validation rules
    from helcim_sandbox.validation import clean_customer

    for row in db.execute("SELECT contact_name, business_name, cellphone, billing, shipping FROM customers"):
        body = {"contactName": row[0], "businessName": row[1], "cellPhone": row[2]}
        for key, raw in (("billingAddress", row[3]), ("shippingAddress", row[4])):
            if raw:
                body[key] = json.loads(raw)
        clean_customer(body)
    countries = Counter(json.loads(r[0])["country"] for r in db.execute("SELECT address FROM bank_accounts"))
    assert set(countries) == {"CAN", "USA"}
    routing = [
        r[0] for r in db.execute("SELECT routing_number FROM bank_accounts WHERE routing_number != ''")
    ]
    weights = (3, 7, 1) * 3
    assert routing
    assert all(sum(int(d) * w for d, w in zip(r, weights, strict=True)) % 10 == 0 for r in routing)
    expiries = [r[0] for r in db.execute("SELECT card_expiry FROM cards")]
    assert all(len(e) == 4 and 1 <= int(e[:2]) <= 12 for e in expiries)
    shared = db.execute(
        "SELECT COUNT(*) FROM (SELECT card_f6l4, card_expiry, card_holder_name FROM cards"
        " GROUP BY 1, 2, 3 HAVING COUNT(DISTINCT customer_id) > 1)"
    ).fetchone()[0]
    assert shared > 0


def test_seed_cli_into_a_file_then_serve_it(tmp_path: Path) -> None:
    db = tmp_path / "seeded.db"
    result = CliRunner().invoke(
        sandbox_cli, ["seed", "--db", str(db), "--customers", "40", "--seed", "9", "--today", "2026-11-25"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["customers"] == 40
    with running_sandbox(db=db, tokens=(TOKEN,), workdir=tmp_path) as server:
        api = Api(server.base_url)
        page = api("GET", "/customers", params={"limit": 100, "includeCards": "yes"}).json()
        assert len(page) == 40
        assert any(c["cards"] for c in page)


def test_seed_cli_over_http(sandbox: SandboxProcess) -> None:
    result = CliRunner().invoke(sandbox_cli, ["seed", "--url", sandbox.base_url, "--customers", "12"])
    assert result.exit_code == 0, result.output
    assert sandbox.stats()["data"]["customers"] == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["seed", "--customers", "5"], "exactly one of --db FILE or --url URL"),
        (["seed", "--customers", "-1", "--db", "x.db"], "-1 is not in the range"),
        (["serve", "--limits", "warp"], "unknown limits preset 'warp'"),
        (["serve", "--faults", "explode=1"], "unknown fault 'explode'"),
    ],
)
def test_cli_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(sandbox_cli, args)
    assert result.exit_code == 2
    assert message in result.output
