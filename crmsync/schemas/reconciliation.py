"""The reconciliation's tables as they leave it: the columns one module writes and another reads.

Declared once here, below both sides: the CRM import (``crm/export.py``) writes the
payment-method table the reconciliation builds (``reconcile/tables.py``), and the
state store (``state/review.py``) keeps the findings the triage compares
(``reconcile/triage.py``).
"""

from __future__ import annotations

__all__ = ["PAYMENT_METHOD_COLUMNS", "SEEN_COLUMNS"]

#: The payment-method table, one row per card or bank account, after the CRM's id column
#: (``crm_id`` in the reconciliation, the CRM's own key header in ``crm_import/payment_methods.csv``).
PAYMENT_METHOD_COLUMNS: tuple[str, ...] = (
    "helcim_id",
    "customer_code",
    "method",
    "method_id",
    "default",
    "card_brand",
    "card_last4",
    "card_expiry",
    "bank_last4",
    "bank_verified",
    "bank_ready",
    "pad_status",
)

#: What the state store keeps of each finding for the next report's triage (masked values only,
#: as in findings.csv).
SEEN_COLUMNS: tuple[str, ...] = (
    "key",
    "code",
    "severity",
    "customer_code",
    "helcim_id",
    "crm_id",
    "customer",
    "method",
    "detail",
    "first_seen",
)
