"""Notifications' daily e-mails: every hour, the workspaces whose clock says DIGEST_HOUR get
the e-mail of what waited for each person who chose a daily e-mail."""

from __future__ import annotations

from app.notifications.models import DIGEST_HOUR
from app.notifications.preferences import send_digests
from jobs.context import job
from jobs.queues import fan_out, tenants_at_hour
from tenants.binding import bound_tenant_id


@job("default", timeout=600)
def send_notification_digests(session) -> int:
    return send_digests(session, bound_tenant_id(session))


@job("default")
def send_notification_digests_all(session) -> int:
    return fan_out(session, "send_notification_digests", tenants_at_hour(session, DIGEST_HOUR))
