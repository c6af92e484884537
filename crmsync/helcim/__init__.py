"""Helcim Customer API v2: the client (``client``), pacing (``limits``), parsing (``models``)."""

from crmsync.helcim.client import DEFAULT_URL, Answer, HelcimClient, RetryPolicy
from crmsync.helcim.limits import Pacer, RateLimits
from crmsync.helcim.models import (
    Address,
    BankAccount,
    BankAccountInput,
    Card,
    CreateResult,
    Customer,
    CustomerInput,
    DefaultCardRecord,
    Pad,
)

__all__ = [
    "DEFAULT_URL",
    "Address",
    "Answer",
    "BankAccount",
    "BankAccountInput",
    "Card",
    "CreateResult",
    "Customer",
    "CustomerInput",
    "DefaultCardRecord",
    "HelcimClient",
    "Pacer",
    "Pad",
    "RateLimits",
    "RetryPolicy",
]
