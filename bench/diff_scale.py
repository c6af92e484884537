"""The three-way diff at a million customers, beside datacompy and csv-diff in the same run.

Data: 1,000,000 normalised CRM rows and 1,000,000 Helcim customers with 1 %
creates (CRM-only rows), 5 % updates (changed in the CRM) and 0.5 % conflicts
(changed on both sides, differently), plus the base both sides agreed on.

Measured, each in its own child process so peak memory is its own:

* ``crmsync diff`` — :func:`pipeline.diff.diff` (CRM, Helcim, base, links);
* ``datacompy`` — ``datacompy.PandasCompare`` on the same CRM and Helcim frames,
  joined on crm_id/customer_code over the same columns (a two-way compare: it
  cannot tell updates from conflicts, but the set of keys that differ must be
  the same as ours);
* ``csv-diff`` — ``csv_diff.compare`` on a 100,000-row subset written as CSV;
* ``load only`` — the child reading the frames and doing nothing else, the
  floor under every peak.

Targets: >= 5x faster than datacompy at 1M rows, < 10 s, < 2 GB peak.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from typing import Any

import numpy as np
import pandas as pd

from crmsync.schemas.helcim import SYNCED_FIELDS

ROWS = 1_000_000
SUBSET = 100_000
SHARE_CREATES, SHARE_UPDATES, SHARE_CONFLICTS = 0.01, 0.05, 0.005
TARGETS = {"speedup_vs_datacompy": 5.0, "seconds": 10.0, "peak_gb": 2.0}

POOLS: dict[str, list[str]] = {
    "contact_name": [
        f"{first} {last}"
        for first in ("Ada", "Bob", "Cy", "Di", "Eve", "Fay", "Gus", "Hal")
        for last in ("King", "Lee", "Moore", "Nash", "Ortiz", "Patel", "Quinn", "Roy", "Singh", "Tran")
    ],
    "business_name": [
        "",
        "",
        "",
        "Prairie Coffee Co.",
        "Summit Plumbing Ltd.",
        "Harbour Dental",
        "Cedar Bakery",
    ],
    "cell_phone": [f"403555{n:04d}" for n in range(0, 10000, 7)] + [""],
    "name": ["Ada King", "Bob Lee", "Warehouse", "Head Office", "Accounts"],
    "street1": [
        f"{n} {s}" for n in range(1, 400, 3) for s in ("Main St", "King St W", "Elm Ave", "4 Ave SW")
    ],
    "street2": ["", "", "", "Suite 100", "Unit 4"],
    "city": ["Calgary", "Edmonton", "Toronto", "Vancouver", "Seattle", "Denver", "Halifax"],
    "province": ["AB", "ON", "BC", "WA", "CO", "NS"],
    "country": ["CAN", "USA"],
    "postal_code": [f"T2P {d}A{d}" for d in range(10)] + ["98101", "80202"],
    "phone": [f"780555{n:04d}" for n in range(0, 10000, 11)] + [""],
    "email": [f"user{n}@example.com" for n in range(3000)] + [""],
}


def _pool(field: str) -> list[str]:
    return POOLS[field] if field in POOLS else POOLS[field.split("_", 1)[1]]


def make_frames(rows: int = ROWS, seed: int = 7) -> dict[str, pd.DataFrame]:
    """CRM, Helcim, base and links frames with the advertised mix, and the expected keys."""
    rng = np.random.default_rng(seed)
    ids = pd.Series(np.arange(rows)).astype(str).str.zfill(7)
    crm_ids = ("CRM-" + ids).astype("str")
    agreed = pd.DataFrame({"crm_id": crm_ids})
    for field in SYNCED_FIELDS:
        pool = np.array(_pool(field), dtype=object)
        agreed[field] = pd.array(pool[rng.integers(0, len(pool), rows)], dtype="str")
    order = rng.permutation(rows)
    n_create, n_update, n_conflict = (int(rows * s) for s in (SHARE_CREATES, SHARE_UPDATES, SHARE_CONFLICTS))
    creates = order[:n_create]
    updates = order[n_create : n_create + n_update]
    conflicts = order[n_create + n_update : n_create + n_update + n_conflict]
    crm = agreed.copy()
    helcim_values = agreed.copy()
    field_of = rng.integers(0, len(SYNCED_FIELDS), rows)
    for position_set, sides in ((updates, ("crm",)), (conflicts, ("crm", "helcim"))):
        for field_index in np.unique(field_of[position_set]):
            field = SYNCED_FIELDS[field_index]
            picked = position_set[field_of[position_set] == field_index]
            if "crm" in sides:
                crm.loc[picked, field] = crm.loc[picked, field] + " (CRM)"
            if "helcim" in sides:
                helcim_values.loc[picked, field] = helcim_values.loc[picked, field] + " (Helcim)"
    keep = np.ones(rows, dtype=bool)
    keep[creates] = False
    helcim = helcim_values[keep].rename(columns={"crm_id": "customer_code"}).reset_index(drop=True)
    helcim.insert(0, "helcim_id", np.arange(28_000_000, 28_000_000 + len(helcim), dtype="int64"))
    helcim["date_created"] = "2026-01-01 00:00:00"
    helcim["date_updated"] = "2026-01-01 00:00:00"
    base = agreed[keep].reset_index(drop=True)
    links = pd.DataFrame({"crm_id": pd.Series(dtype="str"), "helcim_id": pd.Series(dtype="int64")})
    expected = pd.DataFrame(
        {
            "crm_id": crm_ids.iloc[np.concatenate([creates, updates, conflicts])].to_numpy(),
            "kind": ["create"] * n_create + ["update"] * n_update + ["conflict"] * n_conflict,
        }
    )
    return {"crm": crm, "helcim": helcim, "base": base, "links": links, "expected": expected}


# -- the measured jobs (each runs in a child process) -------------------------------------------


def _load(folder: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(folder / f"{name}.parquet") for name in ("crm", "helcim", "base", "links")}


def job_load_only(folder: Path) -> dict[str, Any]:
    _load(folder)
    return {}


def job_crmsync(folder: Path) -> dict[str, Any]:
    from crmsync.sync.diff import diff

    frames = _load(folder)
    started = time.perf_counter()
    result = diff(frames["crm"], frames["helcim"], frames["base"], frames["links"])
    seconds = time.perf_counter() - started
    changed = (
        set(result.updates["crm_id"])
        | set(result.conflicts["crm_id"])
        | set(result.exports.loc[result.exports["crm_id"] != "", "crm_id"])
    )
    return {
        "seconds": seconds,
        "creates": sorted(result.creates["crm_id"]),
        "changed": sorted(changed),
        "counts": result.counts(),
    }


def job_datacompy(folder: Path) -> dict[str, Any]:
    import datacompy

    frames = _load(folder)
    crm = frames["crm"]
    helcim = (
        frames["helcim"]
        .drop(columns=["helcim_id", "date_created", "date_updated"])
        .rename(columns={"customer_code": "crm_id"})
    )
    started = time.perf_counter()
    compare = datacompy.PandasCompare(crm, helcim, join_columns="crm_id", df1_name="crm", df2_name="helcim")
    changed = compare.all_mismatch()["crm_id"]
    only_crm = compare.df1_unq_rows["crm_id"]
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "creates": sorted(only_crm.astype(str)),
        "changed": sorted(changed.astype(str)),
    }


def job_csv_diff(folder: Path) -> dict[str, Any]:
    from csv_diff import compare, load_csv

    started = time.perf_counter()
    with (folder / "crm_subset.csv").open() as a, (folder / "helcim_subset.csv").open() as b:
        result = compare(load_csv(a, key="crm_id"), load_csv(b, key="crm_id"))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "changed": sorted(str(c["key"]) for c in result["changed"]),
        "creates": sorted(str(r["crm_id"]) for r in result["removed"]),
    }


def job_crmsync_subset(folder: Path) -> dict[str, Any]:
    from crmsync.sync.diff import diff

    crm = pd.read_csv(folder / "crm_subset.csv", dtype=str, keep_default_na=False)
    raw = pd.read_csv(folder / "helcim_subset.csv", dtype=str, keep_default_na=False)
    helcim = raw.rename(columns={"crm_id": "customer_code"})
    helcim.insert(0, "helcim_id", np.arange(len(helcim), dtype="int64"))
    empty_base = crm.iloc[0:0]
    links = pd.DataFrame({"crm_id": pd.Series(dtype="str"), "helcim_id": pd.Series(dtype="int64")})
    started = time.perf_counter()
    result = diff(crm, helcim, empty_base, links)
    seconds = time.perf_counter() - started
    changed = (
        set(result.updates["crm_id"])
        | set(result.conflicts["crm_id"])
        | set(result.exports.loc[result.exports["crm_id"] != "", "crm_id"])
    )
    return {"seconds": seconds, "changed": sorted(changed), "creates": sorted(result.creates["crm_id"])}


def _peak_mb() -> float:
    """This process's own peak RSS. ``ru_maxrss`` would do, except that Linux carries it across the
    fork+exec of a spawned child, so it starts at the parent's size; VmHWM belongs to this process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(job: Callable[[Path], dict[str, Any]], folder: Path, queue: mp.Queue[Any]) -> None:
    result = job(folder)
    result["peak_mb"] = _peak_mb()
    queue.put(result)


