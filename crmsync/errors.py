"""crmsync's exceptions: one small tree, each class knowing its exit code.

::

    CrmsyncError                      exit 1 unless a subclass says otherwise
    ├── UsageError                    2  bad option, bad config, bad plan file
    │   └── MassChangeError           2  the run would clear or change one field on too many customers
    ├── OutputError                   2  the output folder cannot be written (a full disk, no permission)
    ├── InputFileError                2  the CRM file cannot be read as the CSV we need
    │   └── MissingColumnsError       2  required columns absent (names them, and the profile that would fit)
    │       └── NoProfileFitsError    2  no built-in profile fits the export (names the closest ones)
    ├── StateError                    2  the state store cannot be used
    │   ├── StateLockedError          2  another run holds the lock
    │   ├── AccountMismatchError      2  the state belongs to another merchant account (or a wiped sandbox)
    │   └── KeyChangeError            2  the export's key (profile, id column or e-mail) is not the one synced
    └── HelcimError                   1  anything the Helcim API answered or failed to answer
        ├── HelcimUnavailable         3  could not reach the API (connection, timeouts, 5xx) after retries
        │   └── ProtocolError         3  an answer that is not Helcim's documented shape (HTML, cut-off
        │                                JSON, a list where an object belongs, no id): retried, then this
        ├── RedirectRefused           3  the API answered a redirect: never followed (the token would go too)
        ├── AuthenticationError       3  401/403: the token is missing, wrong or lacks the permission
        ├── RateLimited               1  429s outlasted the patience of the retry policy
        ├── HelcimRequestError        1  a 4xx Helcim refused (validation, not found, ...): not retried
        ├── BudgetExhausted           1  the run's call budget is spent; raised before sending
        └── Interrupted         130/143  SIGINT/SIGTERM asked the run to stop; raised before sending

Messages never contain the API token or personal data: the HTTP layer builds
them from the status, Helcim's message and the operation name only.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_SIGINT = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
EXIT_SIGTERM = 143  # 128 + SIGTERM


class CrmsyncError(Exception):
    """Base of every error crmsync raises on purpose."""

    exit_code = EXIT_PARTIAL


class UsageError(CrmsyncError):
    """A bad option, setting or plan file."""

    exit_code = EXIT_USAGE


class MassChangeError(UsageError):
    """The run would clear or change one field on more linked customers than the guard allows."""


class OutputError(CrmsyncError):
    """The output folder (or a file in it) cannot be written."""

    exit_code = EXIT_USAGE


class InputFileError(CrmsyncError):
    """The CRM export cannot be read as a CSV with the columns we need."""

    exit_code = EXIT_USAGE


class MissingColumnsError(InputFileError):
    """Required columns are absent from the header."""


class NoProfileFitsError(MissingColumnsError):
    """No built-in profile fits the export's headers (the automatic choice)."""


class StateError(CrmsyncError):
    """The state store cannot be opened, migrated or trusted."""

    exit_code = EXIT_USAGE


class StateLockedError(StateError):
    """Another crmsync run holds the state store's lock."""


class AccountMismatchError(StateError):
    """The state store was built against a different Helcim account."""


class KeyChangeError(StateError):
    """The export's customers are keyed otherwise than when this state store last synced them."""


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


class ProtocolError(HelcimUnavailable):
    """Helcim answered, but not in its documented shape: retried like a 5xx, then reported."""


class RedirectRefused(HelcimError):
    """The API answered with a redirect, which crmsync never follows."""

    exit_code = EXIT_UNREACHABLE


class AuthenticationError(HelcimError):
    """Helcim answered 401 or 403: the api-token is missing, wrong, revoked or lacks a permission."""

    exit_code = EXIT_UNREACHABLE


class RateLimited(HelcimError):
    """429s did not clear within the retry policy's patience."""


class HelcimRequestError(HelcimError):
    """Helcim refused the request (a 4xx other than 401/429); retrying cannot help."""


class BudgetExhausted(HelcimError):
    """The run's call budget (``max_calls``) is spent; the call was not sent."""


class Interrupted(HelcimError):
    """A signal asked the run to stop: nothing more is sent; what is in flight finishes."""

    def __init__(self, message: str, *, exit_code: int = EXIT_SIGTERM, operation: str = "") -> None:
        super().__init__(message, operation=operation)
        self.exit_code = exit_code
