"""Where a row's key comes from when the CRM has no id column: its e-mail.   [pure]

Helcim's ``customerCode`` holds at most 50 printable characters, and crmsync
uses the CRM's id for it. Some systems export no id (Shopify's older layout,
Salesforce reports, Wave, FreshBooks, Mailchimp, QuickBooks' customer list): a
profile then declares ``key = "email"`` (or ``["crm_id", "email"]``: the id
column when the export has one), and the code is derived from the e-mail:

    ``em-`` + the first 24 hexadecimal digits of SHA-256 of the normalised
    e-mail in lower case (email-validator's ASCII form, domain lower-cased)

27 characters, the same for the same address in any case or spacing, on any
machine, in any year; 96 bits, so two addresses of one account never share a
code in practice (a million customers: about one chance in 10^16). The code
says nothing about the address: it is not personal data in Helcim's list.

A changed e-mail is a new key: the customer no longer pairs with the one
Helcim holds. The diff then proposes the Helcim customer as a link
(``link_proposals.csv``, matched on the phone, or the name and postal code, or
— where Helcim holds neither, as when the address was omitted — on the name
alone, marked ambiguous) and holds the row until a person decides. Only a
customer whose name changed the same night, with no phone or postal code in
Helcim, is created again (:func:`crmsync.sync.pairing.propose_links`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from crmsync.text import arrow_strings, as_series, map_distinct

__all__ = ["EMAIL_CODE_PREFIX", "email_code", "email_codes"]

EMAIL_CODE_PREFIX = "em-"
_DIGITS = 24


def email_code(email: str) -> str:
    """The customerCode of a customer keyed by ``email`` (already normalised); "" for no e-mail."""
    if not email:
        return ""
    digest = hashlib.sha256(email.lower().encode("utf-8")).hexdigest()
    return EMAIL_CODE_PREFIX + digest[:_DIGITS]


def email_codes(emails: pd.Series[Any]) -> pd.Series[str]:
    """:func:`email_code` of every value (normalised e-mails), computed once per distinct address."""
    array = pc.fill_null(arrow_strings(emails), "")
    return as_series(map_distinct(array, email_code), emails.index)
