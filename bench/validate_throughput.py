"""crmsync validate speed: extract + normalise + validate a 1,000,000-row generic export.

Targets on the 2-core machine: >= 100,000 rows/s and < 2 GB peak memory.

Baseline measured in the same run: ``pandas.read_csv(path, dtype=str)`` of the
same file — what merely loading the export as text costs with the obvious tool.

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
    from crmsync.crm.extract import read_crm
    from crmsync.crm.normalize import normalize_crm
    from crmsync.crm.profiles import load_profile
    from crmsync.crm.validate import validate_frame

    profile = load_profile("generic")
    started = time.perf_counter()
    export = read_crm(path, profile)
    read = time.perf_counter()
    normalised = normalize_crm(export.frame)
    normalised_at = time.perf_counter()
    valid, rejects = validate_frame(normalised, export.frame)
    done = time.perf_counter()
    rejected = len(export.frame) - len(valid)
    return {
        "seconds": done - started,
        "rows": len(export.frame),
        "valid": len(valid),
        "rejected": rejected,
        "problems": len(rejects),
        "parser": export.parser,
        "extract_seconds": read - started,
        "normalise_seconds": normalised_at - read,
        "validate_seconds": done - normalised_at,
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


def run(rows: int = ROWS) -> dict[str, Any]:
    from bench.generate_crm import DATA, generate

    path = DATA / f"crm_{rows}.csv"
    if not path.exists():
        started = time.perf_counter()
        generate(rows, path)
        print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f} s: {path}")
    size_mb = path.stat().st_size / 1e6
    baseline = _measure("baseline", path)
    pipeline = _measure("pipeline", path)
    rate = pipeline["rows"] / pipeline["seconds"]
    met = {"rate": rate >= TARGETS["rows_per_s"], "memory": pipeline["peak_mb"] < TARGETS["peak_mb"]}

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    ratio = pipeline["seconds"] / baseline["seconds"]
    print(f"{rows:,}-row generic export, {size_mb:.0f} MB, {pipeline['rejected']:,} rows to reject")
    print(
        f"  baseline pandas.read_csv(dtype=str)      {baseline['seconds']:6.2f} s = "
        f"{baseline['rows'] / baseline['seconds']:9,.0f} rows/s   peak {baseline['peak_mb']:6,.0f} MB"
    )
    print(
        f"  extract+normalise+validate              {pipeline['seconds']:6.2f} s = {rate:9,.0f} rows/s   "
        f"peak {pipeline['peak_mb']:6,.0f} MB   {ratio:.2f}x the baseline's time"
    )
    print(
        f"    (extract {pipeline['extract_seconds']:.2f} s, normalise {pipeline['normalise_seconds']:.2f} s, "
        f"validate {pipeline['validate_seconds']:.2f} s; {pipeline['parser']} parser)"
    )
    print(
        f"  targets: >= {TARGETS['rows_per_s']:,.0f} rows/s {mark(met['rate'])}, "
        f"< {TARGETS['peak_mb']:,.0f} MB {mark(met['memory'])}"
    )
    return {
        "rows": pipeline["rows"],
        "file_mb": round(size_mb, 1),
        "rejected": pipeline["rejected"],
        "seconds": round(pipeline["seconds"], 2),
        "rows_per_s": round(rate),
        "peak_mb": round(pipeline["peak_mb"]),
        "extract_seconds": round(pipeline["extract_seconds"], 2),
        "normalise_seconds": round(pipeline["normalise_seconds"], 2),
        "validate_seconds": round(pipeline["validate_seconds"], 2),
        "baseline_read_csv_seconds": round(baseline["seconds"], 2),
        "baseline_peak_mb": round(baseline["peak_mb"]),
        "time_vs_baseline": round(ratio, 2),
        "targets": TARGETS,
        "targets_met": all(met.values()),
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        print(json.dumps(_worker(argv[1], Path(argv[2]))))
        return 0
    run(int(argv[0]) if argv else ROWS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
