"""A light HTTP load generator: N keep-alive connections in threads, raw http.client.

``requests`` costs the client more CPU per call than the sandbox spends
answering, so on a 2-core machine it would measure the client. ``http.client``
keeps the load generator well below the server's cost per request.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

# A request factory: (worker index, sequence number) -> (method, path, body or None)
RequestFactory = Callable[[int, int], tuple[str, str, bytes | None]]


@dataclass
class LoadResult:
    requests: int
    seconds: float
    statuses: dict[int, int]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def hammer(
    base_url: str,
    factory: RequestFactory,
    *,
    clients: int = 8,
    seconds: float = 5.0,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Send requests from ``clients`` concurrent connections for ``seconds``."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    assert parts.port is not None
    host, port, prefix = parts.hostname, parts.port, parts.path.rstrip("/")
    sent_headers = {"content-type": "application/json", **(headers or {})}
    counts = [0] * clients
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=30)
        local: dict[int, int] = {}
        start_gate.wait()
        n = 0
        while time.perf_counter() < deadline[0]:
            method, path, body = factory(index, n)
            connection.request(method, prefix + path, body=body, headers=sent_headers)
            response = connection.getresponse()
            response.read()
            local[response.status] = local.get(response.status, 0) + 1
            n += 1
        counts[index] = n
        connection.close()
        with lock:
            for status, k in local.items():
                statuses[status] = statuses.get(status, 0) + k

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    start_gate.wait()
    for thread in threads:
        thread.join()
    return LoadResult(sum(counts), time.perf_counter() - started, statuses)
