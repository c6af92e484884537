"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (systemd, Kubernetes, ``kill``).

A :class:`StopSignal` is handed to the client: once set, the pacer admits no
new request (it raises :class:`~crmsync.errors.Interrupted` before sending),
waits for the limits and retry back-offs end at once, and requests already in
flight finish within their call deadline. The job then writes its outputs and
``summary.json`` with ``status: "interrupted"``, records the run as
interrupted, and exits 130 (SIGINT) or 143 (SIGTERM).

:func:`stop_on_signals` installs the handlers (the command line does; a
library caller such as an orchestrator passes its own StopSignal and sets it
when it wants the run to stop). A second signal stops at once: the journal is
crash-safe, so even that leaves nothing half-written.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from crmsync.errors import EXIT_SIGINT, EXIT_SIGTERM, Interrupted

_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
_EXIT = {signal.SIGINT: EXIT_SIGINT, signal.SIGTERM: EXIT_SIGTERM}


class StopSignal:
    """Set once when the run should stop; safe to set from a signal handler."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self.exit_code = EXIT_SIGTERM
        self._listeners: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self, reason: str = "asked to stop", exit_code: int = EXIT_SIGTERM) -> None:
        if self._event.is_set():
            return
        self.reason, self.exit_code = reason, exit_code
        self._event.set()
        # Wake waiters from another thread: a signal handler must not take the locks they hold.
        threading.Thread(target=self._notify, name="crmsync-stop", daemon=True).start()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def on_set(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from a helper thread) once the signal is set."""
        self._listeners.append(listener)
        if self._event.is_set():
            listener()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, ending early when set; True if set."""
        return self._event.wait(max(0.0, seconds))

    def error(self, operation: str = "") -> Interrupted:
        where = f"{operation}: " if operation else ""
        return Interrupted(
            f"{where}{self.reason}: no new request sent", exit_code=self.exit_code, operation=operation
        )


@contextmanager
def stop_on_signals(stop: StopSignal) -> Iterator[StopSignal]:
    """SIGINT and SIGTERM set ``stop``; a second one exits at once. Main thread only; restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _: FrameType | None) -> None:
        if stop.is_set():
            raise SystemExit(_EXIT.get(signal.Signals(signum), EXIT_SIGTERM))
        name = _NAMES.get(signal.Signals(signum), f"signal {signum}")
        stop.set(f"stopped by {name}", _EXIT.get(signal.Signals(signum), EXIT_SIGTERM))

    previous = {sig: signal.signal(sig, handler) for sig in _NAMES}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
