"""crmsync validate speed: read, map, normalise and validate 1,000,000-row exports in three layouts.

The same customers as crmsync's generic export, as Shopify's current customers
export (``'``-prefixed ids and phones, three addresses in four incomplete, as in a real store's
export: most rows warn) and
as HubSpot's contact export (multi-line streets), each through
:func:`crmsync.crm.validate.check_export` with ``--profile auto``'s choice —
extract, the profile, whole addresses out of street lines, phone extensions,
normalisation, the key, incomplete addresses, validation.

Targets on the 2-core machine, for every layout: >= 100,000 rows/s and < 2 GB peak memory.

Baseline measured in the same run, per file: ``pandas.read_csv(path, dtype=str)``
of the same file — what merely loading the export as text costs with the obvious tool.

Each measurement runs in its own worker process (imports excluded from the
time, which the worker measures itself); the worker is started by a small
launcher process that reads the worker's peak memory with
``resource.getrusage(RUSAGE_CHILDREN)``, so each figure is one process's max RSS.

``python -m bench.validate_throughput [ROWS]`` runs it alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROWS = 1_000_000
TARGETS = {"rows_per_s": 100_000.0, "peak_mb": 2048.0}
ROOT = Path(__file__).resolve().parent.parent

_LAUNCHER = """
import json, resource, subprocess, sys
worker = subprocess.run(sys.argv[1:], capture_output=True, text=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"returncode": worker.returncode, "stdout": worker.stdout, "stderr": worker.stderr,
                  "peak_mb": usage.ru_maxrss / 1024}))
"""


def _worker(mode: str, path: Path) -> dict[str, Any]:
    """Run one measurement in this process (called in the worker)."""
    if mode == "baseline":
        import pandas as pd

        started = time.perf_counter()
        frame = pd.read_csv(path, dtype=str)
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "rows": len(frame)}
    from crmsync.crm.validate import check_export

    started = time.perf_counter()
    checked = check_export(path, "auto")
    done = time.perf_counter()
    return {
        "seconds": done - started,
        "rows": checked.rows_read,
        "valid": len(checked.valid),
        "rejected": checked.rejected,
        "problems": len(checked.rejects),
        "with_warnings": checked.rows_with_warnings,
        "profile": checked.export.profile,
        "parser": checked.export.parser,
    }


def _measure(mode: str, path: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.validate_throughput", "--worker", mode, str(path)]
    launched = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *command], capture_output=True, text=True, cwd=ROOT, check=True
    )
    report = json.loads(launched.stdout)
    if report["returncode"] != 0:
        raise RuntimeError(f"{mode} worker failed:\n{report['stderr']}")
    result: dict[str, Any] = json.loads(report["stdout"].strip().splitlines()[-1])
    result["peak_mb"] = report["peak_mb"]
    return result


def _layout(rows: int, layout: str) -> dict[str, Any]:
    from bench.generate_crm import DATA, generate

    path = DATA / (f"crm_{rows}.csv" if layout == "generic" else f"crm_{layout}_{rows}.csv")
    if not path.exists():
        started = time.perf_counter()
        generate(rows, path, layout=layout)
        print(f"generated {rows:,} {layout} rows in {time.perf_counter() - started:.1f} s: {path}")
    size_mb = path.stat().st_size / 1e6
    baseline = _measure("baseline", path)
    pipeline = _measure("pipeline", path)
    rate = pipeline["rows"] / pipeline["seconds"]
    ratio = pipeline["seconds"] / baseline["seconds"]
    met = rate >= TARGETS["rows_per_s"] and pipeline["peak_mb"] < TARGETS["peak_mb"]
    print(
        f"{layout:8} {size_mb:4.0f} MB  read_csv {baseline['seconds']:5.2f} s (peak {baseline['peak_mb']:5,.0f} MB)  "
        f"crmsync {pipeline['seconds']:5.2f} s = {rate:8,.0f} rows/s = {ratio:.2f}x read_csv  "
        f"peak {pipeline['peak_mb']:5,.0f} MB  profile {pipeline['profile']}: {pipeline['rejected']:,} rejected, "
        f"{pipeline['with_warnings']:,} with warnings  {'ok' if met else 'MISSED'}"
    )
    return {
        "rows": pipeline["rows"],
        "file_mb": round(size_mb, 1),
        "profile": pipeline["profile"],
        "rejected": pipeline["rejected"],
        "with_warnings": pipeline["with_warnings"],
        "seconds": round(pipeline["seconds"], 2),
        "rows_per_s": round(rate),
        "peak_mb": round(pipeline["peak_mb"]),
        "baseline_read_csv_seconds": round(baseline["seconds"], 2),
        "baseline_peak_mb": round(baseline["peak_mb"]),
        "time_vs_baseline": round(ratio, 2),
        "targets_met": met,
    }


def run(rows: int = ROWS) -> dict[str, Any]:
    from bench.generate_crm import LAYOUTS

    print(
        f"{rows:,} rows per layout; targets >= {TARGETS['rows_per_s']:,.0f} rows/s, < {TARGETS['peak_mb']:,.0f} MB"
    )
    layouts = {layout: _layout(rows, layout) for layout in LAYOUTS}
    return {
        "layouts": layouts,
        "targets": TARGETS,
        "targets_met": all(r["targets_met"] for r in layouts.values()),
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        print(json.dumps(_worker(argv[1], Path(argv[2]))))
        return 0
    run(int(argv[0]) if argv else ROWS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
