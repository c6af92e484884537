"""The bodies of poisoned answers (see :mod:`helcim_sandbox.faults`).

Pure functions from the real answer's body to what the client gets instead;
:class:`helcim_sandbox.app.Gate` sends them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

MIB = 1024 * 1024
TRICKLE_CHUNKS = 20
HUGE_CHUNK_BYTES = 256 * 1024
EMPTY_BAD_JSON = b'{"id":'

_REASONS = {
    200: ("Attention Required! | Cloudflare", "Sorry, you have been blocked", "You are unable to access"),
    502: ("api.helcim.com | 502: Bad gateway", "Bad gateway", "The web server reported a bad gateway error."),
    503: (
        "api.helcim.com | 503: Service temporarily unavailable",
        "Service temporarily unavailable",
        "The web server is temporarily unavailable.",
    ),
}

_STYLE = """
*{box-sizing:border-box;margin:0;padding:0}html{line-height:1.15;-webkit-text-size-adjust:100%;color:#313131;
font-family:system-ui,-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",
sans-serif}body{display:flex;flex-direction:column;min-height:100vh}.main-content{margin:8rem auto;max-width:60rem;
padding-left:1.5rem;padding-right:1.5rem;width:100%}h1{font-size:2.5rem;font-weight:500;line-height:3.75rem}
h2{font-size:1.5rem;font-weight:500;line-height:2.25rem}.cf-error-details{margin-top:2rem}.cf-error-details p{
margin-top:1rem}.cf-wrapper{margin:0 auto;max-width:60rem}.cf-section{padding:2rem 0}.cf-columns{display:flex;
flex-wrap:wrap;gap:2rem}.cf-column{flex:1 1 16rem}.cf-status-label{font-weight:600;text-transform:uppercase;
font-size:.75rem;letter-spacing:.05rem}.cf-status-ok{color:#2c7cb0}.cf-status-error{color:#bd2426}.cf-footer{
border-top:1px solid #d9d9d9;font-size:.8125rem;line-height:1.5rem;margin:auto auto 0;max-width:60rem;padding:
1rem 1.5rem;text-align:center;width:100%}.cf-footer-item{display:inline-block;padding:0 .25rem}.cf-footer-separator{
color:#d9d9d9}a{color:#0051c3;text-decoration:none;transition:color .15s ease}a:hover{color:#ee730a;
text-decoration:underline}@media (width <= 720px){.main-content{margin-top:4rem}h1{font-size:1.5rem;
line-height:1.75rem}h2{font-size:1.25rem;line-height:1.5rem}.cf-columns{flex-direction:column}}
@media (prefers-color-scheme:dark){body{background-color:#222;color:#d9d9d9}a{color:#fff}a:hover{color:#ee730a}
.cf-footer{border-color:#444}}
"""


def ray_id() -> str:
    return f"{secrets.token_hex(8)}-YYZ"


def edge_page(status: int, ray: str, host: str = "api.helcim.com") -> bytes:
    """A Cloudflare-like error page of a few KB, with a ``<title>``."""
    title, heading, detail = _REASONS.get(status, _REASONS[502])
    columns = "".join(
        f'<div class="cf-column"><span class="cf-status-label {css}">{label}</span><h3>{place}</h3>'
        f"<p>{text}</p></div>"
        for css, label, place, text in (
            ("cf-status-ok", "Working", "You", "Your browser is working."),
            ("cf-status-ok", "Working", "Toronto", "Cloudflare is working."),
            ("cf-status-error", "Error", host, detail),
        )
    )
    page = f"""<!DOCTYPE html>
<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
<!--[if gt IE 8]><!--> <html class="no-js" lang="en-US"> <!--<![endif]-->
<head>
<title>{title}</title>
<meta charset="UTF-8" />
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
<meta http-equiv="X-UA-Compatible" content="IE=Edge" />
<meta name="robots" content="noindex, nofollow" />
<meta name="viewport" content="width=device-width,initial-scale=1" />
<style>{_STYLE}</style>
</head>
<body>
<div id="cf-wrapper">
<div class="main-content" id="cf-error-details">
<header><h1><span class="inline-block">{heading}</span> <span class="code-label">Error code {status}</span></h1>
<div class="text-gray-600">Visit <a href="https://www.cloudflare.com/5xx-error-landing?utm_source=errorcode_{status}"
target="_blank" rel="noopener noreferrer">cloudflare.com</a> for more information.</div>
<div class="mt-3">{ray[:16]}</div></header>
<div class="cf-section cf-columns">{columns}</div>
<div class="cf-section cf-columns">
<div class="cf-column"><h2>What happened?</h2>
<p>{detail} The request reached Cloudflare's network, but the answer that came back from the origin web
server could not be delivered as it was sent. Details of the problem have been recorded under the Ray ID below,
which the site owner can look up in the Cloudflare dashboard.</p></div>
<div class="cf-column"><h2>What can I do?</h2>
<p><strong>If you are a visitor of this website:</strong> please try again in a few minutes.</p>
<p><strong>If you are the owner of this website:</strong> contact your hosting provider letting them know your
web server is not completing requests. An error {status} means that the origin web server answered with
something Cloudflare could not pass on. The most common causes are a crashed application, an overloaded
server, or a firewall in front of the origin that drops Cloudflare's connections. Additional troubleshooting
information is available in Cloudflare's documentation.</p></div>
</div>
<div class="cf-error-footer cf-wrapper cf-footer">
<p class="text-13"><span class="cf-footer-item">Cloudflare Ray ID: <strong>{ray[:16]}</strong></span>
<span class="cf-footer-separator">&bull;</span>
<span class="cf-footer-item">Your IP: <button type="button" class="cf-footer-ip-reveal-btn">Click to reveal</button>
<span class="hidden cf-footer-ip">127.0.0.1</span></span>
<span class="cf-footer-separator">&bull;</span>
<span class="cf-footer-item"><span>Performance &amp; security by</span>
<a rel="noopener noreferrer" href="https://www.cloudflare.com/5xx-error-landing" target="_blank">Cloudflare</a>
</span></p>
</div>
</div>
</div>
</body>
</html>
"""
    return page.encode()


def redirect_page(status: int) -> bytes:
    """The small page that comes with a redirect."""
    reason = {301: "Moved Permanently", 307: "Temporary Redirect"}[status]
    return (
        f"<html>\n<head><title>{status} {reason}</title></head>\n<body>\n<center><h1>{status} {reason}</h1>"
        "</center>\n<hr><center>cloudflare</center>\n</body>\n</html>\n"
    ).encode()


def truncated_json(body: bytes) -> bytes:
    """The body cut off half-way, never valid JSON; ``{"id":`` for an empty body."""
    if not body:
        return EMPTY_BAD_JSON
    cut = body[: max(1, len(body) // 2)]
    try:
        json.loads(cut)
    except ValueError:
        return cut
    return EMPTY_BAD_JSON  # a prefix that happens to parse ("1" of "12")


def wrapped(body: bytes) -> bytes:
    """``{"data": <real body>}``: valid JSON, not the documented shape."""
    return b'{"data":' + (body or b"null") + b"}"


def trickle_chunks(body: bytes, chunks: int = TRICKLE_CHUNKS) -> list[bytes]:
    """``chunks`` nearly equal pieces; a shorter body is padded with JSON whitespace."""
    body = body.ljust(chunks, b" ")
    size, extra = divmod(len(body), chunks)
    pieces, start = [], 0
    for i in range(chunks):
        end = start + size + (1 if i < extra else 0)
        pieces.append(body[start:end])
        start = end
    return pieces


def _elements(body: bytes) -> list[bytes]:
    try:
        value = json.loads(body) if body else None
    except ValueError:
        value = None
    if isinstance(value, list) and value:
        return [json.dumps(item, separators=(",", ":")).encode() for item in value]
    if value is None or value == []:
        return [b"{}"]
    return [json.dumps(value, separators=(",", ":")).encode()]


def huge_array(body: bytes, total_bytes: int, chunk_bytes: int = HUGE_CHUNK_BYTES) -> Iterator[bytes]:
    """A valid JSON array of at least ``total_bytes``, in chunks of about ``chunk_bytes``.

    Its elements are the real answer's elements (or the real body) repeated.
    Only one chunk is ever held in memory.
    """
    items = _elements(body)
    chunk_bytes = max(1, min(chunk_bytes, total_bytes))
    per_round = b",".join(items)
    rounds = max(1, -(-chunk_bytes // (len(per_round) + 1)))
    block = b",".join([per_round] * rounds)
    # [block(,block)*] has 2 + n*len(block) + (n-1) bytes: the smallest n reaching total_bytes.
    n = max(1, -(-(total_bytes - 1) // (len(block) + 1)))
    yield b"[" + block
    tail = b"," + block
    for _ in range(n - 1):
        yield tail
    yield b"]"
