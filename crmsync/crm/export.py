"""Helcim → CRM import files, in the CRM's own column names (the profile's reverse mapping).

:func:`write_crm_import` writes ``crm_import/``:

``new_customers.csv``
    Helcim-only customers, ready to import: the CRM's columns (the id column
    holds the Helcim customerCode, which links the record on the next run when
    the CRM keeps it as the record's id), then ``helcim_id`` and
    ``helcim_customer_code``.
``updates.csv``
    fields changed in Helcim that the CRM should take: ``<id column>, helcim_id,
    field, crm_value, helcim_value`` with ``field`` a CRM header.
``payment_methods.csv``
    one row per card and bank account: ``<id column>, helcim_id,
    customer_code, method, method_id, default, card_brand, card_last4,
    card_expiry, bank_last4, bank_verified, bank_ready, pad_status``.

The reverse mapping: a generic column the profile reads from a header goes
back to that header (the first one listed). A ``join`` of headers (HubSpot's
First Name + Last Name → contact_name) is split back at the last separator
(the last word to the last header); a ``split_lines`` (a multi-line street →
street1, street2) is joined back with a line break. Generic columns the CRM
has no header for (a ``coalesce`` target such as HubSpot's billing name) are
not written. Every cell goes through the formula-neutralising CSV writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crmsync.crm.profiles import Profile, load_profile
from crmsync.outputs import write_csv
from crmsync.reconcile.findings import card_brand, pad_status_of_banks
from crmsync.schemas.crm import CRM_COLUMNS
from crmsync.sync.diff import DiffResult
from crmsync.sync.snapshot import Snapshot

__all__ = ["PAYMENT_METHOD_COLUMNS", "CrmColumn", "crm_columns", "to_crm", "write_crm_import"]

PAYMENT_METHOD_COLUMNS = (
    "helcim_id",
    "customer_code",
    "method",
    "method_id",
    "default",
    "card_brand",
    "card_last4",
    "card_expiry",
    "bank_last4",
    "bank_verified",
    "bank_ready",
    "pad_status",
)


@dataclass(frozen=True)
class CrmColumn:
    """One column of the CRM's export, and how to fill it from generic columns."""

    header: str
    fields: tuple[str, ...]  # the generic columns it is made from
    kind: str  # "copy" | "name_part" (one header of a join) | "lines" (a split_lines source)
    part: int = 0
    parts: int = 1
    separator: str = " "


def crm_columns(profile: Profile) -> list[CrmColumn]:
    """The profile's reverse mapping: the CRM columns crmsync can fill, in the profile's order."""
    out: list[CrmColumn] = []
    covered: set[str] = set()
    headers: set[str] = set()
    for column, names in profile.columns.items():
        if names[0] not in headers:
            out.append(CrmColumn(names[0], (column,), "copy"))
            headers.add(names[0])
        covered.add(column)
    for transform in profile.transforms:
        if any(source in CRM_COLUMNS for source in transform.sources):
            continue  # made from generic columns the CRM already has
        if transform.kind == "join" and transform.targets[0] not in covered:
            n = len(transform.sources)
            for part, header in enumerate(transform.sources):
                if header not in headers:
                    out.append(
                        CrmColumn(header, transform.targets, "name_part", part, n, transform.separator)
                    )
                    headers.add(header)
            covered.add(transform.targets[0])
        elif transform.kind == "split_lines" and not set(transform.targets) <= covered:
            header = transform.sources[0]
            if header not in headers:
                out.append(CrmColumn(header, transform.targets, "lines"))
                headers.add(header)
            covered.update(transform.targets)
    return out


def _fill(column: CrmColumn, frame: pd.DataFrame) -> pd.Series:
    values = frame[column.fields[0]].fillna("").astype("str")
    if column.kind == "copy":
        return values
    if column.kind == "lines":
        rest = frame[column.fields[1]].fillna("").astype("str")
        return (values + np.where(rest.str.strip() != "", "\n" + rest, "")).astype("str")
    # rsplit from the right: the last word goes to the last header; a short name fills the first headers
    pieces = values.str.rsplit(column.separator, n=column.parts - 1, expand=True)
    if column.part >= pieces.shape[1]:
        return pd.Series("", index=values.index, dtype="str")
    return pieces[column.part].fillna("").astype("str")


