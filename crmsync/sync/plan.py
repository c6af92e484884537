r"""The Plan: what a run will write to Helcim, in which order, and what it costs.

A plan is built from a :class:`~crmsync.sync.diff.DiffResult` and a call budget:

* **operations**: creates first, then updates, each an :class:`Operation` in
  crmsync's own terms — the generic field values Helcim should hold, and which
  addresses to send — with its plan id; the client alone turns them into
  Helcim's JSON. Operations deferred by an earlier run come first of their kind;
* **deferred**: what does not fit in the budget (next night starts with it);
* **held**: :class:`Hold`\ s, rows that must not be written yet, each with its
  ``kind`` (awaiting a link decision, linked customer missing in Helcim, manual
  conflicts);
* **estimate**: reads already spent, reads planned (bank accounts and PADs),
  writes, against the budget;
* **mass_changes**: fields the plan would clear or change on more than
  ``MASS_CHANGE_SHARE`` (and at least ``MASS_CHANGE_MIN``) of the linked
  customers — what a broken export job looks like (a column blank on every
  row). ``crmsync run`` and ``crmsync apply`` refuse such a plan unless told
  ``--allow-mass-change``; ``crmsync plan`` warns.

``plan.json`` is what ``crmsync apply`` executes verbatim; ``plan.csv`` shows
the same, one row per field, old → new, for people. Pure: no I/O here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from crmsync.errors import UsageError
from crmsync.schemas.helcim import SYNCED_FIELDS
from crmsync.sync.diff import DiffResult

PLAN_VERSION = 2  # 2: operations hold crmsync's values, not Helcim's request body
PLAN_CSV_COLUMNS = ("crm_id", "customer_code", "helcim_id", "operation", "field", "old", "new", "scheduled")
CONFLICT_CSV_COLUMNS = (
    "crm_id",
    "customer_code",
    "helcim_id",
    "field",
    "base",
    "crm",
    "helcim",
    "resolution",
)
#: The mass-change guard: a field cleared or changed on more than this share of the linked customers…
MASS_CHANGE_SHARE = 0.10
#: …and on at least this many of them.
MASS_CHANGE_MIN = 20


@dataclass(frozen=True)
class MassChange:
    """One field the plan would clear or change on too many linked customers."""

    field: str
    cleared: int
    changed: int
    linked: int

    @property
    def customers(self) -> int:
        return self.cleared + self.changed

    def message(self) -> str:
        what = " and ".join(
            part
            for part in (
                f"clear it on {self.cleared}" if self.cleared else "",
                f"change it on {self.changed}" if self.changed else "",
            )
            if part
        )
        return (
            f"{self.field}: the plan would {what} of the {self.linked} linked customers "
            f"(the guard stops at more than {MASS_CHANGE_SHARE:.0%} and at least {MASS_CHANGE_MIN}); "
            "if the export is right, allow the mass change"
        )


def mass_changes(
    result: DiffResult, *, share: float = MASS_CHANGE_SHARE, minimum: int = MASS_CHANGE_MIN
) -> list[MassChange]:
    """Fields pushed (cleared or changed) on more than ``share`` and at least ``minimum`` linked customers."""
    linked = len(result.unchanged) + len(result.updates) + len(result.conflicts)
    linked += int((result.exports["crm_id"] != "").sum())
    pushed = result.changes[result.changes["resolution"] == "push"]
    found = []
    for name, cells in pushed.groupby("field", sort=True):
        cleared = int(((cells["crm"].astype("str") == "") & (cells["helcim"].astype("str") != "")).sum())
        total = cells["crm_id"].nunique()
        if total >= minimum and total > share * linked:
            found.append(MassChange(str(name), cleared, total - cleared, linked))
    return found


@dataclass(frozen=True)
class Operation:
    """One write: a create or an update of one customer, in crmsync's terms."""

    op_id: str
    plan_id: str
    kind: str  # create | update
    crm_id: str
    customer_code: str
    helcim_id: int | None
    values: dict[str, str]  # synced field -> what Helcim should hold (a create: the CRM row's values)
    addresses: tuple[str, ...]  # "billing" / "shipping": the addresses the write sends, whole
    changes: dict[str, list[str]]  # field -> [old, new]
    source_line: int = 0
    carried_over: bool = False  # deferred by an earlier run

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Operation:
        return cls(**{**raw, "addresses": tuple(raw["addresses"])})


