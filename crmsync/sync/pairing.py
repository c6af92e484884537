"""Who is whom: pairing CRM rows with Helcim customers, and proposing links for the rest.   [pure]

A CRM row and a Helcim customer belong together through the state store's
links, else when the Helcim ``customerCode`` equals the ``crm_id`` (the oldest
customer holding a code wins it; a later one sharing it stays Helcim-only, and
the morning report names them all as ``duplicate_customer``). Unpaired CRM rows
that look like a Helcim-only customer (same e-mail, phone, or name and postal
code), or like a linked customer whose CRM row left the export (the same, or,
where an e-mail key changed, the name alone), get a link *proposal* for a
person to decide.

The pairing is computed once, by :func:`pair_customers`, and carried in the
diff's result: the plan, the CRM import files and the reconciliation all use
that one answer. The small Arrow helpers here are shared with the diff.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crmsync.crm.keys import EMAIL_CODE_PREFIX
from crmsync.text import arrow_strings

__all__ = [
    "PAIR_COLUMNS",
    "PROPOSAL_COLUMNS",
    "Pairing",
    "importable",
    "pair_customers",
    "propose_links",
    "shared_code",
    "with_links",
]

PAIR_COLUMNS = ("crm_id", "helcim_id", "how", "crm_pos", "helcim_pos")
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
    "replaces",
)


@dataclass(frozen=True)
class Pairing:
    """The pairing of one CRM export with one Helcim snapshot."""

    pairs: pd.DataFrame  # PAIR_COLUMNS: how is "link" or "code"; *_pos are row positions in each frame
    crm_only: pd.DataFrame  # CRM rows with no Helcim customer
    helcim_only: pd.DataFrame  # Helcim customers with no CRM row
    missing_in_helcim: pd.DataFrame  # crm_id, helcim_id: linked, but Helcim no longer has the customer
    orphaned: pd.DataFrame  # crm_id, helcim_id, customer_code: linked, but the CRM row left the export
    unexamined: pd.DataFrame  # crm_id, helcim_id: rows of the export the diff does not compare (rejected)


def key_of(values: np.ndarray) -> pa.Array:
    """:func:`_key` of an object array (None / NaN are missing)."""
    array = pa.array(values, type=pa.large_string(), from_pandas=True)
    return pc.utf8_lower(pc.fill_null(array, ""))


def as_bool(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def isin(values: pd.Series, pool: pd.Series) -> np.ndarray:
    """``values.isin(pool)`` as a numpy mask, without pandas' per-value Python loop over Arrow strings."""
    if len(pool) == 0:
        return np.zeros(len(values), dtype=bool)
    if pd.api.types.is_integer_dtype(values.dtype):
        return np.isin(values.to_numpy(dtype="int64"), pool.to_numpy(dtype="int64"))
    return as_bool(pc.is_in(arrow_strings(values), value_set=pc.unique(arrow_strings(pool))))


def positions(keys: pd.Series, wanted: pd.Series) -> np.ndarray:
    """For each wanted key, its position in ``keys`` (unique), -1 when absent (Arrow's hash join)."""
    if len(keys) == 0 or len(wanted) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    if pd.api.types.is_integer_dtype(keys.dtype):
        found = pc.index_in(
            pa.array(wanted.to_numpy(dtype="int64")), value_set=pa.array(keys.to_numpy(dtype="int64"))
        )
    else:
        found = pc.index_in(arrow_strings(wanted), value_set=arrow_strings(keys))
    return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


@dataclass(frozen=True)
class _Links:
    """Where each link's two sides are (-1: absent)."""

    links: pd.DataFrame  # crm_id, helcim_id
    crm_pos: np.ndarray
    helcim_pos: np.ndarray

    @property
    def present(self) -> np.ndarray:  # the linked Helcim customer is in the snapshot
        return self.helcim_pos >= 0

    @property
    def in_export(self) -> np.ndarray:  # the linked CRM row is in this frame
        return self.crm_pos >= 0


def _by_link(crm_ids: pd.Series, helcim_ids: np.ndarray, links: pd.DataFrame) -> _Links:
    links = links.loc[:, ["crm_id", "helcim_id"]].reset_index(drop=True)
    none = np.zeros(0, dtype=np.int64)
    helcim_pos = (
        pd.Index(helcim_ids).get_indexer(links["helcim_id"].to_numpy(dtype="int64")) if len(links) else none
    )
    return _Links(links, positions(crm_ids, links["crm_id"]), helcim_pos)