def measure(job: Callable[[Path], dict[str, Any]], folder: Path) -> dict[str, Any]:
    context = mp.get_context("spawn")
    queue: mp.Queue[Any] = context.Queue()
    process = context.Process(target=_child, args=(job, folder, queue))
    process.start()
    while True:
        try:
            result: dict[str, Any] = queue.get(timeout=2)
            break
        except Empty:
            if not process.is_alive():
                raise RuntimeError(
                    f"{job.__name__} died (exit code {process.exitcode}) without a result"
                ) from None
    process.join()
    return result


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-diff-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        frames = make_frames()
        for name in ("crm", "helcim", "base", "links"):
            frames[name].to_parquet(folder / f"{name}.parquet")
        subset_ids = set(frames["crm"]["crm_id"].iloc[:SUBSET])
        frames["crm"][frames["crm"]["crm_id"].isin(subset_ids)].to_csv(folder / "crm_subset.csv", index=False)
        helcim_subset = frames["helcim"][frames["helcim"]["customer_code"].isin(subset_ids)]
        helcim_subset.drop(columns=["helcim_id", "date_created", "date_updated"]).rename(
            columns={"customer_code": "crm_id"}
        ).to_csv(folder / "helcim_subset.csv", index=False)
        expected = frames["expected"]
        print(f"generated {ROWS:,} + {len(frames['helcim']):,} rows in {time.perf_counter() - started:.1f} s")
        del frames

        floor = measure(job_load_only, folder)
        ours = measure(job_crmsync, folder)
        theirs = measure(job_datacompy, folder)
        small_theirs = measure(job_csv_diff, folder)
        small_ours = measure(job_crmsync_subset, folder)

    want_creates = sorted(expected.loc[expected["kind"] == "create", "crm_id"])
    want_changed = sorted(expected.loc[expected["kind"] != "create", "crm_id"])
    agree_datacompy = ours["changed"] == theirs["changed"] and ours["creates"] == theirs["creates"]
    agree_expected = ours["changed"] == want_changed and ours["creates"] == want_creates
    agree_csv_diff = (
        small_ours["changed"] == small_theirs["changed"] and small_ours["creates"] == small_theirs["creates"]
    )
    speedup = theirs["seconds"] / ours["seconds"]
    peak_gb = ours["peak_mb"] / 1024
    print(
        f"diff of {ROWS:,} CRM rows against {ROWS - len(want_creates):,} Helcim customers "
        f"({len(want_creates):,} creates, {ROWS * SHARE_UPDATES:,.0f} updates, {ROWS * SHARE_CONFLICTS:,.0f} conflicts)"
    )
    print(
        f"  baseline datacompy.PandasCompare {theirs['seconds']:7.2f} s  peak {theirs['peak_mb']:7.0f} MB   1.00x"
    )
    print(
        f"  crmsync diff (three-way)     {ours['seconds']:7.2f} s  peak {ours['peak_mb']:7.0f} MB   "
        f"{speedup:.1f}x faster   (targets: >= 5x, < 10 s, < 2 GB)"
    )
    print(
        f"  loading the frames alone                peak {floor['peak_mb']:7.0f} MB   "
        f"(the diff adds {ours['peak_mb'] - floor['peak_mb']:.0f} MB, datacompy "
        f"{theirs['peak_mb'] - floor['peak_mb']:.0f} MB)"
    )
    print(
        f"  changed keys: {len(ours['changed']):,}; same set as datacompy: {agree_datacompy}; "
        f"as generated: {agree_expected}; buckets {ours['counts']}"
    )
    print(
        f"{SUBSET:,}-row subset: csv-diff {small_theirs['seconds']:.2f} s (1.00x), crmsync diff "
        f"{small_ours['seconds']:.2f} s ({small_theirs['seconds'] / small_ours['seconds']:.1f}x faster); "
        f"same changed keys: {agree_csv_diff}"
    )
    met = (
        speedup >= TARGETS["speedup_vs_datacompy"]
        and ours["seconds"] < TARGETS["seconds"]
        and peak_gb < TARGETS["peak_gb"]
        and agree_datacompy
        and agree_expected
        and agree_csv_diff
    )
    return {
        "rows": ROWS,
        "crmsync_seconds": round(ours["seconds"], 2),
        "crmsync_peak_mb": round(ours["peak_mb"]),
        "datacompy_seconds": round(theirs["seconds"], 2),
        "datacompy_peak_mb": round(theirs["peak_mb"]),
        "load_only_peak_mb": round(floor["peak_mb"]),
        "speedup_vs_datacompy": round(speedup, 1),
        "csv_diff_subset_seconds": round(small_theirs["seconds"], 2),
        "crmsync_subset_seconds": round(small_ours["seconds"], 2),
        "same_keys_as_datacompy": agree_datacompy,
        "same_keys_as_csv_diff": agree_csv_diff,
        "same_keys_as_generated": agree_expected,
        "buckets": ours["counts"],
        "targets": TARGETS,
        "targets_met": met,
    }