HOLD_KINDS = ("awaiting_link", "missing_in_helcim", "manual_conflict")


@dataclass(frozen=True)
class Hold:
    """A row the plan must not write yet: ``kind`` says why (the nightly counts it by kind), ``reason`` in words."""

    crm_id: str
    kind: str  # one of HOLD_KINDS
    reason: str


def _hold(raw: dict[str, str]) -> Hold:
    hold = Hold(**raw)
    if hold.kind not in HOLD_KINDS:
        raise ValueError(f"a hold of unknown kind {hold.kind!r}")
    return hold


@dataclass(frozen=True)
class Estimate:
    budget: int
    reads_spent: int
    reads_planned: int
    writes: int
    writes_affordable: int
    deferred: int

    @property
    def total(self) -> int:
        return self.reads_spent + self.reads_planned + self.writes


@dataclass
class Plan:
    plan_id: str
    created_at: str
    api_url: str
    crm_file: str
    profile: str
    policy: str
    operations: list[Operation]
    deferred: list[Operation]
    held: list[Hold]
    estimate: Estimate
    counts: dict[str, int] = field(default_factory=dict)
    snapshot: dict[str, Any] = field(default_factory=dict)
    mass_changes: list[dict[str, Any]] = field(default_factory=list)  # MassChange, as a dict
    version: int = PLAN_VERSION

    # -- (de)serialisation ---------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "plan.json") -> Plan:
        try:
            raw = json.loads(text)
            if raw.get("version") != PLAN_VERSION:
                raise UsageError(
                    f"{source}: plan version {raw.get('version')!r}; this crmsync reads version {PLAN_VERSION} "
                    "(a plan from an earlier crmsync: make a new one with crmsync plan)"
                )
            return cls(
                plan_id=raw["plan_id"],
                created_at=raw["created_at"],
                api_url=raw["api_url"],
                crm_file=raw["crm_file"],
                profile=raw["profile"],
                policy=raw["policy"],
                operations=[Operation.from_dict(op) for op in raw["operations"]],
                deferred=[Operation.from_dict(op) for op in raw["deferred"]],
                held=[_hold(held) for held in raw["held"]],
                estimate=Estimate(**raw["estimate"]),
                counts=dict(raw.get("counts", {})),
                snapshot=dict(raw.get("snapshot", {})),
                mass_changes=list(raw.get("mass_changes", [])),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{source} is not a crmsync plan ({type(exc).__name__}: {exc})") from None

    @classmethod
    def load(cls, path: Path) -> Plan:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the plan {path}: {exc.strerror}") from None
        return cls.from_json(text, str(path))

    def mass_change_warnings(self) -> list[str]:
        return [MassChange(**change).message() for change in self.mass_changes]

    # -- views for people ----------------------------------------------------------

    def rows(self) -> pd.DataFrame:
        """plan.csv: one row per field written, old → new; deferred operations flagged."""
        records = []
        for scheduled, ops in (("yes", self.operations), ("deferred", self.deferred)):
            for op in ops:
                for name, (old, new) in op.changes.items():
                    records.append(
                        (op.crm_id, op.customer_code, op.helcim_id or "", op.kind, name, old, new, scheduled)
                    )
        return pd.DataFrame.from_records(records, columns=list(PLAN_CSV_COLUMNS))

    def summary(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "plan_id": self.plan_id,
            "creates": sum(op.kind == "create" for op in self.operations),
            "updates": sum(op.kind == "update" for op in self.operations),
            "deferred": len(self.deferred),
            "held": len(self.held),
            "calls": {
                "budget": e.budget,
                "reads_spent": e.reads_spent,
                "reads_planned": e.reads_planned,
                "writes": e.writes,
                "total": e.total,
                "writes_affordable": e.writes_affordable,
            },
            **self.counts,
        }


def _given(values: dict[str, str], prefix: str) -> bool:
    return any(v for k, v in values.items() if k.startswith(f"{prefix}_"))


def _creates(result: DiffResult, plan_id: str) -> list[Operation]:
    ops = []
    fields = [f for f in SYNCED_FIELDS if f in result.creates.columns]
    lines = result.creates["source_line"] if "source_line" in result.creates.columns else None
    for index, record in enumerate(result.creates[["crm_id", *fields]].to_dict("records")):
        crm_id = str(record["crm_id"])
        values = {str(k): str(v or "") for k, v in record.items() if k != "crm_id"}
        ops.append(
            Operation(
                op_id=f"{plan_id}:create:{crm_id}",
                plan_id=plan_id,
                kind="create",
                crm_id=crm_id,
                customer_code=crm_id,
                helcim_id=None,
                values=values,
                addresses=tuple(
                    p for p in ("billing", "shipping") if _given(values, p)
                ),  # only what has something
                changes={k: ["", v] for k, v in values.items() if v},
                source_line=int(lines.iloc[index]) if lines is not None else 0,
            )
        )
    return ops


def _updates(result: DiffResult, plan_id: str, lines: dict[str, int]) -> list[Operation]:
    pushed = result.changes[result.changes["resolution"] == "push"]
    if pushed.empty:
        return []
    targets = result.targets.set_index("crm_id")
    ops = []
    for crm_id, cells in pushed.groupby("crm_id", sort=True):
        first = cells.iloc[0]
        names = set(cells["field"])
        values = {str(k): str(v or "") for k, v in targets.loc[crm_id].items()}
        ops.append(
            Operation(
                op_id=f"{plan_id}:update:{crm_id}",
                plan_id=plan_id,
                kind="update",
                crm_id=str(crm_id),
                customer_code=str(first["customer_code"]),
                helcim_id=int(first["helcim_id"]),
                values=values,
                # an address whole when one of its fields moves (a partial address merge is undocumented)
                addresses=tuple(
                    p for p in ("billing", "shipping") if any(n.startswith(f"{p}_") for n in names)
                ),
                changes={str(r.field): [str(r.helcim), str(r.crm)] for r in cells.itertuples()},
                source_line=lines.get(str(crm_id), 0),
            )
        )
    return ops


def build_plan(
    result: DiffResult,
    *,
    budget: int,
    reads_spent: int,
    reads_planned: int,
    carried_over: Iterable[str] = (),
    source_lines: dict[str, int] | None = None,
    api_url: str = "",
    crm_file: str = "",
    profile: str = "generic",
    snapshot: dict[str, Any] | None = None,
    plan_id: str | None = None,
    now: datetime | None = None,
) -> Plan:
    """Order the writes, fit them in the budget, and say what waits and why."""
    moment = now or datetime.now(UTC)
    plan_id = plan_id or moment.strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    earlier = set(carried_over)
    creates = _creates(result, plan_id)
    updates = _updates(result, plan_id, source_lines or {})

    def ordered(ops: list[Operation]) -> list[Operation]:
        marked = [replace(op, carried_over=op.crm_id in earlier) for op in ops]
        return sorted(marked, key=lambda op: (not op.carried_over, op.source_line, op.crm_id))

    queue = ordered(creates) + ordered(updates)
    affordable = max(0, budget - reads_spent - reads_planned)
    scheduled, deferred = queue[:affordable], queue[affordable:]

    # kind: what holds the row back (the nightly job counts it by kind); reason: the same, for people
    held = [Hold(str(r.crm_id), "awaiting_link", str(r.reason)) for r in result.awaiting_link.itertuples()]
    held += [
        Hold(
            str(r.crm_id),
            "missing_in_helcim",
            f"linked Helcim customer {r.helcim_id} no longer exists in Helcim",
        )
        for r in result.missing_in_helcim.itertuples()
    ]
    skipped = result.changes[result.changes["resolution"] == "skip"]
    for crm_id, cells in skipped.groupby("crm_id", sort=True):
        fields = ", ".join(sorted(cells["field"]))
        held.append(
            Hold(str(crm_id), "manual_conflict", f"manual conflict on {fields}: changed on both sides")
        )
    return Plan(
        plan_id=plan_id,
        created_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        api_url=api_url,
        crm_file=crm_file,
        profile=profile,
        policy=result.policy,
        operations=scheduled,
        deferred=deferred,
        held=held,
        estimate=Estimate(
            budget=budget,
            reads_spent=reads_spent,
            reads_planned=reads_planned,
            writes=len(queue),
            writes_affordable=affordable,
            deferred=len(deferred),
        ),
        counts=result.counts(),
        snapshot=snapshot or {},
        mass_changes=[asdict(change) for change in mass_changes(result)],
    )


def conflict_rows(result: DiffResult) -> pd.DataFrame:
    """conflicts.csv: every conflicting field, the three values and how the policy resolved it."""
    cells = result.changes[result.changes["status"] == "conflict"]
    return cells.loc[:, list(CONFLICT_CSV_COLUMNS)].reset_index(drop=True)
