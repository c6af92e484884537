"""How long commands talk while they work: progress bars on a terminal, log lines otherwise.

* On a terminal: rich progress bars (one per stage: customer pages, writes,
  bank accounts) on stderr, and log lines above them.
* Not on a terminal (cron, CI, a pipe): plain ``time level logger message``
  log lines on stderr, with a progress line per stage every 10 %.
* ``--log-format json``: one JSON object per line, for log shippers.

The API token never reaches a log line: the client never puts it in a
message, and :class:`RedactingFilter` removes it should anything else try.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

LOG_FORMATS = ("text", "json")


class Progress(Protocol):
    """Where long work reports: ``stage`` advanced by ``advance``; ``total`` when it becomes known."""

    def __call__(self, stage: str, advance: int, total: int | None = None) -> None: ...


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message (+ exception text)."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("stage", "done", "total"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # already formatted (and cleaned) by RedactingFilter
            payload["exception"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False)


class RedactingFilter(logging.Filter):
    """Replace secrets (the API token) wherever they would appear in a record."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            record.msg, record.args = self._clean(message), None
        if record.exc_info and self.secrets:  # a traceback is text too
            record.exc_text = self._clean(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def configure_logging(
    log_format: str = "text", *, stream: TextIO | None = None, secrets: list[str] | None = None
) -> logging.Handler:
    """Send crmsync's logs to ``stream`` (stderr) in the chosen format; returns the handler."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets or []))
    root = logging.getLogger("crmsync")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
    return handler


class LogProgress:
    """Progress as log lines: a line when a stage's total is known, then every 10 %, and at the end."""

    def __init__(self) -> None:
        self.done: dict[str, int] = {}
        self.total: dict[str, int | None] = {}
        self.next_mark: dict[str, int] = {}
        self.log = logging.getLogger("crmsync.progress")
        self._lock = threading.Lock()  # the loader's workers report from their own threads

    def __call__(self, stage: str, advance: int, total: int | None = None) -> None:
        with self._lock:
            self._advance(stage, advance, total)

    def _advance(self, stage: str, advance: int, total: int | None) -> None:
        if total is not None:
            self.total[stage] = total
            self.log.info("%s: %d to do", stage, total, extra={"stage": stage, "done": 0, "total": total})
        done = self.done[stage] = self.done.get(stage, 0) + advance
        known = self.total.get(stage)
        step = max(1, (known or 100) // 10)
        if advance and (done >= self.next_mark.get(stage, step) or (known is not None and done == known)):
            self.next_mark[stage] = done + step
            of = f"/{known}" if known else ""
            self.log.info("%s: %d%s", stage, done, of, extra={"stage": stage, "done": done, "total": known})


class BarProgress:
    """Progress as rich bars on a terminal (stderr)."""

    def __init__(self, progress: Any) -> None:
        self.bars = progress
        self.tasks: dict[str, Any] = {}

    def finish_open_ended(self) -> None:
        """Stages whose size was never known are done when another starts: show them complete."""
        for task in self.bars.tasks:
            if task.total is None:
                self.bars.update(task.id, total=task.completed)

    def __call__(self, stage: str, advance: int, total: int | None = None) -> None:
        if stage not in self.tasks:
            self.finish_open_ended()
            self.tasks[stage] = self.bars.add_task(stage, total=total)
        elif total is not None:
            self.bars.update(self.tasks[stage], total=total)
        if advance:
            self.bars.advance(self.tasks[stage], advance)


@contextmanager
def progress_reporter(log_format: str, *, secrets: list[str] | None = None) -> Iterator[Any]:
    """Set up logging and yield the progress callback that suits where stderr goes."""
    if log_format == "text" and sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        root = logging.getLogger("crmsync")
        for old in list(root.handlers):
            root.removeHandler(old)
        handler = RichHandler(console=console, show_path=False)
        handler.addFilter(RedactingFilter(secrets or []))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
        columns = (
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bars:
            reporter = BarProgress(bars)
            yield reporter
            reporter.finish_open_ended()
        return
    configure_logging(log_format, secrets=secrets)
    yield LogProgress()
