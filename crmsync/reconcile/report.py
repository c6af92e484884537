"""The morning reconciliation's files: its CSVs, ``actions.csv``, ``summary.json`` and ``report.html``.

:func:`write_reconciliation` writes them all. Every file goes through
:mod:`crmsync.outputs` (formulas neutralised). ``report.html`` is one
self-contained page: the findings travel inside it as JSON and the page's
script draws a group's rows only when it is opened, a page of rows at a time,
so 50,000 findings open as fast as a few hundred (``make bench BENCH=report``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import pandas as pd

from crmsync.outputs import write_csv, write_json, write_text
from crmsync.reconcile.actions import ACTION_COLUMNS, SIGNED_ACTIONS, Proposals, propose
from crmsync.reconcile.findings import Reconciliation
from crmsync.reconcile.rules import FINDINGS
from crmsync.reconcile.tables import (
    BANK_REPORT_COLUMNS,
    CARD_REPORT_COLUMNS,
    FINDING_COLUMNS,
    PAD_REPORT_COLUMNS,
)
from crmsync.reconcile.triage import Triage, triage

__all__ = [
    "ACTION_LOG_COLUMNS",
    "FINDINGS_CSV_COLUMNS",
    "HEADLINE",
    "ReportFiles",
    "headline",
    "render_report_html",
    "write_reconciliation",
]

# -- the morning reconciliation ------------------------------------------------------------

#: The headline figures of report.html, in order: (key, label).
HEADLINE: tuple[tuple[str, str], ...] = (
    ("critical", "critical findings"),
    ("warning", "warnings"),
    ("info", "for information"),
    ("cards_expired", "cards expired"),
    ("cards_expiring", "cards expiring soon"),
    ("banks_not_ready", "bank accounts not ready"),
    ("pads_revoked", "PADs revoked"),
    ("customers", "customers in Helcim"),
)
#: findings.csv: every finding with its status since the previous report and the action proposed for it.
FINDINGS_CSV_COLUMNS: tuple[str, ...] = (*FINDING_COLUMNS, "status", "first_seen", "action_id")
#: The actions journaled since the previous report, as the page lists them (what the caller hands in).
ACTION_LOG_COLUMNS: tuple[str, ...] = (
    "finished_at", "action_id", "action", "customer_code", "helcim_id", "method_id", "outcome", "detail",
)  # fmt: skip
#: The page lists at most this many of the previous report's findings that are resolved (counts are all there).
HTML_RESOLVED_ROWS = 5000
#: Per finding, what the page carries (the order of each row's array in the page's data).
_ROW_FIELDS = (
    "severity", "code", "customer", "customer_code", "crm_id", "method", "detail", "action", "status",
    "first_seen", "action_id", "helcim_id",
)  # fmt: skip


def headline(summary: dict[str, Any]) -> dict[str, int]:
    """The headline figures of a reconciliation summary (as :meth:`Reconciliation.summary` makes it)."""
    severity = summary.get("findings_by_severity", {})
    cards = summary.get("cards_by_status", {})
    counts = summary.get("counts", {})
    return {
        "critical": int(severity.get("critical", 0)),
        "warning": int(severity.get("warning", 0)),
        "info": int(severity.get("info", 0)),
        "cards_expired": int(cards.get("expired", 0)),
        "cards_expiring": int(cards.get("expiring", 0)),
        "banks_not_ready": int(counts.get("bank_accounts", 0))
        - int(summary.get("bank_accounts", {}).get("ready", 0)),
        "pads_revoked": int(summary.get("findings_by_code", {}).get("pad_revoked", 0)),
        "customers": int(counts.get("customers", 0)),
    }


def _change(current: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """Differences from the previous reconciliation's summary, or None on the first run."""
    if not previous:
        return None
    now, before = headline(current), headline(previous)
    codes = set(current["findings_by_code"]) | set(previous.get("findings_by_code", {}))
    # a code one of the two runs did not check (no CRM export given) has no change to show
    codes -= set(current.get("skipped_codes", [])) | set(previous.get("skipped_codes", []))
    return {
        "previous_generated_at": previous.get("generated_at", ""),
        "previous_today": previous.get("today", ""),
        "headline": {key: now[key] - before[key] for key in now},
        "findings_by_code": {
            code: int(current["findings_by_code"].get(code, 0))
            - int(previous.get("findings_by_code", {}).get(code, 0))
            for code in FINDINGS
            if code in codes
        },
    }


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("crmsync.reconcile", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _bar_chart(months: dict[str, int]) -> dict[str, Any]:
    """Geometry of the inline SVG bar chart of cards expiring per month."""
    width, height, top, bottom, left = 720, 220, 20, 40, 10
    peak = max([*months.values(), 1])
    slot = (width - 2 * left) / max(len(months), 1)
    bars = []
    for i, (month, count) in enumerate(months.items()):
        h = (height - top - bottom) * count / peak
        bars.append(
            {
                "month": month,
                "count": count,
                "x": round(left + i * slot + slot * 0.15, 1),
                "width": round(slot * 0.7, 1),
                "y": round(height - bottom - h, 1),
                "height": round(h, 1),
                "label_x": round(left + i * slot + slot / 2, 1),
            }
        )
    return {"width": width, "height": height, "baseline": height - bottom, "bars": bars}


def _page_data(
    findings: pd.DataFrame, review: Triage, proposals: Proposals, resolved_rows: int
) -> dict[str, Any]:
    """What the page's script works from: the groups, every finding (grouped; ``findings``: the triage's,
    with their action_id), the actions, the resolved."""
    index = {(g["code"], g["tag"]): i for i, g in enumerate(review.groups)}
    group = pd.Series([index[k] for k in zip(findings["code"], findings["tag"], strict=True)], dtype="int64")
    ordered = findings.assign(_g=group.to_numpy()).sort_values("_g", kind="stable")
    rows = ordered.loc[:, ["_g", *_ROW_FIELDS]].astype({"_g": "int64"})
    text = rows.astype(dict.fromkeys(_ROW_FIELDS, "str"))
    actions = proposals.actions.set_index("action_id")
    fields = [c for c in ACTION_COLUMNS if c not in ("action_id", "approve")]
    resolved = review.resolved.head(resolved_rows)
    return {
        "fields": ["group", *_ROW_FIELDS],
        "rows": text.to_numpy().tolist(),
        "groups": [
            {**g, "meaning": FINDINGS[g["code"]].meaning, "suggested": FINDINGS[g["code"]].action}
            for g in review.groups
        ],
        "action_fields": ["action_id", *fields],
        "actions": dict(
            zip(
                actions.index.astype("str"),
                actions.loc[:, fields].astype("str").to_numpy().tolist(),
                strict=True,
            )
        ),
        "resolved": resolved.loc[:, ["code", "customer_code", "customer", "method", "detail", "first_seen"]]
        .astype("str")
        .to_numpy()
        .tolist(),
        "resolved_total": len(review.resolved),
        "columns": list(ACTION_COLUMNS),
        "signed": sorted(SIGNED_ACTIONS),  # ticked one row at a time, confirmed, approve=signed
    }


def _json_for_script(document: dict[str, Any]) -> markupsafe.Markup:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` left to end the element."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return markupsafe.Markup(text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_report_html(
    rec: Reconciliation,
    summary: dict[str, Any],
    *,
    generated_at: str,
    review: Triage,
    proposals: Proposals,
    findings: pd.DataFrame,
    action_log: pd.DataFrame | None = None,
) -> str:
    """report.html: one self-contained page (inline CSS, JS and SVG; no external URL).

    ``summary`` is the reconciliation's summary.json (its triage and change since the previous
    report included); ``findings`` the triage's findings with their action_id, as findings.csv.
    """
    figures = headline(summary)
    change = summary["change_since_previous"]
    tiles = [
        {
            "key": key,
            "label": label,
            "value": figures[key],
            "delta": None if change is None else change["headline"][key],
        }
        for key, label in HEADLINE
    ]
    codes = [
        {
            "code": code,
            "severity": spec.severity,
            "count": summary["findings_by_code"].get(code),
            "meaning": spec.meaning,
            "delta": None if change is None else change["findings_by_code"].get(code),
        }
        for code, spec in FINDINGS.items()
    ]
    log = action_log if action_log is not None else pd.DataFrame(columns=list(ACTION_LOG_COLUMNS))
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            today=rec.today.isoformat(),
            generated_at=generated_at,
            tiles=tiles,
            change=change,
            groups=review.groups,
            triage=summary["triage"],
            payment=summary.get("payment_data"),
            actions=summary.get("actions", {}),
            action_log=log.astype("str").to_dict("records"),
            codes=codes,
            chart=_bar_chart(summary["cards_expiring_by_month"]),
            summary=summary,
            thresholds=rec.thresholds,
            notes=summary.get("notes", []),
            data=_json_for_script(_page_data(findings, review, proposals, HTML_RESOLVED_ROWS)),
        )
    )


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_reconciliation` wrote: the files, the summary (as in its summary.json), the triage."""

    outputs: dict[str, str]
    summary: dict[str, Any]  # reconciliation/summary.json without its list of outputs
    review: Triage  # review.seen() is what the state store keeps for the next report
    proposals: Proposals


def write_reconciliation(
    out_dir: Path,
    rec: Reconciliation,
    *,
    previous: dict[str, Any] | None,
    generated_at: str,
    previous_findings: pd.DataFrame | None = None,
    action_log: pd.DataFrame | None = None,
) -> ReportFiles:
    """Write ``out_dir/reconciliation/``: cards.csv, banks.csv, pads.csv, findings.csv, actions.csv,
    summary.json and report.html.

    ``previous`` is the summary.json (as a dict) of the previous reconciliation,
    for the "change since the previous run" figures; ``previous_findings`` its
    findings (the state store's, :data:`crmsync.schemas.reconciliation.SEEN_COLUMNS`),
    for what is new and resolved; ``action_log`` (:data:`ACTION_LOG_COLUMNS`) the
    actions journaled since. None on the first run. Every value written is masked.
    """
    folder = out_dir / "reconciliation"
    review = triage(
        rec.findings, previous_findings, rec.today, skipped_now=rec.skipped_codes,
        skipped_before=(previous or {}).get("skipped_codes", []),
    )  # fmt: skip
    proposals = propose(rec)
    summary = {"generated_at": generated_at, **rec.summary(), "triage": review.summary()}
    summary["actions"] = {**proposals.summary(), "since_previous": _outcomes(action_log)}
    change = _change(summary, previous)
    summary["change_since_previous"] = change
    findings = review.findings.assign(action_id=proposals.of_finding.to_numpy())
    files = {
        "cards": write_csv(rec.cards, folder / "cards.csv", CARD_REPORT_COLUMNS),
        "banks": write_csv(rec.banks, folder / "banks.csv", BANK_REPORT_COLUMNS),
        "pads": write_csv(rec.pads, folder / "pads.csv", PAD_REPORT_COLUMNS),
        "findings": write_csv(findings, folder / "findings.csv", FINDINGS_CSV_COLUMNS),
        "actions": write_csv(proposals.actions, folder / "actions.csv", ACTION_COLUMNS),
    }
    html = render_report_html(
        rec, summary, generated_at=generated_at, review=review, proposals=proposals, findings=findings,
        action_log=action_log,
    )  # fmt: skip
    files["report"] = folder / "report.html"
    write_text(html, files["report"])
    files["summary"] = folder / "summary.json"
    outputs = {name: str(path) for name, path in files.items()}
    write_json({**summary, "outputs": outputs}, files["summary"])
    return ReportFiles(outputs, summary, review, proposals)


def _outcomes(action_log: pd.DataFrame | None) -> dict[str, int]:
    """Actions journaled since the previous report, by outcome."""
    if action_log is None or action_log.empty:
        return {}
    return {str(k): int(v) for k, v in action_log["outcome"].value_counts().sort_index().items()}
