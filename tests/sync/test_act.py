"""sync/act.py against a real sandbox: how each outcome of an action is journaled, and what that allows later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from crmsync.config import RateLimits
from crmsync.errors import AuthenticationError
from crmsync.helcim.client import HelcimClient, RetryPolicy
from crmsync.helcim.transport import BoundedAdapter
from crmsync.state import StateStore, open_state
from crmsync.state.review import EMAIL_ACTIONS
from crmsync.sync.act import EMAILING, Action, ActOutcome, execute_actions
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import TOKEN, Api


class TokenRevokedFor(BoundedAdapter):
    """Sends the requests to one path with a token the sandbox does not accept: its real 401.

    As when the merchant revokes the token while ``crmsync act`` runs; no fault of the sandbox answers
    401 on one operation only.
    """

    def __init__(self, path_end: str) -> None:
        super().__init__()
        self.path_end = path_end

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if (request.path_url or "").split("?")[0].endswith(self.path_end):
            request.headers["api-token"] = "revoked-" + TOKEN
        return super().send(request, **kwargs)


def client(sandbox: SandboxProcess, adapter: BoundedAdapter | None = None) -> HelcimClient:
    session = requests.Session()
    if adapter is not None:
        session.mount("http://", adapter)
    retry = RetryPolicy(attempts=2, backoff_base=0.01, backoff_max=0.01, rate_limit_patience=0.5)
    return HelcimClient(sandbox.base_url, TOKEN, session, limits=RateLimits(paced=False), retry=retry)


def request_details(sandbox: SandboxProcess, code: str = "A-NOPAY") -> Action:
    helcim_id = int(Api(sandbox.base_url).create(customerCode=code, contactName=f"Person {code}")["id"])
    return Action(f"20261120-request_bank_details-{helcim_id}-0", "request_bank_details", "no_payment_method",
                  helcim_id, code, None)  # fmt: skip


def execute(helcim: HelcimClient, state: StateStore, actions: list[Action], run_id: str) -> ActOutcome:
    return execute_actions(helcim, state, actions, run_id, check=lambda a, f: None, calls_left=lambda: 100)


@pytest.mark.parametrize(
    ("refusal", "fatal"),
    [("token", AuthenticationError), ("429", None)],
    ids=["401-token-refused", "429-outlasted"],
)
def test_a_refused_request_for_bank_details_is_not_sent_and_may_be_sent_later(
    tmp_path: Path, sandbox: SandboxProcess, refusal: str, fatal: type[Exception] | None
) -> None:
    action = request_details(sandbox)
    if refusal == "token":
        refused = client(sandbox, TokenRevokedFor("/bank-accounts/request-new"))
    else:
        sandbox.configure(faults="error429=1,op=request-new-bank-account")
        refused = client(sandbox)
    with open_state(tmp_path / "state.db") as state:
        first = execute(refused, state, [action], "run-1")
        (result,) = first.results
        assert (result.outcome, result.detail[:9]) == ("failed", "not sent:")  # Helcim certainly refused it
        assert type(first.fatal) is fatal if fatal else first.fatal is None  # a refused token stops the act
        entry = state.review.action_entries([action.action_id])[action.action_id]
        assert entry.state == "failed"
        assert state.review.emails_since("request_bank_details", "") == {}  # nothing for a person to check
        assert sandbox.outbox() == []
        sandbox.configure(faults="")
        (again,) = execute(client(sandbox), state, [action], "run-2").results
    assert again.outcome == "done"
    assert sandbox.outbox() == [{"customerId": action.helcim_id, "kind": "bank-request"}]


@pytest.mark.parametrize(
    ("faults", "first", "second"),
    [
        ("", "done", "skipped"),
        ("drop_after_commit=1,op=request-new-bank-account,count=1", "uncertain", "check"),
    ],
    ids=["after-a-done-one", "after-an-uncertain-one"],
)
def test_one_act_never_e_mails_a_customer_twice(
    tmp_path: Path, sandbox: SandboxProcess, faults: str, first: str, second: str
) -> None:
    today = request_details(sandbox)
    yesterday = Action(today.action_id.replace("20261120", "20261119"), *list(vars(today).values())[1:])
    sandbox.configure(faults=faults)
    with open_state(tmp_path / "state.db") as state:
        results = execute(client(sandbox), state, [yesterday, today], "run-1").results
    assert [(r.action.action_id, r.outcome) for r in results] == [
        (yesterday.action_id, first),
        (today.action_id, second),
    ]
    assert len(sandbox.outbox()) == 1


def test_the_state_store_knows_which_actions_e_mail_the_customer() -> None:
    assert set(EMAIL_ACTIONS) == EMAILING  # blocked until a person resolves them, whatever their age
