"""Many merchant accounts: the accounts file, ``crmsync accounts check``, and one account's nightly run.

``accounts.toml`` holds a ``[defaults]`` table, then one ``[[account]]`` table
per Helcim account::

    [defaults]
    url = "https://api.helcim.com/v2"
    state = "/var/lib/crmsync/state/{name}.db"
    timezone = "America/Toronto"

    [[account]]
    name = "north-bakery"                      # letters, digits, - and _
    token_env = "HELCIM_TOKEN_NORTH_BAKERY"    # the variable holding the token, never the token
    crm = "/data/exports/north-bakery/customers-*.csv"   # a path or a glob: the newest match wins

Each account may set every key of ``[defaults]`` (see :class:`_AccountTable`);
``{name}`` in ``crm``, ``state`` and ``out`` becomes the account's name and
``{date}`` in ``out`` the night's date; relative paths are relative to the
file's folder. Two accounts never share a name, a state store, an output folder
or a token variable on one API.

:func:`run_account` is what an orchestrator calls for one account: the
settings are built from the file and the environment mapping it is given (the
token comes only from the variable ``token_env`` names), then
:func:`crmsync.jobs.run.run_nightly` runs with them as arguments, and every
outcome — a refused token, a busy state store, a missing export — is an
:class:`AccountRun` with its exit code, never an exception.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crmsync.config import DEFAULT_URL, RateLimits, Settings, check_api_url, check_token
from crmsync.console import Progress
from crmsync.crm.profiles import load_profile
from crmsync.errors import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_UNREACHABLE,
    AuthenticationError,
    CrmsyncError,
    HelcimUnavailable,
    Interrupted,
    OutputError,
    StateLockedError,
    UsageError,
)
from crmsync.jobs.accounting import RowCounts
from crmsync.jobs.ping import ConnectionReport, ping
from crmsync.jobs.run import RunResult, run_nightly
from crmsync.jobs.session import CallStats
from crmsync.outputs import prepare_out_dir, try_write_json
from crmsync.state import state_lock
from crmsync.stopping import StopSignal
from crmsync.sync.diff import Policy

__all__ = [
    "OUTPUTS",
    "Account",
    "AccountCheck",
    "AccountRun",
    "AccountsFile",
    "InvalidAccount",
    "check_accounts",
    "load_accounts",
    "run_account",
]

_T = TypeVar("_T")
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
#: An environment variable's name as shells and secret stores write them. Anything else in token_env
#: may be the token itself, pasted: it is refused and never shown.
_ENV_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
#: Keys that would put a secret in the file: refused with a word on where the token goes.
_SECRET_KEYS = ("token", "api_token", "helcim_api_token", "password")
#: What ``crmsync run`` writes in its folder: removed from a reused folder before a run starts.
OUTPUTS = (
    "summary.json", "results.csv", "plan.json", "plan.csv", "conflicts.csv", "link_proposals.csv",
    "rejects.csv", "warnings.csv", "crm_import", "reconciliation",
)  # fmt: skip
#: A night runs from noon to noon in the account's time zone and is named after its morning.
_NOON = timedelta(hours=12)


class _AccountTable(BaseModel):
    """One ``[[account]]`` table merged over ``[defaults]``, as the file must hold it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    token_env: Annotated[str, Field(pattern=_ENV_PATTERN)]
    crm: Annotated[str, Field(min_length=1)]
    url: str = DEFAULT_URL
    profile: Annotated[str, Field(min_length=1)] = "generic"
    state: Annotated[str, Field(min_length=1)] = "state/{name}.db"
    out: Annotated[str, Field(min_length=1)] = "out/{name}/{date}"
    max_calls: Annotated[int, Field(ge=1)] | None = None
    policy: Literal["crm-wins", "helcim-wins", "manual"] = "crm-wins"
    rate_limits: str = "helcim"
    timeout: Annotated[float, Field(gt=0)] = 30.0
    timezone: str = "UTC"
    retries: Annotated[int, Field(ge=0, le=20)] = 3  # exit 3 (Helcim unreachable): tries after the first
    retry_delay: Annotated[float, Field(ge=0)] = 300.0  # seconds before the first retry; doubles each time

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _as_value_error(lambda: check_api_url(value, name="url", token_name="token_env"))

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits(cls, value: str) -> str:
        _as_value_error(lambda: RateLimits.from_spec(value))
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _known_zone(value)


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as America/Toronto") from None
    return value


