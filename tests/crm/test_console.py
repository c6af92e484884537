"""Log output of long commands: JSON lines, progress lines, and no secret in either."""

from __future__ import annotations

import io
import json
import logging

from crmsync.console import LogProgress, configure_logging


def test_json_lines_redact_the_token_in_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream, secrets=["tok-123-secret"])
    log = logging.getLogger("crmsync.test")
    log.info("calling with %s", "tok-123-secret")
    try:
        raise RuntimeError("header api-token: tok-123-secret")
    except RuntimeError:
        log.exception("it failed")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["message"] for r in records] == ["calling with [redacted]", "it failed"]
    assert "RuntimeError" in records[1]["exception"]
    assert "tok-123-secret" not in stream.getvalue()


def test_progress_lines_every_tenth_and_at_the_end() -> None:
    stream = io.StringIO()
    configure_logging("text", stream=stream)
    progress = LogProgress()
    progress("writes", 0, total=25)
    for _ in range(25):
        progress("writes", 1)
    lines = [line.split(": ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines[0] == "writes: 25 to do"
    assert lines[-1] == "writes: 25/25"
    assert len(lines) == 1 + 12 + 1  # "to do", every 2 (a tenth of 25, rounded down), and the last


def test_bars_close_a_stage_of_unknown_size_when_the_next_begins() -> None:
    from rich.console import Console
    from rich.progress import Progress

    from crmsync.console import BarProgress

    with Progress(console=Console(file=io.StringIO(), force_terminal=True)) as bars:
        progress = BarProgress(bars)
        for _ in range(3):
            progress("customer pages", 1)
        progress("writes", 0, total=2)
        progress("writes", 2)
        pages, writes = bars.tasks
        assert (pages.total, pages.completed, pages.finished) == (3, 3, True)
        assert (writes.total, writes.completed) == (2, 2)
