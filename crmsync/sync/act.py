"""Approved actions → Helcim, through the paced client, journaled like writes (``crmsync act``).

For each customer of the approved actions, in turn:

1. an action the journal records as done is not sent again (``already-done``);
   one that e-mails the customer and may have left before (pending or
   uncertain in the journal) is never sent again: it is reported for a
   person to check (``check``);
2. the customer's cards, bank accounts and PADs are read afresh (and cached),
   and each action's finding is checked against them by the ``check`` the
   caller gives (the rules live in :mod:`crmsync.reconcile.actions`): an
   action whose finding no longer holds is ``skipped``, with the reason;
3. the intent is committed to the journal **before** the request leaves, the
   outcome after: ``done``; ``failed`` (Helcim refused it — a 4xx, the token
   refused, 429s outlasted — so it was certainly not performed: ``not sent``);
   ``uncertain`` (sent, no usable answer: a set-default or a delete may be
   sent again by a later ``act``, a request for bank details never — until a
   person resolves it, :meth:`crmsync.state.ReviewLog.resolve_email`); and one
   ``act`` e-mails a customer once at most, whatever came of the first try;
4. a customer an action changed is read again, so the cache (and the next
   report) shows the effect.

A customer is started only when the budget left covers its reads and its
actions; the others are ``deferred`` (nothing sent). With ``dry_run`` the
fresh reads happen, nothing is written or journaled (``would-do``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from crmsync.console import Progress
from crmsync.errors import (
    EXIT_PARTIAL,
    AuthenticationError,
    BudgetExhausted,
    HelcimError,
    HelcimRequestError,
    HelcimUnavailable,
    Interrupted,
    RateLimited,
)
from crmsync.helcim.client import HelcimClient
from crmsync.state import ActionEntry, StateStore
from crmsync.state.review import EMAIL_ACTIONS
from crmsync.sync.snapshot import banks_frame, card_signature, cards_frame_of, pads_frame

__all__ = [
    "ACTIONS",
    "ACTION_ORDER",
    "EMAILING",
    "REFUSALS",
    "RESULT_COLUMNS",
    "ActOutcome",
    "Action",
    "ActionResult",
    "Check",
    "Fresh",
    "execute_actions",
    "read_customer",
]

log = logging.getLogger("crmsync.act")

#: Every action crmsync can propose, with the method it acts on ("" when it acts on the customer).
ACTIONS: dict[str, str] = {
    "set_default_card": "card",
    "delete_card": "card",
    "set_default_bank_account": "bank",
    "accept_pad": "pad",
    "request_bank_details": "",
}
#: The order a customer's actions run in: defaults first (a delete needs the default elsewhere), e-mail last.
ACTION_ORDER = tuple(ACTIONS)
#: Actions that e-mail the customer: never sent twice, never re-sent after an uncertain outcome.
#: The state store declares them (its review log blocks them once they may have left).
EMAILING = frozenset(EMAIL_ACTIONS)
#: Answers that say Helcim did not perform the request (a 4xx: refused, the token refused, 429s outlasted).
REFUSALS = (HelcimRequestError, AuthenticationError, RateLimited)
RESULT_COLUMNS = (
    "action_id",
    "action",
    "code",
    "helcim_id",
    "customer_code",
    "method_id",
    "outcome",
    "detail",
)
_READS = 3  # cards, bank accounts, PADs: before the actions and again after


@dataclass(frozen=True)
class Action:
    """One approved row of actions.csv."""

    action_id: str
    action: str  # a key of ACTIONS
    code: str  # the finding that proposed it
    helcim_id: int
    customer_code: str
    method_id: int | None
    line: int = 0  # in the file, for messages


@dataclass
class Fresh:
    """One customer's payment methods as a fresh read found them (the snapshot models' frames)."""

    helcim_id: int
    cards: pd.DataFrame
    banks: pd.DataFrame
    pads: pd.DataFrame


@dataclass(frozen=True)
class ActionResult:
    action: Action
    outcome: str  # done | already-done | skipped | failed | uncertain | check | deferred | would-do
    detail: str = ""

    def row(self) -> tuple[object, ...]:
        a = self.action
        return (a.action_id, a.action, a.code, a.helcim_id, a.customer_code, a.method_id or "", self.outcome,
                self.detail)  # fmt: skip


#: Why an approved action should not be sent (its finding no longer holds), or None to send it.
Check = Callable[[Action, Fresh], str | None]


@dataclass
class ActOutcome:
    results: list[ActionResult] = field(default_factory=list)
    reread: int = 0  # customers read again after an action changed them
    fatal: HelcimError | None = None  # Helcim down, the token refused, a signal: the rest was not sent

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame.from_records([r.row() for r in self.results], columns=list(RESULT_COLUMNS))

    def counts(self) -> dict[str, int]:
        return dict(Counter(r.outcome for r in self.results))


def read_customer(client: HelcimClient, state: StateStore, helcim_id: int) -> Fresh:
    """Cards, bank accounts and (when it has some) PADs of one customer, read now and cached."""
    cards = client.list_cards(helcim_id)
    banks = client.list_bank_accounts(helcim_id)
    pads = client.list_pads(helcim_id) if banks else []
    fresh = Fresh(
        helcim_id,
        cards_frame_of(helcim_id, cards),
        banks_frame([(helcim_id, b) for b in banks]),
        pads_frame([(helcim_id, p) for p in pads]),
    )
    signature = card_signature(cards)
    state.cache.store_cards(helcim_id, fresh.cards, signature)
    state.cache.store_payment_methods(helcim_id, fresh.banks, fresh.pads, signature)
    return fresh


class _Actor:
    """Sends one customer's actions, journaled (see the module docstring)."""

    def __init__(self, client: HelcimClient, state: StateStore, run_id: str) -> None:
        self.client, self.state, self.run_id = client, state, run_id
        # helcim_id → the outcome of this act's e-mail to the customer, from its intent on
        self.emailed: dict[int, ActionResult] = {}

    def second_e_mail(self, action: Action) -> ActionResult | None:
        """The outcome of an e-mail to a customer this act already tried to e-mail (never two), or None."""
        tried = self.emailed.get(action.helcim_id) if action.action in EMAILING else None
        if tried is None:
            return None
        first = tried.action.action_id
        if tried.outcome == "uncertain":
            return ActionResult(
                action, "check", f"{first} may have e-mailed the customer just now: never two"
            )
        said = {"done": "e-mailed the customer just now", "would-do": "would e-mail the customer"}
        return ActionResult(
            action,
            "skipped",
            f"{first} {said.get(tried.outcome, 'was refused just now')}: one e-mail per customer",
        )

    def _send(self, action: Action, fresh: Fresh) -> str:
        """The call; returns the outcome's detail. Raises what the client raises."""
        hid, method = action.helcim_id, action.method_id or 0
        if action.action == "set_default_card":
            record = self.client.set_default_card(hid, method)
            if record.default_card_id not in (
                0,
                method,
            ):  # answered, but not as asked: uncertain, safe to resend
                raise HelcimError(f"set-default-card: Helcim answered default card {record.default_card_id}")
            return "now the default card"
        if action.action == "delete_card":
            return "deleted" if self.client.delete_card(hid, method) else "already gone from Helcim"
        if action.action == "set_default_bank_account":
            self.client.set_default_bank_account(hid, method)
            return "now the default bank account"
        if action.action == "accept_pad":
            bank = fresh.pads.loc[fresh.pads["pad_id"] == method, "bank_id"]
            self.client.update_pad(hid, int(bank.iloc[0]), method, accepted=True)
            return "PAD recorded as accepted"
        message = self.client.request_new_bank_account(hid)
        return message or "Helcim e-mailed the customer a request for bank details"

    def perform(self, action: Action, fresh: Fresh) -> ActionResult:
        a, review = action, self.state.review
        review.action_intent(
            a.action_id, self.run_id, a.action, a.code, a.helcim_id, a.customer_code, a.method_id
        )
        try:
            detail = self._send(action, fresh)
        except (BudgetExhausted, Interrupted) as error:  # raised before sending: nothing left
            review.action_outcome(a.action_id, "failed", "not-sent", str(error))
            raise
        except REFUSALS as error:  # Helcim answered that it did not do it: certainly not performed
            review.action_outcome(a.action_id, "failed", "failed", f"not sent: {error}")
            if isinstance(error, AuthenticationError):  # the token is refused: nothing more can be sent
                raise
            return ActionResult(action, "failed", f"not sent: {error}")
        except HelcimError as error:  # sent, no usable answer: it may have been performed
            review.action_outcome(a.action_id, "uncertain", "uncertain", str(error))
            # Helcim down after every retry, a redirect: nothing more tonight. A request for bank details
            # is sent once (never retried): one lost answer says nothing about the rest.
            once = a.action in EMAILING and isinstance(error, HelcimUnavailable)
            if error.exit_code != EXIT_PARTIAL and not once:
                raise
            return ActionResult(action, "uncertain", _uncertain(action, error))
        review.action_outcome(a.action_id, "done", "done", detail)
        _apply_locally(action, fresh)
        return ActionResult(action, "done", detail)


