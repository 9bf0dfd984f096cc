"""The hand-over to the workers: a Redis failure after commit is logged and left to a sweeper,
never raised to the user and never lost."""

from __future__ import annotations

from sqlalchemy import select

from app.campaigns.models import Campaign
from jobs.campaigns import sweep_campaign_launches_all
from jobs.tasks import sweep_outbox
from tests.helpers import csrf_token_from, tenant_session
from tests.test_campaigns import audience_books, every_day_is_a_business_day, rows_of

__all__ = ["audience_books", "every_day_is_a_business_day"]  # fixtures used below

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


def test_a_campaign_launched_while_redis_is_down_is_delivered_after_it_returns(
    audience_books,
    app,
    client,
    login,
    db_session,
    run_jobs,
    received_mail,
    monkeypatch,
    every_day_is_a_business_day,
):
    tenant, owner, _, _, template, _ = audience_books
    login(client, owner)
    new = client.get(f"/t/{tenant.slug}/campaigns/new")
    form = {
        "csrf_token": csrf_token_from(new.text),
        "name": "Rates while down",
        "channel": "email",
        "template_id": str(template.id),
        "city": "Pune",
        "schedule": "now",
        "throttle_per_minute": "6000",
    }
    show_url = client.post(f"/t/{tenant.slug}/campaigns/", data=form).headers["Location"]

    with monkeypatch.context() as redis_down:
        redis_down.setitem(app.config, "REDIS_URL", CLOSED_PORT_REDIS)
        launched = client.post(f"{show_url}/launch", data={"csrf_token": form["csrf_token"]})
    assert launched.status_code == 303
    run_jobs()  # Redis is back, but it never got the launch
    session = tenant_session(db_session, tenant)
    campaign = session.scalar(select(Campaign).where(Campaign.name == "Rates while down"))
    assert campaign.status == "scheduled" and rows_of(session, tenant, campaign.id) == []

    with app.app_context():
        assert sweep_campaign_launches_all() >= 1
    run_jobs()  # the sweep hands the launch over; the launch writes and hands out the rows
    with app.app_context():
        sweep_outbox()
        sweep_campaign_launches_all()  # the campaign is running now: nothing to launch again
    run_jobs()

    assert sorted(m["To"] for m in received_mail()) == ["meera@p1.example", "ravi@p1.example"]
    session = tenant_session(db_session, tenant)
    rows = rows_of(session, tenant, campaign.id)
    assert sorted((r.recipient, r.status) for r in rows if r.status != "suppressed") == [
        ("meera@p1.example", "sent"),
        ("ravi@p1.example", "sent"),
    ]
