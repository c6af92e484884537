"""The nightly job against poisoned answers (helcim-sandbox faults): never a duplicate, a lost row or a leak.

Each test reproduces one path the adversarial review found (issue 10) and
checks the outcome a merchant cares about: what Helcim holds afterwards.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import TOKEN
from tests.jobs.test_plan_cli import invoke, read_csv, row, write_export
from tests.jobs.test_run import assert_adds_up, codes_in_helcim, crmsync, run_env, summary_of, writes


def export_of(tmp_path: Path, count: int, prefix: str = "P") -> Path:
    return write_export(tmp_path / "crm.csv", [row(f"{prefix}-{n:03d}", f"Person {n}") for n in range(count)])


def cached_customers(state: Path) -> int:
    with sqlite3.connect(state) as db:
        return int(db.execute("SELECT COUNT(*) FROM helcim_customers").fetchone()[0])


def linked_ids(state: Path) -> list[int]:
    with sqlite3.connect(state) as db:
        return [int(r[0]) for r in db.execute("SELECT helcim_id FROM links")]


@pytest.fixture
def three_hundred(tmp_path: Path, sandbox: SandboxProcess) -> Path:
    """300 customers in Helcim, created by a first run on another state store; Helcim accepts duplicates."""
    export = export_of(tmp_path, 300)
    first = tmp_path / "first"
    first.mkdir()
    code, output = invoke(first, sandbox, "run", "--crm", str(export), "--out", str(first / "out"))
    assert code == 0, output
    sandbox.configure(duplicate_codes="allow")  # the worst case: nothing in Helcim stops a duplicate
    sandbox.reset_stats()
    return export


def test_an_unreadable_second_page_is_retried_never_read_as_the_end(
    tmp_path: Path, sandbox: SandboxProcess, three_hundred: Path
) -> None:
    sandbox.configure(faults="html=1,op=get-customers,skip=1,count=1,seed=2")  # page 2, once
    code, output = invoke(
        tmp_path, sandbox, "run", "--crm", str(three_hundred), "--out", str(tmp_path / "out")
    )
    assert code == 0, output
    summary = summary_of(tmp_path / "out")
    assert (summary["created"], summary["unchanged"]) == (0, 300)
    assert sandbox.stats()["faults_injected"] == {"html": 1}
    assert len(codes_in_helcim(sandbox)) == 300


@pytest.mark.parametrize("kind", ["html", "bad_json", "wrong_shape"])
def test_pages_that_stay_unreadable_stop_the_run_before_any_write(
    tmp_path: Path, sandbox: SandboxProcess, three_hundred: Path, kind: str
) -> None:
    sandbox.configure(faults=f"{kind}=1,op=get-customers,skip=1")  # page 2 and every page after it
    code, output = invoke(
        tmp_path, sandbox, "run", "--crm", str(three_hundred), "--out", str(tmp_path / "out")
    )
    assert code == 3, output
    assert "not as documented" in output
    summary = summary_of(tmp_path / "out")
    assert (summary["status"], summary["created"], summary["deferred"]) == ("failed", 0, 300)
    assert_adds_up(summary)
    assert "create-customer" not in sandbox.stats()["by_operation"]
    sandbox.configure(faults="")
    assert len(codes_in_helcim(sandbox)) == 300  # not one duplicate


def test_an_html_first_page_neither_wipes_the_cache_nor_sends_a_create(
    tmp_path: Path, sandbox: SandboxProcess, three_hundred: Path
) -> None:
    state = tmp_path / "state.db"
    code, output = invoke(
        tmp_path, sandbox, "run", "--crm", str(three_hundred), "--out", str(tmp_path / "n1")
    )
    assert (code, cached_customers(state)) == (0, 300), output
    sandbox.configure(faults="html=1,op=get-customers")
    code, output = invoke(
        tmp_path, sandbox, "run", "--crm", str(three_hundred), "--out", str(tmp_path / "n2")
    )
    assert code == 3, output
    assert "fresh --state" not in output
    assert cached_customers(state) == 300
    assert "create-customer" not in sandbox.stats()["by_operation"]


def test_a_create_answered_without_an_id_is_found_by_its_code_not_linked_to_customer_0(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    sandbox.configure(faults="no_id=1,op=create-customer", duplicate_codes="allow")
    export = export_of(tmp_path, 30, "N")
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "n1"))
    assert code == 0, output
    results = read_csv(tmp_path / "n1" / "results.csv")
    assert {r["outcome"] for r in results} == {"recovered"}
    ids = linked_ids(tmp_path / "state.db")
    assert len(ids) == 30
    assert min(ids) > 0
    sandbox.configure(faults="")
    codes = codes_in_helcim(sandbox)
    assert len(codes) == len(set(codes)) == 30
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "n2"))
    assert summary_of(tmp_path / "n2")["unchanged"] == 30, output
    with sqlite3.connect(tmp_path / "state.db") as db:
        assert db.execute("SELECT COUNT(*) FROM helcim_customers WHERE helcim_id <= 0").fetchone()[0] == 0


def test_an_update_answered_without_an_id_is_retried_and_the_base_only_moves_when_confirmed(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    export = export_of(tmp_path, 3, "U")
    invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "n1"))
    moved = write_export(
        tmp_path / "moved.csv", [row(f"U-{n:03d}", f"Person {n}", billing_city="Banff") for n in range(3)]
    )
    sandbox.configure(faults="no_id=1,op=update-customer,count=3")
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(moved), "--out", str(tmp_path / "n2"))
    assert code == 0, output
    assert summary_of(tmp_path / "n2")["updated"] == 3
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(moved), "--out", str(tmp_path / "n3"))
    assert summary_of(tmp_path / "n3")["unchanged"] == 3, output


# -- redirects: nothing follows them ----------------------------------------------------------------


SEEN: list[tuple[str, str, str]] = []  # (method, path, api-token) of every request that reached "elsewhere"


class Capture(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _any(self) -> None:
        SEEN.append((self.command, self.path, self.headers.get("api-token", "")))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"[]")

    def do_GET(self) -> None:
        self._any()

    def do_POST(self) -> None:
        self._any()

    def do_PUT(self) -> None:
        self._any()


@pytest.fixture
def elsewhere() -> Iterator[str]:
    SEEN.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("on", ["writes", "reads"])
def test_a_redirecting_api_is_exit_3_and_neither_the_token_nor_the_data_leave(
    tmp_path: Path, sandbox: SandboxProcess, elsewhere: str, on: str
) -> None:
    sandbox.configure(faults=f"redirect=1,on={on},redirect_to={elsewhere}")
    export = export_of(tmp_path, 5, "R")
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "out"))
    assert code == 3, output
    assert "a redirect to http://127.0.0.1:" in output
    assert SEEN == []
    summary = summary_of(tmp_path / "out")
    assert summary["created"] == 0
    assert_adds_up(summary)
    code, output = invoke(tmp_path, sandbox, "ping")
    assert (code, "follows no redirect" in output) == ((3, True) if on == "reads" else (0, False))
    assert SEEN == []


# -- slow and huge answers -----------------------------------------------------------------------------


def test_ping_against_a_trickling_answer_ends_at_the_deadline(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    sandbox.configure(faults="slow_body=1,trickle_s=30")
    env = {**run_env(tmp_path, sandbox), "CRMSYNC_TIMEOUT": "2"}
    started = time.monotonic()
    done = crmsync(env, "ping")
    assert done.returncode == 3, done.stderr
    assert "no whole answer within 2 s" in done.stderr
    assert time.monotonic() - started < 20  # three attempts of 2 s and their backoff, not 3 × 30 s


@pytest.mark.parametrize("kind", ["html", "bad_json", "wrong_shape"])
def test_ping_fails_on_an_answer_that_is_not_helcims(
    tmp_path: Path, sandbox: SandboxProcess, kind: str
) -> None:
    sandbox.configure(faults=f"{kind}=1")
    code, output = invoke(tmp_path, sandbox, "ping")
    assert code == 3, output
    assert "reached" not in output


def test_a_huge_page_is_cut_off_and_retried_without_blowing_up_memory(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    export = export_of(tmp_path, 3, "H")
    invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "n1"))
    sandbox.configure(faults="huge_body=1,op=get-customers,count=1,huge_mb=40")
    env = run_env(tmp_path, sandbox)
    done = crmsync(env, "run", "--crm", str(export), "--out", str(tmp_path / "n2"))
    assert done.returncode == 0, done.stderr
    assert summary_of(tmp_path / "n2")["unchanged"] == 3
    assert sandbox.stats()["faults_injected"] == {"huge_body": 1}


def test_under_mixed_poison_the_night_converges_without_duplicates(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    sandbox.configure(
        faults="html=0.03,bad_json=0.03,wrong_shape=0.03,no_id=0.05,error500=0.03,drop_after_commit=0.02,seed=9",
        duplicate_codes="allow",
    )
    export = export_of(tmp_path, 60, "X")
    env = run_env(tmp_path, sandbox)
    for night in ("n1", "n2"):
        done = crmsync(env, "run", "--crm", str(export), "--out", str(tmp_path / night))
        assert done.returncode in (0, 3), done.stderr
        assert_adds_up(summary_of(tmp_path / night))
    sandbox.configure(faults="")
    done = crmsync(env, "run", "--crm", str(export), "--out", str(tmp_path / "check"))
    assert done.returncode == 0, done.stderr
    check = summary_of(tmp_path / "check")
    assert (check["created"], check["updated"]) == (0, 0)
    codes = codes_in_helcim(sandbox)
    assert len(codes) == len(set(codes)) == 60
    assert TOKEN not in "".join(p.read_text() for p in (tmp_path / "check").glob("*.*"))
    assert writes(sandbox)  # it did write, on the poisoned nights
