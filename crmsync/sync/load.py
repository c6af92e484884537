"""The loader: apply a plan to Helcim through the client, journaled, resumable, within budget.

For every operation of a :class:`~crmsync.sync.plan.Plan` (creates first, then
updates; up to 5 workers sharing the client's pacer):

1. an operation the journal already records as done is not sent again, so
   applying the same plan twice writes nothing the second time;
2. the intent is committed to the journal **before** the request leaves;
3. the outcome is committed after: the link (for a create) and the base move
   **only** on a confirmed success, to the values written;
4. when the call budget runs out, the operations not yet started are
   recorded as deferred (the next night starts with them).

A run killed between 2 and 3 leaves ``pending`` entries. :func:`resolve_pending`
settles them on the next run before anything else: after waiting one read
timeout (a request of the killed run may still be landing), a pending create is looked
up by its customerCode (found → linked, as if it had answered; absent → it
never landed, and the new plan creates it); a pending update is left to the
next diff, which sees whether Helcim holds the new values.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd

from crmsync.console import Progress
from crmsync.errors import (
    EXIT_PARTIAL,
    BudgetExhausted,
    HelcimError,
    HelcimRequestError,
    Interrupted,
    ProtocolError,
    RateLimited,
)
from crmsync.helcim.client import HelcimClient
from crmsync.helcim.models import Address, Customer, CustomerInput
from crmsync.schemas.address import ADDRESS_FIELDS
from crmsync.schemas.helcim import SYNCED_FIELDS
from crmsync.state import StateStore
from crmsync.sync.diff import DiffResult
from crmsync.sync.plan import Operation, Plan
from crmsync.sync.snapshot import cache_found, cache_write

log = logging.getLogger("crmsync.load")

RESULT_COLUMNS = ("crm_id", "customer_code", "operation", "outcome", "helcim_id", "error")


@dataclass(frozen=True)
class OpResult:
    crm_id: str
    customer_code: str
    operation: str  # create | update
    outcome: str  # created | recovered | updated | already-applied | deferred | failed
    helcim_id: int | None = None
    error: str = ""


@dataclass
class ApplyOutcome:
    results: list[OpResult]
    resolved: list[OpResult]  # pending writes of an earlier, interrupted run
    fatal: HelcimError | None = None  # the token was refused mid-run: the rest was not attempted

    def frame(self) -> pd.DataFrame:
        rows = [
            (r.crm_id, r.customer_code, r.operation, r.outcome, r.helcim_id or "", r.error)
            for r in self.results
        ]
        return pd.DataFrame.from_records(rows, columns=list(RESULT_COLUMNS))

    def counts(self) -> dict[str, int]:
        return dict(Counter(r.outcome for r in self.results))


def _address(values: dict[str, str], prefix: str) -> Address:
    return Address(**{f: values.get(f"{prefix}_{f}", "") for f in ADDRESS_FIELDS})


def customer_input(op: Operation) -> CustomerInput:
    """What the client sends for ``op``: the names always (Helcim requires one), the cell phone, and each
    address the operation names, whole (an empty one clears it)."""
    values = op.values
    return CustomerInput(
        contact_name=values.get("contact_name", ""),
        business_name=values.get("business_name", ""),
        cell_phone=values.get("cell_phone", ""),
        billing=_address(values, "billing") if "billing" in op.addresses else None,
        shipping=_address(values, "shipping") if "shipping" in op.addresses else None,
        code=op.customer_code,
    )


def written_values(op: Operation) -> dict[str, str | None]:
    """The base to record once ``op`` succeeded: what both sides now hold.

    A create writes the whole record, so every field is known (an absent one
    is empty on both sides); an update writes only the fields it pushed.
    """
    if op.kind == "create":
        return {f: op.changes.get(f, ["", ""])[1] for f in SYNCED_FIELDS}
    return {f: new for f, (_, new) in op.changes.items()}


class Loader:
    """Applies one plan; safe to use from several worker threads."""

    def __init__(
        self, client: HelcimClient, state: StateStore, run_id: str, progress: Progress | None = None
    ) -> None:
        self.client = client
        self.state = state
        self.run_id = run_id
        self.progress = progress
        self._lock = threading.Lock()  # one SQLite connection: writes are serialised
        self._stop = threading.Event()  # set when the budget is spent or the token refused
        self.fatal: HelcimError | None = None

    def _record_success(self, op: Operation, customer: Customer, outcome: str) -> None:
        with self._lock, self.state.transaction():
            self.state.journal_outcome(op.op_id, "done", outcome, helcim_id=customer.id)
            if op.kind == "create":
                self.state.link(op.crm_id, customer.id, customer.code, "created")
            values = written_values(op)
            self.state.set_base_row(op.crm_id, values)
            cache_write(self.state, customer, values)

    def _failed(self, op: Operation, error: HelcimError) -> None:
        """Journal a write that did not succeed; stop the run when nothing more can succeed.

        A create that Helcim did not plainly refuse may have been performed
        (its answer lost, or a look-up after it cut short): it stays *pending*,
        so the next run looks it up before anything is posted again.
        """
        # budget spent, a stop signal, the token refused, a redirect, or Helcim down after every retry:
        # nothing more can succeed tonight (a 429 that outlasted the patience too)
        if isinstance(error, BudgetExhausted | RateLimited) or error.exit_code != EXIT_PARTIAL:
            self._stop.set()
            if not isinstance(error, BudgetExhausted):
                self.fatal = self.fatal or error
        uncertain = op.kind == "create" and not isinstance(error, HelcimRequestError)
        with self._lock:
            if uncertain:
                self.state.journal_outcome(op.op_id, "pending", "uncertain", error=str(error))
            else:
                self.state.journal_outcome(op.op_id, "failed", "failed", error=str(error))
        if not isinstance(error, BudgetExhausted | Interrupted):
            log.warning("%s %s failed: %s", op.kind, op.crm_id, error)

    def execute(self, op: Operation) -> OpResult:
        """Run one operation with its journal entries around it."""
        if self._stop.is_set():
            return OpResult(op.crm_id, op.customer_code, op.kind, "deferred", op.helcim_id)
        with self._lock:
            self.state.journal_intent(
                op.op_id, self.run_id, op.plan_id, op.crm_id, op.kind, op.customer_code, op.helcim_id,
                {"values": op.values, "addresses": list(op.addresses)},
            )  # fmt: skip
        try:
            if op.kind == "create":
                created = self.client.create_customer(customer_input(op))
                customer = created.customer
                outcome = "recovered" if created.recovered else "created"
            else:
                assert op.helcim_id is not None
                customer, outcome = self.client.update_customer(op.helcim_id, customer_input(op)), "updated"
            if customer.id <= 0:  # the client checks the shape; never link or cache a customer 0
                raise ProtocolError(f"{op.kind}-customer: the answer carries no customer id", status=200)
        except HelcimError as error:
            self._failed(op, error)
            outcome = "deferred" if isinstance(error, BudgetExhausted | Interrupted) else "failed"
            detail = "" if outcome == "deferred" else str(error)
            return OpResult(op.crm_id, op.customer_code, op.kind, outcome, op.helcim_id, detail)
        finally:
            if self.progress:
                self.progress("writes", 1)
        taken = self._taken(op, customer) if outcome == "recovered" else ""
        if taken:  # the code is another row's customer: a failed row, never a link that steals it
            with self._lock:
                self.state.journal_outcome(op.op_id, "failed", "failed", error=taken)
            log.warning("create %s failed: %s", op.crm_id, taken)
            return OpResult(op.crm_id, op.customer_code, op.kind, "failed", None, taken)
        self._record_success(op, customer, outcome)
        return OpResult(op.crm_id, op.customer_code, op.kind, outcome, customer.id)

    def _taken(self, op: Operation, customer: Customer) -> str:
        """Why a create found by its code (its answer lost, or refused as existing) is not this row's:
        the customer holding the code is linked to another CRM record (""  when it is free or this row's)."""
        with self._lock:
            links = self.state.links()
        other = links.loc[links["helcim_id"] == customer.id, "crm_id"]
        if other.empty or str(other.iloc[0]) == op.crm_id:
            return ""
        return (
            f"Helcim already has a customer with the code {customer.code} (id {customer.id}), linked to CRM "
            f"record {other.iloc[0]}: Helcim keeps one customer per code, so this record cannot be created "
            "under it; give one of the two another code"
        )


def record_agreed(state: StateStore, result: DiffResult) -> int:
    """Facts a diff found that hold whatever is applied later: customers paired by their code are linked,
    and the base moves to the values both sides already hold. Returns the links made."""
    with state.transaction():
        paired = result.pairs[result.pairs["how"] == "code"]
        linked = set(state.links()["crm_id"])
        fresh = paired[~paired["crm_id"].isin(linked)]
        for crm_id, helcim_id in zip(fresh["crm_id"].tolist(), fresh["helcim_id"].tolist(), strict=True):
            # paired by code: the Helcim customer's customerCode is exactly the crm_id
            state.link(str(crm_id), int(helcim_id), str(crm_id), "code")
        state.set_base(result.agreed)
    return len(fresh)


def resolve_pending(client: HelcimClient, state: StateStore) -> list[OpResult]:
    """Settle the writes an interrupted run left pending (see the module docstring)."""
    resolved: list[OpResult] = []
    pending = state.journal_entries(state="pending")
    if any(entry.kind == "create" for entry in pending):
        # The killed run may have left a request Helcim is still working on: let it land before looking.
        log.info("waiting %.0f s for writes a previous run left in flight to land", client.settle_seconds)
        client.pause(client.settle_seconds)
    for entry in pending:
        if entry.kind == "create":
            found = client.find_customer_by_code(entry.customer_code)
            if found is None:
                state.journal_outcome(
                    entry.op_id, "failed", "not-landed", error="interrupted before Helcim had it"
                )
                resolved.append(OpResult(entry.crm_id, entry.customer_code, "create", "not-landed"))
                continue
            with state.transaction():
                state.journal_outcome(entry.op_id, "done", "recovered", helcim_id=found.id)
                state.link(entry.crm_id, found.id, found.code, "created")
                cache_found(state, [found])
            resolved.append(OpResult(entry.crm_id, entry.customer_code, "create", "recovered", found.id))
        else:
            state.journal_outcome(entry.op_id, "done", "left-to-diff", helcim_id=entry.helcim_id)
            resolved.append(
                OpResult(entry.crm_id, entry.customer_code, "update", "left-to-diff", entry.helcim_id)
            )
    return resolved


def apply_plan(
    plan: Plan,
    client: HelcimClient,
    state: StateStore,
    run_id: str,
    *,
    workers: int = 5,
    progress: Progress | None = None,
) -> ApplyOutcome:
    """Execute ``plan`` (creates first, then updates); see the module docstring.

    The job settles pending writes first (:func:`resolve_pending`) and fills in ``resolved``.
    """
    done = {
        e.op_id
        for e in state.journal_entries(op_ids=[op.op_id for op in plan.operations])
        if e.state == "done"
    }
    # a create whose row is linked already happened (an earlier run, or a write resolve_pending settled)
    linked = set(state.links()["crm_id"])
    done |= {op.op_id for op in plan.operations if op.kind == "create" and op.crm_id in linked}
    loader = Loader(client, state, run_id, progress)
    results: list[OpResult] = []
    for kind in ("create", "update"):
        batch: Sequence[Operation] = [op for op in plan.operations if op.kind == kind]
        todo = [op for op in batch if op.op_id not in done]
        results += [
            OpResult(op.crm_id, op.customer_code, op.kind, "already-applied", op.helcim_id)
            for op in batch
            if op.op_id in done
        ]
        with ThreadPoolExecutor(max_workers=max(1, min(workers, client.pacer.limits.concurrent))) as pool:
            results += list(pool.map(loader.execute, todo))
    results += [
        OpResult(op.crm_id, op.customer_code, op.kind, "deferred", op.helcim_id) for op in plan.deferred
    ]
    return ApplyOutcome(results, [], loader.fatal)
