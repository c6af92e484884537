"""Bounded HTTP calls: a deadline for the whole call, a cap on the answer's size, no redirects.

``requests`` applies its timeout to each socket operation, not to the call: a
server that trickles its answer a byte at a time keeps a "5 s timeout" call
going for minutes, and a 300 MB answer is read into memory whole. Every call
crmsync makes therefore goes through :func:`bounded_call`:

* **one deadline per call** (connect, headers and body together). A single
  watchdog thread shuts the call's socket down when it passes, wherever the
  call is waiting; the call then fails as :class:`CallTimedOut`;
* **a maximum body size** per operation, read as a stream: past it the
  connection is closed and the call fails as :class:`AnswerTooLarge`;
* **no redirect is followed**: a redirect would carry the ``api-token`` header
  (requests strips ``Authorization`` on a new host, not custom headers) and the
  customer's data to wherever it points.

The deadline reaches the socket through :class:`BoundedAdapter`, whose
connections register themselves with the call running on their thread. A
session without it (a test's scripted adapter) still gets the size cap and a
deadline checked between chunks of the body.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

CHUNK = 64 * 1024


class CutShort(Exception):
    """A call stopped before its answer was whole; ``status``/``headers`` when they had arrived."""

    status: int | None = None
    headers: Mapping[str, str] | None = None


class CallTimedOut(CutShort):
    """The whole call took longer than its deadline."""


class AnswerTooLarge(CutShort):
    """The answer's body is larger than the operation allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit:,} bytes")
        self.limit = limit


@dataclass(eq=False)
class Deadline:
    """One call's deadline; :meth:`expire` shuts down the socket of the connection it runs on."""

    at: float
    seconds: float
    expired: bool = False
    connection: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attach(self, connection: Any) -> None:
        with self._lock:
            self.connection = connection
            if self.expired:
                _shutdown(connection)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            if self.connection is not None:
                _shutdown(self.connection)

    def passed(self) -> bool:
        return self.expired or time.monotonic() >= self.at


def _shutdown(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """One daemon thread that expires deadlines as they pass (cheaper than a timer per call)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self, seconds: float) -> tuple[int, Deadline]:
        deadline = Deadline(time.monotonic() + seconds, seconds)
        with self._cond:
            ident = next(self._ids)
            heapq.heappush(self._heap, (deadline.at, ident, deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="crmsync-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()
        return ident, deadline

    def cancel(self, ident: int) -> None:
        with self._cond:
            self._cancelled.add(ident)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] in self._cancelled:
                    self._cancelled.discard(heapq.heappop(self._heap)[1])
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _ident, deadline = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            deadline.expire()


WATCHDOG = Watchdog()
_running = threading.local()  # the deadline of the call running on this thread


class _Registering:
    """A urllib3 connection that tells the call running on its thread which socket to shut down."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = getattr(_running, "deadline", None)
        if deadline is not None:
            deadline.attach(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Registering, HTTPConnection):
    pass


class _HTTPSConnection(_Registering, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class BoundedAdapter(HTTPAdapter):
    """requests' adapter whose connections the call deadline can reach; never retries on its own."""

    def __init__(self, pool_maxsize: int = 10) -> None:
        super().__init__(pool_maxsize=pool_maxsize, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class NotSent(requests.RequestException):
    """The HTTP client failed before any answer for a reason of this machine (a CA bundle it cannot read)."""


def bounded_session(pool_maxsize: int, *, proxy: str = "", ca_bundle: str | None = None) -> requests.Session:
    """A session that takes nothing from the environment: no proxy variables, CA bundle variables or ~/.netrc.

    ``proxy`` and ``ca_bundle`` are the explicit ones (:class:`crmsync.config.Settings`).
    """
    session = requests.Session()
    session.trust_env = False
    if proxy:
        session.proxies = {"http": proxy, "https": proxy}
    if ca_bundle:
        session.verify = ca_bundle
    adapter = BoundedAdapter(pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _described(exc: OSError) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


@dataclass(frozen=True)
class RawAnswer:
    status: int
    reason: str
    headers: Mapping[str, str]
    content: bytes


def _read_body(response: requests.Response, limit: int, deadline: Deadline) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AnswerTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(CHUNK):
        size += len(chunk)
        if size > limit:
            raise AnswerTooLarge(limit)
        if deadline.passed():
            raise CallTimedOut()
        chunks.append(chunk)
    return b"".join(chunks)


def bounded_call(
    session: requests.Session,
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None,
    body: Any,
    headers: Mapping[str, str],
    timeout: float | tuple[float, float],
    deadline_seconds: float,
    max_bytes: int,
) -> RawAnswer:
    """One HTTP exchange within ``deadline_seconds`` and ``max_bytes``; redirects are answers, not followed.

    Raises :class:`CallTimedOut` or :class:`AnswerTooLarge` (with the status
    and headers when they had arrived), or requests' own exceptions when no
    answer came at all.
    """
    ident, deadline = WATCHDOG.start(deadline_seconds)
    _running.deadline = deadline
    response: requests.Response | None = None
    try:
        try:
            response = session.request(
                method,
                url,
                params=params,
                json=body,
                headers=dict(headers),
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            )
            content = _read_body(response, max_bytes, deadline)
        except requests.RequestException:
            if deadline.expired:
                raise CallTimedOut() from None
            raise
        except OSError as exc:  # requests' own checks (a CA bundle path that is gone) raise bare OSErrors
            raise NotSent(_described(exc)) from None
        return RawAnswer(response.status_code, response.reason or "", response.headers, content)
    except CutShort as problem:
        if response is not None:
            problem.status, problem.headers = response.status_code, response.headers
        raise
    finally:
        _running.deadline = None
        WATCHDOG.cancel(ident)
        if response is not None:
            response.close()
