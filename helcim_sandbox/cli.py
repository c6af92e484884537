"""``helcim-sandbox``: serve the emulated API, or seed its database."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from datetime import date
from pathlib import Path

import click
import requests

from helcim_sandbox.faults import FaultConfig
from helcim_sandbox.limits import LimitConfig

DEFAULT_TOKEN = "sandbox-token"


def _limits(_: click.Context, __: click.Parameter, value: str) -> LimitConfig:
    try:
        return LimitConfig.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _faults(_: click.Context, __: click.Parameter, value: str | None) -> FaultConfig:
    try:
        return FaultConfig.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crmsync", prog_name="helcim-sandbox")
def main() -> None:
    """A local emulator of Helcim's Customer API v2, for tests and safe trials.

    It serves /v2 exactly like api.helcim.com (field names, quirks, rate
    limits, error bodies) and, outside /v2, sandbox-only endpoints under
    /_sandbox/ that Helcim does not have. Interactive docs: /docs.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port."
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file that keeps the data across restarts (default: in memory).",
)
@click.option(
    "--token",
    "tokens",
    multiple=True,
    help="Accepted api-token (repeatable). Default: $HELCIM_API_TOKEN, else 'sandbox-token'.",
)
@click.option(
    "--limits",
    default="real",
    show_default=True,
    callback=_limits,
    help="real (5 concurrent, 100/min, 3000/h), off, or fast (same shape, windows 60x shorter); "
    "overrides like 'fast,minute=20,scale=30'.",
)
@click.option(
    "--faults",
    callback=_faults,
    help="Fault injection, e.g. 'error500=0.05,drop_after_commit=0.02,timeout=0.01,latency_ms=20-200,seed=7'.",
)
@click.option(
    "--duplicate-codes",
    type=click.Choice(["refuse", "allow"]),
    default="refuse",
    show_default=True,
    help="What a create with an existing customerCode gets: a 400, or a second customer (Helcim's real "
    "behaviour is undocumented; 'allow' is the worst case for duplicate-safe clients).",
)
@click.option(
    "--timezone", default="America/Edmonton", show_default=True, help="Merchant time zone of dates."
)
@click.option(
    "--url-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the /v2 base URL here once listening (for scripts that started it with --port 0).",
)
@click.option(
    "--log-level", default="warning", show_default=True, type=click.Choice(["debug", "info", "warning"])
)
def serve(
    host: str,
    port: int,
    db: Path | None,
    tokens: tuple[str, ...],
    limits: LimitConfig,
    faults: FaultConfig,
    duplicate_codes: str,
    timezone: str,
    url_file: Path | None,
    log_level: str,
) -> None:
    """Serve the emulated Customer API until interrupted."""
    import uvicorn

    from helcim_sandbox.app import build_state, create_app

    accepted = list(tokens)
    source = "--token"
    if not accepted:
        env_token = os.environ.get("HELCIM_API_TOKEN", "")
        accepted, source = ([env_token], "HELCIM_API_TOKEN") if env_token else ([DEFAULT_TOKEN], "default")
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    state = build_state(
        str(db) if db else None, accepted, limits, faults, timezone, duplicate_codes == "allow"
    )
    app = create_app(state)

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)  # listen now, so a client that reads --url-file is queued, never refused
    bound_port = sock.getsockname()[1]
    display_host = f"[{host}]" if ":" in host else host
    base_url = f"http://{display_host}:{bound_port}/v2"
    token_note = "sandbox-token" if source == "default" else f"{len(accepted)} token(s) from {source}"
    click.echo(
        f"helcim-sandbox listening on {base_url}  (tokens: {token_note}; limits: {limits.spec()}; "
        f"faults: {faults.spec() if faults.active else 'none'}; duplicate codes: {duplicate_codes}; "
        f"db: {db or 'in memory'})",
    )
    sys.stdout.flush()
    if url_file is not None:
        tmp = url_file.with_suffix(".tmp")
        tmp.write_text(base_url + "\n")
        tmp.replace(url_file)
    config = uvicorn.Config(app, log_level=log_level, access_log=log_level == "debug", lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        state.store.close()
        if url_file is not None:
            url_file.unlink(missing_ok=True)


@main.command()
@click.option(
    "--customers", "count", required=True, type=click.IntRange(0), help="How many customers to add."
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Seed this SQLite file directly (the fast way; the server may be stopped or running).",
)
@click.option(
    "--url", help="Seed a running sandbox instead, e.g. http://127.0.0.1:8765 (its /v2 URL works too)."
)
@click.option("--seed", "seed_value", default=0, show_default=True, help="Random seed: same seed, same data.")
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Date that expiries and ages are relative to (default: today, merchant time).",
)
def seed(count: int, db: Path | None, url: str | None, seed_value: int, today: object) -> None:
    """Add COUNT realistic customers with cards, bank accounts and PADs."""
    if (db is None) == (url is None):
        raise click.UsageError("give exactly one of --db FILE or --url URL")
    today_iso = today.date().isoformat() if today is not None else None  # type: ignore[attr-defined]
    started = time.perf_counter()
    if db is not None:
        from helcim_sandbox.seed import SeedOptions, seed_store
        from helcim_sandbox.store import Store

        db.parent.mkdir(parents=True, exist_ok=True)
        store = Store(str(db))
        try:
            result = seed_store(
                store, SeedOptions(count, seed_value, date.fromisoformat(today_iso) if today_iso else None)
            )
        finally:
            store.close()
    else:
        assert url is not None
        root = url.rstrip("/").removesuffix("/v2")
        body = {"customers": count, "seed": seed_value, **({"today": today_iso} if today_iso else {})}
        try:
            response = requests.post(f"{root}/_sandbox/seed", json=body, timeout=600)
        except requests.RequestException as exc:
            raise click.ClickException(f"cannot reach the sandbox at {root}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise click.ClickException(
                f"the sandbox refused to seed: {response.status_code} {response.text[:200]}"
            )
        result = response.json()
    elapsed = time.perf_counter() - started
    click.echo(json.dumps(result, indent=2))
    click.echo(f"seeded {count} customers in {elapsed:.1f} s", err=True)
