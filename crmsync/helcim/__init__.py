"""Helcim Customer API v2: the client (``client``), pacing (``limits``), parsing (``models``)."""

from crmsync.helcim.client import Answer, HelcimClient, RetryPolicy
from crmsync.helcim.limits import Pacer
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
    "RetryPolicy",
]
