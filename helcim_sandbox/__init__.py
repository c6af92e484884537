"""helcim-sandbox: a local emulator of Helcim's Customer API v2.

It serves the 18 operations of the reference under ``/v2`` with Helcim's field
names, status codes, error bodies and quirks, persists to SQLite, enforces the
per-merchant rate limits and injects faults on demand. ``/_sandbox/*`` adds
what tests need and Helcim does not have. crmsync never imports this package:
it talks to it over HTTP exactly as it talks to api.helcim.com.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
