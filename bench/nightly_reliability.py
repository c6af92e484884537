"""The nightly job under faults, killed twice and resumed: does it converge, and what does it cost?

10,000 generic CRM rows go to an empty helcim-sandbox with ``fast`` limits
(Helcim's shape: 5 concurrent, 100 per 1 s "minute", 3,000 per 60 s "hour")
and :data:`FAULTS`: 500s, answers dropped after the write, stalls (a stalled
request answers after 3 s; the client's deadline is 2 s), and poisoned answers
(HTML pages, cut-off JSON, wrong shapes, creates answered without an id).
``crmsync run`` runs as cron would, in its own process, is killed with SIGKILL
twice and stopped with SIGTERM once at random moments; a fourth run finishes
the work, and a fifth, fault-free, must find nothing to do (Helcim equal to
the export, field by field).

Checked: zero duplicate customer codes, every CRM row in Helcim, no 429 counted
as a failure, every run's accounting adds up.

Figures, as ratios to named baselines measured in the same run:

* API calls spent by the killed, resumed runs over the **minimum possible**
  (one create per row, plus the customer pages each run must read);
* wall time over the **ideal** at the hour limit (minimum calls / 3,000 per 60 s);
* retries, 429s received, writes resolved by lookup after a kill.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.generate_crm import generate
from helcim_sandbox.launcher import running_sandbox

ROWS = 10_000
FAULTS = (
    "error500=0.04,drop_after_commit=0.02,timeout=0.01,timeout_s=3,"
    "html=0.005,bad_json=0.005,wrong_shape=0.005,no_id=0.01,seed=11"
)
#: How each run before the last is stopped: SIGKILL (no chance to clean up) twice, then SIGTERM.
STOPS = (signal.SIGKILL, signal.SIGKILL, signal.SIGTERM)
TOKEN = "bench-token"
PER_HOUR_WINDOW = 3000  # fast limits: 3,000 per 60 s
HOUR_WINDOW_S = 60.0


def _crmsync(env: dict[str, str], export: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", "from crmsync.cli import main; main()", "run", "--crm", str(export),
            "--out", str(out), "--max-calls", "40000", "--log-format", "json"]  # fmt: skip


def _all_codes(base_url: str) -> list[str]:
    codes: list[str] = []
    page = 1
    while True:
        answer = requests.get(
            f"{base_url}/customers",
            params={"limit": 100, "page": page},
            headers={"api-token": TOKEN},
            timeout=60,
        )
        answer.raise_for_status()
        batch = answer.json()
        codes += [c["customerCode"] for c in batch]
        if len(batch) < 100:
            return codes
        page += 1


def run() -> dict[str, Any]:
    rng = random.Random(2026)
    with tempfile.TemporaryDirectory(prefix="bench-nightly-") as tmp:
        folder = Path(tmp)
        export = generate(ROWS, folder / "crm.csv", seed=5, invalid_share=0.0)
        with running_sandbox(tokens=(TOKEN,), limits="fast", faults=FAULTS, workdir=folder) as sandbox:
            sandbox.configure(duplicate_codes="allow")  # let a duplicate happen, so it can be seen
            env = {
                **os.environ,
                "HELCIM_API_URL": sandbox.base_url,
                "HELCIM_API_TOKEN": TOKEN,
                "CRMSYNC_STATE_DB": str(folder / "state.db"),
                "CRMSYNC_RATE_LIMITS": "fast",
                "CRMSYNC_TIMEOUT": "2",
                "CRMSYNC_CONFIG": "",
            }
            runs: list[dict[str, Any]] = []
            started = time.monotonic()
            for attempt in range(len(STOPS) + 1):
                out = folder / f"run{attempt + 1}"
                log = (folder / f"run{attempt + 1}.log").open("w")
                process = subprocess.Popen(_crmsync(env, export, out), env=env, stdout=log, stderr=log)
                kill_at = rng.uniform(15, 60) if attempt < len(STOPS) else None
                stop = STOPS[attempt] if attempt < len(STOPS) else None
                try:
                    process.wait(timeout=kill_at)
                except subprocess.TimeoutExpired:
                    assert stop is not None
                    process.send_signal(stop)
                    process.wait()
                log.close()
                record: dict[str, Any] = {
                    "run": attempt + 1,
                    "exit": process.returncode,
                    "stopped_after_s": kill_at,
                    "stopped_by": signal.Signals(stop).name if stop is not None and kill_at else None,
                }
                if (out / "summary.json").exists():
                    summary = json.loads((out / "summary.json").read_text())
                    keys = ("rows_read", "created", "updated", "unchanged", "deferred", "failed", "rejected",
                            "conflicts", "adds_up", "api_calls", "retries", "rate_limited_429",
                            "recovered_from_earlier_run", "duration_seconds", "status")  # fmt: skip
                    record |= {k: summary[k] for k in keys}
                runs.append(record)
                print(f"  run {attempt + 1}: {record}", flush=True)
            wall = time.monotonic() - started
            stats = sandbox.stats()

            sandbox.configure(faults="")
            check = subprocess.run(
                _crmsync(env, export, folder / "check"), env=env, capture_output=True, text=True, check=False
            )
            final = json.loads((folder / "check" / "summary.json").read_text())
            sandbox.configure(limits="off")
            codes = _all_codes(sandbox.base_url)

    by_op = stats["by_operation"]
    posts = sum(by_op.get("create-customer", {}).values())
    lookups_and_pages = sum(by_op.get("get-customers", {}).values())
    bank_reads = sum(
        v for k, d in by_op.items() if k.startswith("get-customer-bank") or "pad" in k for v in d.values()
    )
    total = int(stats["total"])
    rate_limited = sum(d.get("429", 0) for d in by_op.values())
    pages_minimum = len(runs) * 1 + math.ceil(ROWS / 100)  # each run reads at least one page; one full pass
    minimum = ROWS + pages_minimum
    ideal_seconds = minimum / PER_HOUR_WINDOW * HOUR_WINDOW_S
    duplicates = len(codes) - len(set(codes))
    ok = (
        duplicates == 0
        and len(set(codes)) == ROWS
        and final["created"] == 0
        and final["updated"] == 0
        and final["unchanged"] == ROWS
        and all(r.get("adds_up", True) for r in runs)
        and all(r.get("failed", 0) == 0 for r in runs)
        and check.returncode == 0
        and runs[len(STOPS) - 1].get("status") in ("interrupted", None)  # SIGTERM: recorded as interrupted
    )
    stops = ", ".join(f"run {n} by {s.name}" for n, s in enumerate(STOPS, start=1))
    print(f"{ROWS:,} CRM rows, faults {FAULTS}, fast limits; stopped: {stops}")
    print(f"  Helcim customers: {len(codes):,}, distinct codes {len(set(codes)):,}, duplicates {duplicates}")
    print(
        f"  check run (no faults): {final['created']} created, {final['updated']} updated, "
        f"{final['unchanged']:,} unchanged — Helcim equals the export field by field: {final['unchanged'] == ROWS}"
    )
    print(
        f"  API calls: {total:,} = {total / minimum:.3f}x the minimum possible ({minimum:,}: {ROWS:,} creates + "
        f"{pages_minimum} page reads); POSTs {posts:,}, GET /customers (pages + lookups) {lookups_and_pages:,}, "
        f"bank/PAD reads {bank_reads:,}"
    )
    print(
        f"  wall time {wall:.0f} s = {wall / ideal_seconds:.2f}x the ideal at the hour limit ({ideal_seconds:.0f} s); "
        f"429s received {rate_limited}; retries {sum(r.get('retries', 0) for r in runs)} (runs that finished)"
    )
    print(f"  converged: {ok}")
    return {
        "rows": ROWS,
        "faults": FAULTS,
        "runs": runs,
        "wall_seconds": round(wall, 1),
        "ideal_seconds": round(ideal_seconds, 1),
        "api_calls": total,
        "minimum_calls": minimum,
        "calls_over_minimum": round(total / minimum, 3),
        "posts": posts,
        "get_customers": lookups_and_pages,
        "bank_reads": bank_reads,
        "rate_limited_429": rate_limited,
        "duplicates": duplicates,
        "distinct_codes": len(set(codes)),
        "check_run": {k: final[k] for k in ("created", "updated", "unchanged", "api_calls")},
        "targets_met": ok,
    }
