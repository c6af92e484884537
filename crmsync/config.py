"""Settings: environment variables, then an optional ``crmsync.toml``, then defaults.

=========================  ============================  =====================================
environment                crmsync.toml                  default
=========================  ============================  =====================================
``HELCIM_API_URL``         ``[helcim] url``              ``https://api.helcim.com/v2``
``HELCIM_API_TOKEN``       (never read from a file)      none: commands that call Helcim stop
``CRMSYNC_RATE_LIMITS``    ``[helcim] rate_limits``      ``helcim`` (5 / 100 per min / 3000 per h)
``CRMSYNC_TIMEOUT``        ``[helcim] timeout``          30 (seconds for a whole call: connect, headers, body)
``CRMSYNC_STATE_DB``       ``[state] path``              ``$XDG_STATE_HOME/crmsync/state.db``
``CRMSYNC_CONFIG``         —                             ``./crmsync.toml`` if it exists
=========================  ============================  =====================================

Command-line options override all of these. The token is kept out of every
``repr`` and message. An API URL with a user name or password in it is refused
(exit 2), and so is a token an HTTP header cannot carry: neither is echoed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmsync.errors import AuthenticationError, UsageError
from crmsync.helcim.client import DEFAULT_URL, HelcimClient, RetryPolicy, check_api_url, check_token
from crmsync.helcim.limits import RateLimits
from crmsync.stopping import StopSignal


def default_state_path(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "crmsync" / "state.db"


@dataclass(frozen=True)
class Settings:
    api_url: str = DEFAULT_URL
    api_token: str = field(default="", repr=False)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    timeout: float = 30.0
    state_path: Path = field(default_factory=default_state_path)

    def require_token(self) -> str:
        if not self.api_token:
            raise AuthenticationError(
                "HELCIM_API_TOKEN is not set: export the API token of the merchant account "
                "(Helcim: All Tools → Integrations → API Access Configuration)"
            )
        return self.api_token

    def client(
        self,
        *,
        max_calls: int | None = None,
        retry: RetryPolicy | None = None,
        stop: StopSignal | None = None,
    ) -> HelcimClient:
        """A client for this account: ``timeout`` bounds each call whole (connect, headers, body)."""
        return HelcimClient(
            self.api_url,
            self.require_token(),
            limits=self.rate_limits,
            max_calls=max_calls,
            retry=retry,
            timeout=(min(5.0, self.timeout), self.timeout),
            deadline=self.timeout,
            stop=stop,
        )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None


def load_settings(
    env: Mapping[str, str] = os.environ,
    *,
    config_file: Path | None = None,
    api_url: str | None = None,
    state_path: Path | None = None,
    rate_limits: str | None = None,
) -> Settings:
    """Settings from the environment and ``crmsync.toml``; explicit arguments win."""
    path = config_file or (Path(env["CRMSYNC_CONFIG"]) if env.get("CRMSYNC_CONFIG") else None)
    if path is None and Path("crmsync.toml").is_file():
        path = Path("crmsync.toml")
    table = _read_toml(path) if path is not None else {}
    helcim = table.get("helcim", {})
    state = table.get("state", {})
    if "token" in helcim:
        raise UsageError(f"{path}: the API token is not read from files; set HELCIM_API_TOKEN instead")

    url = check_api_url(str(api_url or env.get("HELCIM_API_URL") or helcim.get("url") or DEFAULT_URL))
    spec = rate_limits or env.get("CRMSYNC_RATE_LIMITS") or helcim.get("rate_limits") or "helcim"
    raw_timeout = env.get("CRMSYNC_TIMEOUT") or helcim.get("timeout") or 30
    try:
        timeout = float(raw_timeout)
    except (TypeError, ValueError):
        timeout = -1.0
    if timeout <= 0:
        raise UsageError(f"the timeout must be a positive number of seconds, got {raw_timeout!r}")
    state_file = state_path or (Path(env["CRMSYNC_STATE_DB"]) if env.get("CRMSYNC_STATE_DB") else None)
    if state_file is None and state.get("path"):
        state_file = Path(str(state["path"]))
    return Settings(
        api_url=url,
        api_token=check_token(env.get("HELCIM_API_TOKEN", "").strip()),
        rate_limits=RateLimits.from_spec(spec),
        timeout=timeout,
        state_path=state_file or default_state_path(env),
    )
