"""The accounts file, `crmsync accounts check`, and one account's nightly run called from Python."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.config import Settings, load_settings
from crmsync.errors import (
    AuthenticationError,
    HelcimError,
    HelcimUnavailable,
    Interrupted,
    RateLimited,
    StateLockedError,
    UsageError,
)
from crmsync.helcim.client import RetryPolicy
from crmsync.jobs.accounting import RowCounts
from crmsync.jobs.accounts import OUTPUTS, AccountRun, check_accounts, load_accounts, run_account
from crmsync.jobs.run import RunResult, run_nightly
from crmsync.jobs.session import CallStats, client_for
from crmsync.state import open_state, state_lock
from crmsync.sync.load import ApplyOutcome
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import TOKEN
from tests.jobs.test_plan_cli import row, write_export

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "sample_data" / "accounts.toml"


def accounts_file(folder: Path, text: str) -> Path:
    path = folder / "accounts.toml"
    path.write_text(text, encoding="utf-8")
    return path


DEFAULTS = '[defaults]\nrate_limits = "off"\ntimeout = 5\n'


def account_table(sandbox: SandboxProcess, **keys: str) -> str:
    """One [[account]] table on ``sandbox``: by default "shop", its token in SHOP_TOKEN, its export crm.csv."""
    keys = {"name": "shop", "url": sandbox.base_url, "token_env": "SHOP_TOKEN", "crm": "crm.csv"} | keys
    return "\n[[account]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())


def one_account(sandbox: SandboxProcess) -> str:
    return DEFAULTS + account_table(sandbox)


def test_the_example_file_is_valid_and_the_readme_shows_it_whole() -> None:
    accounts = load_accounts(EXAMPLE)
    assert accounts.names == ["north-bakery", "west-outfitters", "east-grocer"]
    assert [a.timezone for a in accounts.accounts] == [
        "America/Toronto",
        "America/Vancouver",
        "America/Halifax",
    ]
    assert accounts.get("west-outfitters").crm_file() == ROOT / "sample_data" / "hubspot_contacts.csv"
    assert accounts.get("east-grocer").token_env == accounts.get("north-bakery").token_env  # the mistake
    assert EXAMPLE.read_text(encoding="utf-8") in (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_problem_of_a_file_is_named_and_no_secret_is_echoed(tmp_path: Path) -> None:
    path = accounts_file(
        tmp_path,
        """
        colour = "red"
        [defaults]
        token = "s3cr3t-token"
        name = "everyone"
        [[account]]
        name = "north bakery"
        token_env = "1TOKEN"
        crm = "crm.csv"
        url = "https://user:pa55word@api.helcim.com/v2"
        timezone = "Mars/Olympus_Mons"
        max_calls = 0
        policy = "both"
        rate_limits = "warp"
        retires = 2
        [[account]]
        name = "west"
        token_env = "WEST"
        [[account]]
        name = "West"
        token_env = "WEST"
        crm = "west.csv"
        """.replace("\n        ", "\n"),
    )
    with pytest.raises(UsageError) as raised:
        load_accounts(path)
    message = str(raised.value)
    for expected in (
        "unknown table or key 'colour'",
        "[defaults]: token: the token is never read from this file",
        "[defaults]: name belongs to each account",
        "account 'north bakery' ([[account]] 1): name: use 1 to 64 letters, digits, - and _",
        "token_env: this looks like a token, not a variable name",
        "url: url carries a user name or password (https://…@api.helcim.com)",
        "timezone: unknown time zone 'Mars/Olympus_Mons'",
        "max_calls: Input should be greater than or equal to 1 (got 0)",
        "policy: Input should be 'crm-wins', 'helcim-wins' or 'manual' (got 'both')",
        "rate_limits: unknown rate-limit preset 'warp'",
        "retires: unknown key",
        "account 'west' ([[account]] 2): crm: missing",
    ):
        assert expected in message, expected
    assert "s3cr3t" not in message
    assert "pa55word" not in message
    assert "user:" not in message
    assert "1TOKEN" not in message


def test_accounts_never_share_a_store_a_folder_or_a_token(tmp_path: Path) -> None:
    path = accounts_file(
        tmp_path,
        """
        [defaults]
        state = "state.db"
        [[account]]
        name = "north"
        token_env = "NORTH"
        crm = "north.csv"
        [[account]]
        name = "NORTH"
        token_env = "NORTH"
        crm = "north.csv"
        out = "out/{date}"
        """.replace("\n        ", "\n"),
    )
    with pytest.raises(UsageError) as raised:
        load_accounts(path)
    message = str(raised.value)
    assert "accounts north and NORTH have the same name (case aside)" in message
    assert "accounts north and NORTH have the same state store" in message
    assert "accounts north and NORTH have the same token_env on one url" in message
    assert "output folder" not in message  # out/north/{date} and out/{date} differ


def test_defaults_templates_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    path = accounts_file(
        tmp_path,
        """
        [defaults]
        crm = "exports/{name}-*.csv"
        state = "/var/lib/crmsync/{name}.db"
        timezone = "America/Vancouver"
        [[account]]
        name = "north"
        token_env = "NORTH"
        [[account]]
        name = "east"
        token_env = "EAST"
        timezone = "America/Halifax"
        out = "reports/{name}/{date}"
        profile = "profiles/mine.toml"
        """.replace("\n        ", "\n"),
    )
    north, east = load_accounts(path).accounts
    assert north.crm == str(tmp_path / "exports" / "north-*.csv")
    assert north.state == Path("/var/lib/crmsync/north.db")
    assert (north.timezone, east.timezone) == ("America/Vancouver", "America/Halifax")
    assert north.out_dir(date(2026, 11, 28)) == tmp_path / "out" / "north" / "2026-11-28"
    assert east.out_dir(date(2026, 11, 28)) == tmp_path / "reports" / "east" / "2026-11-28"
    assert east.profile == str(tmp_path / "profiles" / "mine.toml")
    assert north.profile == "generic"
    # A night runs from noon to noon in the account's zone and is named after its morning.
    assert north.night(datetime(2026, 11, 28, 10, 30, tzinfo=UTC)) == date(2026, 11, 28)  # 02:30 in Vancouver
    assert north.night(datetime(2026, 11, 28, 7, 0, tzinfo=UTC)) == date(
        2026, 11, 28
    )  # 23:00 the evening before
    assert north.night(datetime(2026, 11, 28, 21, 0, tzinfo=UTC)) == date(
        2026, 11, 29
    )  # 13:00: the next night


def test_the_newest_matching_export_wins(tmp_path: Path) -> None:
    path = accounts_file(
        tmp_path, '[[account]]\nname = "a"\ntoken_env = "A"\ncrm = "exports/customers-*.csv"\n'
    )
    account = load_accounts(path).get("a")
    with pytest.raises(UsageError, match="no file matches its crm pattern"):
        account.crm_file()
    (tmp_path / "exports").mkdir()
    for name, age in (("customers-0901.csv", 300), ("customers-1128.csv", 10), ("customers-1127.csv", 100)):
        export = tmp_path / "exports" / name
        export.write_text("crm_id\n")
        os.utime(export, (datetime.now().timestamp() - age,) * 2)
    assert account.crm_file().name == "customers-1128.csv"


def test_the_token_comes_from_its_variable_and_is_never_shown(tmp_path: Path) -> None:
    path = accounts_file(tmp_path, '[[account]]\nname = "a"\ntoken_env = "A_TOKEN"\ncrm = "c.csv"\n')
    account = load_accounts(path).get("a")
    with pytest.raises(AuthenticationError, match=r"the environment variable A_TOKEN .* is not set"):
        account.settings({"HELCIM_API_TOKEN": "the-cli-one"})  # the command line's variable is not a fallback
    with pytest.raises(UsageError) as raised:
        account.settings({"A_TOKEN": "tok en-with-a-space"})
    assert "A_TOKEN" in str(raised.value)
    assert "tok en" not in str(raised.value)
    assert account.settings({"A_TOKEN": " abc123\n"}).api_token == "abc123"


@pytest.mark.parametrize("environment", ["hostile", "unset"])
def test_the_nightly_job_from_python_reads_nothing_from_the_environment(
    tmp_path: Path, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    """The library entry point: Settings built by the caller; the command line's variables and files are ignored."""
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "crmsync.toml").write_text(
        '[helcim]\nurl = "http://127.0.0.2:9/v2"\n[state]\npath = "/proc/no"\n'
    )
    monkeypatch.chdir(work)
    hostile = {
        "HELCIM_API_URL": "http://127.0.0.2:9/v2",
        "HELCIM_API_TOKEN": "wrong-token",
        "CRMSYNC_STATE_DB": "/proc/nowhere/state.db",
        "CRMSYNC_RATE_LIMITS": "warp",
        "CRMSYNC_TIMEOUT": "-1",
        "CRMSYNC_CONFIG": "/proc/nowhere.toml",
        "XDG_STATE_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path / "home"),
        "TZ": "Pacific/Kiritimati",  # UTC+14: a machine-local "today" would be another date
    }
    for name, value in hostile.items():
        if environment == "hostile":
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    time.tzset()
    try:
        _run_with_explicit_settings(tmp_path, sandbox)
    finally:
        monkeypatch.undo()
        time.tzset()