def _as_value_error(check: Callable[[], _T]) -> _T:
    try:
        return check()
    except UsageError as error:  # pydantic reports ValueErrors with the field they belong to
        raise ValueError(str(error)) from None


@dataclass(frozen=True)
class Account:
    """One merchant account of the accounts file, its paths resolved."""

    name: str
    token_env: str
    crm: str  # an absolute path or glob
    url: str
    profile: str
    state: Path
    out: str  # an absolute folder template with {date}
    max_calls: int | None
    policy: Policy
    rate_limits: RateLimits
    timeout: float
    timezone: str
    retries: int
    retry_delay: float
    #: Every account of the file (name, url, token_env), in its order: who may hold the same token.
    peers: tuple[tuple[str, str, str], ...] = field(default=(), repr=False, compare=False)

    def token(self, env: Mapping[str, str]) -> str:
        """The token from the variable ``token_env`` names; its value never appears in a message."""
        token = env.get(self.token_env, "").strip()
        if not token:
            shown = self.token_env if re.fullmatch(_ENV_PATTERN, self.token_env) else "(not a variable name)"
            raise AuthenticationError(
                f"account {self.name}: the environment variable {shown} (its token_env) is not set"
            )
        return check_token(token, name=f"{self.token_env} (the token of account {self.name})")

    def settings(self, env: Mapping[str, str]) -> Settings:
        """The account's settings; ``env`` is read for the token variables only.

        Raises the :meth:`shared_token` error when another account holds the same token for the
        same API: such settings must never be used.
        """
        settings = Settings(
            api_url=self.url,
            api_token=self.token(env),
            rate_limits=self.rate_limits,
            timeout=self.timeout,
            state_path=self.state,
            token_source=f"{self.token_env} (the token_env of account {self.name})",
            url_source=f"the url of account {self.name}",
        )
        if (shared := self.shared_token(env)) is not None:
            raise shared
        return settings

    def shared_token(self, env: Mapping[str, str]) -> UsageError | None:
        """Another account of the file whose variable holds this one's token for the same API, if any.

        One token on one API is one Helcim account: both would write into it, each from its own state
        store. Neither runs, since which variable is wrong cannot be told from here.
        """
        mine = env.get(self.token_env, "").strip()
        same = [name for name, url, variable in self.peers
                if mine and _same_api(url, self.url) and env.get(variable, "").strip() == mine]  # fmt: skip
        if len(same) < 2:
            return None
        return UsageError(
            f"accounts {' and '.join(same)} hold the same token for one API: they are one Helcim account, "
            "which needs one state store; none of them runs until each token_env names its own account's token"
        )

    def crm_file(self) -> Path:
        """The CRM export: the file ``crm`` names, or the newest of those its glob matches."""
        if not glob.has_magic(self.crm):
            return Path(self.crm)
        matches = [Path(p) for p in glob.glob(self.crm) if Path(p).is_file()]
        if not matches:
            raise UsageError(f"account {self.name}: no file matches its crm pattern {self.crm}")
        return max(matches, key=lambda p: (p.stat().st_mtime, p.name))

    def night(self, when: datetime) -> date:
        """The night ``when`` belongs to: noon to noon in the account's time zone, named after its morning."""
        return Account.night_in(self.timezone, when)

    @staticmethod
    def night_in(timezone: str, when: datetime) -> date:
        """The night ``when`` belongs to in ``timezone`` (noon to noon, named after its morning)."""
        return (when.astimezone(ZoneInfo(timezone)) + _NOON).date()

    def out_dir(self, night: date) -> Path:
        return Path(self.out.replace("{date}", night.isoformat()))

    def explain(self, error: BaseException) -> str:
        """An error in this account's terms: the client's hints name the command line's variables."""
        return (
            str(error)
            .replace("HELCIM_API_TOKEN", f"{self.token_env} (the token_env of account {self.name})")
            .replace("HELCIM_API_URL", f"the url of account {self.name}")
        )


