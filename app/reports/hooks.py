"""The report pages below (aging, payments, promises) link to *Schedule e-mail* through the
`schedule_report_url` template global this area sets, so they never name this area."""

from __future__ import annotations

from flask import Flask, url_for

from app.reports.models import REPORTS


def schedule_report_url(report: str, args=None) -> str:
    """The scheduled reports page with `report` and the page's filters chosen."""
    if report not in REPORTS:
        raise ValueError(f"unknown report {report!r}")
    filters = {k: v for k, v in (args or {}).items() if k not in ("page", "report")}
    return url_for("reports.index", report=report, **filters)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["schedule_report_url"] = schedule_report_url
