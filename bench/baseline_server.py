"""The named baseline of the sandbox benchmark: a bare uvicorn + Starlette JSON endpoint.

Same server stack and settings as helcim-sandbox, none of its work (no auth,
limits, faults, SQLite or validation). Run: ``python -m bench.baseline_server URL_FILE``.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def answer(_: Request) -> Response:
    return Response(b'{"message":"Connected Successfully"}', media_type="application/json")


app = Starlette(routes=[Route("/v2/{path:path}", answer, methods=["GET", "POST"])])


def main() -> None:
    url_file = Path(sys.argv[1])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    url_file.write_text(f"http://127.0.0.1:{sock.getsockname()[1]}/v2\n")
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")).run(
        sockets=[sock]
    )


if __name__ == "__main__":
    main()
