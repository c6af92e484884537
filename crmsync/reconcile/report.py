"""The morning reconciliation's files: its CSVs, ``summary.json`` and ``report.html`` (:func:`write_reconciliation`).

Every file goes through :mod:`crmsync.outputs` (formulas neutralised).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from crmsync.outputs import write_csv, write_json, write_text
from crmsync.reconcile.findings import Reconciliation
from crmsync.reconcile.rules import FINDINGS, SEVERITIES
from crmsync.reconcile.tables import (
    BANK_REPORT_COLUMNS,
    CARD_REPORT_COLUMNS,
    FINDING_COLUMNS,
    PAD_REPORT_COLUMNS,
)

__all__ = [
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
#: At most this many findings per severity are listed in report.html (findings.csv has them all).
HTML_ROWS_PER_SEVERITY = 1000


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


def render_report_html(
    rec: Reconciliation, summary: dict[str, Any], *, change: dict[str, Any] | None, generated_at: str
) -> str:
    """report.html: one self-contained page (inline CSS, JS and SVG; no external URL)."""
    findings = rec.findings.loc[:, list(FINDING_COLUMNS)].astype("str")
    groups = []
    for severity in SEVERITIES:
        part = findings[findings["severity"] == severity]
        groups.append(
            {
                "severity": severity,
                "total": len(part),
                "rows": part.head(HTML_ROWS_PER_SEVERITY).to_dict("records"),
            }
        )
    figures = headline(summary)
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
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            today=rec.today.isoformat(),
            generated_at=generated_at,
            tiles=tiles,
            change=change,
            groups=groups,
            codes=codes,
            chart=_bar_chart(summary["cards_expiring_by_month"]),
            summary=summary,
            thresholds=rec.thresholds,
            notes=summary.get("notes", []),
            max_rows=HTML_ROWS_PER_SEVERITY,
        )
    )


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_reconciliation` wrote: the files, and the summary (as in its summary.json)."""

    outputs: dict[str, str]
    summary: dict[str, Any]  # reconciliation/summary.json without its list of outputs


def write_reconciliation(
    out_dir: Path, rec: Reconciliation, *, previous: dict[str, Any] | None, generated_at: str
) -> ReportFiles:
    """Write ``out_dir/reconciliation/``: cards.csv, banks.csv, pads.csv, findings.csv, summary.json, report.html.

    ``previous`` is the summary.json (as a dict) of the previous reconciliation,
    for the "change since the previous run" figures; None on the first run.
    Every value written is masked.
    """
    folder = out_dir / "reconciliation"
    summary = {"generated_at": generated_at, **rec.summary()}
    change = _change(summary, previous)
    summary["change_since_previous"] = change
    files = {
        "cards": write_csv(rec.cards, folder / "cards.csv", CARD_REPORT_COLUMNS),
        "banks": write_csv(rec.banks, folder / "banks.csv", BANK_REPORT_COLUMNS),
        "pads": write_csv(rec.pads, folder / "pads.csv", PAD_REPORT_COLUMNS),
        "findings": write_csv(rec.findings, folder / "findings.csv", FINDING_COLUMNS),
    }
    html = render_report_html(rec, summary, change=change, generated_at=generated_at)
    files["report"] = folder / "report.html"
    write_text(html, files["report"])
    files["summary"] = folder / "summary.json"
    outputs = {name: str(path) for name, path in files.items()}
    write_json({**summary, "outputs": outputs}, files["summary"])
    return ReportFiles(outputs, summary)
