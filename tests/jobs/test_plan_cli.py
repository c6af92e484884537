"""`crmsync plan` and `crmsync link` end to end, against a real sandbox."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.config import RateLimits
from crmsync.helcim.client import HelcimClient
from crmsync.helcim.models import Address, CustomerInput
from crmsync.sync.load import customer_input
from crmsync.sync.plan import Plan
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import TOKEN

HEADER = [
    "crm_id",
    "contact_name",
    "business_name",
    "cell_phone",
    "billing_name",
    "billing_street1",
    "billing_street2",
    "billing_city",
    "billing_province",
    "billing_country",
    "billing_postal_code",
    "billing_phone",
    "billing_email",
]


def row(crm_id: str, name: str, **fields: str) -> dict[str, str]:
    base = {
        "crm_id": crm_id,
        "contact_name": name,
        "business_name": "",
        "cell_phone": "(403) 555-0100",
        "billing_name": name,
        "billing_street1": "440 2 Ave SW",
        "billing_street2": "",
        "billing_city": "Calgary",
        "billing_province": "Alberta",
        "billing_country": "Canada",
        "billing_postal_code": "t2p5e9",
        "billing_phone": "",
        "billing_email": f"{crm_id.lower()}@example.com",
    }
    return base | fields


def write_export(path: Path, rows: list[dict[str, str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def helcim(sandbox: SandboxProcess) -> HelcimClient:
    return HelcimClient(sandbox.base_url, TOKEN, limits=RateLimits(paced=False))


def add_to_helcim(sandbox: SandboxProcess, code: str, name: str, **billing: str) -> int:
    """A customer created in Helcim, written the way Helcim holds it (alpha-3, spaced postal, digits)."""
    address = {
        "name": name,
        "street1": "440 2 Ave SW",
        "city": "Calgary",
        "province": "AB",
        "country": "CAN",
        "postal_code": "T2P 5E9",
        "email": f"{code.lower()}@example.com",
    } | billing
    body = CustomerInput(contact_name=name, cell_phone="4035550100", billing=Address(**address), code=code)
    return helcim(sandbox).create_customer(body).customer.id


def invoke(tmp_path: Path, sandbox: SandboxProcess, *args: str) -> tuple[int, str]:
    env = {
        "HELCIM_API_URL": sandbox.base_url,
        "HELCIM_API_TOKEN": TOKEN,
        "CRMSYNC_STATE_DB": str(tmp_path / "state.db"),
        "CRMSYNC_CONFIG": "",
        "CRMSYNC_RATE_LIMITS": "off",
        "CRMSYNC_TIMEOUT": "5",  # also how long a restart waits for writes a killed run left in flight
    }
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def plan_of(out: Path) -> Plan:
    return Plan.load(out / "plan.json")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def decide(proposals: Path, answer: str) -> None:
    """What a person does: fill the accept column of every proposal."""
    rows = read_csv(proposals)
    with proposals.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([r | {"accept": answer} for r in rows])


def test_an_unedited_proposals_file_decides_nothing(tmp_path: Path, sandbox: SandboxProcess) -> None:
    add_to_helcim(sandbox, "CST-9", "Ada King")
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "first"))
    code, output = invoke(
        tmp_path, sandbox, "link", "--accept", str(tmp_path / "first" / "link_proposals.csv")
    )
    assert (code, output.strip()) == (0, "linked 0, rejected 0, left undecided 1")


def test_plan_writes_nothing_to_helcim_and_explains_every_change(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    add_to_helcim(sandbox, "C-2", "Bob Lee")
    add_to_helcim(sandbox, "C-3", "Cy Roy")
    sandbox.reset_stats()
    export = write_export(
        tmp_path / "crm.csv",
        [row("C-1", "Ada King"), row("C-2", "Bob Lee"), row("C-3", "Cy Roy", billing_city="Banff")],
    )
    code, output = invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "out"))
    assert code == 0, output
    assert "1 creates, 1 updates" in output
    stats = sandbox.stats()["by_operation"]
    assert set(stats) == {"get-customers"}  # reads only: nothing written
    plan = plan_of(tmp_path / "out")
    assert [(op.kind, op.crm_id) for op in plan.operations] == [("create", "C-1"), ("update", "C-3")]
    create, update = plan.operations
    assert create.values["billing_country"] == "CAN"  # normalised before writing
    sent = customer_input(create).to_api()  # what the client sends for it
    assert sent["customerCode"] == "C-1"
    assert sent["billingAddress"]["country"] == "CAN"
    assert sent["cellPhone"] == "4035550100"
    assert update.changes == {"billing_city": ["Calgary", "Banff"]}
    assert update.addresses == ("billing",)
    sent = customer_input(update).to_api()
    assert sent["billingAddress"]["city"] == "Banff"
    assert sent["billingAddress"]["postalCode"] == "T2P 5E9"  # the whole address goes
    assert "shippingAddress" not in sent
    rows = read_csv(tmp_path / "out" / "plan.csv")
    assert {
        "crm_id": "C-3",
        "operation": "update",
        "field": "billing_city",
        "old": "Calgary",
        "new": "Banff",
    }.items() <= next(r for r in rows if r["crm_id"] == "C-3").items()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["calls"]["writes"] == 2
    assert summary["calls"]["reads_spent"] == summary["api_calls"] == 1
    assert summary["unchanged"] == 1


def test_nothing_flips_on_the_second_night(tmp_path: Path, sandbox: SandboxProcess) -> None:
    """Helcim holds CAN / T2P 5E9 / digits; the CRM has Canada / t2p5e9 / (403) 555-0100: the same customer."""
    add_to_helcim(sandbox, "C-1", "Ada King")
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    for night in (1, 2):
        code, output = invoke(
            tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / f"n{night}")
        )
        assert code == 0, output
        assert plan_of(tmp_path / f"n{night}").operations == []


def test_a_small_budget_defers_and_says_so(tmp_path: Path, sandbox: SandboxProcess) -> None:
    export = write_export(tmp_path / "crm.csv", [row(f"C-{n}", f"Person {n}") for n in range(30)])
    code, output = invoke(
        tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "out"), "--max-calls", "12"
    )
    assert code == 0, output
    plan = plan_of(tmp_path / "out")
    spent, planned = plan.estimate.reads_spent, plan.estimate.reads_planned
    assert len(plan.operations) == 12 - spent - planned
    assert len(plan.operations) + len(plan.deferred) == 30
    assert [op.kind for op in plan.operations] == ["create"] * len(plan.operations)
    deferred = [r for r in read_csv(tmp_path / "out" / "plan.csv") if r["scheduled"] == "deferred"]
    assert {r["crm_id"] for r in deferred} == {op.crm_id for op in plan.deferred}


def test_a_column_the_export_lacks_is_never_cleared(tmp_path: Path, sandbox: SandboxProcess) -> None:
    add_to_helcim(sandbox, "C-1", "Ada King")
    no_phone = [h for h in HEADER if h != "cell_phone"]
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada Queen")], header=no_phone)
    code, output = invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "out"))
    assert code == 0, output
    (update,) = plan_of(tmp_path / "out").operations
    assert set(update.changes) == {"contact_name", "billing_name"}
    assert customer_input(update).to_api()["cellPhone"] == "4035550100"  # Helcim's value, not ""


def test_look_alikes_wait_for_a_person_then_link(tmp_path: Path, sandbox: SandboxProcess) -> None:
    helcim_id = add_to_helcim(
        sandbox, "CST-OLD-7", "Ada King"
    )  # same person, created in Helcim under another code
    export = write_export(
        tmp_path / "crm.csv", [row("C-1", "Ada King"), row("C-2", "Bob Lee", cell_phone="780-555-0199")]
    )
    code, output = invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "first"))
    assert code == 0, output
    assert [op.crm_id for op in plan_of(tmp_path / "first").operations] == ["C-2"]  # C-1 is not created twice
    proposals = read_csv(tmp_path / "first" / "link_proposals.csv")
    assert [(p["crm_id"], p["helcim_id"], p["ambiguous"]) for p in proposals] == [
        ("C-1", str(helcim_id), "no")
    ]
    assert proposals[0]["matched_on"] == "name+postal+phone"
    held = plan_of(tmp_path / "first").held
    assert (held[0].crm_id, held[0].kind) == ("C-1", "awaiting_link")

    decide(tmp_path / "first" / "link_proposals.csv", "yes")
    code, output = invoke(
        tmp_path, sandbox, "link", "--accept", str(tmp_path / "first" / "link_proposals.csv")
    )
    assert (code, "linked 1" in output) == (0, True)
    code, output = invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "second"))
    assert code == 0, output
    second = plan_of(tmp_path / "second")
    # C-1 is now the Helcim customer CST-OLD-7: updated (the CRM owns the e-mail), never created
    assert [(op.kind, op.crm_id, op.helcim_id) for op in second.operations] == [
        ("create", "C-2", None),
        ("update", "C-1", helcim_id),
    ]
    assert second.operations[1].changes == {"billing_email": ["cst-old-7@example.com", "c-1@example.com"]}
    assert second.held == []


def test_a_rejected_proposal_lets_the_row_be_created(tmp_path: Path, sandbox: SandboxProcess) -> None:
    add_to_helcim(sandbox, "CST-9", "Ada King")
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "first"))
    proposals = tmp_path / "first" / "link_proposals.csv"
    decide(proposals, "no")
    code, output = invoke(tmp_path, sandbox, "link", "--accept", str(proposals))
    assert (code, "rejected 1" in output) == (0, True)
    invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "second"))
    assert [op.kind for op in plan_of(tmp_path / "second").operations] == ["create"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("crm_id,helcim_id,accept\nC-1,12,maybe\n", "accept must be yes, no or empty"),
        ("crm_id,helcim_id\nC-1,12\nC-1,13\n", "accepted for two Helcim customers"),
        ("crm_id\nC-1\n", "needs the columns crm_id and helcim_id"),
        ("crm_id,helcim_id\nC-1,twelve\n", "helcim_id must be a number"),
    ],
)
def test_link_file_errors(tmp_path: Path, sandbox: SandboxProcess, content: str, message: str) -> None:
    file = tmp_path / "proposals.csv"
    file.write_text(content)
    code, output = invoke(tmp_path, sandbox, "link", "--accept", str(file))
    assert code == 2
    assert message in output


def test_plan_with_a_bad_export_exits_2_before_any_call(tmp_path: Path, sandbox: SandboxProcess) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name\n1,a\n")
    code, output = invoke(tmp_path, sandbox, "plan", "--crm", str(bad), "--out", str(tmp_path / "out"))
    assert code == 2
    assert "no built-in profile fits this export's headers" in output
    assert sandbox.stats()["total"] == 0


def test_plan_against_another_account_is_refused(tmp_path: Path, sandbox: SandboxProcess) -> None:
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "out"))
    env_url = "http://127.0.0.1:9/v2"
    result = CliRunner().invoke(
        cli,
        ["plan", "--crm", str(export), "--out", str(tmp_path / "out2")],
        env={
            "HELCIM_API_URL": env_url,
            "HELCIM_API_TOKEN": TOKEN,
            "CRMSYNC_STATE_DB": str(tmp_path / "state.db"),
            "CRMSYNC_CONFIG": "",
        },
    )
    assert result.exit_code == 2
    assert "belongs to" in result.output


MAILCHIMP = ["Email Address", "First Name", "Last Name", "Phone Number", "Company", "MEMBER_RATING"]


def test_a_changed_email_key_without_phone_or_address_waits_for_a_person(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    """Mailchimp keys by the e-mail; Ann has no phone and no address, so Helcim holds only her name.
    Her new e-mail is proposed as her customer on the name alone (ambiguous: a person decides), and
    held: never a second Ann Lee."""

    def night(name: str, email: str) -> dict[str, object]:
        export = tmp_path / f"{name}.csv"
        write_export(
            export, [dict(zip(MAILCHIMP, [email, "Ann", "Lee", "", "", "2"], strict=True))], MAILCHIMP
        )
        code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / name))
        assert code == 0, output
        summary: dict[str, object] = json.loads((tmp_path / name / "summary.json").read_text())
        return summary

    assert night("n1", "ann@example.com")["created"] == 1
    second = night("n2", "ann.lee@example.com")
    assert (second["profile"], second["created"], second["link_proposals"], second["deferred"]) == (
        "mailchimp", 0, 1, 1,
    )  # fmt: skip
    (proposal,) = read_csv(tmp_path / "n2" / "link_proposals.csv")
    assert (proposal["matched_on"], proposal["ambiguous"]) == ("name", "yes")
    decide(tmp_path / "n2" / "link_proposals.csv", "yes")
    code, output = invoke(tmp_path, sandbox, "link", "--accept", str(tmp_path / "n2" / "link_proposals.csv"))
    assert code == 0, output
    third = night("n3", "ann.lee@example.com")
    assert (third["created"], third["link_proposals"], third["unchanged"]) == (0, 0, 1)
    assert [
        c.contact_name for _, page in helcim(sandbox).iter_customers(include_cards=False) for c in page
    ] == ["Ann Lee"]
