"""crmsync: a nightly two-way sync between a CRM export and a Helcim account."""

__all__ = ["__version__"]
__version__ = "0.1.0"