def to_crm(frame: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Generic columns → the CRM's columns (see :func:`crm_columns`); missing generic columns are empty."""
    full = frame.reindex(columns=[*CRM_COLUMNS], fill_value="")
    return pd.DataFrame(
        {c.header: _fill(c, full).to_numpy() for c in crm_columns(profile)}, index=frame.index
    )


def _id_header(profile: Profile) -> str:
    return profile.columns["crm_id"][0] if "crm_id" in profile.columns else "crm_id"


def _crm_ids(snapshot: Snapshot, links: pd.DataFrame, result: DiffResult | None) -> pd.Series:
    """helcim_id → crm_id: the link, else the pairing the diff made, else the customer's own code."""
    ids = pd.Series(
        snapshot.customers["customer_code"].astype("str").to_numpy(),
        index=snapshot.customers["helcim_id"].astype("int64").to_numpy(),
    )
    if result is not None:
        paired = pd.concat([result.unchanged, result.updates, result.conflicts, result.exports])
        paired = paired[paired["crm_id"].astype("str") != ""]
        ids.update(
            pd.Series(paired["crm_id"].astype("str").to_numpy(), index=paired["helcim_id"].astype("int64"))
        )
    ids.update(pd.Series(links["crm_id"].astype("str").to_numpy(), index=links["helcim_id"].astype("int64")))
    return ids


def _known_crm_ids(result: DiffResult) -> set[str]:
    """Every crm_id the diff placed: paired, to create, awaiting a link, linked to a missing customer."""
    frames = (
        result.unchanged, result.updates, result.conflicts, result.exports, result.creates,
        result.awaiting_link, result.missing_in_helcim, result.orphaned,
    )  # fmt: skip
    return {str(i) for frame in frames for i in frame["crm_id"]} - {""}


def new_customers(
    result: DiffResult | None, profile: Profile, all_codes: pd.Series | None = None
) -> pd.DataFrame:
    """Helcim-only customers, in the CRM's columns; ``all_codes`` is every Helcim customer's code."""
    id_header = _id_header(profile)
    columns = [c.header for c in crm_columns(profile)]
    ordered = [id_header, "helcim_id", "helcim_customer_code", *[c for c in columns if c != id_header]]
    if result is None or result.helcim_only.empty:
        return pd.DataFrame(columns=ordered)
    # never a customer whose code another Helcim customer holds (duplicate_customer), nor one under the
    # code of a CRM record the diff already knows: imported, it would be a second record for one id
    codes = result.helcim_only["customer_code"].astype("str").reset_index(drop=True)
    every = codes if all_codes is None else all_codes.astype("str")
    counts = every[every != ""].value_counts()
    keep = (codes.map(counts).fillna(0) <= 1) & ~codes.isin(_known_crm_ids(result))
    generic = result.helcim_only.reset_index(drop=True)[keep].assign(crm_id=codes[keep])
    out = to_crm(generic, profile)
    out["helcim_id"] = generic["helcim_id"].astype("int64").to_numpy()
    out["helcim_customer_code"] = generic["customer_code"].astype("str").to_numpy()
    return out.reindex(columns=ordered).sort_values("helcim_id", kind="stable")


def updates(result: DiffResult | None, snapshot: Snapshot, profile: Profile) -> pd.DataFrame:
    """One row per CRM column whose value the CRM should take from Helcim."""
    id_header = _id_header(profile)
    columns = [id_header, "helcim_id", "field", "crm_value", "helcim_value"]
    if result is None or result.changes.empty:
        return pd.DataFrame(columns=columns)
    changes = result.changes
    exported = changes[changes["resolution"] == "export"]
    if exported.empty:
        return pd.DataFrame(columns=columns)
    ids = exported["helcim_id"].astype("int64").unique()
    helcim = (
        snapshot.customers[snapshot.customers["helcim_id"].isin(ids)]
        .set_index("helcim_id")
        .reindex(columns=[*CRM_COLUMNS], fill_value="")
    )
    crm_side = helcim.copy()
    for helcim_id, name, value in changes[changes["helcim_id"].isin(ids)][
        ["helcim_id", "field", "crm"]
    ].itertuples(index=False):
        crm_side.loc[int(helcim_id), name] = "" if pd.isna(value) else str(value)
    helcim_side = crm_side.copy()
    for helcim_id, name, value in exported[["helcim_id", "field", "helcim"]].itertuples(index=False):
        helcim_side.loc[int(helcim_id), name] = "" if pd.isna(value) else str(value)
    crm_ids = dict(zip(exported["helcim_id"].astype("int64"), exported["crm_id"].astype("str"), strict=False))
    fields_of = exported.groupby("helcim_id")["field"].agg(set)
    rows = []
    before, after = to_crm(crm_side, profile), to_crm(helcim_side, profile)
    for column in crm_columns(profile):
        if column.fields == ("crm_id",):
            continue
        for helcim_id in before.index:
            if not set(column.fields) & fields_of[helcim_id]:
                continue
            old = str(before.at[helcim_id, column.header])
            new = str(after.at[helcim_id, column.header])
            if old != new:
                rows.append((crm_ids[int(helcim_id)], int(helcim_id), column.header, old, new))
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values([id_header, "field"], kind="stable").reset_index(drop=True)


def payment_methods(snapshot: Snapshot, links: pd.DataFrame, result: DiffResult | None) -> pd.DataFrame:
    crm_ids = _crm_ids(snapshot, links, result)
    codes = pd.Series(
        snapshot.customers["customer_code"].astype("str").to_numpy(),
        index=snapshot.customers["helcim_id"].astype("int64").to_numpy(),
    )
    cards, banks = snapshot.cards, snapshot.banks
    expiry = cards["expiry"].astype("str")
    card_rows = pd.DataFrame(
        {
            "helcim_id": cards["helcim_id"].astype("int64").to_numpy(),
            "method": "card",
            "method_id": cards["card_id"].astype("int64").to_numpy(),
            "default": cards["is_default"].map({True: "yes", False: "no"}).to_numpy(),
            "card_brand": card_brand(cards["f6l4"]).to_numpy(),
            "card_last4": cards["f6l4"].astype("str").str[-4:].to_numpy(),
            "card_expiry": np.where(
                expiry.str.fullmatch(r"\d{4}"), expiry.str[:2] + "/" + expiry.str[2:], expiry
            ).astype(str),
            "bank_last4": "",
            "bank_verified": "",
            "bank_ready": "",
            "pad_status": "",
        }
    )
    pad_status = pad_status_of_banks(snapshot.pads)
    bank_rows = pd.DataFrame(
        {
            "helcim_id": banks["helcim_id"].astype("int64").to_numpy(),
            "method": "bank",
            "method_id": banks["bank_id"].astype("int64").to_numpy(),
            "default": "",
            "card_brand": "",
            "card_last4": "",
            "card_expiry": "",
            "bank_last4": banks["last4"].astype("str").to_numpy(),
            "bank_verified": banks["verified"].map({True: "yes", False: "no"}).to_numpy(),
            "bank_ready": banks["ready"].map({True: "yes", False: "no"}).to_numpy(),
            "pad_status": banks["bank_id"]
            .astype("int64")
            .map(pad_status)
            .astype(object)
            .fillna("none")
            .to_numpy(),
        }
    )
    table = pd.concat([card_rows, bank_rows], ignore_index=True)
    table.insert(0, "crm_id", table["helcim_id"].map(crm_ids).astype(object).fillna("").astype("str"))
    table.insert(2, "customer_code", table["helcim_id"].map(codes).astype(object).fillna("").astype("str"))
    return table.sort_values(["crm_id", "helcim_id", "method", "method_id"], kind="stable").reset_index(
        drop=True
    )


def write_crm_import(
    out_dir: Path, *, result: DiffResult | None, snapshot: Snapshot, links: pd.DataFrame, profile: str
) -> dict[str, str]:
    """Write ``out_dir/crm_import/`` (see the module docstring); returns {name: path}.

    ``result`` is the night's diff, or None when there is no CRM export: then
    new_customers.csv and updates.csv hold their header only. ``links`` are the
    state store's (crm_id, helcim_id). ``profile`` names the CRM's mapping profile.
    """
    mapping = load_profile(profile)
    id_header = _id_header(mapping)
    folder = out_dir / "crm_import"
    methods = payment_methods(snapshot, links, result).rename(columns={"crm_id": id_header})
    return {
        "new_customers": str(
            write_csv(
                new_customers(result, mapping, snapshot.customers["customer_code"]),
                folder / "new_customers.csv",
            )
        ),
        "updates": str(write_csv(updates(result, snapshot, mapping), folder / "updates.csv")),
        "payment_methods": str(
            write_csv(methods, folder / "payment_methods.csv", [id_header, *PAYMENT_METHOD_COLUMNS])
        ),
    }
