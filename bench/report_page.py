"""report.html with 50,000 findings in a real headless Chromium: time to first render, to filter, to open a group.

A reconciliation is made from synthetic snapshot frames (cards expired,
without a default, beside a valid default; bank data never read, so every
customer is also ``stale_payment_data``), written by
:func:`crmsync.reconcile.report.write_reconciliation` exactly as a run writes
it, and opened in Chromium through Playwright (Debian's chromium, as the
tests use it). Per page, the median of a few loads:

* **first render**: navigation start to first contentful paint, and to the
  page being usable (its script done: groups drawn, filters and ticks live);
* **filter**: typing a filter that matches about 1 in 10 findings, until the
  next frame is painted (counts of every group redrawn, open groups redrawn);
* **open a group**: the largest group's first page of rows drawn.

Before the browser: how long the actions take to propose (``actions.csv``)
and the whole report to write (every CSV, summary.json, report.html).

Baseline, measured in the same run: the same page with 1,000 findings.
Targets at 50,000 findings: usable within 3 s, a filter within 300 ms.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from crmsync.reconcile.actions import propose
from crmsync.reconcile.findings import reconcile
from crmsync.reconcile.report import write_reconciliation
from crmsync.schemas.helcim import BANK_COLUMNS, CARD_COLUMNS, CUSTOMER_COLUMNS, PAD_COLUMNS

TODAY = date(2026, 12, 1)
SIZES = {"baseline": 1_000, "large": 50_000}
LOADS = 3
TARGET_READY_MS = 3000
TARGET_FILTER_MS = 300


def frames(findings: int) -> dict[str, pd.DataFrame]:
    """Snapshot frames with about ``findings`` findings: per customer one card finding and one stale one."""
    n = findings // 2
    ids = list(range(28_000_000, 28_000_000 + n))
    customers = pd.DataFrame(
        [
            dict.fromkeys(CUSTOMER_COLUMNS, "")
            | {"helcim_id": i, "customer_code": f"CST{i - 27_990_000}", "contact_name": f"Customer {k:05d}"}
            for k, i in enumerate(ids)
        ],
        columns=list(CUSTOMER_COLUMNS),
    ).astype({"helcim_id": "int64"})
    cards = []
    for k, i in enumerate(ids):
        f6l4 = f"4{k % 100_000:05d}{k % 10_000:04d}"
        if k % 3 == 0:  # two cards, none default: no_default_card
            cards += [
                (2 * i, i, "A", f6l4, "0130", False),
                (2 * i + 1, i, "A", f6l4[:-1] + "9", "0231", False),
            ]
        elif k % 3 == 1:  # an expired card beside a valid default: card_expired (warning), delete_card
            cards += [
                (2 * i, i, "B", f6l4, "0125", False),
                (2 * i + 1, i, "B", f6l4[:-1] + "8", "0230", True),
            ]
        else:  # an expired default and nothing else: card_expired (critical)
            cards.append((2 * i, i, "C", f6l4, "0125", True))
    card_frame = pd.DataFrame(
        [(*c, "2024-01-01 00:00:00") for c in cards], columns=list(CARD_COLUMNS)
    ).astype({"card_id": "int64", "helcim_id": "int64", "is_default": "bool"})
    return {
        "customers": customers,
        "cards": card_frame,
        "banks": pd.DataFrame(columns=list(BANK_COLUMNS)).astype({"bank_id": "int64", "helcim_id": "int64"}),
        "pads": pd.DataFrame(columns=list(PAD_COLUMNS)).astype(
            {"pad_id": "int64", "helcim_id": "int64", "bank_id": "int64"}
        ),
    }


def write_page(findings: int, folder: Path) -> tuple[Path, int, dict[str, float]]:
    """The report's files for about ``findings`` findings, and how long writing them and the actions took."""
    f = frames(findings)
    links = pd.DataFrame({"crm_id": pd.Series(dtype="str"), "helcim_id": pd.Series(dtype="int64")})
    refreshed = pd.DataFrame({"helcim_id": pd.Series(dtype="int64"), "refreshed_at": pd.Series(dtype="str")})
    rec = reconcile(
        f["customers"], f["cards"], f["banks"], f["pads"], links, None, TODAY, bank_refreshed=refreshed
    )
    started = time.perf_counter()
    propose(rec)
    proposed = time.perf_counter()
    files = write_reconciliation(folder, rec, previous=None, generated_at="bench")
    written = time.perf_counter()
    timings = {
        "propose_ms": round((proposed - started) * 1000, 1),
        "write_ms": round((written - proposed) * 1000, 1),
    }
    return Path(files.outputs["report"]), len(rec.findings), timings


_FILTER = """async (needle) => {
  const input = document.getElementById("filter");
  const t0 = performance.now();
  input.value = needle;
  input.dispatchEvent(new Event("input"));
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}"""
_OPEN = """async () => {
  const groups = Array.from(document.querySelectorAll("section.group"));
  const big = groups.sort((a, b) => Number(b.querySelector(".n").textContent) - Number(a.querySelector(".n").textContent))[0];
  const t0 = performance.now();
  big.querySelector(".toggle").click();
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}"""


def measure(browser: Any, report: Path) -> dict[str, float]:
    runs: dict[str, list[float]] = {
        "first_paint_ms": [],
        "usable_ms": [],
        "filter_ms": [],
        "open_group_ms": [],
    }
    for _ in range(LOADS):
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(report.as_uri())
        page.wait_for_selector("html[data-js=ready]")
        paint = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1")
        runs["first_paint_ms"].append(float(paint))
        runs["usable_ms"].append(float(page.get_attribute("html", "data-ready-at") or "nan"))
        runs["open_group_ms"].append(float(page.evaluate(_OPEN)))
        runs["filter_ms"].append(float(page.evaluate(_FILTER, "customer 0")))
        page.close()
    return {name: round(statistics.median(values), 1) for name, values in runs.items()}


def run() -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        print("no Chromium on PATH: make browser installs Debian's")
        return {"skipped": "no chromium", "targets_met": False}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        for name, size in SIZES.items():
            report, count, timings = write_page(size, Path(tmp) / name)
            results[name] = {
                "findings": count,
                **timings,
                "html_mb": round(report.stat().st_size / 1e6, 1),
                **measure(browser, report),
            }
        browser.close()
    base, large = results["baseline"], results["large"]
    print(f"{'':<16}{'baseline':>12}{'large':>12}{'ratio':>8}")
    for key in (
        "findings",
        "propose_ms",
        "write_ms",
        "html_mb",
        "first_paint_ms",
        "usable_ms",
        "filter_ms",
        "open_group_ms",
    ):
        ratio = large[key] / base[key] if base[key] else float("nan")
        print(f"{key:<16}{base[key]:>12}{large[key]:>12}{ratio:>7.1f}x")
    results["targets_met"] = large["usable_ms"] < TARGET_READY_MS and large["filter_ms"] < TARGET_FILTER_MS
    print(
        f"targets at {large['findings']:,} findings: usable < {TARGET_READY_MS} ms, filter < {TARGET_FILTER_MS} ms: "
        f"{'met' if results['targets_met'] else 'MISSED'}"
    )
    return results
