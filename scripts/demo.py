"""`make run`: the nightly job against a seeded helcim-sandbox, start to finish, on sample_data/.

1. seed a fresh sandbox database with Helcim customers (cards, bank accounts,
   PADs), plus a few customers that are also in the sample CRM export: some
   under their CRM id with an older address (they become updates), some under
   a checkout-page code (they become link proposals, held for a person);
2. start the sandbox with scaled rate limits on a free port;
3. run ``crmsync run`` on sample_data/crm_customers.csv, as cron would;
4. print where the outputs are, and stop the sandbox.

Everything goes under .run/ (ignored by git); each `make run` starts afresh.

``scripts/demo.py act FILE`` (``make act ACTIONS=FILE``) is the rest of the
morning review on that demo account: it starts the sandbox again on the same
database and port (the state store is bound to that URL), runs ``crmsync act
--accept FILE`` and then the next ``crmsync reconcile``, and stops it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from crmsync.helcim.client import HelcimClient
from crmsync.helcim.limits import RateLimits
from crmsync.helcim.models import Address, CustomerInput
from helcim_sandbox.launcher import running_sandbox
from helcim_sandbox.seed import SeedOptions, seed_store
from helcim_sandbox.store import Store

RUN_DIR = Path(".run")
PORT_FILE = RUN_DIR / "demo-port"
DB, STATE = RUN_DIR / "demo-sandbox.db", RUN_DIR / "demo-state.db"
CRM_EXPORT = Path("sample_data/crm_customers.csv")
SEED_CUSTOMERS = 60
TOKEN = "demo-token"


def _address(row: dict[str, str], prefix: str) -> Address:
    return Address(
        name=row[f"{prefix}_name"] or row["contact_name"] or row["business_name"],
        street1=row[f"{prefix}_street1"],
        city=row[f"{prefix}_city"],
        province=row[f"{prefix}_province"][:2].upper(),
        country="CAN" if row[f"{prefix}_country"].upper() in {"CA", "CAN", "CANADA"} else "USA",
        postal_code=row[f"{prefix}_postal_code"],
        email=row[f"{prefix}_email"].lower(),
    )


def add_overlap(base_url: str) -> tuple[int, int]:
    """Customers the CRM export also has: 5 under their CRM id (older street), 3 under a checkout code."""
    client = HelcimClient(base_url, TOKEN, limits=RateLimits(paced=False))
    with CRM_EXPORT.open(newline="", encoding="utf-8-sig") as handle:
        rows = [
            r
            for r in csv.DictReader(handle)
            if r["billing_street1"] and r["billing_email"] and len(r["billing_province"]) == 2
        ]
    same_code, other_code = rows[:5], rows[5:8]
    for row in same_code:
        billing = _address(row, "billing")
        older = dataclasses.replace(billing, street1="1 Old Mill Rd")
        name = row["contact_name"]
        client.create_customer(
            CustomerInput(
                contact_name=name, business_name=row["business_name"], billing=older, code=row["crm_id"]
            )
        )
    for number, row in enumerate(other_code):
        client.create_customer(
            CustomerInput(
                contact_name=row["contact_name"],
                business_name=row["business_name"],
                billing=_address(row, "billing"),
                code=f"CHK-{9001 + number}",
            )
        )
    return len(same_code), len(other_code)


def _env(base_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "HELCIM_API_URL": base_url,
        "HELCIM_API_TOKEN": TOKEN,
        "CRMSYNC_STATE_DB": str(STATE),
        "CRMSYNC_RATE_LIMITS": "fast",
        "CRMSYNC_CONFIG": "",
    }


def _crmsync(base_url: str, *args: str) -> int:
    print("$ crmsync", *args, flush=True)
    crmsync = str(Path(sys.executable).parent / "crmsync")
    return subprocess.run([crmsync, *args], env=_env(base_url), check=False).returncode


def main() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    out = RUN_DIR / "out"
    for stale in [*RUN_DIR.glob("demo-sandbox.db*"), *RUN_DIR.glob("demo-state.db*")]:
        stale.unlink()
    shutil.rmtree(out, ignore_errors=True)
    store = Store(str(DB))
    seeded = seed_store(store, SeedOptions(SEED_CUSTOMERS, seed=2026))
    store.close()
    print(
        f"seeded {seeded['customers']} Helcim customers ({seeded['cards']} cards, "
        f"{seeded.get('bank_accounts', 0)} bank accounts) into {DB}"
    )
    with running_sandbox(db=DB, limits="fast", tokens=(TOKEN,), workdir=RUN_DIR) as sandbox:
        PORT_FILE.write_text(sandbox.base_url.split(":")[-1].split("/")[0] + "\n")
        updates, proposals = add_overlap(sandbox.base_url)
        print(
            f"helcim-sandbox is serving {sandbox.base_url} (rate limits 60x faster than Helcim's); "
            f"{updates} sample customers added with an older address, {proposals} under checkout-page codes"
        )
        sandbox.reset_stats()
        code = _crmsync(sandbox.base_url, "run", "--crm", str(CRM_EXPORT), "--out", str(out))
        (RUN_DIR / "sandbox-stats.json").write_text(json.dumps(sandbox.stats(), indent=2) + "\n")
    print(f"sandbox stopped; crmsync run exited {code}")
    if code not in (0, 1):
        return code
    print("\nOutputs:")
    for name in ("summary.json", "results.csv", "plan.csv", "link_proposals.csv", "rejects.csv"):
        print(f"  {out / name}")
    for extra in ("crm_import", "reconciliation/report.html", "reconciliation/actions.csv"):
        if (out / extra).exists():
            print(f"  {out / extra}")
    print(f"  {RUN_DIR / 'sandbox-stats.json'} (requests the sandbox answered)")
    print(
        "\nThe morning review: open the report, tick actions, download actions.csv, then\n"
        "  make act ACTIONS=path/to/actions.csv    (crmsync act on this demo account, then the next report)"
    )
    return 0


def act(actions: Path) -> int:
    """``crmsync act`` on the demo account, then the next morning's ``crmsync reconcile``."""
    if not PORT_FILE.exists() or not DB.exists():
        print("no demo account yet: run `make run` first", file=sys.stderr)
        return 2
    port = int(PORT_FILE.read_text().strip())
    with running_sandbox(db=DB, limits="fast", tokens=(TOKEN,), workdir=RUN_DIR, port=port) as sandbox:
        code = _crmsync(sandbox.base_url, "act", "--accept", str(actions), "--out", str(RUN_DIR / "act"))
        outbox = sandbox.outbox()
        morning = RUN_DIR / "morning"
        shutil.rmtree(morning, ignore_errors=True)
        again = _crmsync(sandbox.base_url, "reconcile", "--crm", str(CRM_EXPORT), "--out", str(morning))
    print(f"\n{len(outbox)} e-mails in the sandbox's outbox (requests for bank details)")
    print(f"  {RUN_DIR / 'act' / 'results.csv'}  (what crmsync act did, action by action)")
    print(
        f"  {morning / 'reconciliation' / 'report.html'}  (the next report: the actions, and what they resolved)"
    )
    return code if code else again


if __name__ == "__main__":
    if sys.argv[1:2] == ["act"] and len(sys.argv) == 3:
        sys.exit(act(Path(sys.argv[2])))
    if sys.argv[1:]:
        print("usage: scripts/demo.py [act ACTIONS.csv]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