def _run_with_explicit_settings(tmp_path: Path, sandbox: SandboxProcess) -> None:
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King"), row("C-2", "Bob Lee")])
    settings = Settings(
        api_url=sandbox.base_url, api_token=TOKEN, state_path=tmp_path / "state" / "shop.db", timeout=5
    )
    result = run_nightly(settings, export, "generic", tmp_path / "out", today=date(2026, 11, 27))
    assert (result.exit_code, result.counts.created) == (0, 2)
    assert (tmp_path / "state" / "shop.db").is_file()
    assert not (tmp_path / "xdg").exists()
    assert not (tmp_path / "home").exists()
    assert result.reconciliation is not None
    assert result.reconciliation["today"] == "2026-11-27"
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == result.to_dict()


def test_run_account_returns_every_outcome_with_its_exit_code(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    write_export(tmp_path / "crm.csv", [row("C-1", "Ada King"), row("C-2", "Bob Lee", billing_email="x")])
    account = load_accounts(accounts_file(tmp_path, one_account(sandbox))).get("shop")
    env = {"SHOP_TOKEN": TOKEN}

    missing = run_account(account, {}, tmp_path / "missing")
    assert (missing.exit_code, missing.status, missing.retriable) == (3, "failed", False)
    assert "SHOP_TOKEN" in missing.error
    assert json.loads((tmp_path / "missing" / "summary.json").read_text())["exit_code"] == 3

    with state_lock(account.state):  # another run holds the store
        busy = run_account(account, env, tmp_path / "busy")
    assert (busy.exit_code, busy.status) == (2, "busy")
    assert "another crmsync run is using the state store" in busy.error
    assert not (tmp_path / "busy").exists()  # the folder belongs to the run in progress

    done = run_account(account, env, tmp_path / "night1", today=date(2026, 11, 27))
    assert (done.exit_code, done.status, done.succeeded) == (1, "partial", True)  # one row rejected
    assert done.result is not None
    assert done.summary == done.result.to_dict()
    assert (done.summary["created"], done.summary["rejected"]) == (1, 1)
    assert set(done.findings_by_severity) == {"critical", "warning", "info"}

    refused = run_account(account, {"SHOP_TOKEN": "not-this-one"}, tmp_path / "refused")
    assert (refused.exit_code, refused.retriable) == (3, False)  # the same token would be refused again
    assert "SHOP_TOKEN (the token_env of account shop)" in refused.error
    assert "HELCIM_API_TOKEN" not in refused.error
    for summary in (refused.summary, json.loads((tmp_path / "refused" / "summary.json").read_text())):
        assert "SHOP_TOKEN (the token_env of account shop)" in json.dumps(summary)
        assert "HELCIM_API_TOKEN" not in json.dumps(summary)  # the client's own hint names the right variable
    with open_state(account.state) as state:  # the missing token and the busy store never opened it
        last = state.previous_run("run")
        assert last is not None
        earlier = state.previous_run("run", before=last["run_id"])
        assert earlier is not None
        # run ids order runs by the second they started in only: these two may share one
        assert {last["exit_code"], earlier["exit_code"]} == {1, 3}
        assert state.previous_run("run", before=min(last["run_id"], earlier["run_id"])) is None


def test_accounts_check_pings_every_account_with_its_own_token(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    other = account_table(sandbox, name="other", token_env="OTHER_TOKEN", crm="gone-*.csv", profile="hubspt")
    path = accounts_file(tmp_path, one_account(sandbox) + other)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["accounts", "check", str(path)], env={"SHOP_TOKEN": TOKEN, "OTHER_TOKEN": TOKEN}
    )
    assert result.exit_code == 2, result.output  # other: its export is missing, and both share one token
    assert "shop   exit 2" in result.output  # neither is pinged: which of the two is wrong is not known
    assert "reached helcim-sandbox" not in result.output
    assert "no file matches its crm pattern" in result.output
    assert "unknown profile 'hubspt'" in result.output
    assert result.output.count("accounts shop and other hold the same token for one API") == 2
    result = runner.invoke(
        cli, ["accounts", "check", str(path)], env={"SHOP_TOKEN": TOKEN, "OTHER_TOKEN": "bad"}
    )
    assert result.exit_code == 3, result.output  # refused token (3) is worse than the missing export (2)
    assert "shop   ok" in result.output
    assert "reached helcim-sandbox" in result.output
    assert "OTHER_TOKEN (the token_env of account other)" in result.output
    assert "2 accounts in" in result.output
    assert "1 ready, 1 not (exit 3)" in result.output
    bad = accounts_file(tmp_path, "[[account]]\nname = 'x'\n")
    result = runner.invoke(cli, ["accounts", "check", str(bad)])
    assert result.exit_code == 2
    assert "token_env: missing" in result.output


@pytest.mark.parametrize("pasted", ["Hk7pQ2xZ9mLw4vRt8sYb", "Hk7pQ2xZ9-mLw4vRt8sYb!", "hk7pq2xz9mlw4vrt8syb"])
def test_a_token_pasted_into_token_env_is_refused_and_never_printed(tmp_path: Path, pasted: str) -> None:
    """token_env holds a variable's name (capital letters, digits, _); anything else may be the token itself."""
    path = accounts_file(
        tmp_path, f'[[account]]\nname = "north"\ntoken_env = {json.dumps(pasted)}\ncrm = "c.csv"\n'
    )
    with pytest.raises(UsageError) as raised:
        load_accounts(path)
    message = str(raised.value)
    assert "token_env: this looks like a token, not a variable name" in message
    assert pasted not in message
    assert pasted[:8] not in message
    result = CliRunner().invoke(cli, ["accounts", "check", str(path)], env={"TERM": "dumb"})
    assert result.exit_code == 2
    assert "this looks like a token" in result.output
    assert pasted[:8] not in result.output


UNAVAILABLE = HelcimUnavailable("create-customer: Helcim answered 503 (Service Unavailable)")


@pytest.mark.parametrize(
    ("exit_code", "status", "fatal", "error", "succeeded", "retriable"),
    [
        pytest.param(0, "ok", None, "", True, False, id="ok"),
        pytest.param(1, "partial", None, "", True, False, id="partial: rows rejected"),
        # 429s outlasted the patience mid-apply: exit 1 but nothing after it was written
        pytest.param(
            1,
            "failed",
            RateLimited("create-customer: still rate limited (429) after waiting"),
            "",
            False,
            False,
            id="stopped-by-429s",
        ),
        pytest.param(3, "failed", UNAVAILABLE, "", False, True, id="helcim-down"),
        # Helcim went down mid-apply and then the outputs could not be written: exit 2, never retried
        pytest.param(
            2,
            "failed",
            UNAVAILABLE,
            "cannot write results.csv: No space left on device",
            False,
            False,
            id="helcim-down-then-disk-full",
        ),
        pytest.param(143, "interrupted", Interrupted("stopped by SIGTERM"), "", False, False, id="stopped"),
    ],
)
def test_what_a_finished_run_means_to_an_orchestrator(
    tmp_path: Path,
    exit_code: int,
    status: str,
    fatal: HelcimError | None,
    error: str,
    succeeded: bool,
    retriable: bool,
) -> None:
    """A night succeeded only when its status says so; only exit 3 with Helcim unreachable is worth a retry."""
    account = load_accounts(
        accounts_file(tmp_path, '[[account]]\nname = "a"\ntoken_env = "A"\ncrm = "c.csv"\n')
    )
    result = RunResult(
        status=status, exit_code=exit_code, counts=RowCounts.nothing_done(None), calls=CallStats.of(None),
        budget=10, duration_seconds=0.0, applied=ApplyOutcome([], [], fatal), error=error,
    )  # fmt: skip
    run = AccountRun.of(account.get("a"), result, tmp_path / "out", tmp_path / "c.csv")
    assert (run.exit_code, run.status, run.succeeded, run.retriable) == (
        exit_code,
        status,
        succeeded,
        retriable,
    )
    assert run.error == (error or (str(fatal) if fatal else ""))


def test_a_second_launch_leaves_the_running_nights_summary_alone(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    """A second cron line (or a launch that passed run_account's first look) finds the lock: it writes nothing."""
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    settings = Settings(
        api_url=sandbox.base_url, api_token=TOKEN, state_path=tmp_path / "state.db", timeout=5
    )
    out = tmp_path / "out" / "2026-11-28"
    out.mkdir(parents=True)
    running = '{"command": "run", "status": "ok", "note": "the running night"}\n'
    (out / "summary.json").write_text(running)
    with state_lock(settings.state_path), pytest.raises(StateLockedError):
        run_nightly(settings, export, "generic", out, today=date(2026, 11, 28))
    assert (out / "summary.json").read_text() == running
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    assert sandbox.stats()["total"] == 0


def test_a_reused_output_folder_keeps_no_stale_outputs(tmp_path: Path, sandbox: SandboxProcess) -> None:
    """OUT/<name>/ run again: what the earlier run wrote there is gone before this one starts."""
    write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    account = load_accounts(accounts_file(tmp_path, one_account(sandbox))).get("shop")
    out = tmp_path / "out" / "shop"
    first = run_account(account, {"SHOP_TOKEN": TOKEN}, out, today=date(2026, 11, 27))
    assert first.exit_code == 0
    written = {p.name for p in out.iterdir()}
    assert written <= set(OUTPUTS), written - set(OUTPUTS)  # every output a run writes is known
    assert {"summary.json", "results.csv", "reconciliation", "crm_import"} <= written
    (out / "notes.txt").write_text("mine")  # not crmsync's: kept
    (tmp_path / "crm.csv").unlink()
    second = run_account(account, {"SHOP_TOKEN": TOKEN}, out, today=date(2026, 11, 28))
    assert (second.exit_code, second.status) == (2, "failed")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "summary.json"]
    assert json.loads((out / "summary.json").read_text())["exit_code"] == 2


ONE_SEND = RetryPolicy(attempts=1)
HOSTILE_NETWORK = {
    **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"), "http://127.0.0.2:9"),  # nobody there
    **{name.lower(): "http://127.0.0.2:9" for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
    "REQUESTS_CA_BUNDLE": "/nonexistent/ca.pem",
    "CURL_CA_BUNDLE": "/nonexistent/ca.pem",
}


def test_run_account_takes_no_proxy_or_ca_bundle_from_the_environment(
    tmp_path: Path, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests reads proxies and CA bundles from the environment: the library entry point must not."""
    write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    account = load_accounts(accounts_file(tmp_path, one_account(sandbox))).get("shop")
    https = Settings(api_url="https://127.0.0.1:9/v2", api_token=TOKEN, state_path=tmp_path / "h.db")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in HOSTILE_NETWORK.items():
        monkeypatch.setenv(name, value)
    done = run_account(account, {"SHOP_TOKEN": TOKEN}, tmp_path / "out", today=date(2026, 11, 27))
    with pytest.raises(
        HelcimUnavailable
    ) as unreachable:  # refused at 127.0.0.1:9, not an OSError on the bundle
        client_for(https, retry=ONE_SEND).connection_test()
    monkeypatch.undo()
    assert (done.exit_code, done.summary["created"]) == (0, 1)
    assert "could not connect" in str(unreachable.value)


def test_explicit_network_settings_are_used_and_checked(tmp_path: Path, sandbox: SandboxProcess) -> None:
    plain = Settings(api_url=sandbox.base_url, api_token=TOKEN, timeout=5.0, state_path=tmp_path / "s.db")
    with pytest.raises(UsageError, match=r"the CA bundle /nonexistent/ca\.pem does not exist"):
        replace(plain, ca_bundle=Path("/nonexistent/ca.pem"))
    with pytest.raises(UsageError, match="the proxy must be an http:// or https:// URL") as raised:
        replace(plain, proxy="s3cr3t@127.0.0.2:9")
    assert "s3cr3t" not in str(raised.value)
    assert client_for(plain, retry=ONE_SEND).connection_test().status == 200
    with pytest.raises(HelcimUnavailable):  # every call goes through the (dead) proxy it names
        client_for(replace(plain, proxy="http://127.0.0.2:9"), retry=ONE_SEND).connection_test()
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    https = replace(plain, api_url="https://127.0.0.1:9/v2", ca_bundle=bundle)
    bundle.unlink()  # gone by the time of the call: an error with an exit code, not a bare OSError
    with pytest.raises(HelcimUnavailable) as gone:
        client_for(https, retry=ONE_SEND).connection_test()
    assert gone.value.exit_code == 3
    assert "CA certificate bundle" in str(gone.value)


def test_run_account_makes_the_report_as_of_the_accounts_own_date(
    tmp_path: Path, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No today given (as the Airflow snippet): the account's time zone decides, not the machine's."""
    write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    text = one_account(sandbox).replace("[defaults]\n", '[defaults]\ntimezone = "Pacific/Pago_Pago"\n')
    account = load_accounts(accounts_file(tmp_path, text)).get("shop")  # UTC-11
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: always another date than Pago Pago's
    time.tzset()
    try:
        before = datetime.now(ZoneInfo("Pacific/Pago_Pago")).date()
        done = run_account(account, {"SHOP_TOKEN": TOKEN}, tmp_path / "out")
        after = datetime.now(ZoneInfo("Pacific/Pago_Pago")).date()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert done.exit_code == 0, done.error
    assert done.result is not None
    assert done.result.reconciliation is not None
    assert done.result.reconciliation["today"] in {before.isoformat(), after.isoformat()}


@pytest.mark.parametrize(
    ("env", "url", "proxy"),
    [
        pytest.param(
            {"HTTPS_PROXY": "http://p:3128"}, "https://api.helcim.com/v2", "http://p:3128", id="https"
        ),
        pytest.param(
            {"https_proxy": "http://p:3128"}, "https://api.helcim.com/v2", "http://p:3128", id="lower"
        ),
        pytest.param({"HTTP_PROXY": "http://p:3128"}, "https://api.helcim.com/v2", "", id="other-scheme"),
        pytest.param({"ALL_PROXY": "http://p:3128"}, "http://127.0.0.1:8765/v2", "http://p:3128", id="all"),
        pytest.param(
            {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "localhost,.helcim.com"},
            "https://api.helcim.com/v2",
            "",
            id="no-proxy-domain",
        ),
        pytest.param(
            {"HTTPS_PROXY": "http://p:3128", "no_proxy": "*"}, "https://api.helcim.com/v2", "", id="star"
        ),
        pytest.param(
            {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "elcim.com"},
            "https://api.helcim.com/v2",
            "http://p:3128",
            id="not-a-suffix-match",
        ),
    ],
)
def test_the_command_line_still_takes_its_proxy_from_the_environment(
    env: dict[str, str], url: str, proxy: str
) -> None:
    settings = load_settings({**env, "HELCIM_API_URL": url, "XDG_STATE_HOME": "/tmp"})
    assert (settings.proxy, settings.token_source) == (proxy, "HELCIM_API_TOKEN")


def test_the_command_line_refuses_a_ca_bundle_that_is_not_there(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["ping"], env={"REQUESTS_CA_BUNDLE": str(tmp_path / "gone.pem"), "HELCIM_API_TOKEN": "t"}
    )
    assert result.exit_code == 2, result.output
    assert f"the CA bundle {tmp_path / 'gone.pem'} does not exist" in result.output


def test_two_accounts_whose_variables_hold_one_token_never_run(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    """One token on one API is one Helcim account: shop-b's customers would land in shop-a's."""
    write_export(tmp_path / "a.csv", [row("A-1", "Ada of A")])
    write_export(tmp_path / "b.csv", [row("B-1", "Bo of B")])
    text = (
        DEFAULTS
        + account_table(sandbox, name="shop-a", token_env="TOKEN_A", crm="a.csv")
        + account_table(sandbox, name="shop-b", token_env="TOKEN_B", crm="b.csv")
        + account_table(sandbox, name="shop-c", token_env="TOKEN_C", crm="b.csv", url=sandbox.base_url + "/")
    )
    accounts = load_accounts(accounts_file(tmp_path, text))
    env = {"TOKEN_A": TOKEN, "TOKEN_B": f" {TOKEN}\n", "TOKEN_C": "another-token"}
    for name in ("shop-a", "shop-b"):  # neither: which of the two variables is wrong is not known
        run = run_account(accounts.get(name), env, tmp_path / "out" / name)
        assert (run.exit_code, run.status, run.retriable) == (2, "failed", False), run.error
        assert "accounts shop-a and shop-b hold the same token for one API" in run.error
        assert TOKEN not in run.error
        assert json.loads((tmp_path / "out" / name / "summary.json").read_text())["exit_code"] == 2
    assert sandbox.stats()["total"] == 0
    # the same token on the same API written another way (a trailing slash) is still one account
    env["TOKEN_C"] = TOKEN
    assert run_account(accounts.get("shop-c"), env, tmp_path / "out" / "shop-c").exit_code == 2
    checked = {c.name: c for c in check_accounts(accounts, env)}
    assert [checked[n].exit_code for n in ("shop-a", "shop-b", "shop-c")] == [2, 2, 2]
    assert all("hold the same token for one API" in " ".join(checked[n].problems) for n in checked)


ONE_BAD_TABLE = """
[defaults]
crm = "c.csv"
timezone = "America/Toronto"
[[account]]
name = "north"
token_env = "NORTH"
[[account]]
name = "south"
token_env = "SOUTH"
max_call = 100
[[account]]
token_env = "NAMELESS"
[[account]]
name = "east"
token_env = "EAST"
state = "shared.db"
timezone = "America/Halifax"
[[account]]
name = "west"
token_env = "WEST"
state = "shared.db"
"""


def test_one_bad_table_leaves_the_other_accounts_able_to_run(tmp_path: Path) -> None:
    path = accounts_file(tmp_path, ONE_BAD_TABLE)
    with pytest.raises(UsageError) as raised:  # strict (accounts check, a script): every problem at once
        load_accounts(path)
    for expected in (
        "max_call: unknown key",
        "[[account]] 3: name: missing",
        "accounts east and west have the same state store",
    ):
        assert expected in str(raised.value)
    loaded = load_accounts(path, partial=True)  # an orchestrator: the valid accounts run on
    assert loaded.names == ["north"]
    assert loaded.all_names == ["north", "south", "east", "west"]
    invalid = {bad.label: bad for bad in loaded.invalid}
    assert [(bad.name, bad.timezone) for bad in invalid.values()] == [
        ("south", "America/Toronto"),
        (None, "America/Toronto"),
        ("east", "America/Halifax"),
        ("west", "America/Toronto"),
    ]
    assert loaded.get("north").token_env == "NORTH"
    with pytest.raises(
        UsageError, match=r"account 'south' \(\[\[account\]\] 2\) is not valid: .*max_call: unknown key"
    ):
        loaded.get("south")
    with pytest.raises(UsageError, match="accounts east and west have the same state store"):
        loaded.get("west")  # which of the two is meant is not known: neither runs
    # a table that copies a valid account's name makes neither run either
    copy = accounts_file(tmp_path, ONE_BAD_TABLE + '[[account]]\nname = "North"\ntoken_env = 7\n')
    with pytest.raises(UsageError, match="have the same name"):
        load_accounts(copy, partial=True).get("north")
    # a file that is not whole (not TOML, a bad [defaults]) is refused even so
    for broken in (
        "[[account]\nname = 'x'",
        '[defaults]\nname = "x"\n' + ONE_BAD_TABLE.split("[[account]]", 1)[1],
    ):
        with pytest.raises(UsageError):
            load_accounts(accounts_file(tmp_path, broken), partial=True)