def _stopped_at(action: Action, error: HelcimError) -> ActionResult:
    """The outcome of the action whose send stopped the act (``perform`` raised ``error``)."""
    if isinstance(error, BudgetExhausted | Interrupted):
        return ActionResult(action, "deferred", f"not sent: {error}")
    if isinstance(error, REFUSALS):
        return ActionResult(action, "failed", f"not sent: {error}")
    return ActionResult(action, "uncertain", _uncertain(action, error))


def _uncertain(action: Action, error: HelcimError) -> str:
    if action.action in EMAILING:
        return (
            f"{error}; it may have e-mailed the customer: check in Helcim, it is never sent again on its own "
            "(record what you found with crmsync act: sent or not sent)"
        )
    return f"{error}; a later crmsync act may send it again safely"


def _apply_locally(action: Action, fresh: Fresh) -> None:
    """What a done action changed, so the next action of the same customer is checked against it."""
    cards, method = fresh.cards, action.method_id
    if action.action == "set_default_card":
        fresh.cards = cards.assign(is_default=cards["card_id"] == method)
    elif action.action == "delete_card":
        fresh.cards = cards[cards["card_id"] != method].reset_index(drop=True)
    elif action.action == "accept_pad":
        hit = fresh.pads["pad_id"] == method
        fresh.pads = fresh.pads.assign(
            accepted=fresh.pads["accepted"] | hit, state=fresh.pads["state"].where(~hit, "accepted")
        )


