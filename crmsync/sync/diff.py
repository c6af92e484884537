"""The three-way diff: CRM vs Helcim vs base → fixed result buckets.   [pure]

For every linked customer and synced field, with ``c`` the CRM value, ``h``
Helcim's and ``b`` the base (what both sides last agreed on), all normalised
and compared case-insensitively:

==============================  =====================================
``c == h``                      same (the base may move to it)
``c != h``, ``h == b``          **push**: changed in the CRM → update Helcim
``c != h``, ``c == b``          **export**: changed in Helcim → tell the CRM
``c != h``, both differ from b  **conflict**, resolved by the policy
no base yet, ``c != h``         first sync: the CRM owns these fields → push;
                                but an empty CRM value never clears Helcim
                                data → export
==============================  =====================================

Conflict policies: ``crm-wins`` (default, push), ``helcim-wins`` (export),
``manual`` (report and skip the field). The base only moves to values both
sides hold: a Helcim change exported to the CRM but not yet imported there
stays an export, night after night, and is never pushed back.

Pairing (:mod:`crmsync.sync.pairing`, carried in the result as ``pairs``):
unpaired CRM rows are **creates**, unless a Helcim-only customer looks like
the same person: then a link is *proposed* and the row waits for a person's
decision (``awaiting_link``), so it is never created twice. Unpaired Helcim
customers are **exports** (new customers for the CRM).

:func:`diff` runs its phases in order, each a function of its own: pair,
compare whole rows (most are equal), decide field by field over the rows that
differ (:func:`decide`, the table above), resolve conflicts by the policy,
sort customers into buckets, and say what the base and Helcim should hold.

Every key lands in exactly one bucket: ``creates``, ``updates``, ``exports``,
``conflicts``, ``unchanged``, plus ``awaiting_link`` (held back for a link
decision), ``missing_in_helcim`` (linked, but Helcim no longer has it) and
``orphaned`` (a linked Helcim customer whose CRM record left the export).
Everything is vectorised over columns (no per-row Python), for a million rows.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crmsync.schemas.helcim import SYNCED_FIELDS
from crmsync.sync.pairing import (
    Pairing,
    as_bool,
    key_of,
    pair_customers,
    positions,
    propose_links,
)
from crmsync.text import arrow_strings

Policy = Literal["crm-wins", "helcim-wins", "manual"]
POLICIES: tuple[Policy, ...] = ("crm-wins", "helcim-wins", "manual")

SAME, PUSH, EXPORT, CONFLICT = 0, 1, 2, 3
#: A cell's resolution by code: SAME here means "left as it is" (a manual conflict).
RESOLUTION_NAMES = np.array(["skip", "push", "export"], dtype=object)
STATUS_NAMES = np.array(["same", "push", "export", "conflict"], dtype=object)
BUCKETS = (
    "creates",
    "updates",
    "exports",
    "conflicts",
    "unchanged",
    "awaiting_link",
    "missing_in_helcim",
    "orphaned",
)
CHANGE_COLUMNS = (
    "crm_id",
    "helcim_id",
    "customer_code",
    "field",
    "base",
    "crm",
    "helcim",
    "status",
    "resolution",
    "first_sync",
)


@dataclass(frozen=True)
class DiffResult:
    """The value the diff returns; renderers and the planner read it, nothing else."""

    creates: pd.DataFrame  # CRM rows (crm_id + synced fields) to create in Helcim
    updates: pd.DataFrame  # crm_id, helcim_id, customer_code of customers with fields to push
    exports: pd.DataFrame  # crm_id ("" for Helcim-only), helcim_id, customer_code, kind ("changed" | "new")
    conflicts: pd.DataFrame  # crm_id, helcim_id, customer_code of customers with a conflicting field
    unchanged: pd.DataFrame  # crm_id, helcim_id, customer_code
    awaiting_link: pd.DataFrame  # crm_id, reason
    missing_in_helcim: pd.DataFrame  # crm_id, helcim_id
    orphaned: pd.DataFrame  # crm_id, helcim_id, customer_code
    changes: pd.DataFrame  # one row per (customer, field) that differs: CHANGE_COLUMNS
    agreed: pd.DataFrame  # crm_id + synced fields: the base to store now for fields both sides hold
    targets: pd.DataFrame  # crm_id + synced fields: what Helcim should hold after the updates
    link_proposals: pd.DataFrame  # PROPOSAL_COLUMNS
    helcim_only: pd.DataFrame  # the Helcim customers no CRM row has (with their fields)
    pairs: pd.DataFrame  # crm_id, helcim_id, how ("link" | "code"): who is whom, as the diff saw it
    unexamined_pairs: pd.DataFrame  # crm_id, helcim_id of export rows not compared (rejected): for the record
    policy: Policy = "crm-wins"
    fields: tuple[str, ...] = field(default=SYNCED_FIELDS)

    def bucket_of(self) -> pd.Series:
        """key → bucket for every key (crm_id, or ``helcim:<id>`` for Helcim-only customers)."""
        parts = [
            self.creates["crm_id"].to_frame("key").assign(bucket="creates"),
            self.updates["crm_id"].to_frame("key").assign(bucket="updates"),
            self.exports.assign(
                key=np.where(
                    self.exports["crm_id"] == "",
                    "helcim:" + self.exports["helcim_id"].astype(str),
                    self.exports["crm_id"],
                )
            )[["key"]].assign(bucket="exports"),
            self.conflicts["crm_id"].to_frame("key").assign(bucket="conflicts"),
            self.unchanged["crm_id"].to_frame("key").assign(bucket="unchanged"),
            self.awaiting_link["crm_id"].to_frame("key").assign(bucket="awaiting_link"),
            self.missing_in_helcim["crm_id"].to_frame("key").assign(bucket="missing_in_helcim"),
            self.orphaned["crm_id"].to_frame("key").assign(bucket="orphaned"),
        ]
        both = pd.concat(parts, ignore_index=True)
        return pd.Series(both["bucket"].to_numpy(), index=both["key"].to_numpy(), name="bucket")

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in BUCKETS}


# -- the decision table ---------------------------------------------------------------


def decide(crm: pa.Array, helcim: pa.Array, base: pa.Array, has_base: np.ndarray) -> np.ndarray:
    """The decision table of the module docstring, for one field of many customers.

    ``crm``, ``helcim`` and ``base`` are the comparison forms (:func:`key_of`:
    lower case, missing as ""); ``has_base`` says where a base value exists.
    Returns one of SAME, PUSH, EXPORT, CONFLICT per customer.
    """
    same = as_bool(pc.equal(crm, helcim))
    crm_kept = as_bool(pc.equal(crm, base))
    helcim_kept = as_bool(pc.equal(helcim, base))
    crm_empty = as_bool(pc.equal(crm, ""))
    status = np.full(len(crm), CONFLICT, dtype=np.int8)  # both moved away from the base
    status[has_base & helcim_kept] = PUSH  # changed in the CRM only
    status[has_base & crm_kept] = EXPORT  # changed in Helcim only
    status[~has_base] = PUSH  # first sync: the CRM owns the field…
    status[~has_base & crm_empty] = EXPORT  # …but an empty CRM value never clears Helcim data
    status[same] = SAME
    return status


def decide_one(crm: str, helcim: str, base: str | None) -> str:
    """:func:`decide` for one value: "same", "push", "export" or "conflict" (``base`` None: no base yet)."""
    status = decide(
        key_of(np.array([crm], dtype=object)),
        key_of(np.array([helcim], dtype=object)),
        key_of(np.array([base], dtype=object)),
        np.array([base is not None]),
    )
    return str(STATUS_NAMES[status[0]])


def resolve(status: np.ndarray, policy: Policy) -> np.ndarray:
    """What is done with each cell: a conflict becomes the policy's choice (SAME here means "leave it")."""
    resolution = status.copy()
    resolution[status == CONFLICT] = {"crm-wins": PUSH, "helcim-wins": EXPORT, "manual": SAME}[policy]
    return resolution


