"""crmsync's exceptions: one small tree, each class knowing its exit code.

::

    CrmsyncError                      exit 1 unless a subclass says otherwise
    ├── UsageError                    2  bad option, bad config, bad plan file
    ├── InputFileError                2  the CRM file cannot be read as the CSV we need
    │   └── MissingColumnsError       2  required columns absent (names them, with the nearest header present)
    ├── StateError                    2  the state store cannot be used
    │   ├── StateLockedError          2  another run holds the lock
    │   └── AccountMismatchError      2  the state belongs to another merchant account (or a wiped sandbox)
    └── HelcimError                   1  anything the Helcim API answered or failed to answer
        ├── HelcimUnavailable         3  could not reach the API (connection, timeouts, 5xx) after retries
        ├── AuthenticationError       3  401: the token is missing or wrong
        ├── RateLimited               1  429s outlasted the patience of the retry policy
        ├── HelcimRequestError        1  a 4xx Helcim refused (validation, not found, ...): not retried
        └── BudgetExhausted           1  the run's call budget is spent; raised before sending

Messages never contain the API token or personal data: the HTTP layer builds
them from the status, Helcim's message and the operation name only.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class CrmsyncError(Exception):
    """Base of every error crmsync raises on purpose."""

    exit_code = EXIT_PARTIAL


class UsageError(CrmsyncError):
    """A bad option, setting or plan file."""

    exit_code = EXIT_USAGE


class InputFileError(CrmsyncError):
    """The CRM export cannot be read as a CSV with the columns we need."""

    exit_code = EXIT_USAGE


class MissingColumnsError(InputFileError):
    """Required columns are absent from the header."""


class StateError(CrmsyncError):
    """The state store cannot be opened, migrated or trusted."""

    exit_code = EXIT_USAGE


class StateLockedError(StateError):
    """Another crmsync run holds the state store's lock."""


class AccountMismatchError(StateError):
    """The state store was built against a different Helcim account."""


class HelcimError(CrmsyncError):
    """An API call failed. ``status`` is the HTTP status (None without an answer)."""

    def __init__(
        self, message: str, *, operation: str = "", status: int | None = None, detail: str = ""
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.status = status
        self.detail = detail  # Helcim's own message, normalised to text


class HelcimUnavailable(HelcimError):
    """The API could not be reached or kept failing (connection errors, timeouts, 5xx).

    ``timed_out``: the request was sent and no answer came in time, so Helcim
    may still perform it later.
    """

    exit_code = EXIT_UNREACHABLE
    timed_out = False


class AuthenticationError(HelcimError):
    """Helcim answered 401: the api-token is missing, wrong or revoked."""

    exit_code = EXIT_UNREACHABLE


class RateLimited(HelcimError):
    """429s did not clear within the retry policy's patience."""


class HelcimRequestError(HelcimError):
    """Helcim refused the request (a 4xx other than 401/429); retrying cannot help."""


class BudgetExhausted(HelcimError):
    """The run's call budget (``max_calls``) is spent; the call was not sent."""
