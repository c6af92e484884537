"""Run the benchmarks: ``python -m bench [NAME ...]`` (``make bench`` runs them all).

Each benchmark prints its figures as ratios against a named baseline measured
in the same run, and writes them to ``bench/results/NAME.json`` (not committed).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

BENCHMARKS = {
    "sandbox": "bench.sandbox_throughput",
    "pacing": "bench.client_pacing",
    "validate": "bench.validate_throughput",
    "diff": "bench.diff_scale",
    "nightly": "bench.nightly_reliability",
    "report": "bench.report_page",
}
RESULTS = Path(__file__).parent / "results"


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    failed = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(BENCHMARKS[name])
        result = module.run()
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        if not result.get("targets_met", True):
            failed.append(name)
    print(f"\nresults in {RESULTS}/")
    if failed:
        print(f"targets missed: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
