"""``crmsync``: the command line. Each command is a thin shell over one library call.

A command parses its options, calls one function of the library, renders the
result, and lets :func:`main` turn our exceptions into exit codes:
0 success, 1 partial (some rows rejected or failed), 2 bad usage or bad input
file, 3 could not reach or authenticate to the API.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from crmsync.errors import (
    EXIT_PARTIAL,
    EXIT_SIGINT,
    AccountMismatchError,
    CrmsyncError,
    KeyChangeError,
    MassChangeError,
    NoProfileFitsError,
    StateError,
    StateLockedError,
)

if TYPE_CHECKING:
    from crmsync.jobs.run import RunResult

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn a CrmsyncError raised by the library into one clear line and its exit code.

    Under ``--log-format json`` the line is a JSON object like every other log line.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CrmsyncError as error:
            message = f"{error}{_hint(error)}"
            if kwargs.get("log_format") == "json":
                click.echo(json_line("error", message, exit_code=error.exit_code), err=True)
            else:
                click.echo(f"crmsync: error: {message}", err=True)
            raise click.exceptions.Exit(error.exit_code) from None

    return wrapper  # type: ignore[return-value]


#: What the command line adds to a library error: the option that does something about it.
_HINTS: tuple[tuple[type[CrmsyncError], str], ...] = (
    (
        NoProfileFitsError,
        " (crmsync profile draft FILE prints a starting profile; use it with --profile FILE.toml)",
    ),
    (MassChangeError, " (--allow-mass-change)"),
    (AccountMismatchError, " (--state FILE, or CRMSYNC_STATE_DB)"),
    (KeyChangeError, " (--allow-key-change)"),
    (StateError, " (--state FILE, or CRMSYNC_STATE_DB)"),
)


def _hint(error: CrmsyncError) -> str:
    for kind, hint in _HINTS:
        if isinstance(error, kind) and not isinstance(error, StateLockedError):
            return hint
    return ""


def json_line(level: str, message: str, **extra: Any) -> str:
    """One log line in the shape of ``--log-format json`` (for what happens outside logging)."""
    payload = {
        "ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "level": level,
        "logger": "crmsync",
        "message": message,
        **extra,
    }
    return json.dumps(payload, ensure_ascii=False)


# -- shared option sets -----------------------------------------------------------


PROFILE_HELP = (
    "Column mapping of the CRM export: auto (the built-in profile whose headers fit best), a built-in "
    "profile's name (crmsync profiles lists them) or a profile file's path."
)


def crm_options(func: F) -> F:
    """--crm FILE, --profile NAME and --incomplete-address omit|reject."""
    func = click.option(
        "--incomplete-address",
        type=click.Choice(["omit", "reject"]),
        default="omit",
        show_default=True,
        help="An address without street1 or postal code: omit it and create the customer with what Helcim "
        "can hold (warnings.csv says what was not stored), or reject the row.",
    )(func)
    func = click.option("--profile", default="auto", show_default=True, help=PROFILE_HELP)(func)
    func = click.option(
        "--crm",
        "crm_path",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="The CRM's customer export (CSV).",
    )(func)
    return func


def out_option(func: F) -> F:
    """--out DIR."""
    return click.option(
        "--out",
        "out_dir",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Folder for the outputs (created if missing).",
    )(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="crmsync", prog_name="crmsync")
def cli() -> None:
    """Keep a CRM's customers and a Helcim account in sync, and report on payment methods.

    \b
    Exit codes: 0 success
                1 partial: some rows rejected or failed
                2 bad usage or bad input file
                3 could not reach or authenticate to the API
                130/143 stopped by SIGINT/SIGTERM
    The API location and token come from HELCIM_API_URL (default
    https://api.helcim.com/v2) and HELCIM_API_TOKEN.
    """


def settings_options(func: F) -> F:
    """--config FILE and --rate-limits SPEC (both also settable by environment)."""
    func = click.option(
        "--rate-limits",
        help="helcim (default: 5 concurrent, 100/min, 3000/h), fast (60x shorter windows, for "
        "helcim-sandbox --limits fast) or off; overrides like 'helcim,concurrent=2'. Env: CRMSYNC_RATE_LIMITS.",
    )(func)
    func = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Settings file (default: ./crmsync.toml if present). Env: CRMSYNC_CONFIG.",
    )(func)
    return func


def state_option(func: F) -> F:
    """--state FILE."""
    return click.option(
        "--state",
        "state_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The state store (default: CRMSYNC_STATE_DB, else ~/.local/state/crmsync/state.db).",
    )(func)


def budget_options(func: F) -> F:
    """--max-calls N and --policy."""
    func = click.option(
        "--policy",
        type=click.Choice(["crm-wins", "helcim-wins", "manual"]),
        default="crm-wins",
        show_default=True,
        help="A field changed differently on both sides: push the CRM's value, export Helcim's, "
        "or report it and leave it (manual).",
    )(func)
    func = click.option(
        "--max-calls",
        type=click.IntRange(min=1),
        help="Helcim calls this run may spend, reads included (default: one hour of the rate limit, 3000).",
    )(func)
    return func


def key_change_option(func: F) -> F:
    """--allow-key-change."""
    return click.option(
        "--allow-key-change",
        is_flag=True,
        help="Sync an export keyed otherwise than the state store last synced (another profile, id column, "
        "or the e-mail instead of the id): customers are proposed as links to their new keys and held. "
        "Without it such an export is refused (exit 2).",
    )(func)


@cli.command()
@crm_options
@out_option
@budget_options
@key_change_option
@state_option
@settings_options
@reports_errors
def plan(
    crm_path: Path,
    profile: str,
    incomplete_address: str,
    out_dir: Path,
    max_calls: int | None,
    policy: str,
    allow_key_change: bool,
    state_path: Path | None,
    config_file: Path | None,
    rate_limits: str | None,
) -> None:
    """Show exactly what a sync would do and what it costs, without writing to Helcim.

    Reads Helcim customers (within the budget), diffs them against the CRM
    export and the state store, and writes to --out: plan.json (what `apply`
    executes), plan.csv (one row per field, old -> new), conflicts.csv,
    link_proposals.csv (possible matches under other codes: approve with
    `crmsync link --accept`), rejects.csv and summary.json.
    """
    from crmsync.config import load_settings
    from crmsync.jobs.plan import plan_sync
    from crmsync.stopping import StopSignal, stop_on_signals

    settings = load_settings(config_file=config_file, state_path=state_path, rate_limits=rate_limits)
    with stop_on_signals(StopSignal()) as stop:
        result = plan_sync(
            settings, crm_path, profile, out_dir, policy=policy,  # type: ignore[arg-type]
            max_calls=max_calls, stop=stop, incomplete_address=incomplete_address,
            allow_key_change=allow_key_change,
        )  # fmt: skip
    plan, estimate = result.plan, result.plan.estimate
    creates = sum(op.kind == "create" for op in plan.operations)
    click.echo(_profile_line(result.profile, result.profile_fit, result.rows_with_warnings))
    click.echo(
        f"{result.rows_read} rows read: {result.valid} valid, {result.rejected} rejected. "
        f"Plan: {creates} creates, {len(plan.operations) - creates} updates, {len(plan.deferred)} deferred, "
        f"{len(plan.held)} held."
    )
    click.echo(
        f"Calls: {estimate.reads_spent} spent reading, {estimate.reads_planned} planned for bank accounts, "
        f"{estimate.writes} writes; budget {estimate.budget}."
    )
    _warn(result.warnings, mass_change=bool(plan.mass_changes))
    click.echo(
        f"Plan written to {result.out_dir / 'plan.json'} (and plan.csv, conflicts.csv, link_proposals.csv)"
    )
    raise click.exceptions.Exit(result.exit_code)


def _profile_line(profile: str, fit: dict[str, Any], with_warnings: int) -> str:
    """Which profile read the export, how well it fits, and how many rows have warnings (warnings.csv)."""
    how = f" (reads {fit['headers_read']} of {fit['headers']} headers)" if fit else ""
    return f"Profile {profile}{how}; {with_warnings} valid rows with warnings (warnings.csv)."


def _warn(warnings: list[str], *, mass_change: bool = False) -> None:
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if mass_change:
        click.echo("warning: to write such a plan, give --allow-mass-change", err=True)


def mass_change_option(func: F) -> F:
    """--allow-mass-change."""
    return click.option(
        "--allow-mass-change",
        is_flag=True,
        help="Write even when one field would be cleared or changed on more than 10 % (and at least 20) of "
        "the linked customers; without it such a run writes nothing and exits 2.",
    )(func)


def log_format_option(func: F) -> F:
    """--log-format text|json."""
    return click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Log lines on stderr: text (progress bars on a terminal) or json (one object per line).",
    )(func)


def _print_run(result: RunResult, out_dir: Path) -> None:
    from crmsync.jobs.accounting import OUTCOMES

    counts = result.counts
    if result.prepared is not None:
        checked = result.prepared.checked
        fit = checked.export.profile_fit
        click.echo(
            _profile_line(checked.export.profile, fit.to_dict() if fit else {}, checked.rows_with_warnings)
        )
    buckets = ", ".join(f"{getattr(counts, k)} {k}" for k in OUTCOMES)
    click.echo(f"{counts.rows_read} rows read: {buckets}.")
    calls = result.calls
    click.echo(
        f"API calls: {calls.calls} of a budget of {result.budget}; {calls.retries} retries, "
        f"{calls.rate_limited} rate-limited answers; {result.duration_seconds} s."
    )
    plan = result.prepared.plan if result.prepared is not None else None
    _warn(
        result.warnings,
        mass_change=result.status == "refused" and plan is not None and bool(plan.mass_changes),
    )
    click.echo(f"Outputs in {out_dir}/ (summary.json, results.csv, plan.csv, rejects.csv, …)")


@cli.command()
@crm_options
@out_option
@budget_options
@click.option(
    "--dry-run", is_flag=True, help="Read and plan, write nothing to Helcim (writes count as deferred)."
)
@mass_change_option
@key_change_option
@log_format_option
@state_option
@settings_options
@reports_errors
def run(
    crm_path: Path,
    profile: str,
    incomplete_address: str,
    out_dir: Path,
    max_calls: int | None,
    policy: str,
    dry_run: bool,
    allow_mass_change: bool,
    allow_key_change: bool,
    log_format: str,
    state_path: Path | None,
    config_file: Path | None,
    rate_limits: str | None,
) -> None:
    """The nightly job: CRM export -> Helcim, within the budget, and everything the morning needs.

    \b
    Validate the export, read Helcim (paged, paced), diff against the state
    store, write creates then updates (journaled: a killed run resumes without
    duplicates), defer what the budget does not allow (it goes first next
    night), and write to --out: summary.json (rows_read = created + updated +
    unchanged + rejected + deferred + failed + conflicts), results.csv (one row
    per operation), plan.json, plan.csv, conflicts.csv, link_proposals.csv,
    rejects.csv, crm_import/ (files for the CRM) and reconciliation/ (findings
    on cards, bank accounts and PADs, and report.html).
    \b
    Exit codes: 0 done (deferred rows are not a failure)
                1 some rows were rejected or failed
                2 bad usage, bad input file, state store busy or of another account,
                  an export keyed otherwise than the state store last synced,
                  output folder not writable, or the mass-change guard refused the plan
                3 could not reach or authenticate to the API
                130/143 stopped by SIGINT/SIGTERM (summary.json says what was done)
    """
    from crmsync.config import load_settings
    from crmsync.console import progress_reporter
    from crmsync.jobs.run import run_nightly
    from crmsync.stopping import StopSignal, stop_on_signals

    settings = load_settings(config_file=config_file, state_path=state_path, rate_limits=rate_limits)
    with (
        progress_reporter(log_format, secrets=[settings.api_token]) as progress,
        stop_on_signals(StopSignal()) as stop,
    ):
        result = run_nightly(
            settings, crm_path, profile, out_dir, policy=policy,  # type: ignore[arg-type]
            max_calls=max_calls, dry_run=dry_run, allow_mass_change=allow_mass_change,
            progress=progress, stop=stop, incomplete_address=incomplete_address,
            allow_key_change=allow_key_change,
        )  # fmt: skip
    _print_run(result, out_dir)
    raise click.exceptions.Exit(result.exit_code)


@cli.command()
@click.option(
    "--plan",
    "plan_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="plan.json as `crmsync plan` (or `crmsync run`) wrote it.",
)
@out_option
@mass_change_option
@log_format_option
@state_option
@settings_options
@reports_errors
def apply(
    plan_path: Path,
    out_dir: Path,
    allow_mass_change: bool,
    log_format: str,
    state_path: Path | None,
    config_file: Path | None,
    rate_limits: str | None,
) -> None:
    """Execute exactly the writes of a plan.json: creates first, then updates.

    Each write is journaled before it is sent; an operation already done (a
    second apply of the same plan) is not sent again. Writes results.csv and
    summary.json to --out. Exit 1 when some operation failed.
    """
    from crmsync.config import load_settings
    from crmsync.console import progress_reporter
    from crmsync.jobs.apply import apply_plan_file
    from crmsync.stopping import StopSignal, stop_on_signals

    settings = load_settings(config_file=config_file, state_path=state_path, rate_limits=rate_limits)
    with (
        progress_reporter(log_format, secrets=[settings.api_token]) as progress,
        stop_on_signals(StopSignal()) as stop,
    ):
        result = apply_plan_file(
            settings, plan_path, out_dir, allow_mass_change=allow_mass_change, progress=progress, stop=stop
        )
    click.echo(
        f"{len(result.plan.operations) + len(result.plan.deferred)} operations: "
        f"{result.count('created', 'recovered')} created, {result.count('updated')} updated, "
        f"{result.count('already-applied')} already applied, {result.count('deferred')} deferred, "
        f"{result.count('failed')} failed; {result.calls.calls} API calls. Results in {out_dir / 'results.csv'}"
    )
    raise click.exceptions.Exit(result.exit_code)


@cli.command()
@click.option(
    "--accept",
    "proposals",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="link_proposals.csv as `crmsync plan` wrote it, with accept = yes / no filled in (no column: all yes).",
)
@state_option
@settings_options
@reports_errors
def link(proposals: Path, state_path: Path | None, config_file: Path | None, rate_limits: str | None) -> None:
    """Record which proposed matches are the same customer (and which are not).

    Accepted rows link the CRM row to that Helcim customer for good; rejected
    rows let the CRM row be created on the next run.
    """
    from crmsync.config import load_settings
    from crmsync.jobs.link import accept_links

    settings = load_settings(config_file=config_file, state_path=state_path, rate_limits=rate_limits)
    result = accept_links(settings, proposals)
    click.echo(
        f"linked {len(result.linked)}, rejected {len(result.rejected)}, left undecided {result.undecided}"
    )


@cli.command()
@click.option(
    "--accept",
    "actions_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="actions.csv as the morning report proposed it (or report.html downloaded it), approve = yes filled in.",
)
@click.option(
    "--resolve",
    "resolve",
    multiple=True,
    metavar="ACTION_ID=sent|not-sent",
    help="What you found in Helcim about an e-mail whose outcome is uncertain (a check in results.csv); "
    "repeatable. Until then its customer is never e-mailed again.",
)
@out_option
@click.option(
    "--max-calls",
    type=click.IntRange(min=1),
    help="Helcim calls to spend: reads before and after each customer's actions, and the actions "
    "(default: one hour of the limit).",
)
@click.option("--dry-run", is_flag=True, help="Read and check every approved action; send none.")
@log_format_option
@state_option
@settings_options
@reports_errors
def act(
    actions_file: Path | None,
    resolve: tuple[str, ...],
    out_dir: Path,
    max_calls: int | None,
    dry_run: bool,
    log_format: str,
    state_path: Path | None,
    config_file: Path | None,
    rate_limits: str | None,
) -> None:
    """Do the approved actions of a morning report in Helcim: set defaults, delete expired cards, request details.

    \b
    Only rows with approve = yes are done, each checked first against a fresh
    read of its customer: an action whose finding no longer holds is skipped,
    with the reason, as of today (the clock's date: a card's expiry, a PAD's age).
    Each action is journaled (intent before, outcome after):
    one already done is never repeated, and a request that e-mails the customer
    is never sent again after an uncertain outcome: look in Helcim, then record
    what you found with --resolve ACTION_ID=sent|not-sent (until then, nothing
    e-mails that customer). Writes results.csv and summary.json to --out.
    \b
    Exit codes: 0 every approved action done, already done, no longer needed or deferred
                1 an action failed, or its outcome is uncertain (check it in Helcim)
                2 bad usage, an actions file crmsync did not write, state store busy
                3 could not reach or authenticate to the API
    """
    from crmsync.config import load_settings
    from crmsync.console import progress_reporter
    from crmsync.jobs.act import OUTCOMES, act_on_file
    from crmsync.stopping import StopSignal, stop_on_signals

    if actions_file is None and not resolve:
        raise click.UsageError("give --accept FILE, or --resolve ACTION_ID=sent|not-sent")
    verdicts = dict(item.partition("=")[::2] for item in resolve)
    settings = load_settings(config_file=config_file, state_path=state_path, rate_limits=rate_limits)
    with (
        progress_reporter(log_format, secrets=[settings.api_token]) as progress,
        stop_on_signals(StopSignal()) as stop,
    ):
        result = act_on_file(
            settings, actions_file, out_dir, max_calls=max_calls, dry_run=dry_run, resolve=verdicts,
            progress=progress, stop=stop,
        )  # fmt: skip
    for action_id, verdict in result.resolved.items():
        click.echo(f"{action_id}: recorded as {verdict}{' (dry run: not recorded)' if dry_run else ''}")
    counts = result.outcome.counts()
    done = ", ".join(f"{counts[name]} {name}" for name in OUTCOMES if counts.get(name))
    click.echo(
        f"{result.rows_read} rows read, {result.rows_read - result.not_approved} approved: {done or 'nothing to do'}; "
        f"{result.calls.calls} API calls."
    )
    if result.error:
        click.echo(f"warning: {result.error}", err=True)
    if counts.get("check") or counts.get("uncertain"):
        click.echo(
            "warning: some outcomes are uncertain: check those actions in Helcim (results.csv); for an e-mail, "
            "record what you found with --resolve ACTION_ID=sent|not-sent",
            err=True,
        )
    click.echo(f"Results in {out_dir / 'results.csv'}")
    raise click.exceptions.Exit(result.exit_code)


@cli.command()
@click.option("--url", help="The API to try (default: HELCIM_API_URL, else https://api.helcim.com/v2).")
@settings_options
@reports_errors
def ping(url: str | None, config_file: Path | None, rate_limits: str | None) -> None:
    """Test the connection and the token: which API answered, and the rate limits left.

    Exits 3 with the reason when the API cannot be reached or refuses the token.
    """
    from crmsync.config import load_settings
    from crmsync.jobs.ping import ping as ping_account

    settings = load_settings(config_file=config_file, api_url=url, rate_limits=rate_limits)
    for line in ping_account(settings).lines():
        click.echo(line)


@cli.group()
def accounts() -> None:
    """Many merchant accounts in one file (accounts.toml): check it; run them with Dagster.

    The nightly runs of many accounts are fanned out by an orchestrator: the
    Dagster code location crmsync.orchestrate.definitions, or `make fanout`.
    """


@accounts.command("check")
@click.argument("accounts_file", type=click.Path(dir_okay=False, path_type=Path))
@reports_errors
def accounts_check(accounts_file: Path) -> None:
    """Validate ACCOUNTS_FILE, find each account's CRM export, and ping each account with its token.

    \b
    Exit codes, as ping's, the worst (highest) of all accounts:
                0 every account answered and has its export
                2 the file is not valid, or an account's export or settings are
                3 an account's API cannot be reached, or refuses its token
    """
    from crmsync.jobs.accounts import check_accounts, load_accounts

    loaded = load_accounts(accounts_file)
    checks = check_accounts(loaded, os.environ)
    width = max(len(check.name) for check in checks)
    for check in checks:
        verdict = "ok" if check.exit_code == 0 else f"exit {check.exit_code}"
        click.echo(f"{check.name:<{width}}  {verdict:<7} crm: {check.crm_file or '-'}")
        if check.connection is not None:
            for line in check.connection.lines():
                click.echo(f"{'':<{width}}  {'':<7} {line}")
        for problem in check.problems:
            click.echo(f"{'':<{width}}  {'':<7} error: {problem}")
    worst = max(check.exit_code for check in checks)
    failed = sum(check.exit_code != 0 for check in checks)
    click.echo(
        f"{len(checks)} accounts in {accounts_file}: {len(checks) - failed} ready, {failed} not (exit {worst})"
    )
    raise click.exceptions.Exit(worst)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: every outcome is an exit code and clear words, never a bare traceback.

    A bug still reports itself (type, message and the traceback, with the API
    token removed), as one JSON line under ``--log-format json``; Ctrl-C where
    no run is in progress exits 130.
    """
    args = sys.argv[1:] if argv is None else argv
    try:
        code = cli.main(args=args, prog_name="crmsync", standalone_mode=False)
    except click.exceptions.Exit as stop:
        code = stop.exit_code
    except click.ClickException as error:
        error.show()
        code = error.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("crmsync: interrupted", err=True)
        code = EXIT_SIGINT
    except Exception as error:  # a bug: say so plainly, without the token
        code = EXIT_PARTIAL
        _report_crash(error, json_format=_wants_json(args))
    sys.exit(code if isinstance(code, int) else 0)


def _wants_json(args: list[str]) -> bool:
    joined = " ".join(args)
    return "--log-format json" in joined or "--log-format=json" in joined


def _report_crash(error: Exception, *, json_format: bool) -> None:
    token = os.environ.get("HELCIM_API_TOKEN", "").strip()

    def clean(text: str) -> str:
        return text.replace(token, "[redacted]") if token else text

    message = clean(f"crmsync stopped on an unexpected error (a bug): {type(error).__name__}: {error}")
    trace = clean("".join(traceback.format_exception(error)))
    if json_format:
        click.echo(json_line("critical", message, exception=trace, exit_code=EXIT_PARTIAL), err=True)
    else:
        click.echo(f"{trace}crmsync: error: {message}", err=True)


# -- commands ------------------------------------------------------------------------


class RateType(click.ParamType):  # type: ignore[type-arg]
    """A fraction 0–1 (``0.05``) or a percentage (``5%``)."""

    name = "RATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        from crmsync.errors import UsageError
        from crmsync.jobs.validate import parse_rate

        try:
            return parse_rate(str(value))
        except UsageError as error:
            self.fail(str(error), param, ctx)


@cli.command()
@crm_options
@out_option
@click.option(
    "--max-reject-rate",
    type=RateType(),
    default=None,
    help="Fail the run (exit 2) when more than this share of rows is rejected: 0.05 or 5%.",
)
@reports_errors
def validate(
    crm_path: Path, profile: str, incomplete_address: str, out_dir: Path, max_reject_rate: float | None
) -> None:
    """Read, normalise and validate a CRM export; nothing is sent to Helcim.

    \b
    Writes to --out:
      valid.csv     the normalised valid rows (generic columns, then source_line)
      rejects.csv   one row per problem: source_line, crm_id, column, value, reason
      warnings.csv  what valid rows could not store in Helcim, and why (the columns of rejects.csv)
      summary.json  rows_read = valid + rejected, the profile and its fit, encoding, warnings, …
    \b
    Exit codes: 0 every row is valid
                1 some rows were rejected (see rejects.csv)
                2 the file cannot be read as a CRM export, or --max-reject-rate was exceeded
    """
    from crmsync.jobs.validate import validate_file

    summary = validate_file(crm_path, profile, out_dir, max_reject_rate, incomplete_address)
    for warning in summary.warnings:
        click.echo(f"crmsync: warning: {warning}", err=True)
    guessed = ", guessed" if summary.encoding_guessed else ""
    fit = summary.profile_fit
    how = (
        f" ({'chosen: ' if profile == 'auto' else ''}reads {fit['headers_read']} of {fit['headers']} headers)"
    )
    click.echo(
        f"{summary.rows_read:,} rows read from {summary.source_file} "
        f"({summary.encoding}{guessed}, {summary.delimiter_name}-separated, profile {summary.profile}{how if fit else ''}): "
        f"{summary.valid:,} valid ({summary.rows_with_warnings:,} with warnings), {summary.rejected:,} rejected "
        f"({summary.reject_rate:.1%})"
    )
    if summary.rejected:
        top = ", ".join(
            f"{column or 'row shape'} {count}" for column, count in summary.problems_by_column.items()
        )
        click.echo(f"problems by column: {top}")
    click.echo(f"outputs in {out_dir}/: valid.csv, rejects.csv, warnings.csv, summary.json")
    raise click.exceptions.Exit(summary.exit_code)


@cli.command()
@out_option
@click.option(
    "--crm",
    "crm_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The CRM's customer export: adds helcim_only_customer, crm_only_customer, no_payment_method "
    "and the CRM import files new_customers.csv and updates.csv.",
)
@click.option("--profile", default="auto", show_default=True, help=PROFILE_HELP)
@click.option(
    "--max-calls",
    type=click.IntRange(min=1),
    help="Helcim calls to spend refreshing customers, bank accounts and PADs (default: one hour of the limit).",
)
@click.option(
    "--expiring-days",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="A card is expiring when it expires within this many days.",
)
@click.option(
    "--pad-pending-days",
    type=click.IntRange(min=0),
    default=14,
    show_default=True,
    help="Report a PAD still pending after this many days.",
)
@click.option(
    "--stale-nights",
    type=click.IntRange(min=0),
    default=7,
    show_default=True,
    help="Report bank/PAD data read longer ago than this many nights.",
)
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Reconcile as of this date (YYYY-MM-DD; default: today).",
)
@state_option
@settings_options
@reports_errors
def reconcile(
    out_dir: Path,
    crm_path: Path | None,
    profile: str,
    max_calls: int | None,
    expiring_days: int,
    pad_pending_days: int,
    stale_nights: int,
    today: Any,
    state_path: Path | None,
    config_file: Path | None,
    rate_limits: str | None,
) -> None:
    """The morning reconciliation of cards, bank accounts and PADs, and the CRM import files.

    \b
    Writes to --out (nothing is written to Helcim):
      reconciliation/  cards.csv, banks.csv, pads.csv, findings.csv, summary.json, report.html
      crm_import/      new_customers.csv, updates.csv, payment_methods.csv (the CRM's column names)
    Findings are not failures: exit 0 unless the run itself failed.
    """
    from crmsync.config import load_settings
    from crmsync.jobs.reconcile import reconcile_account
    from crmsync.stopping import StopSignal, stop_on_signals

    settings = load_settings(config_file=config_file, state_path=state_path, rate_limits=rate_limits)
    with stop_on_signals(StopSignal()) as stop:
        result = reconcile_account(
            settings,
            out_dir,
            crm_path=crm_path,
            profile=profile,
            max_calls=max_calls,
            today=today.date() if today is not None else None,
            expiring_days=expiring_days,
            pad_pending_days=pad_pending_days,
            stale_nights=stale_nights,
            stop=stop,
        )
    rec = result.reconciliation
    severity = result.written["findings_by_severity"]
    click.echo(
        f"{rec.customers} customers, {len(rec.cards)} cards, {len(rec.banks)} bank accounts, {len(rec.pads)} PADs "
        f"as of {rec.today.isoformat()}: {severity.get('critical', 0)} critical, {severity.get('warning', 0)} "
        f"warnings, {severity.get('info', 0)} for information."
    )
    for note in rec.notes:
        click.echo(f"note: {note}", err=True)
    if result.error:
        click.echo(f"warning: {result.error}", err=True)
    click.echo(f"API calls: {result.calls.calls}. Report: {result.report}")
    raise click.exceptions.Exit(result.exit_code)


@cli.command()
def profiles() -> None:
    """List the built-in profiles: the system each reads, its key, what it requires and what it maps."""
    from crmsync.crm.profiles import builtin_profiles

    for profile in builtin_profiles():
        key = " else ".join("the e-mail" if k == "email" else "its id column" for k in profile.key)
        click.echo(f"{profile.name}: {profile.label}")
        click.echo(f"    {profile.description}")
        click.echo(f"    key: {key}; requires: {', '.join(profile.required) or 'nothing more'}")
        heads = [
            h for h in profile.known_headers() if ":" not in h or h.split(":", 1)[0] not in profile.sections
        ]
        click.echo(f"    reads: {', '.join(heads[:12])}{', …' if len(heads) > 12 else ''}")


@cli.group()
def profile() -> None:
    """Work with mapping profiles (see also: crmsync profiles)."""


@profile.command()
@click.argument("export", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--system", default="", help="The system's name, for the draft's system line.")
@reports_errors
def draft(export: Path, system: str) -> None:
    """Print a starting TOML profile for an export no built-in profile reads, guessing each header.

    Save it (crmsync profile draft FILE > mycrm.toml), check every guess, then
    use it with --profile mycrm.toml.
    """
    from crmsync.crm.extract import read_export
    from crmsync.crm.fit import draft_profile, rank_profiles

    names = [str(c) for c in read_export(export).frame.columns]
    best = rank_profiles(names)[0]
    if best.fits:
        click.echo(f"# note: the built-in profile {best.describe()} already fits this export", err=True)
    click.echo(draft_profile(names, system), nl=False)
