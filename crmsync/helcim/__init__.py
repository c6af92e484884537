"""Helcim Customer API v2: the client (``client``), pacing (``limits``), parsing (``models``)."""

from pipeline.helcim.client import DEFAULT_URL, Answer, HelcimClient, RetryPolicy
from pipeline.helcim.limits import Pacer, RateLimits
from pipeline.helcim.models import (
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