def _by_code(
    crm_ids: pd.Series, helcim: pd.DataFrame, crm_free: np.ndarray, helcim_free: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(CRM positions, Helcim positions) of free CRM rows whose id is a free Helcim customer's code.

    The oldest Helcim customer holding a code wins it; later duplicates stay unpaired.
    """
    helcim_ids = helcim["helcim_id"].to_numpy(dtype="int64")
    free_helcim = np.flatnonzero(helcim_free)
    free_ids = helcim_ids[free_helcim]
    if len(free_ids) > 1 and not bool(np.all(free_ids[1:] >= free_ids[:-1])):
        free_helcim = free_helcim[np.argsort(free_ids, kind="stable")]
    free_codes = helcim["customer_code"].take(free_helcim)
    codes_arrow = arrow_strings(free_codes)
    if pc.count_distinct(codes_arrow, mode="all").as_py() == len(codes_arrow):  # the usual case
        first = np.ones(len(free_codes), dtype=bool)
    else:
        first = ~free_codes.duplicated().to_numpy()
    free_crm = np.flatnonzero(crm_free)
    code_position = positions(free_codes[first], crm_ids.take(free_crm))
    found = code_position >= 0
    return free_crm[found], free_helcim[first][code_position[found]]


def _pairs_frame(
    crm_ids: pd.Series, helcim_ids: np.ndarray, by_link: _Links, code: tuple[np.ndarray, np.ndarray]
) -> pd.DataFrame:
    linked = by_link.present & by_link.in_export
    code_crm_pos, code_helcim_pos = code
    pairs = pd.concat(
        [
            pd.DataFrame(
                {
                    "crm_id": by_link.links.loc[linked, "crm_id"].astype("str").reset_index(drop=True),
                    "helcim_id": by_link.links.loc[linked, "helcim_id"].to_numpy(dtype="int64"),
                    "how": "link",
                    "crm_pos": by_link.crm_pos[linked],
                    "helcim_pos": by_link.helcim_pos[linked].astype("int64"),
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
    return pairs


def _pair(
    crm_ids: pd.Series, helcim: pd.DataFrame, links: pd.DataFrame, helcim_taken: np.ndarray
) -> tuple[pd.DataFrame, _Links, np.ndarray, np.ndarray]:
    """(pairs, the links, CRM rows paired, Helcim customers paired) of ``crm_ids`` against ``helcim``."""
    helcim_ids = helcim["helcim_id"].to_numpy(dtype="int64")
    by_link = _by_link(crm_ids, helcim_ids, links)
    helcim_paired = helcim_taken.copy()
    helcim_paired[by_link.helcim_pos[by_link.present]] = True
    crm_paired = np.zeros(len(crm_ids), dtype=bool)
    crm_paired[by_link.crm_pos[by_link.in_export]] = True
    code = _by_code(crm_ids, helcim, ~crm_paired, ~helcim_paired)
    crm_paired[code[0]] = True
    helcim_paired[code[1]] = True
    return _pairs_frame(crm_ids, helcim_ids, by_link, code), by_link, crm_paired, helcim_paired


def pair_customers(
    crm: pd.DataFrame, helcim: pd.DataFrame, links: pd.DataFrame, known_crm_ids: Collection[str] | None
) -> Pairing:
    """Who is whom: through the state store's links, else the oldest Helcim customer holding the crm_id.

    Each string key column is hashed once; the rest is position arithmetic.
    ``known_crm_ids`` are every crm_id of the export (rejected rows included):
    a rejected row's customer is then no orphan, and is paired too, for the
    record (``unexamined``), though the diff never compares it.
    """
    crm_ids = crm["crm_id"]
    pairs, by_link, crm_paired, helcim_paired = _pair(
        crm_ids, helcim, links, np.zeros(len(helcim), dtype=bool)
    )
    missing = by_link.links[~by_link.present & by_link.in_export]
    linked_present = by_link.links[by_link.present]
    unexamined = pd.DataFrame({"crm_id": pd.Series(dtype="str"), "helcim_id": pd.Series(dtype="int64")})
    if known_crm_ids is None:
        orphan_links = by_link.links[by_link.present & ~by_link.in_export]
    else:
        known = pd.concat([pd.Series(list(known_crm_ids), dtype="str"), crm_ids.astype("str")])
        orphan_links = linked_present[~isin(linked_present["crm_id"], known)]
        others = pd.Series(sorted(set(known_crm_ids) - set(crm_ids.astype("str")) - {""}), dtype="str")
        if len(others):
            rest = _pair(others, helcim, links, helcim_paired)[0]
            unexamined = rest.loc[:, ["crm_id", "helcim_id"]]
    orphaned = orphan_links.merge(helcim[["helcim_id", "customer_code"]], on="helcim_id", how="left")
    return Pairing(
        pairs,
        crm[~crm_paired],
        helcim[~helcim_paired],
        missing.reset_index(drop=True),
        orphaned.reset_index(drop=True),
        unexamined.reset_index(drop=True),
    )


def with_links(pairs: pd.DataFrame, links: pd.DataFrame, crm_ids: pd.Series) -> pd.DataFrame:
    """crm_id, helcim_id: ``pairs`` plus the links made since (customers a run created) for these CRM ids."""
    known = set(crm_ids.astype("str"))
    new = links[
        links["crm_id"].isin(known)
        & ~links["crm_id"].isin(set(pairs["crm_id"]))
        & ~links["helcim_id"].isin(set(pairs["helcim_id"]))
    ]
    return pd.concat(
        [pairs.loc[:, ["crm_id", "helcim_id"]], new.loc[:, ["crm_id", "helcim_id"]]], ignore_index=True
    )


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
    name = _names(frame)
    postal = frame["billing_postal_code"].astype("str").str.lower()
    keep = (name != "") & (postal != "")
    parts.append(
        pd.DataFrame(
            {"id": frame.loc[keep, id_column], "kind": "name+postal", "key": name[keep] + "|" + postal[keep]}
        )
    )
    return pd.concat(parts, ignore_index=True).drop_duplicates()


#: At most this many linked customers are proposed for one CRM row on its name alone (the oldest first).
NAME_CANDIDATES = 5


def _name(frame: pd.DataFrame) -> pd.Series:
    """The contact's name, else the business name."""
    return frame["contact_name"].where(frame["contact_name"] != "", frame["business_name"])


def _names(frame: pd.DataFrame) -> pd.Series:
    """:func:`_name`, lowercased: the key names are matched on."""
    return _name(frame).astype("str").str.lower()


def _by_name_alone(
    crm_only: pd.DataFrame, orphans: pd.DataFrame | None, hits: pd.DataFrame, *, rekeyed: bool = False
) -> pd.DataFrame:
    """(crm_id, helcim_id, kind "name") of unpaired rows and orphans sharing only the contact's name,
    where an e-mail key is involved (the row's or the orphan's old one).

    A customer keyed by the e-mail whose e-mail changed comes back as a new row; when Helcim holds
    neither the e-mail nor a phone or postal code for them (their address was omitted), the name is
    all that is left to tell it is them. Such a proposal is always ambiguous: only a person decides.
    Rows keyed by a CRM id are not matched so (a new customer may share a name with one who left),
    except on the night the key itself changed (``rekeyed``: allowed by a person), when every
    customer comes back under a new key.
    """
    none = pd.DataFrame({"crm_id": pd.Series(dtype="str"), "helcim_id": pd.Series(dtype="int64"), "kind": []})
    if orphans is None or orphans.empty or crm_only.empty:
        return none
    left = pd.DataFrame({"crm_id": crm_only["crm_id"].astype("str"), "key": _names(crm_only)})
    right = pd.DataFrame(
        {
            "helcim_id": orphans["helcim_id"],
            "replaces": orphans["replaces"].astype("str"),
            "key": _names(orphans),
        }
    ).sort_values("helcim_id", kind="stable")
    right = right[(right["key"] != "") & (right.groupby("key").cumcount() < NAME_CANDIDATES)]
    found = left[left["key"] != ""].merge(right, on="key")
    keyed = found["crm_id"].str.startswith(EMAIL_CODE_PREFIX) | found["replaces"].str.startswith(
        EMAIL_CODE_PREFIX
    )
    keyed |= rekeyed
    found = found[keyed].loc[:, ["crm_id", "helcim_id"]]
    if found.empty:
        return none
    seen = hits.loc[:, ["crm_id", "helcim_id"]].drop_duplicates().assign(_seen=True)
    found = found.merge(seen, on=["crm_id", "helcim_id"], how="left")
    return found[found["_seen"].isna()].drop(columns="_seen").assign(kind="name")


def propose_links(
    crm_only: pd.DataFrame,
    helcim_only: pd.DataFrame,
    rejected: pd.DataFrame | None = None,
    orphans: pd.DataFrame | None = None,
    *,
    rekeyed: bool = False,
) -> pd.DataFrame:
    """Candidate matches between unpaired CRM rows and Helcim-only customers.

    A pair is proposed when they share an e-mail, a phone, or a name with a
    postal code — or, for an orphan where an e-mail key is involved, the name
    alone (:func:`_by_name_alone`). It is ``ambiguous`` when either side has
    more than one candidate, or only the name matched; ambiguous pairs are
    listed too, but only a person can choose.
    Pairs a person rejected (``rejected``: crm_id, helcim_id) are left out.

    ``orphans`` are linked Helcim customers whose CRM record left the export
    (their fields, and ``replaces``: the crm_id they are linked to). They are
    candidates too: a CRM record whose key changed (a new e-mail, where the
    e-mail is the key) comes back as a new row, and must be proposed as that
    customer, never created a second time. Accepting such a proposal moves the link.
    """
    candidates = helcim_only.assign(replaces="")
    if orphans is not None and not orphans.empty:
        candidates = pd.concat([candidates, orphans], ignore_index=True)
    helcim_only = candidates
    if crm_only.empty or helcim_only.empty:
        return pd.DataFrame(columns=list(PROPOSAL_COLUMNS))
    left = _match_keys(crm_only, "crm_id").rename(columns={"id": "crm_id"})
    right = _match_keys(helcim_only, "helcim_id").rename(columns={"id": "helcim_id"})
    hits = left.merge(right, on=["kind", "key"])
    hits = pd.concat([hits, _by_name_alone(crm_only, orphans, hits, rekeyed=rekeyed)], ignore_index=True)
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
    pairs["ambiguous"] = (per_crm > 1) | (per_helcim > 1) | (pairs["matched_on"] == "name")
    crm_side = crm_only.assign(crm_name=_name(crm_only))[
        ["crm_id", "crm_name", "billing_email", "billing_postal_code"]
    ]
    crm_side = crm_side.rename(
        columns={"billing_email": "crm_email", "billing_postal_code": "crm_postal_code"}
    )
    helcim_side = helcim_only.assign(helcim_name=_name(helcim_only))[
        ["helcim_id", "customer_code", "helcim_name", "billing_email", "billing_postal_code", "replaces"]
    ].rename(
        columns={
            "customer_code": "helcim_code",
            "billing_email": "helcim_email",
            "billing_postal_code": "helcim_postal_code",
        }
    )
    out = pairs.merge(crm_side, on="crm_id").merge(helcim_side, on="helcim_id")
    return out.loc[:, list(PROPOSAL_COLUMNS)].sort_values(["crm_id", "helcim_id"]).reset_index(drop=True)


def shared_code(codes: pd.Series) -> pd.Series:
    """True for every customer whose (non-empty) customerCode another Helcim customer holds too."""
    text = codes.astype("str")
    return text.duplicated(keep=False) & (text != "")


def importable(
    helcim_only: pd.DataFrame, all_codes: pd.Series, known_crm_ids: Collection[str]
) -> pd.DataFrame:
    """The Helcim-only customers the CRM may import as new records.

    Never one whose code another Helcim customer holds (a duplicate, merged in
    Helcim first), nor one under the code of a CRM record the diff already
    knows: imported, it would be a second record for one id.
    """
    codes = helcim_only["customer_code"].astype("str").reset_index(drop=True)
    every = all_codes.astype("str")
    counts = every[every != ""].value_counts()
    keep = (codes.map(counts).fillna(0) <= 1) & ~codes.isin(set(known_crm_ids))
    return helcim_only.reset_index(drop=True)[keep.to_numpy()].reset_index(drop=True)