@dataclass(frozen=True)
class InvalidAccount:
    """An ``[[account]]`` table that does not validate (or clashes with another): it never runs.

    ``name`` and ``timezone`` are the table's own when they are usable, so that an orchestrator can
    still report it as that account's failure, in its zone.
    """

    label: str  # account 'south' ([[account]] 3), or [[account]] 3 without a usable name
    name: str | None
    timezone: str | None
    problems: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.label} is not valid: " + "; ".join(self.problems)

    def error(self) -> UsageError:
        return UsageError(self.describe())


@dataclass(frozen=True)
class AccountsFile:
    path: Path
    accounts: tuple[Account, ...]
    invalid: tuple[InvalidAccount, ...] = ()  # only from load_accounts(..., partial=True)

    @property
    def names(self) -> list[str]:
        """The accounts that can run."""
        return [a.name for a in self.accounts]

    @property
    def all_names(self) -> list[str]:
        """Every account of the file with a usable name, valid or not (an orchestrator's partitions)."""
        return self.names + [bad.name for bad in self.invalid if bad.name and bad.name not in self.names]

    def get(self, name: str) -> Account:
        """The account ``name``; an invalid one raises its problems (a UsageError, exit 2)."""
        for bad in self.invalid:
            if bad.name == name:
                raise bad.error()
        for account in self.accounts:
            if account.name == name:
                return account
        for bad in self.invalid:  # case aside, as names clash
            if bad.name is not None and bad.name.lower() == name.lower():
                raise bad.error()
        raise UsageError(f"{self.path}: no account named {name!r}")


