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
from urllib.parse import urlsplit

from crmsync.errors import AuthenticationError, UsageError

DEFAULT_URL = "https://api.helcim.com/v2"
_PRESETS = {"helcim": 1.0, "real": 1.0, "fast": 60.0, "off": 1.0}


@dataclass(frozen=True)
class RateLimits:
    """Helcim's limits per merchant account: concurrent requests, and two rolling windows.

    Spec (``CRMSYNC_RATE_LIMITS``): ``helcim`` (the real limits, default),
    ``fast`` (the same shape with 60× shorter windows, matching
    ``helcim-sandbox --limits fast``), ``off`` (concurrency only), optionally
    followed by ``concurrent=``, ``minute=``, ``hour=``, ``scale=`` overrides.
    """

    concurrent: int = 5
    per_minute: int = 100
    per_hour: int = 3000
    scale: float = 1.0  # windows are 60/scale and 3600/scale seconds
    paced: bool = True  # False: concurrency only

    @property
    def minute_seconds(self) -> float:
        return 60.0 / self.scale

    @property
    def hour_seconds(self) -> float:
        return 3600.0 / self.scale

    def describe(self) -> str:
        if not self.paced:
            return f"unpaced, {self.concurrent} concurrent"
        return (
            f"{self.concurrent} concurrent, {self.per_minute} per {self.minute_seconds:g} s, "
            f"{self.per_hour} per {self.hour_seconds:g} s"
        )

    @classmethod
    def from_spec(cls, spec: str) -> RateLimits:
        """``helcim``, ``fast``, ``off``, each optionally followed by ``,key=value`` overrides."""
        words = [w.strip() for w in spec.split(",") if w.strip()]
        preset = words.pop(0).lower() if words and "=" not in words[0] else "helcim"
        if preset not in _PRESETS:
            raise UsageError(f"unknown rate-limit preset {preset!r}: use helcim, fast or off")
        values = {"concurrent": 5.0, "minute": 100.0, "hour": 3000.0, "scale": _PRESETS[preset]}
        for word in words:
            key, _, value = word.partition("=")
            key = key.strip().lower()
            if key not in values:
                raise UsageError(
                    f"bad rate-limit setting {word!r}: use concurrent=, minute=, hour= or scale="
                )
            try:
                values[key] = float(value)
            except ValueError:
                values[key] = -1.0
            if values[key] <= 0:
                raise UsageError(f"rate-limit setting {word!r} needs a positive number")
        return cls(
            concurrent=int(values["concurrent"]),
            per_minute=int(values["minute"]),
            per_hour=int(values["hour"]),
            scale=values["scale"],
            paced=preset != "off",
        )


def check_api_url(url: str, name: str = "HELCIM_API_URL", token_name: str = "HELCIM_API_TOKEN") -> str:
    """The API URL without a trailing slash; refuses one carrying credentials (never echoing them).

    ``name`` and ``token_name`` say where the URL and the token are set (an
    environment variable, or an account's ``url`` and ``token_env`` in an accounts file).
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        shown = url if "@" not in url else "(a URL with user:password@)"
        raise UsageError(f"{name} must be an http:// or https:// URL with a host, got {shown!r}")
    if parts.username is not None or parts.password is not None:
        host = parts.hostname + (f":{port}" if port else "")
        raise UsageError(
            f"{name} carries a user name or password ({parts.scheme}://…@{host}): crmsync refuses it, "
            f"because it would show in logs and outputs; give the token in {token_name} instead"
        )
    return url.rstrip("/")


def check_token(token: str, name: str = "HELCIM_API_TOKEN") -> str:
    """A token HTTP can carry: printable ASCII without spaces (never echoed)."""
    for position, char in enumerate(token, start=1):
        if not (char.isascii() and char.isprintable()) or char == " ":
            raise UsageError(
                f"{name} has a character an HTTP header cannot carry at position {position} "
                "(a space, a control or non-ASCII character: pasted quotes or a line break?); copy the token again"
            )
    return token


def default_state_path(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "crmsync" / "state.db"


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to reach one merchant account: built by :func:`load_settings` for the
    command line, or directly by a library caller (an orchestrator), which then reads nothing from the
    environment — give ``state_path``, since its default is found through ``XDG_STATE_HOME``/``HOME``.

    The same checks as :func:`load_settings` apply: a URL with credentials, a token HTTP cannot carry
    or a timeout that is not positive are refused (:class:`~crmsync.errors.UsageError`).
    """

    api_url: str = DEFAULT_URL
    api_token: str = field(default="", repr=False)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    timeout: float = 30.0
    state_path: Path = field(default_factory=default_state_path)
    #: Where the token and the URL were given, as messages name them (``HELCIM_API_TOKEN``, an account's token_env).
    token_source: str = "the API token"
    url_source: str = "the API URL"
    #: The proxy every call goes through (``http://host:port``); empty: none. Proxy and CA bundle are never
    #: taken from the environment here (``HTTPS_PROXY``, ``REQUESTS_CA_BUNDLE``, ``~/.netrc``).
    proxy: str = field(default="", repr=False)  # it may carry the proxy's password
    ca_bundle: Path | None = None  # the CA certificates https calls trust (a file or folder); None: certifi's

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "api_url", check_api_url(self.api_url, name=self.url_source, token_name=self.token_source)
        )
        check_token(self.api_token, name=self.token_source)
        if not self.timeout > 0:
            raise UsageError(f"the timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.proxy:
            check_proxy(self.proxy)
        if self.ca_bundle is not None and not self.ca_bundle.exists():
            raise UsageError(f"the CA bundle {self.ca_bundle} does not exist")

    def require_token(self) -> str:
        if not self.api_token:
            raise AuthenticationError(
                f"{self.token_source} is not set: give the API token of the merchant account "
                "(Helcim: All Tools → Integrations → API Access Configuration)"
            )
        return self.api_token


def check_proxy(proxy: str) -> str:
    """An http:// or https:// proxy URL with a host; never echoed (it may carry a password)."""
    parts = urlsplit(proxy)
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            "the proxy must be an http:// or https:// URL with a host (not shown: it may hold a password)"
        )
    return proxy


def proxy_from_environment(env: Mapping[str, str], api_url: str) -> str:
    """What requests would take from the environment for ``api_url`` (the command line keeps honouring it)."""
    lowered = {k.lower(): v for k, v in env.items() if k.lower().endswith("_proxy") and v}
    parts = urlsplit(api_url)
    host = (parts.hostname or "").lower()
    for entry in lowered.get("no_proxy", "").lower().split(","):
        entry = entry.strip().split(":")[0].lstrip(".")  # ".example.com" and "example.com:443" alike
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return ""
    return lowered.get(f"{parts.scheme}_proxy") or lowered.get("all_proxy", "")


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
    bundle = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE")  # as requests itself would read them
    return Settings(
        api_url=url,
        api_token=check_token(env.get("HELCIM_API_TOKEN", "").strip()),
        rate_limits=RateLimits.from_spec(spec),
        timeout=timeout,
        state_path=state_file or default_state_path(env),
        token_source="HELCIM_API_TOKEN",
        url_source="HELCIM_API_URL",
        proxy=proxy_from_environment(env, url),
        ca_bundle=Path(bundle) if bundle else None,
    )
