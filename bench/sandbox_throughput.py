"""helcim-sandbox speed: GET and create throughput, and seeding 100,000 customers.

Targets on the 2-core machine: >= 500 GET /customers/{id} per second and
>= 300 POST /customers per second from 8 concurrent clients with limits off;
seed 100,000 customers in < 60 s.

Baselines measured in the same run:

* throughput: ``bare-uvicorn`` — a Starlette endpoint answering constant JSON
  on the same server stack (``bench/baseline_server.py``) under the same load
  generator. The ratio says what share of the stack's ceiling the sandbox keeps
  once it authenticates, counts limits, validates and touches SQLite.
* seeding: ``raw-executemany`` — inserting the same number of bare customer
  rows (id and code only) with one ``executemany`` into an empty SQLite file.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.loadgen import hammer
from helcim_sandbox.launcher import running_sandbox
from helcim_sandbox.seed import SeedOptions, seed_store
from helcim_sandbox.store import FIRST_IDS, Store

SECONDS = 5.0
CLIENTS = 8
SEED_CUSTOMERS = 100_000
TARGETS = {"get_per_s": 500.0, "create_per_s": 300.0, "seed_seconds": 60.0}


def _baseline_throughput(folder: Path) -> float:
    url_file = folder / "baseline.url"
    process = subprocess.Popen([sys.executable, "-m", "bench.baseline_server", str(url_file)])
    try:
        while not url_file.exists():
            time.sleep(0.02)
        base = url_file.read_text().strip()
        hammer(base, lambda i, n: ("GET", "/connection-test", None), clients=CLIENTS, seconds=1)  # warm-up
        result = hammer(
            base, lambda i, n: ("GET", "/connection-test", None), clients=CLIENTS, seconds=SECONDS
        )
        return result.per_second
    finally:
        process.terminate()
        process.wait()


def _sandbox_throughput(folder: Path) -> tuple[float, float, dict[str, Any]]:
    db = folder / "throughput.db"
    store = Store(str(db))
    seed_store(store, SeedOptions(5_000, seed=1, today=date(2026, 11, 25)))
    store.close()
    first = FIRST_IDS["customers"]
    with running_sandbox(db=db, limits="off", workdir=folder) as sandbox:
        headers = sandbox.headers
        rng = [random.Random(i) for i in range(CLIENTS)]

        def get(i: int, n: int) -> tuple[str, str, bytes | None]:
            return "GET", f"/customers/{first + rng[i].randrange(5_000)}", None

        def create(i: int, n: int) -> tuple[str, str, bytes | None]:
            body = {
                "customerCode": f"BENCH-{i}-{n}",
                "contactName": "Bench Customer",
                "cellPhone": "403-555-0100",
                "billingAddress": {
                    "name": "Bench Customer",
                    "street1": "440 2 Ave SW",
                    "city": "Calgary",
                    "province": "AB",
                    "country": "CAN",
                    "postalCode": "T2P 5E9",
                    "email": "bench@example.com",
                },
            }
            return "POST", "/customers", json.dumps(body).encode()

        hammer(sandbox.base_url, get, clients=CLIENTS, seconds=1, headers=headers)  # warm-up
        gets = hammer(sandbox.base_url, get, clients=CLIENTS, seconds=SECONDS, headers=headers)
        creates = hammer(sandbox.base_url, create, clients=CLIENTS, seconds=SECONDS, headers=headers)
        assert set(gets.statuses) == {200}, gets.statuses
        assert set(creates.statuses) == {200}, creates.statuses
        stored = sandbox.stats()["data"]["customers"]
    return gets.per_second, creates.per_second, {"customers_after_creates": stored}


def _seed_time(folder: Path) -> tuple[float, float]:
    seeded = folder / "seed.db"
    store = Store(str(seeded))
    started = time.perf_counter()
    seed_store(store, SeedOptions(SEED_CUSTOMERS, seed=7, today=date(2026, 11, 25)))
    seed_seconds = time.perf_counter() - started
    store.close()

    raw = sqlite3.connect(folder / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, customer_code TEXT NOT NULL UNIQUE)")
    started = time.perf_counter()
    raw.execute("BEGIN")
    raw.executemany("INSERT INTO customers VALUES (?, ?)", ((i, f"CST{i}") for i in range(SEED_CUSTOMERS)))
    raw.execute("COMMIT")
    raw_seconds = time.perf_counter() - started
    raw.close()
    return seed_seconds, raw_seconds


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        folder = Path(tmp)
        baseline = _baseline_throughput(folder)
        get_rate, create_rate, extra = _sandbox_throughput(folder)
        seed_seconds, raw_seconds = _seed_time(folder)
    met = {
        "get": get_rate >= TARGETS["get_per_s"],
        "create": create_rate >= TARGETS["create_per_s"],
        "seed": seed_seconds < TARGETS["seed_seconds"],
    }

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"throughput, limits off, {CLIENTS} concurrent keep-alive clients, {SECONDS:g} s each")
    print(f"  baseline bare-uvicorn (constant JSON)   {baseline:8.0f} req/s   1.00x")
    print(
        f"  GET  /v2/customers/{{id}}                {get_rate:8.0f} req/s   {get_rate / baseline:.2f}x"
        f"   target >= {TARGETS['get_per_s']:.0f}/s  {mark(met['get'])}"
    )
    print(
        f"  POST /v2/customers                      {create_rate:8.0f} req/s   {create_rate / baseline:.2f}x"
        f"   target >= {TARGETS['create_per_s']:.0f}/s  {mark(met['create'])}"
    )
    print(f"seed {SEED_CUSTOMERS:,} customers with cards, banks and PADs into SQLite")
    print(f"  baseline raw-executemany (id, code)     {raw_seconds:8.2f} s       1.00x")
    print(
        f"  helcim-sandbox seed                     {seed_seconds:8.2f} s       {seed_seconds / raw_seconds:.1f}x"
        f"   target < {TARGETS['seed_seconds']:.0f} s  {mark(met['seed'])}"
    )
    return {
        "baseline_bare_uvicorn_per_s": round(baseline),
        "get_per_s": round(get_rate),
        "create_per_s": round(create_rate),
        "get_vs_baseline": round(get_rate / baseline, 3),
        "create_vs_baseline": round(create_rate / baseline, 3),
        "seed_seconds": round(seed_seconds, 2),
        "seed_baseline_raw_seconds": round(raw_seconds, 3),
        "seed_vs_baseline": round(seed_seconds / raw_seconds, 1),
        **extra,
        "targets": TARGETS,
        "targets_met": all(met.values()),
    }
