"""Helcim's operationIds of the Customer API, and which one a request is.

Shared by the app (stats count by operation) and the fault settings
(``op=NAME`` picks the operations that may draw a fault).
"""

from __future__ import annotations

import re

# (method, path pattern under /v2, Helcim operationId) — request-new before {bankId}.
_ID = r"[^/]+"
OPERATIONS: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(f"^/v2{p}/?$"), op)
    for m, p, op in [
        ("GET", "/connection-test", "connection-test"),
        ("GET", "/customers", "get-customers"),
        ("POST", "/customers", "create-customer"),
        ("GET", f"/customers/{_ID}", "get-customer"),
        ("PUT", f"/customers/{_ID}", "update-customer"),
        ("GET", f"/customers/{_ID}/cards", "get-customer-cards"),
        ("GET", f"/customers/{_ID}/cards/{_ID}", "get-customer-card"),
        ("DELETE", f"/customers/{_ID}/cards/{_ID}", "delete-customer-card"),
        ("PATCH", f"/customers/{_ID}/cards/{_ID}/default", "set-customer-card-default"),
        ("GET", f"/customers/{_ID}/bank-accounts", "get-customer-bank-accounts"),
        ("POST", f"/customers/{_ID}/bank-accounts", "create-bank-account"),
        ("GET", f"/customers/{_ID}/bank-accounts/request-new", "request-new-bank-account"),
        ("GET", f"/customers/{_ID}/bank-accounts/{_ID}", "get-customer-bank-account"),
        ("DELETE", f"/customers/{_ID}/bank-accounts/{_ID}", "delete-customer-bank-account"),
        ("PATCH", f"/customers/{_ID}/bank-accounts/{_ID}/default", "set-customer-bank-account-default"),
        ("GET", f"/customers/{_ID}/pads", "get-pads"),
        ("GET", f"/customers/{_ID}/bank-accounts/{_ID}/pads/{_ID}", "get-pad"),
        ("PUT", f"/customers/{_ID}/bank-accounts/{_ID}/pads/{_ID}", "update-pad"),
    ]
]

#: Every operationId, plus ``unknown`` for a request that matches none (an unknown path → 404).
OPERATION_IDS = frozenset({name for *_, name in OPERATIONS} | {"unknown"})


def operation_for(method: str, path: str) -> str:
    for op_method, pattern, name in OPERATIONS:
        if op_method == method and pattern.match(path):
            return name
    return "unknown"
