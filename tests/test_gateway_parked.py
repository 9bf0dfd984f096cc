"""Parked gateway events: a workspace's events that named something unknown here are listed
on its reconciliation page with what they say and why they wait, can be applied again once
the cause is gone (exactly once) or dismissed with a note that is kept and audited; the
platform's webhooks for unknown tokens are listed and purged by `flask gateways parked`."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from app.audit.models import AuditEntry
from app.gateways.models import GatewayEvent, GatewayEventDismissal, ParkedGatewayWebhook
from app.invoicing.models import Invoice
from tests.helpers import csrf_token_from
from tests.test_gateways import deliver, fresh, live_payments, post, shop, standin  # noqa: F401

# shop and standin are the Razorpay fixtures, imported to be used.
PAGE = "/t/{slug}/payments/reconciliation/"


def events(session) -> list[GatewayEvent]:
    return list(
        session.scalars(
            select(GatewayEvent).order_by(GatewayEvent.id).execution_options(populate_existing=True)
        )
    )


def unknown_link_event(client, run_jobs, shop, standin):  # noqa: F811
    body, headers = standin.signed_event(
        "payment_link.paid",
        {
            "payment_link": {"entity": {"id": "plink_Unknown0000001", "status": "paid"}},
            "payment": {
                "entity": {"id": "pay_Unknown00000001", "amount": 250000, "currency": "INR"}
            },
        },
    )
    assert deliver(client, run_jobs, shop.token, [(body, headers)]) == [200]
    [event] = events(shop.session)
    return event


def test_a_parked_event_is_shown_with_what_it_says_and_why(
    client,
    login,
    run_jobs,
    shop,  # noqa: F811
    standin,  # noqa: F811
):
    event = unknown_link_event(client, run_jobs, shop, standin)
    login(client, shop.owner)
    page = client.get(PAGE.format(slug=shop.tenant.slug))
    assert page.status_code == 200
    assert "Events we could not place" in page.text
    row = page.text.split(f'id="event-{event.id}"')[1].split("</tr>")[0]
    assert "payment_link.paid" in row and "plink_Unknown0000001" in row
    assert "₹2,500.00" in row
    assert "no pay request of this workspace" in row
    assert "Apply again" in row and "Dismiss" in row


def test_a_refund_parked_before_its_payment_applies_once_on_apply_again(
    client,
    login,
    run_jobs,
    shop,  # noqa: F811
    standin,  # noqa: F811
):
    invoice = shop.invoice("1000.00")
    paid = standin.pay(shop.checkout(invoice))
    payment_events = list(standin.sent)
    standin.sent.clear()
    standin.refund(paid["id"])
    deliver(client, run_jobs, shop.token, standin.sent)  # the refund first: parked
    [refund] = events(shop.session)
    assert refund.status == "parked"
    login(client, shop.owner)
    url = PAGE.format(slug=shop.tenant.slug)
    page = client.get(url)

    # Still nothing to refund: it stays parked and says why.
    answer = client.post(
        f"{url}events/{refund.id}/apply", data={"csrf_token": csrf_token_from(page.text)}
    )
    assert answer.status_code == 303
    assert "still cannot be applied" in client.get(url).text
    assert fresh(shop.session, GatewayEvent, refund.id).status == "parked"

    deliver(client, run_jobs, shop.token, payment_events)  # the payment arrives at last
    assert fresh(shop.session, Invoice, invoice.id).status == "paid"
    page = client.get(url)
    client.post(f"{url}events/{refund.id}/apply", data={"csrf_token": csrf_token_from(page.text)})
    assert fresh(shop.session, GatewayEvent, refund.id).status == "applied"
    assert live_payments(shop.session, shop.client.id) == []  # the refund took it back
    assert fresh(shop.session, Invoice, invoice.id).status == "issued"
    page = client.get(url)
    assert f'id="event-{refund.id}"' not in page.text
    # Applying it again is refused: it is no longer parked.
    again = client.post(
        f"{url}events/{refund.id}/apply", data={"csrf_token": csrf_token_from(page.text)}
    )
    assert again.status_code == 404


def test_dismissing_needs_a_note_which_is_kept_and_audited(
    client,
    login,
    run_jobs,
    shop,  # noqa: F811
    standin,  # noqa: F811
):
    event = unknown_link_event(client, run_jobs, shop, standin)
    login(client, shop.owner)
    url = PAGE.format(slug=shop.tenant.slug)
    token = csrf_token_from(client.get(url).text)
    client.post(f"{url}events/{event.id}/dismiss", data={"csrf_token": token, "note": "  "})
    assert "Say why this event needs nothing." in client.get(url).text
    assert fresh(shop.session, GatewayEvent, event.id).status == "parked"

    note = "A test link made in Razorpay's dashboard, not ours."
    answer = client.post(
        f"{url}events/{event.id}/dismiss", data={"csrf_token": token, "note": note}
    )
    assert answer.status_code == 303
    assert fresh(shop.session, GatewayEvent, event.id).status == "dismissed"
    kept = shop.session.scalar(select(GatewayEventDismissal))
    assert (kept.gateway_event_id, kept.note, kept.dismissed_by) == (event.id, note, shop.owner.id)
    entry = shop.session.scalar(
        select(AuditEntry).where(AuditEntry.entity == "gateway_event_dismissals")
    )
    assert entry.actor_user_id == shop.owner.id and entry.changes["note"] == [None, note]
    assert f'id="event-{event.id}"' not in client.get(url).text
    assert live_payments(shop.session, shop.client.id) == []


def test_a_viewer_cannot_apply_or_dismiss(
    client,
    login,
    make_user,
    add_member,
    run_jobs,
    shop,  # noqa: F811
    standin,  # noqa: F811
):
    event = unknown_link_event(client, run_jobs, shop, standin)
    viewer = make_user()
    add_member(shop.tenant, viewer, role="viewer")
    login(client, viewer)
    url = PAGE.format(slug=shop.tenant.slug)
    token = csrf_token_from(client.get(url).text)
    for action, data in (("apply", {}), ("dismiss", {"note": "no"})):
        answer = client.post(f"{url}events/{event.id}/{action}", data={"csrf_token": token, **data})
        assert answer.status_code == 403
    assert fresh(shop.session, GatewayEvent, event.id).status == "parked"


def test_the_operator_lists_and_purges_webhooks_parked_for_unknown_tokens(
    app,
    client,
    db_session,
    standin,  # noqa: F811
):
    old_token, new_token = "B" * 32, "C" * 32
    body, headers = standin.signed_event("payment.captured", {"payment": {"entity": {}}})
    for token in (old_token, old_token, new_token):
        assert post(client, token, body, headers).status_code == 200
    old_digest = hashlib.sha256(old_token.encode()).hexdigest()
    new_digest = hashlib.sha256(new_token.encode()).hexdigest()
    db_session.execute(
        update(ParkedGatewayWebhook)
        .where(ParkedGatewayWebhook.token_digest == old_digest)
        .values(received_at=datetime.now(UTC) - timedelta(days=40))
    )
    db_session.commit()
    runner = app.test_cli_runner()

    listed = runner.invoke(args=["gateways", "parked"])
    assert listed.exit_code == 0, listed.output
    assert "3 parked webhook(s)" in listed.output
    [old_line] = [line for line in listed.output.splitlines() if old_digest[:16] in line]
    assert old_line.split()[:2] == ["2", "razorpay"]
    assert new_digest[:16] in listed.output
    assert old_token not in listed.output and new_token not in listed.output

    purged = runner.invoke(args=["gateways", "parked", "--purge-older-than", "30"])
    assert purged.exit_code == 0, purged.output
    assert "Purged 2 parked webhook(s)" in purged.output
    remaining = db_session.scalars(select(ParkedGatewayWebhook.token_digest)).all()
    assert remaining == [new_digest]
    refused = runner.invoke(args=["gateways", "parked", "--purge-older-than", "0"])
    assert refused.exit_code != 0


def test_a_parked_event_whose_body_cannot_be_read_is_shown_and_refused_in_words(
    client,
    login,
    shop,  # noqa: F811
):
    unreadable = GatewayEvent(
        provider="razorpay",
        event_id="evt_Unreadable00001",
        event_type="payment.captured",
        body="{}",
        status="parked",
        reason="Kept before the gateway format changed.",
    )
    shop.session.add(unreadable)
    shop.session.commit()
    login(client, shop.owner)
    url = PAGE.format(slug=shop.tenant.slug)
    page = client.get(url)
    assert page.status_code == 200 and "Kept before the gateway format changed." in page.text
    client.post(
        f"{url}events/{unreadable.id}/apply", data={"csrf_token": csrf_token_from(page.text)}
    )
    assert "Its stored body cannot be read" in client.get(url).text
    assert fresh(shop.session, GatewayEvent, unreadable.id).status == "parked"
