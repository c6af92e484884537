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

Pairing: a CRM row and a Helcim customer belong together through the state
store's links, else when the Helcim ``customerCode`` equals the ``crm_id``.
Unpaired CRM rows are **creates**, unless a Helcim-only customer looks like
the same person (same e-mail, phone, or name and postal code): then a link is
*proposed* and the row waits for a person's decision (``awaiting_link``), so
it is never created twice. Unpaired Helcim customers are **exports** (new
customers for the CRM).

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
PROPOSAL_COLUMNS = (
    "crm_id",
    "helcim_id",
    "helcim_code",
    "matched_on",
    "ambiguous",
    "crm_name",
    "helcim_name",
    "crm_email",
    "helcim_email",
    "crm_postal_code",
    "helcim_postal_code",
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


def _arrow(values: pd.Series) -> pa.Array:
    """A column as an Arrow large_string array (zero-copy for pandas' Arrow-backed strings); nulls kept."""
    if not isinstance(values.dtype, pd.StringDtype):
        values = values.astype(object).where(values.notna(), None)
    array = pa.array(values, type=pa.large_string(), from_pandas=True)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _key(values: pd.Series) -> pa.Array:
    """The comparison form: already normalised, compared without regard to case; missing is ""."""
    return pc.utf8_lower(pc.fill_null(_arrow(values), ""))


def _key_of(values: np.ndarray) -> pa.Array:
    """:func:`_key` of an object array (None / NaN are missing)."""
    array = pa.array(values, type=pa.large_string(), from_pandas=True)
    return pc.utf8_lower(pc.fill_null(array, ""))


def _bool(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _isin(values: pd.Series, pool: pd.Series) -> np.ndarray:
    """``values.isin(pool)`` as a numpy mask, without pandas' per-value Python loop over Arrow strings."""
    if len(pool) == 0:
        return np.zeros(len(values), dtype=bool)
    if pd.api.types.is_integer_dtype(values.dtype):
        return np.isin(values.to_numpy(dtype="int64"), pool.to_numpy(dtype="int64"))
    return _bool(pc.is_in(_arrow(values), value_set=pc.unique(_arrow(pool))))


def _positions(keys: pd.Series, wanted: pd.Series) -> np.ndarray:
    """For each wanted key, its position in ``keys`` (unique), -1 when absent (Arrow's hash join)."""
    if len(keys) == 0 or len(wanted) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    if pd.api.types.is_integer_dtype(keys.dtype):
        found = pc.index_in(
            pa.array(wanted.to_numpy(dtype="int64")), value_set=pa.array(keys.to_numpy(dtype="int64"))
        )
    else:
        found = pc.index_in(_arrow(wanted), value_set=_arrow(keys))
    return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _frame(values: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(values)


def pair_customers(
    crm: pd.DataFrame, helcim: pd.DataFrame, links: pd.DataFrame, known_crm_ids: Collection[str] | None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(pairs, crm_only, helcim_only, missing_in_helcim, orphaned).

    ``pairs`` holds crm_id, helcim_id, how ("link" | "code") and the row
    positions of each side (crm_pos, helcim_pos). Each string key column is
    hashed once; the rest is position arithmetic.
    """
    crm_ids = crm["crm_id"]
    helcim_ids = helcim["helcim_id"].to_numpy(dtype="int64")
    links = links.loc[:, ["crm_id", "helcim_id"]].reset_index(drop=True)
    none = np.zeros(0, dtype=np.int64)
    link_helcim_pos = (
        pd.Index(helcim_ids).get_indexer(links["helcim_id"].to_numpy(dtype="int64")) if len(links) else none
    )
    link_crm_pos = _positions(crm_ids, links["crm_id"])
    present, in_export = link_helcim_pos >= 0, link_crm_pos >= 0
    linked_present = links[present]
    missing = links[~present & in_export]
    by_link = present & in_export
    if known_crm_ids is None:
        orphan_links = links[present & ~in_export]
    else:
        known = pd.concat([pd.Series(list(known_crm_ids), dtype="str"), crm_ids.astype("str")])
        orphan_links = linked_present[~_isin(linked_present["crm_id"], known)]

    helcim_linked = np.zeros(len(helcim), dtype=bool)
    helcim_linked[link_helcim_pos[present]] = True
    crm_linked = np.zeros(len(crm), dtype=bool)
    crm_linked[link_crm_pos[in_export]] = True
    # the oldest Helcim customer holding a code wins it; later duplicates stay Helcim-only
    free_helcim = np.flatnonzero(~helcim_linked)
    free_ids = helcim_ids[free_helcim]
    if len(free_ids) > 1 and not bool(np.all(free_ids[1:] >= free_ids[:-1])):
        free_helcim = free_helcim[np.argsort(free_ids, kind="stable")]
    free_codes = helcim["customer_code"].take(free_helcim)
    codes_arrow = _arrow(free_codes)
    if pc.count_distinct(codes_arrow, mode="all").as_py() == len(codes_arrow):  # the usual case
        first = np.ones(len(free_codes), dtype=bool)
    else:
        first = ~free_codes.duplicated().to_numpy()
    free_crm = np.flatnonzero(~crm_linked)
    code_position = _positions(free_codes[first], crm_ids.take(free_crm))
    found = code_position >= 0
    code_crm_pos, code_helcim_pos = free_crm[found], free_helcim[first][code_position[found]]
    pairs = pd.concat(
        [
            pd.DataFrame(
                {
                    "crm_id": links.loc[by_link, "crm_id"].astype("str").reset_index(drop=True),
                    "helcim_id": links.loc[by_link, "helcim_id"].to_numpy(dtype="int64"),
                    "how": "link",
                    "crm_pos": link_crm_pos[by_link],
                    "helcim_pos": link_helcim_pos[by_link].astype("int64"),
                }
            ),
            pd.DataFrame(
                {
                    "crm_id": crm_ids.take(code_crm_pos).reset_index(drop=True),
                    "helcim_id": helcim_ids[code_helcim_pos],
                    "how": "code",
                    "crm_pos": code_crm_pos,
                    "helcim_pos": code_helcim_pos,
                }
            ),
        ],
        ignore_index=True,
    )
    pairs["helcim_id"] = pairs["helcim_id"].astype("int64")
    paired_crm = crm_linked.copy()
    paired_crm[code_crm_pos] = True
    paired_helcim = helcim_linked.copy()
    paired_helcim[code_helcim_pos] = True
    crm_only = crm[~paired_crm]
    helcim_only = helcim[~paired_helcim]
    orphaned = orphan_links.merge(helcim[["helcim_id", "customer_code"]], on="helcim_id", how="left")
    return pairs, crm_only, helcim_only, missing.reset_index(drop=True), orphaned.reset_index(drop=True)


def _match_keys(frame: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """Long (id, kind, key) frame of the identifying values used to propose links."""
    parts = []
    for kind, columns in (
        ("email", ("billing_email", "shipping_email")),
        ("phone", ("cell_phone", "billing_phone", "shipping_phone")),
    ):
        for column in columns:
            values = frame[column].astype("str").str.lower()
            keep = values.str.len() >= (10 if kind == "phone" else 3)
            parts.append(pd.DataFrame({"id": frame.loc[keep, id_column], "kind": kind, "key": values[keep]}))
    name = (
        frame["contact_name"]
        .where(frame["contact_name"] != "", frame["business_name"])
        .astype("str")
        .str.lower()
    )
    postal = frame["billing_postal_code"].astype("str").str.lower()
    keep = (name != "") & (postal != "")
    parts.append(
        pd.DataFrame(
            {"id": frame.loc[keep, id_column], "kind": "name+postal", "key": name[keep] + "|" + postal[keep]}
        )
    )
    return pd.concat(parts, ignore_index=True).drop_duplicates()


def propose_links(
    crm_only: pd.DataFrame, helcim_only: pd.DataFrame, rejected: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Candidate matches between unpaired CRM rows and Helcim-only customers.

    A pair is proposed when they share an e-mail, a phone, or a name with a
    postal code. It is ``ambiguous`` when either side has more than one
    candidate; ambiguous pairs are listed too, but only a person can choose.
    Pairs a person rejected (``rejected``: crm_id, helcim_id) are left out.
    """
    if crm_only.empty or helcim_only.empty:
        return pd.DataFrame(columns=list(PROPOSAL_COLUMNS))
    left = _match_keys(crm_only, "crm_id").rename(columns={"id": "crm_id"})
    right = _match_keys(helcim_only, "helcim_id").rename(columns={"id": "helcim_id"})
    hits = left.merge(right, on=["kind", "key"])
    if rejected is not None and not rejected.empty:
        marked = hits.merge(
            rejected[["crm_id", "helcim_id"]].assign(_no=True), on=["crm_id", "helcim_id"], how="left"
        )
        hits = marked[marked["_no"].isna()].drop(columns="_no")
    if hits.empty:
        return pd.DataFrame(columns=list(PROPOSAL_COLUMNS))
    grouped = hits.groupby(["crm_id", "helcim_id"], sort=True)["kind"].agg(lambda k: "+".join(sorted(set(k))))
    pairs = grouped.rename("matched_on").reset_index()
    per_crm = pairs.groupby("crm_id")["helcim_id"].transform("size")
    per_helcim = pairs.groupby("helcim_id")["crm_id"].transform("size")
    pairs["ambiguous"] = (per_crm > 1) | (per_helcim > 1)

    def name(frame: pd.DataFrame) -> pd.Series:
        return frame["contact_name"].where(frame["contact_name"] != "", frame["business_name"])

    crm_side = crm_only.assign(crm_name=name(crm_only))[
        ["crm_id", "crm_name", "billing_email", "billing_postal_code"]
    ]
    crm_side = crm_side.rename(
        columns={"billing_email": "crm_email", "billing_postal_code": "crm_postal_code"}
    )
    helcim_side = helcim_only.assign(helcim_name=name(helcim_only))[
        ["helcim_id", "customer_code", "helcim_name", "billing_email", "billing_postal_code"]
    ].rename(
        columns={
            "customer_code": "helcim_code",
            "billing_email": "helcim_email",
            "billing_postal_code": "helcim_postal_code",
        }
    )
    out = pairs.merge(crm_side, on="crm_id").merge(helcim_side, on="helcim_id")
    return out.loc[:, list(PROPOSAL_COLUMNS)].sort_values(["crm_id", "helcim_id"]).reset_index(drop=True)


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
) -> DiffResult:
    """Compare normalised CRM rows, Helcim customers and the base; see the module docstring.

    ``fields`` are the synced fields this CRM export carries (a column the
    export does not have is never compared, so it is never cleared in Helcim).
    ``known_crm_ids`` are every crm_id of the export, rejected rows included,
    so a rejected row's Helcim customer is not mistaken for an orphan.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown conflict policy {policy!r}: use {', '.join(POLICIES)}")
    with ThreadPoolExecutor(max_workers=1) as side:  # where each CRM row's base is, meanwhile
        base_of_crm = side.submit(_positions, base["crm_id"], crm["crm_id"])
        pairs, crm_only, helcim_only, missing, orphaned = pair_customers(crm, helcim, links, known_crm_ids)
        base_by_crm = base_of_crm.result()

    # -- rows equal as a whole (almost all, most nights) skip the field-by-field work ----
    crm_pos = pairs["crm_pos"].to_numpy(dtype=np.int64)
    helcim_pos = pairs["helcim_pos"].to_numpy(dtype=np.int64)
    base_pos = base_by_crm[crm_pos] if len(crm_pos) else np.zeros(0, dtype=np.int64)
    crm_at, helcim_at = pa.array(crm_pos, type=pa.int64()), pa.array(helcim_pos, type=pa.int64())
    base_at = pa.array(base_pos, type=pa.int64(), mask=base_pos < 0)
    whole_same = np.ones(len(pairs), dtype=bool)
    base_agrees = base_pos >= 0  # and, below, every base field known and equal to the CRM's

    def compare(name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """One column: Arrow gathers and compares (releasing the GIL), little memory."""
        c = pc.take(pc.fill_null(_arrow(crm[name]), ""), crm_at)
        h = pc.take(pc.fill_null(_arrow(helcim[name]), ""), helcim_at)
        b = _bool(pc.equal(c, pc.take(_arrow(base[name]), base_at))) if len(base) else None
        return _bool(pc.equal(c, h)), b

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for same_here, base_here in pool.map(compare, fields):
            whole_same &= same_here
            if base_here is not None:
                base_agrees &= base_here
    ident = pd.DataFrame(
        {
            "crm_id": pairs["crm_id"].reset_index(drop=True),
            "helcim_id": pairs["helcim_id"].reset_index(drop=True),
            "customer_code": helcim["customer_code"].take(helcim_pos).reset_index(drop=True),
        }
    )
    slow = np.flatnonzero(~whole_same)

    # -- field by field over the rows that differ somewhere (plain object arrays) -----
    slow_ident = ident.iloc[slow]
    m: dict[str, np.ndarray] = {
        "crm_id": slow_ident["crm_id"].to_numpy(dtype=object),
        "helcim_id": slow_ident["helcim_id"].to_numpy(),
        "customer_code": slow_ident["customer_code"].to_numpy(dtype=object),
    }
    for name in fields:
        m[f"{name}_c"] = crm[name].take(crm_pos[slow]).to_numpy(dtype=object)
    for name in SYNCED_FIELDS:
        m[f"{name}_h"] = helcim[name].take(helcim_pos[slow]).to_numpy(dtype=object)
    slow_base = base_pos[slow]
    known_row = slow_base >= 0
    for name in fields:
        values = np.full(len(slow), None, dtype=object)
        if len(base):
            values[known_row] = base[name].take(slow_base[known_row]).to_numpy(dtype=object)
        values[pd.isna(values)] = None
        m[f"{name}_b"] = values
    n = len(slow)
    status = np.zeros((n, len(fields)), dtype=np.int8)
    known = np.zeros((n, len(fields)), dtype=bool)  # a base value exists for the cell
    for j, name in enumerate(fields):
        c, h, b = _key_of(m[f"{name}_c"]), _key_of(m[f"{name}_h"]), _key_of(m[f"{name}_b"])
        has_base = ~pd.isna(m[f"{name}_b"])
        same = _bool(pc.equal(c, h))
        crm_kept = _bool(pc.equal(c, b))
        helcim_kept = _bool(pc.equal(h, b))
        crm_empty = _bool(pc.equal(c, ""))
        column = np.full(n, CONFLICT, dtype=np.int8)
        column[has_base & helcim_kept] = PUSH
        column[has_base & crm_kept] = EXPORT
        column[~has_base] = PUSH
        column[~has_base & crm_empty] = EXPORT
        column[same] = SAME
        status[:, j] = column
        known[:, j] = has_base

    resolution = status.copy()
    conflict_to = {"crm-wins": PUSH, "helcim-wins": EXPORT, "manual": SAME}[policy]
    resolution[status == CONFLICT] = conflict_to

    # -- customer buckets ----------------------------------------------------------
    any_conflict = np.zeros(len(ident), dtype=bool)
    any_push = np.zeros(len(ident), dtype=bool)
    any_export = np.zeros(len(ident), dtype=bool)
    any_conflict[slow] = (status == CONFLICT).any(axis=1)
    any_push[slow] = (status == PUSH).any(axis=1)
    any_export[slow] = (status == EXPORT).any(axis=1)
    conflicts = ident[any_conflict].reset_index(drop=True)
    updates = ident[~any_conflict & any_push].reset_index(drop=True)
    changed_exports = ident[~any_conflict & ~any_push & any_export].assign(kind="changed")
    unchanged = ident[~(any_conflict | any_push | any_export)].reset_index(drop=True)
    new_exports = pd.DataFrame(
        {
            "crm_id": "",
            "helcim_id": helcim_only["helcim_id"].to_numpy(),
            "customer_code": helcim_only["customer_code"].to_numpy(),
            "kind": "new",
        }
    )
    exports = pd.concat([changed_exports, new_exports], ignore_index=True)

    # -- long table of differing cells ---------------------------------------------
    rows, cols = np.nonzero(status != SAME)
    pieces = []
    slow_ids, slow_helcim_ids, slow_codes = m["crm_id"], m["helcim_id"], m["customer_code"]
    for j, name in enumerate(fields):
        picked = rows[cols == j]
        if not len(picked):
            continue
        pieces.append(
            pd.DataFrame(
                {
                    "crm_id": slow_ids[picked],
                    "helcim_id": slow_helcim_ids[picked],
                    "customer_code": slow_codes[picked],
                    "field": name,
                    "base": np.where(known[picked, j], m[f"{name}_b"][picked], ""),
                    "crm": m[f"{name}_c"][picked],
                    "helcim": m[f"{name}_h"][picked],
                    "status": STATUS_NAMES[status[picked, j]],
                    "resolution": RESOLUTION_NAMES[resolution[picked, j]],
                    "first_sync": ~known[picked, j],
                }
            )
        )
    changes = (
        pd.concat(pieces, ignore_index=True)
        .sort_values(["crm_id", "field"], kind="stable")
        .reset_index(drop=True)
        if pieces
        else pd.DataFrame(columns=list(CHANGE_COLUMNS))
    )

    # -- what to store as base now, and what Helcim should hold --------------------
    agreed: dict[str, object] = {"crm_id": m["crm_id"]}
    # Every synced field: one the export does not carry keeps Helcim's value in an update body.
    targets: dict[str, object] = {"crm_id": m["crm_id"]}
    targets |= {name: m[f"{name}_h"] for name in SYNCED_FIELDS}
    moves = np.zeros(n, dtype=bool)
    for j, name in enumerate(fields):
        crm_values = m[f"{name}_c"]
        helcim_values = m[f"{name}_h"]
        base_values = m[f"{name}_b"].copy()
        base_values[~known[:, j]] = None  # no agreed value yet
        same = status[:, j] == SAME
        agreed[name] = np.where(same, crm_values, base_values)  # None: still unknown
        targets[name] = np.where(resolution[:, j] == PUSH, crm_values, helcim_values)
        moves |= same & (~known[:, j] | (crm_values != base_values))
    # rows equal as a whole whose base is not yet exactly that: the base moves to the CRM's values
    moving = whole_same & ~base_agrees
    whole = pd.DataFrame({"crm_id": ident["crm_id"][moving].reset_index(drop=True)})
    for name in fields:
        whole[name] = crm[name].take(crm_pos[moving]).reset_index(drop=True)
    agreed_frame = pd.concat([whole, _frame(agreed)[moves]], ignore_index=True)
    targets_frame = _frame(targets)[(resolution == PUSH).any(axis=1)].reset_index(drop=True)

    proposals = propose_links(crm_only, helcim_only, rejected_links)
    waiting_ids = set(proposals["crm_id"])
    awaiting = crm_only[crm_only["crm_id"].isin(waiting_ids)][["crm_id"]].assign(
        reason="may be an existing Helcim customer under another code: see link_proposals.csv"
    )
    creates = crm_only[~crm_only["crm_id"].isin(waiting_ids)].reset_index(drop=True)
    return DiffResult(
        creates=creates,
        updates=updates,
        exports=exports.reset_index(drop=True),
        conflicts=conflicts,
        unchanged=unchanged,
        awaiting_link=awaiting.reset_index(drop=True),
        missing_in_helcim=missing,
        orphaned=orphaned,
        changes=changes,
        agreed=agreed_frame,
        targets=targets_frame,
        link_proposals=proposals,
        helcim_only=helcim_only.reset_index(drop=True),
        policy=policy,
        fields=fields,
    )
