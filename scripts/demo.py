"""`make run`: start a seeded helcim-sandbox, exercise it, print where things are, stop it.

Everything it writes goes under .run/ (ignored by git).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import requests

from helcim_sandbox.launcher import running_sandbox
from helcim_sandbox.seed import SeedOptions, seed_store
from helcim_sandbox.store import Store

RUN_DIR = Path(".run")
SEED_CUSTOMERS = 60


def main() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    db = RUN_DIR / "demo-sandbox.db"
    for stale in RUN_DIR.glob("demo-sandbox.db*"):
        stale.unlink()
    store = Store(str(db))
    summary = seed_store(store, SeedOptions(SEED_CUSTOMERS, seed=2026))
    store.close()
    print(
        f"seeded {summary['customers']} Helcim customers ({summary['cards']} cards, "
        f"{summary.get('bank_accounts', 0)} bank accounts) into {db}"
    )
    with running_sandbox(db=db, limits="fast", workdir=RUN_DIR) as sandbox:
        print(f"helcim-sandbox is serving {sandbox.base_url} (scaled rate limits)")
        answer = requests.get(f"{sandbox.base_url}/connection-test", headers=sandbox.headers, timeout=10)
        print(
            f"connection test: {answer.status_code} {answer.json()}; "
            f"minute-limit-remaining {answer.headers['minute-limit-remaining']}"
        )
        page = requests.get(
            f"{sandbox.base_url}/customers",
            params={"limit": 3, "includeCards": "yes"},
            headers=sandbox.headers,
            timeout=10,
        ).json()
        for customer in page:
            print(
                f"  {customer['customerCode']:>8}  {customer['contactName'] or customer['businessName']:<28}"
                f" cards: {len(customer['cards'])}"
            )
        stats_path = RUN_DIR / "sandbox-stats.json"
        stats_path.write_text(json.dumps(sandbox.stats(), indent=2) + "\n")
        print(f"request counts: {stats_path}")
    print("sandbox stopped. The nightly job (crmsync run) is not built yet: see the README's roadmap.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