def load_accounts(path: Path, *, partial: bool = False) -> AccountsFile:
    """Read and check the accounts file; every problem is named (file, account, key) in one UsageError.

    ``partial``: a table that does not validate, or two that clash, are :class:`InvalidAccount`
    entries and the other accounts load; only a file that cannot be read as a whole (not TOML, a key
    outside the tables, a bad ``[defaults]``) raises. An orchestrator keeps the valid accounts running.
    """
    try:
        with path.open("rb") as handle:
            table = tomllib.load(handle)
    except FileNotFoundError:
        raise UsageError(f"accounts file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read the accounts file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    defaults, tables, problems = _tables(table)
    if problems and partial:
        raise UsageError(f"{path} is not a valid accounts file:\n  " + "\n  ".join(problems))
    accounts, invalid = _validated(defaults, tables, path.resolve().parent)
    clashes = _clashes(accounts, invalid)
    problems += [f"{bad.label}: {p}" for bad in invalid for p in bad.problems]
    problems += list(dict.fromkeys(p for found in clashes.values() for p in found))
    if problems and not partial:
        raise UsageError(f"{path} is not a valid accounts file:\n  " + "\n  ".join(problems))
    invalid += [InvalidAccount(f"account {account.name!r}", account.name, account.timezone, tuple(clashes[number]))
                for number, account in enumerate(accounts) if number in clashes]  # fmt: skip
    valid = [account for number, account in enumerate(accounts) if number not in clashes]
    peers = tuple((a.name, a.url, a.token_env) for a in valid)
    return AccountsFile(path, tuple(replace(a, peers=peers) for a in valid), tuple(invalid))


def _validated(
    defaults: dict[str, Any], tables: list[dict[str, Any]], base: Path
) -> tuple[list[Account], list[InvalidAccount]]:
    accounts: list[Account] = []
    invalid: list[InvalidAccount] = []
    for number, raw in enumerate(tables, start=1):
        label = (
            f"account {raw.get('name')!r} ([[account]] {number})"
            if "name" in raw
            else f"[[account]] {number}"
        )
        merged = {**defaults, **raw}
        secret = [k for k in _SECRET_KEYS if k in raw]
        try:
            if secret:
                problems = [f"{secret[0]}: {_NO_SECRETS}"]
            else:
                accounts.append(_resolve(_AccountTable.model_validate(merged), base))
                continue
        except ValidationError as error:
            problems = [_explain(e) for e in error.errors()]
        name, zone = merged.get("name"), merged.get("timezone", "UTC")
        usable = isinstance(name, str) and re.fullmatch(NAME_PATTERN, name) is not None
        invalid.append(InvalidAccount(label, name if usable else None, _zone_or_none(zone), tuple(problems)))
    return accounts, invalid


def _zone_or_none(value: Any) -> str | None:
    try:
        return _known_zone(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _same_api(one: str, other: str) -> bool:
    """Two API URLs that reach the same API (case of the scheme and host, a default port, a final slash aside)."""

    def key(url: str) -> tuple[str, str, int | None, str]:
        parts = urlsplit(url)
        default = {"http": 80, "https": 443}.get(parts.scheme.lower())
        return parts.scheme.lower(), (parts.hostname or ""), parts.port or default, parts.path.rstrip("/")

    return key(one) == key(other)


def _tables(table: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    problems = [f"unknown table or key {key!r}: the file holds [defaults] and [[account]] tables"
                for key in table if key not in ("defaults", "account")]  # fmt: skip
    defaults, tables = table.get("defaults", {}), table.get("account", [])
    if not isinstance(defaults, dict):
        problems.append("defaults must be a table: [defaults]")
        defaults = {}
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.append("accounts must be tables: [[account]]")
        tables = []
    if not tables and not problems:
        problems.append("no [[account]] table")
    for key in ("name", "token_env"):
        if key in defaults:
            problems.append(f"[defaults]: {key} belongs to each account, not to the defaults")
    problems += [f"[defaults]: {key}: {_NO_SECRETS}" for key in _SECRET_KEYS if key in defaults]
    defaults = {k: v for k, v in defaults.items() if k not in _SECRET_KEYS}  # said once, above
    return defaults, tables, problems


_NO_SECRETS = (
    "the token is never read from this file; put it in an environment variable and name it in token_env"
)
_FRIENDLY = {
    ("name", "string_pattern_mismatch"): "use 1 to 64 letters, digits, - and _",
    ("token_env", "string_pattern_mismatch"): (
        "this looks like a token, not a variable name: give the name of the environment variable that holds "
        "the token (capital letters, digits and _, such as HELCIM_TOKEN_NORTH); what it holds is not shown"
    ),
}
#: Keys whose value is never shown in a message: a URL may carry a password, token_env may be the token.
_UNSHOWN = ("url", "token_env")


def _explain(error: Any) -> str:
    """One pydantic error as ``key: what is wrong (got …)``; the keys are the file's."""
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (the keys are {', '.join(_AccountTable.model_fields)})"
    if error["type"] == "missing":
        return f"{key}: missing"
    message = _FRIENDLY.get((key, error["type"]), str(error["msg"]).removeprefix("Value error, "))
    if key in _UNSHOWN:  # the URL's message shows its host only
        return f"{key}: {message}"
    return f"{key}: {message} (got {error['input']!r})"


def _resolve(table: _AccountTable, base: Path) -> Account:
    def path(value: str) -> str:
        value = value.replace("{name}", table.name)
        return os.path.normpath(value if Path(value).is_absolute() else base / value)

    profile = table.profile
    if profile.endswith(".toml"):
        profile = path(profile)
    return Account(
        name=table.name,
        token_env=table.token_env,
        crm=path(table.crm),
        url=table.url,
        profile=profile,
        state=Path(path(table.state)),
        out=path(table.out),
        max_calls=table.max_calls,
        policy=table.policy,
        rate_limits=RateLimits.from_spec(table.rate_limits),
        timeout=table.timeout,
        timezone=table.timezone,
        retries=table.retries,
        retry_delay=table.retry_delay,
    )


def _clashes(accounts: list[Account], invalid: list[InvalidAccount]) -> dict[int, list[str]]:
    """What two accounts must never share: a name, a state store, an output folder, a token on one API.

    Each account involved gets the problem (by its position in ``accounts``): none of them runs, since
    which one is meant cannot be told. A name an invalid table holds counts too.
    """
    problems: dict[int, list[str]] = {}
    seen: dict[tuple[str, str], int] = {}
    some_night = date(2000, 1, 1)
    taken = {bad.name.lower(): bad.label for bad in invalid if bad.name}
    for number, account in enumerate(accounts):
        if account.name.lower() in taken:
            problems.setdefault(number, []).append(
                f"account {account.name} and {taken[account.name.lower()]} have the same name (case aside)"
            )
        keys = {
            "name (case aside)": account.name.lower(),
            "state store": str(account.state.resolve()),
            "output folder": str(account.out_dir(some_night).resolve()),
            "token_env on one url": f"{account.url} {account.token_env}",
        }
        for what, key in keys.items():
            first = seen.setdefault((what, key), number)
            if first != number:
                problem = f"accounts {accounts[first].name} and {account.name} have the same {what}"
                problems.setdefault(first, []).append(problem)
                problems.setdefault(number, []).append(problem)
    return problems


# -- crmsync accounts check ---------------------------------------------------------------------


@dataclass
class AccountCheck:
    """What ``crmsync accounts check`` found for one account: the CRM export, then a ping."""

    name: str
    exit_code: int = EXIT_OK
    crm_file: Path | None = None
    connection: ConnectionReport | None = None
    problems: list[str] = field(default_factory=list)

    def fail(self, error: CrmsyncError, account: Account) -> None:
        self.exit_code = max(self.exit_code, error.exit_code)
        self.problems.append(account.explain(error))


def check_accounts(accounts: AccountsFile, env: Mapping[str, str]) -> list[AccountCheck]:
    """For each account: its export is found, its profile read, and its API answers ``ping`` with its token."""
    checks: list[AccountCheck] = []
    for account in accounts.accounts:
        check = AccountCheck(account.name)
        checks.append(check)
        try:
            check.crm_file = account.crm_file()
            if not check.crm_file.is_file():
                raise UsageError(f"account {account.name}: its CRM export {check.crm_file} does not exist")
        except UsageError as error:
            check.fail(error, account)
        try:
            load_profile(account.profile)
        except UsageError as error:
            check.fail(error, account)
        try:
            settings = account.settings(env)
            check.connection = ping(settings)
        except CrmsyncError as error:
            check.fail(error, account)
    return checks


# -- one account's nightly run ------------------------------------------------------------------


@dataclass
class AccountRun:
    """One account's nightly run as an orchestrator sees it; ``summary`` is its summary.json."""

    account: str
    exit_code: int
    status: str  # ok | partial | failed | refused | interrupted | busy
    out_dir: Path
    summary: dict[str, Any]
    result: RunResult | None = None  # None: run_nightly raised (or was never called)
    error: str = ""
    retriable: bool = False  # Helcim could not be reached: trying again later may help
    crm_file: Path | None = None

    @classmethod
    def of(cls, account: Account, result: RunResult, out_dir: Path, crm_file: Path | None) -> AccountRun:
        """A run that :func:`run_nightly` finished (whatever its status) as the orchestrator sees it."""
        fatal = result.applied.fatal if result.applied is not None else None
        error = result.error or (account.explain(fatal) if fatal is not None else "")
        if result.status == "refused" and result.prepared is not None:  # what the guard saw, column by column
            error = "the mass-change guard refused the plan: " + "; ".join(
                result.prepared.plan.mass_change_warnings()
            )
        return cls(
            account.name, result.exit_code, result.status, out_dir, result.to_dict(), result,
            error=error,
            retriable=result.exit_code == EXIT_UNREACHABLE and _retriable(fatal), crm_file=crm_file,
        )  # fmt: skip

    @property
    def succeeded(self) -> bool:
        """The night's work is done: ok (exit 0) or partial (exit 1: some rows rejected or failed).

        Exit 1 alone is not enough: a run that 429s stopped mid-apply ends ``failed`` with exit 1.
        """
        return self.exit_code in (EXIT_OK, EXIT_PARTIAL) and self.status in ("ok", "partial")

    @property
    def findings_by_severity(self) -> dict[str, int]:
        reconciliation = self.result.reconciliation if self.result is not None else None
        found = (reconciliation or {}).get("findings_by_severity", {})
        return {str(k): int(v) for k, v in found.items()}


def run_account(
    account: Account,
    env: Mapping[str, str],
    out_dir: Path,
    *,
    today: date | None = None,
    dry_run: bool = False,
    allow_mass_change: bool = False,
    progress: Progress | None = None,
    stop: StopSignal | None = None,
) -> AccountRun:
    """The nightly job for one account of the file; ``env`` is read for its token variable only.

    A state store another run holds is reported as ``busy`` (exit 2) before
    the output folder is touched: that folder belongs to the run in progress.
    Otherwise what an earlier run left in the folder (:data:`OUTPUTS`) is
    removed first, under the lock, so that nothing stale passes for this run's.
    """
    crm_file: Path | None = None
    today = today or datetime.now(ZoneInfo(account.timezone)).date()  # the account's date, not the machine's
    try:
        with state_lock(account.state):  # a first look; run_nightly takes the lock for good
            _clear_outputs(out_dir)
        settings = account.settings(env)
        crm_file = account.crm_file()
    except CrmsyncError as error:
        return _failed(
            account, out_dir, error, crm_file, write_summary=not isinstance(error, StateLockedError)
        )
    try:
        result = run_nightly(
            settings, crm_file, account.profile, out_dir, policy=account.policy, max_calls=account.max_calls,
            dry_run=dry_run, allow_mass_change=allow_mass_change, progress=progress, stop=stop, today=today,
        )  # fmt: skip
    except CrmsyncError as error:
        return _failed(account, out_dir, error, crm_file, write_summary=False)
    return AccountRun.of(account, result, out_dir, crm_file)


def _clear_outputs(out_dir: Path) -> None:
    """Remove what an earlier run wrote in ``out_dir`` (only :data:`OUTPUTS`; anything else stays)."""
    for name in OUTPUTS:
        path = out_dir / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot remove the earlier {path}: {exc.strerror or exc}") from None


def _retriable(error: BaseException | None) -> bool:
    """Helcim unreachable (connection, timeouts, 5xx, answers not in its shape): worth trying later.

    Not a refused token (the same token would be refused again), a redirect
    (a wrong URL), or anything with exit code 2.
    """
    return isinstance(error, HelcimUnavailable)  # a signal (Interrupted) is not one: no subclass of both


def _failed(
    account: Account, out_dir: Path, error: CrmsyncError, crm_file: Path | None, *, write_summary: bool
) -> AccountRun:
    status = "interrupted" if isinstance(error, Interrupted) else "failed"
    if isinstance(error, StateLockedError):
        status = "busy"
    summary_path = out_dir / "summary.json"
    summary: dict[str, Any] | None = None
    if write_summary:  # stopped before run_nightly wrote anything: the summary crmsync run would write
        summary = RunResult(
            status=status, exit_code=error.exit_code, counts=RowCounts.nothing_done(None),
            calls=CallStats.of(None), budget=account.max_calls or account.rate_limits.per_hour,
            duration_seconds=0.0, warnings=[f"the run did not start: {account.explain(error)}"],
            error=account.explain(error),
        ).to_dict()  # fmt: skip
        try:
            prepare_out_dir(out_dir)
            try_write_json(summary, summary_path)
        except CrmsyncError:
            pass  # the summary is in the result; the folder is what failed
    elif status != "busy":  # run_nightly wrote its own, as far as the disk allowed
        summary = _read_json(summary_path)
    message = account.explain(error)
    summary = summary or {"command": "run", "status": status, "exit_code": error.exit_code, "error": message}
    return AccountRun(
        account.name, error.exit_code, status, out_dir, summary,
        error=message, retriable=_retriable(error), crm_file=crm_file,
    )  # fmt: skip


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None
