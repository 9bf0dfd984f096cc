"""The daily gateway reconciliation (app/gateways/reconciliation.py) against the Stripe and
Razorpay stand-ins: a payment whose webhook was lost is applied by the run, once (a late
webhook and a second run change nothing); an amount that differs is listed and can be
explained; a refused apply stays open with its reason and applies on a click once fixed; a
gateway that cannot be reached fails the run in words. The page lists it all."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select, update

from app.core.handover import Work, enqueue
from app.gateways import reconciliation
from app.gateways.models import (
    Checkout,
    GatewayPayment,
    ReconciliationItem,
    ReconciliationRun,
)
from app.invoicing.models import Invoice
from app.payments.models import Payment
from tests.helpers import csrf_token_from
from tests.test_gateways import deliver as deliver_razorpay
from tests.test_gateways import fresh, live_payments, shop, standin  # noqa: F401
from tests.test_stripe_payments import abroad, deliver, stripe_standin  # noqa: F401

# shop, standin, abroad and stripe_standin are the gateways' fixtures, imported to be used.
PAGE = "/t/{slug}/payments/reconciliation/"


def reconcile(app, session) -> list[ReconciliationRun]:
    with app.app_context():
        runs = reconciliation.reconcile(session)
    session.commit()
    return runs


def differences(session) -> list[ReconciliationItem]:
    return list(
        session.scalars(
            select(ReconciliationItem)
            .order_by(ReconciliationItem.id)
            .execution_options(populate_existing=True)
        )
    )


def payment_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Payment))


def test_a_dropped_stripe_webhook_is_recovered_once_with_its_fee_by_the_daily_job(
    app,
    client,
    run_jobs,
    abroad,  # noqa: F811
    stripe_standin,  # noqa: F811
):
    invoice = abroad.invoice("1180.00")
    stripe_standin.pay(abroad.checkout(invoice))  # the webhooks are lost: none is posted
    s = abroad.session
    assert fresh(s, Invoice, invoice.id).status == "issued"

    with app.app_context():
        enqueue([Work("reconcile_gateways_all")])
    run_jobs()

    assert fresh(s, Invoice, invoice.id).status == "paid"
    [payment] = live_payments(s, abroad.client.id)
    assert payment.amount == Decimal("1180.00")
    row = s.scalars(select(GatewayPayment).execution_options(populate_existing=True)).one()
    assert row.fee == Decimal("34.52")  # the stand-in's 2.9% + 30 cents of 118000 cents
    [recovered] = differences(s)
    assert (recovered.kind, recovered.state) == ("missed_event", "applied")
    [run] = s.scalars(select(ReconciliationRun)).all()
    assert (run.provider, run.status, run.applied, run.differences) == ("stripe", "done", 1, 1)

    # Running again, and the lost webhooks arriving at last, change nothing.
    [again] = reconcile(app, s)
    assert (again.applied, again.differences) == (0, 0)
    assert deliver(client, run_jobs, abroad.token, stripe_standin.sent) == [200, 200]
    assert payment_count(s) == 1 and len(differences(s)) == 1


def test_a_dropped_razorpay_webhook_is_recovered_and_the_late_webhook_changes_nothing(
    app,
    client,
    run_jobs,
    shop,  # noqa: F811
    standin,  # noqa: F811
):
    invoice = shop.invoice("1000.00")
    paid = standin.pay(shop.checkout(invoice))
    s = shop.session
    [run] = reconcile(app, s)
    assert (run.provider, run.applied) == ("razorpay", 1)
    assert fresh(s, Invoice, invoice.id).status == "paid"
    row = s.scalar(select(GatewayPayment).where(GatewayPayment.provider_payment_id == paid["id"]))
    assert row.fee == Decimal(paid["fee"]) / 100
    assert deliver_razorpay(client, run_jobs, shop.token, standin.sent) == [200, 200]
    assert len(live_payments(s, shop.client.id)) == 1
    [again] = reconcile(app, s)
    assert (again.checked, again.applied, again.differences) == (1, 0, 0)


def test_an_amount_mismatch_is_listed_once_the_fee_filled_and_explained_on_the_page(
    app,
    client,
    login,
    run_jobs,
    abroad,  # noqa: F811
    stripe_standin,  # noqa: F811
):
    invoice = abroad.invoice("500.00")
    stripe_standin.pay(abroad.checkout(invoice))
    deliver(client, run_jobs, abroad.token, stripe_standin.sent)
    s = abroad.session
    # What was recorded here no longer agrees with the gateway.
    s.execute(update(GatewayPayment).values(amount=Decimal("450.00")))
    s.commit()
    reconcile(app, s)
    reconcile(app, s)
    [difference] = differences(s)
    assert (difference.kind, difference.state) == ("amount", "open")
    # The fee the webhook lacked is read from the charge's balance transaction (2.9% + 30c).
    row = s.scalars(select(GatewayPayment).execution_options(populate_existing=True)).one()
    assert row.fee == Decimal("14.80")
    assert (difference.gateway_amount, difference.our_amount) == (
        Decimal("500.00"),
        Decimal("450.00"),
    )

    login(client, abroad.owner)
    page = client.get(PAGE.format(slug=abroad.tenant.slug))
    assert page.status_code == 200
    assert "The gateway says $500.00; recorded here: $450.00." in page.text
    url = f"{PAGE.format(slug=abroad.tenant.slug)}{difference.id}/explain"
    token = csrf_token_from(page.text)
    refused = client.post(url, data={"csrf_token": token, "note": " "}, follow_redirects=True)
    assert "Say why this difference is right." in refused.text
    done = client.post(
        url, data={"csrf_token": token, "note": "Bank charge taken by the card network"}
    )
    assert done.status_code == 303
    [difference] = differences(s)
    assert (difference.state, difference.note) == (
        "explained",
        "Bank charge taken by the card network",
    )
    assert difference.settled_by == abroad.owner.id
    reconcile(app, s)
    assert [d.state for d in differences(s)] == ["explained"]


def test_a_missed_payment_the_books_refuse_stays_open_and_applies_on_a_click_once_fixed(
    app,
    client,
    login,
    run_jobs,
    abroad,  # noqa: F811
    stripe_standin,  # noqa: F811
):
    invoice = abroad.invoice("300.00")
    stripe_standin.pay(abroad.checkout(invoice))
    s = abroad.session
    # The pay request is (wrongly) in euros: the payment cannot be applied to it.
    s.execute(update(Checkout).values(currency="EUR"))
    s.commit()
    [run] = reconcile(app, s)
    assert run.applied == 0
    open_items = [d for d in differences(s) if d.state == "open"]
    assert [d.kind for d in open_items] == ["missed_event", "missed_event"]
    assert "could not be applied" in open_items[0].detail and "EUR" in open_items[0].detail
    assert fresh(s, Invoice, invoice.id).status == "issued"

    s.execute(update(Checkout).values(currency="USD"))
    s.commit()
    login(client, abroad.owner)
    page = client.get(PAGE.format(slug=abroad.tenant.slug))
    assert "Apply the payment" in page.text
    answer = client.post(
        f"{PAGE.format(slug=abroad.tenant.slug)}{open_items[0].id}/apply",
        data={"csrf_token": csrf_token_from(page.text)},
    )
    assert answer.status_code == 303
    assert fresh(s, Invoice, invoice.id).status == "paid"
    assert len(live_payments(s, abroad.client.id)) == 1
    assert differences(s)[0].state == "applied"


def test_a_gateway_that_cannot_be_reached_fails_the_run_in_words(
    app,
    client,
    login,
    monkeypatch,
    abroad,  # noqa: F811
):
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", "http://127.0.0.1:9")
    [run] = reconcile(app, abroad.session)
    assert run.status == "failed" and "Stripe unreachable" in run.error
    login(client, abroad.owner)
    page = client.get(PAGE.format(slug=abroad.tenant.slug))
    assert "Failed" in page.text and "Stripe unreachable" in page.text
    assert run.window_end > datetime.now(UTC)


def test_check_now_on_the_page_recovers_a_dropped_webhook_without_waiting_for_the_night(
    app,
    client,
    login,
    run_jobs,
    shop,  # noqa: F811
    standin,  # noqa: F811
):
    invoice = shop.invoice("2500.00")
    standin.pay(shop.checkout(invoice))  # the webhooks are lost: none is posted
    login(client, shop.owner)
    url = PAGE.format(slug=shop.tenant.slug)
    page = client.get(url)
    assert "No run yet" in page.text and "Check with the gateways now" in page.text
    answer = client.post(f"{url}run", data={"csrf_token": csrf_token_from(page.text)})
    assert answer.status_code == 303
    run_jobs()
    assert fresh(shop.session, Invoice, invoice.id).status == "paid"
    [run] = shop.session.scalars(select(ReconciliationRun)).all()
    assert (run.provider, run.applied) == ("razorpay", 1)
    runs = client.get(url).text.split('id="runs-title"')[1]
    assert "No run yet" not in runs and "Razorpay" in runs
