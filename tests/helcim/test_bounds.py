"""Bounded calls over real sockets: a whole-call deadline, a body cap, and no redirect followed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crmsync.config import RateLimits
from crmsync.errors import HelcimUnavailable, ProtocolError, RedirectRefused
from crmsync.helcim.client import HelcimClient, RetryPolicy

SEEN: list[tuple[str, str, str]] = []  # (server, path, api-token header) of every request received


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "test"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        SEEN.append((self.server.name, self.path, self.headers.get("api-token", "")))  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        if "/trickle/" in path:
            body = b'{"message": "Connected Successfully, slowly"}'
            self._start(200, len(body))
            for byte in body:  # one byte every 0.2 s: each read is quick, the whole answer is not
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
        elif "/stall-headers/" in path:
            time.sleep(6)
            self._start(200, 2)
            self.wfile.write(b"{}")
        elif "/huge/" in path:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            try:
                self.wfile.write(b"1\r\n[\r\n")
                chunk = b'{"id": 1, "pad": "' + b"x" * 65000 + b'"},'
                for _ in range(2000):  # 130 MB if nobody stopped reading
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except OSError:
                pass
        elif "/redirect/" in path:
            self.send_response(307)
            self.send_header("location", f"{self.server.other}/v2/collect")  # type: ignore[attr-defined]
            self.send_header("content-length", "0")
            self.end_headers()
        else:
            body = b'{"message": "Connected Successfully"}'
            self._start(200, len(body))
            self.wfile.write(body)

    def _start(self, status: int, length: int) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(length))
        self.end_headers()


def _serve(name: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.name = name  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    api, other = _serve("api"), _serve("other")
    api.other = f"http://127.0.0.1:{other.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{api.server_address[1]}", api.other  # type: ignore[attr-defined]
    finally:
        for server in (api, other):
            server.shutdown()
            server.server_close()


def client(base: str, path: str, *, timeout: float = 2.0, deadline: float | None = None) -> HelcimClient:
    return HelcimClient(
        f"{base}/v2/{path}",
        "secret-token-123",
        limits=RateLimits(paced=False),
        retry=RetryPolicy(attempts=1),
        timeout=(1.0, timeout),
        deadline=deadline,
    )


def test_a_trickled_answer_stops_at_the_whole_call_deadline(servers: tuple[str, str]) -> None:
    started = time.monotonic()
    with pytest.raises(HelcimUnavailable, match="no whole answer within 2 s") as info:
        client(servers[0], "trickle").connection_test()
    elapsed = time.monotonic() - started
    assert 1.9 < elapsed < 3.5, elapsed  # the body alone would take 9 s
    assert info.value.timed_out
    assert info.value.exit_code == 3


def test_stalled_headers_stop_at_the_deadline_too(servers: tuple[str, str]) -> None:
    started = time.monotonic()
    with pytest.raises(HelcimUnavailable, match=r"no whole answer within 1\.5 s"):
        client(servers[0], "stall-headers", timeout=10.0, deadline=1.5).connection_test()
    assert time.monotonic() - started < 4  # the socket's own read timeout (10 s) never came into it


def test_a_huge_answer_is_cut_off_and_retriable(servers: tuple[str, str]) -> None:
    started = time.monotonic()
    with pytest.raises(ProtocolError, match=r"larger than 1,000,000 bytes") as info:
        client(servers[0], "huge", timeout=30).get_customer(1)
    assert isinstance(info.value, HelcimUnavailable)  # retriable, like a 5xx
    assert time.monotonic() - started < 10


def test_a_redirect_to_another_host_is_not_followed_and_the_token_stays_home(
    servers: tuple[str, str],
) -> None:
    SEEN.clear()
    with pytest.raises(RedirectRefused, match=r"a redirect to http://127\.0\.0\.1:"):
        client(servers[0], "redirect").connection_test()
    assert [server for server, _, _ in SEEN] == ["api"]  # nothing reached the other host