# -- phase 1 and 2: pair, and compare whole rows ----------------------------------------


@dataclass(frozen=True)
class _Positions:
    """Where each pair's rows are: in the CRM frame, the Helcim frame and the base (-1: no base)."""

    crm: np.ndarray
    helcim: np.ndarray
    base: np.ndarray


def _whole_rows(
    crm: pd.DataFrame, helcim: pd.DataFrame, base: pd.DataFrame, at: _Positions, fields: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(equal as a whole, base equal to the CRM as a whole) per pair: Arrow gathers, two threads."""
    crm_at, helcim_at = pa.array(at.crm, type=pa.int64()), pa.array(at.helcim, type=pa.int64())
    base_at = pa.array(at.base, type=pa.int64(), mask=at.base < 0)
    whole_same = np.ones(len(at.crm), dtype=bool)
    base_agrees = at.base >= 0  # and, below, every base field known and equal to the CRM's

    def compare(name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """One column: Arrow gathers and compares (releasing the GIL), little memory."""
        c = pc.take(pc.fill_null(arrow_strings(crm[name]), ""), crm_at)
        h = pc.take(pc.fill_null(arrow_strings(helcim[name]), ""), helcim_at)
        b = as_bool(pc.equal(c, pc.take(arrow_strings(base[name]), base_at))) if len(base) else None
        return as_bool(pc.equal(c, h)), b

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for same_here, base_here in pool.map(compare, fields):
            whole_same &= same_here
            if base_here is not None:
                base_agrees &= base_here
    return whole_same, base_agrees


# -- phase 3: field by field, over the rows that differ --------------------------------


@dataclass(frozen=True)
class _Differing:
    """The pairs that differ somewhere, as plain object arrays per field (no DataFrame round trips)."""

    crm_id: np.ndarray
    helcim_id: np.ndarray
    customer_code: np.ndarray
    crm: dict[str, np.ndarray]  # the fields the export carries
    helcim: dict[str, np.ndarray]  # every synced field
    base: dict[str, np.ndarray]  # None where no base value exists yet

    def __len__(self) -> int:
        return len(self.crm_id)


def _differing(
    crm: pd.DataFrame,
    helcim: pd.DataFrame,
    base: pd.DataFrame,
    ident: pd.DataFrame,
    at: _Positions,
    slow: np.ndarray,
    fields: tuple[str, ...],
) -> _Differing:
    rows = ident.iloc[slow]
    slow_base = at.base[slow]
    known_row = slow_base >= 0
    base_values: dict[str, np.ndarray] = {}
    for name in fields:
        values = np.full(len(slow), None, dtype=object)
        if len(base):
            values[known_row] = base[name].take(slow_base[known_row]).to_numpy(dtype=object)
        values[pd.isna(values)] = None
        base_values[name] = values
    return _Differing(
        crm_id=rows["crm_id"].to_numpy(dtype=object),
        helcim_id=rows["helcim_id"].to_numpy(),
        customer_code=rows["customer_code"].to_numpy(dtype=object),
        crm={name: crm[name].take(at.crm[slow]).to_numpy(dtype=object) for name in fields},
        helcim={name: helcim[name].take(at.helcim[slow]).to_numpy(dtype=object) for name in SYNCED_FIELDS},
        base=base_values,
    )


def _statuses(differing: _Differing, fields: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(status per cell, whether a base value exists per cell), shape (differing rows, fields)."""
    status = np.zeros((len(differing), len(fields)), dtype=np.int8)
    known = np.zeros((len(differing), len(fields)), dtype=bool)
    for j, name in enumerate(fields):
        has_base = ~pd.isna(differing.base[name])
        status[:, j] = decide(
            key_of(differing.crm[name]),
            key_of(differing.helcim[name]),
            key_of(differing.base[name]),
            has_base,
        )
        known[:, j] = has_base
    return status, known


# -- phase 4: customers into buckets -----------------------------------------------------


def _buckets(
    ident: pd.DataFrame, slow: np.ndarray, status: np.ndarray, helcim_only: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """conflicts, updates, exports (changed and new), unchanged: each customer in one of them."""
    any_conflict = np.zeros(len(ident), dtype=bool)
    any_push = np.zeros(len(ident), dtype=bool)
    any_export = np.zeros(len(ident), dtype=bool)
    any_conflict[slow] = (status == CONFLICT).any(axis=1)
    any_push[slow] = (status == PUSH).any(axis=1)
    any_export[slow] = (status == EXPORT).any(axis=1)
    changed_exports = ident[~any_conflict & ~any_push & any_export].assign(kind="changed")
    new_exports = pd.DataFrame(
        {
            "crm_id": "",
            "helcim_id": helcim_only["helcim_id"].to_numpy(),
            "customer_code": helcim_only["customer_code"].to_numpy(),
            "kind": "new",
        }
    )
    return {
        "conflicts": ident[any_conflict].reset_index(drop=True),
        "updates": ident[~any_conflict & any_push].reset_index(drop=True),
        "exports": pd.concat([changed_exports, new_exports], ignore_index=True),
        "unchanged": ident[~(any_conflict | any_push | any_export)].reset_index(drop=True),
    }


# -- phase 5: the long table of differing cells ---------------------------------------------


def _changes(
    differing: _Differing,
    status: np.ndarray,
    resolution: np.ndarray,
    known: np.ndarray,
    fields: tuple[str, ...],
) -> pd.DataFrame:
    rows, cols = np.nonzero(status != SAME)
    pieces = []
    for j, name in enumerate(fields):
        picked = rows[cols == j]
        if not len(picked):
            continue
        pieces.append(
            pd.DataFrame(
                {
                    "crm_id": differing.crm_id[picked],
                    "helcim_id": differing.helcim_id[picked],
                    "customer_code": differing.customer_code[picked],
                    "field": name,
                    "base": np.where(known[picked, j], differing.base[name][picked], ""),
                    "crm": differing.crm[name][picked],
                    "helcim": differing.helcim[name][picked],
                    "status": STATUS_NAMES[status[picked, j]],
                    "resolution": RESOLUTION_NAMES[resolution[picked, j]],
                    "first_sync": ~known[picked, j],
                }
            )
        )
    if not pieces:
        return pd.DataFrame(columns=list(CHANGE_COLUMNS))
    return (
        pd.concat(pieces, ignore_index=True)
        .sort_values(["crm_id", "field"], kind="stable")
        .reset_index(drop=True)
    )


# -- phase 6: what the base and Helcim should hold ---------------------------------------------


def _agreed_and_targets(
    crm: pd.DataFrame,
    ident: pd.DataFrame,
    at: _Positions,
    rows_equal: tuple[np.ndarray, np.ndarray],
    differing: _Differing,
    cells: tuple[np.ndarray, np.ndarray, np.ndarray],
    fields: tuple[str, ...],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the base to store now: values both sides hold; what Helcim should hold after the updates)."""
    whole_same, base_agrees = rows_equal
    status, resolution, known = cells
    agreed: dict[str, object] = {"crm_id": differing.crm_id}
    # Every synced field: one the export does not carry keeps Helcim's value in an update body.
    targets: dict[str, object] = {"crm_id": differing.crm_id, **differing.helcim}
    moves = np.zeros(len(differing), dtype=bool)
    for j, name in enumerate(fields):
        crm_values, helcim_values = differing.crm[name], differing.helcim[name]
        base_values = differing.base[name].copy()
        base_values[~known[:, j]] = None  # no agreed value yet
        same = status[:, j] == SAME
        agreed[name] = np.where(same, crm_values, base_values)  # None: still unknown
        targets[name] = np.where(resolution[:, j] == PUSH, crm_values, helcim_values)
        moves |= same & (~known[:, j] | (crm_values != base_values))
    # rows equal as a whole whose base is not yet exactly that: the base moves to the CRM's values
    moving = whole_same & ~base_agrees
    whole = pd.DataFrame({"crm_id": ident["crm_id"][moving].reset_index(drop=True)})
    for name in fields:
        whole[name] = crm[name].take(at.crm[moving]).reset_index(drop=True)
    agreed_frame = pd.concat([whole, pd.DataFrame(agreed)[moves]], ignore_index=True)
    targets_frame = pd.DataFrame(targets)[(resolution == PUSH).any(axis=1)].reset_index(drop=True)
    return agreed_frame, targets_frame


# -- the diff ---------------------------------------------------------------------------------------


def diff(
    crm: pd.DataFrame,
    helcim: pd.DataFrame,
    base: pd.DataFrame,
    links: pd.DataFrame,
    *,
    policy: Policy = "crm-wins",
    fields: tuple[str, ...] = SYNCED_FIELDS,
    known_crm_ids: Collection[str] | None = None,
    rejected_links: pd.DataFrame | None = None,
    pairing: Pairing | None = None,
    rekeyed: bool = False,
) -> DiffResult:
    """Compare normalised CRM rows, Helcim customers and the base; see the module docstring.

    ``fields`` are the synced fields this CRM export carries (a column the
    export does not have is never compared, so it is never cleared in Helcim).
    ``known_crm_ids`` are every crm_id of the export, rejected rows included,
    so a rejected row's Helcim customer is not mistaken for an orphan.
    ``pairing``: :func:`pair_customers` of these same rows (in this order),
    when the caller needed it first; by default the diff pairs them itself.
    ``rekeyed``: the CRM's key changed tonight (a person allowed it), so every
    linked customer may come back under a new key: they are proposed on their
    names alone too (:func:`crmsync.sync.pairing.propose_links`).
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown conflict policy {policy!r}: use {', '.join(POLICIES)}")
    with ThreadPoolExecutor(max_workers=1) as side:  # where each CRM row's base is, meanwhile
        base_of_crm = side.submit(positions, base["crm_id"], crm["crm_id"])
        if pairing is None:
            pairing = pair_customers(crm, helcim, links, known_crm_ids)
        base_by_crm = base_of_crm.result()
    pairs = pairing.pairs
    crm_pos = pairs["crm_pos"].to_numpy(dtype=np.int64)
    at = _Positions(
        crm=crm_pos,
        helcim=pairs["helcim_pos"].to_numpy(dtype=np.int64),
        base=base_by_crm[crm_pos] if len(crm_pos) else np.zeros(0, dtype=np.int64),
    )
    rows_equal = _whole_rows(crm, helcim, base, at, fields)
    ident = pd.DataFrame(
        {
            "crm_id": pairs["crm_id"].reset_index(drop=True),
            "helcim_id": pairs["helcim_id"].reset_index(drop=True),
            "customer_code": helcim["customer_code"].take(at.helcim).reset_index(drop=True),
        }
    )
    slow = np.flatnonzero(~rows_equal[0])
    differing = _differing(crm, helcim, base, ident, at, slow, fields)
    status, known = _statuses(differing, fields)
    resolution = resolve(status, policy)
    buckets = _buckets(ident, slow, status, pairing.helcim_only)
    agreed, targets = _agreed_and_targets(
        crm, ident, at, rows_equal, differing, (status, resolution, known), fields
    )
    orphans = helcim[helcim["helcim_id"].isin(set(pairing.orphaned["helcim_id"]))].merge(
        pairing.orphaned[["helcim_id", "crm_id"]].rename(columns={"crm_id": "replaces"}), on="helcim_id"
    )
    proposals = propose_links(pairing.crm_only, pairing.helcim_only, rejected_links, orphans, rekeyed=rekeyed)
    return _result(pairing, buckets, proposals, _changes(differing, status, resolution, known, fields),
                   agreed, targets, policy, fields)  # fmt: skip


def _result(
    pairing: Pairing,
    buckets: dict[str, pd.DataFrame],
    proposals: pd.DataFrame,
    changes: pd.DataFrame,
    agreed: pd.DataFrame,
    targets: pd.DataFrame,
    policy: Policy,
    fields: tuple[str, ...],
) -> DiffResult:
    """The result buckets: unpaired CRM rows a proposal holds back wait for a link decision."""
    crm_only = pairing.crm_only
    waiting = crm_only["crm_id"].isin(set(proposals["crm_id"]))
    awaiting = crm_only[waiting][["crm_id"]].assign(
        reason="may be an existing Helcim customer under another code: see link_proposals.csv"
    )
    return DiffResult(
        creates=crm_only[~waiting].reset_index(drop=True),
        updates=buckets["updates"],
        exports=buckets["exports"].reset_index(drop=True),
        conflicts=buckets["conflicts"],
        unchanged=buckets["unchanged"],
        awaiting_link=awaiting.reset_index(drop=True),
        missing_in_helcim=pairing.missing_in_helcim,
        orphaned=pairing.orphaned,
        changes=changes,
        agreed=agreed,
        targets=targets,
        link_proposals=proposals,
        helcim_only=pairing.helcim_only.reset_index(drop=True),
        pairs=pairing.pairs.loc[:, ["crm_id", "helcim_id", "how"]].reset_index(drop=True),
        unexamined_pairs=pairing.unexamined,
        policy=policy,
        fields=fields,
    )