def _before_reading(
    action: Action, entry: ActionEntry | None, asked: ActionEntry | None
) -> ActionResult | None:
    """An outcome known from the journal alone (no call), or None."""
    if entry is not None and entry.state == "done":
        return ActionResult(action, "already-done", f"done {entry.finished_at[:10]}: {entry.detail}".strip())
    if action.action in EMAILING and entry is not None and entry.state in ("pending", "uncertain"):
        return ActionResult(
            action,
            "check",
            "an earlier attempt may have e-mailed the customer: check in Helcim (never re-sent; record what "
            "you found with crmsync act: sent or not sent)",
        )
    if action.action in EMAILING and asked is not None and asked.action_id != action.action_id:
        if asked.state == "done":
            return ActionResult(
                action, "skipped", f"bank details were already requested {asked.finished_at[:10]}"
            )
        return ActionResult(
            action, "check", f"an earlier request ({asked.action_id}) may have e-mailed the customer"
        )
    return None


def execute_actions(
    client: HelcimClient,
    state: StateStore,
    actions: Sequence[Action],
    run_id: str,
    *,
    check: Check,
    calls_left: Callable[[], int],
    asked: Mapping[int, ActionEntry] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ActOutcome:
    """Send the approved ``actions`` (see the module docstring). ``asked``: recent e-mails per customer."""
    outcome, actor = ActOutcome(), _Actor(client, state, run_id)
    journal = state.review.action_entries(a.action_id for a in actions)
    by_customer: dict[int, list[Action]] = {}
    for action in sorted(actions, key=lambda a: ACTION_ORDER.index(a.action)):
        by_customer.setdefault(action.helcim_id, []).append(action)
    for helcim_id, group in by_customer.items():
        todo = []
        for action in group:
            known = _before_reading(action, journal.get(action.action_id), (asked or {}).get(helcim_id))
            if known is None:
                todo.append(action)
            else:
                outcome.results.append(known)
        if todo and (outcome.fatal is not None or calls_left() < 2 * _READS + len(todo)):
            outcome.results += [ActionResult(a, "deferred", "the call budget is spent") for a in todo]
        elif todo:
            _customer(actor, todo, outcome, check=check, dry_run=dry_run)
        if progress:
            progress("actions", len(group))
    return outcome


def _customer(actor: _Actor, todo: list[Action], outcome: ActOutcome, *, check: Check, dry_run: bool) -> None:
    """Read one customer, check and send its actions, read it again when one changed it."""
    helcim_id, changed = todo[0].helcim_id, False
    try:
        fresh = read_customer(actor.client, actor.state, helcim_id)
    except HelcimRequestError as error:  # e.g. no such customer in this account
        outcome.results += [ActionResult(a, "failed", f"could not read the customer: {error}") for a in todo]
        return
    except HelcimError as error:
        outcome.fatal = None if isinstance(error, BudgetExhausted) else error
        outcome.results += [ActionResult(a, "deferred", f"not sent: {error}") for a in todo]
        return
    for index, action in enumerate(todo):
        try:
            result = _one(actor, action, fresh, check=check, dry_run=dry_run)
        except HelcimError as error:  # nothing more can be sent tonight
            outcome.fatal = None if isinstance(error, BudgetExhausted) else error
            stopped = _stopped_at(action, error)
            outcome.results.append(stopped)
            outcome.results += [ActionResult(a, "deferred", f"not sent: {error}") for a in todo[index + 1 :]]
            changed = changed or (stopped.outcome == "uncertain" and action.action not in EMAILING)
            break
        outcome.results.append(result)
        # a request for bank details changes nothing Helcim shows until the customer answers
        changed = changed or (result.outcome in ("done", "uncertain") and action.action not in EMAILING)
    if changed and outcome.fatal is None:
        _read_again(actor, helcim_id, outcome)


def _one(actor: _Actor, action: Action, fresh: Fresh, *, check: Check, dry_run: bool) -> ActionResult:
    """Check one action against the fresh read, then send it (or say it would be sent). Raises as ``perform``."""
    reason = check(action, fresh)
    if reason is not None:
        if not dry_run:
            actor.state.review.record_skip(
                action.action_id, actor.run_id, action.action, action.code, action.helcim_id,
                action.customer_code, action.method_id, reason,
            )  # fmt: skip
        return ActionResult(action, "skipped", reason)
    second = actor.second_e_mail(action)
    if second is not None:
        return second
    if action.action in EMAILING:  # from its intent on, whatever comes of it: never a second e-mail
        actor.emailed[action.helcim_id] = ActionResult(action, "uncertain")
    result = (
        ActionResult(action, "would-do", "its finding still holds")
        if dry_run
        else actor.perform(action, fresh)
    )
    if action.action in EMAILING:
        actor.emailed[action.helcim_id] = result
    return result


def _read_again(actor: _Actor, helcim_id: int, outcome: ActOutcome) -> None:
    try:
        read_customer(actor.client, actor.state, helcim_id)
        outcome.reread += 1
    except HelcimError as error:  # the actions stand; the next refresh reads the customer
        log.warning("could not read customer %s again after its actions: %s", helcim_id, error)
