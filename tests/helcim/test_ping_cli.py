"""`crmsync ping`: what it prints and its exit codes, against a real sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync.cli import cli
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import TOKEN


def ping(env: dict[str, str], *args: str) -> tuple[int, str]:
    base = {"HELCIM_API_URL": "", "HELCIM_API_TOKEN": "", "CRMSYNC_CONFIG": "", "CRMSYNC_RATE_LIMITS": ""}
    result = CliRunner().invoke(cli, ["ping", *args], env={**base, **env})
    return result.exit_code, result.output


def test_ping_reports_the_api_and_the_limits(sandbox: SandboxProcess) -> None:
    code, output = ping({"HELCIM_API_URL": sandbox.base_url, "HELCIM_API_TOKEN": TOKEN})
    assert code == 0, output
    assert "reached helcim-sandbox" in output
    assert sandbox.base_url in output
    assert "Connected Successfully" in output
    assert "requests left this minute" in output
    assert sandbox.stats()["by_operation"] == {"connection-test": {"200": 1}}


def test_url_option_overrides_the_environment(sandbox: SandboxProcess) -> None:
    code, output = ping(
        {"HELCIM_API_URL": "http://127.0.0.1:9/v2", "HELCIM_API_TOKEN": TOKEN}, "--url", sandbox.base_url
    )
    assert code == 0, output


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("wrong-token-xyz", "Helcim refused the API token (401 Unauthorized)"),
        ("", "HELCIM_API_TOKEN is not set"),
    ],
    ids=["wrong", "missing"],
)
def test_bad_or_missing_token_exits_3(sandbox: SandboxProcess, token: str, message: str) -> None:
    code, output = ping({"HELCIM_API_URL": sandbox.base_url, "HELCIM_API_TOKEN": token})
    assert code == 3
    assert message in output
    assert "wrong-token-xyz" not in output


def test_unreachable_api_exits_3() -> None:
    code, output = ping({"HELCIM_API_URL": "http://127.0.0.1:9/v2", "HELCIM_API_TOKEN": "x"})
    assert code == 3
    assert "connection-test: request to 127.0.0.1:9 could not connect" in output


def test_bad_settings_exit_2(tmp_path: Path) -> None:
    code, output = ping({"HELCIM_API_URL": "ftp://example.com", "HELCIM_API_TOKEN": "x"})
    assert (code, "must be an http:// or https:// URL" in output) == (2, True)
    code, output = ping(
        {"HELCIM_API_URL": "https://crmsync:hunter2@api.helcim.com/v2", "HELCIM_API_TOKEN": "x"}
    )
    assert (code, "carries a user name or password" in output, "hunter2" in output) == (2, True, False)
    code, output = ping({"HELCIM_API_URL": "https://api.helcim.com/v2", "HELCIM_API_TOKEN": "tøken-ü"})
    assert (code, "has a character an HTTP header cannot carry" in output, "tøken" in output) == (
        2,
        True,
        False,
    )
    config = tmp_path / "crmsync.toml"
    config.write_text('[helcim]\ntoken = "secret"\n')
    code, output = ping({"HELCIM_API_TOKEN": "x"}, "--config", str(config))
    assert (code, "not read from files" in output) == (2, True)
    code, output = ping({"HELCIM_API_TOKEN": "x"}, "--rate-limits", "warp")
    assert (code, "unknown rate-limit preset 'warp'" in output) == (2, True)
