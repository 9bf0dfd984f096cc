"""The client's pay page and its links: signed, expiring, revocable; a guessed or tampered token
shows nothing; what is owed (and the UPI request) is read when the page opens and again when
the payer pays; part amounts are checked; PDFs only of the link's own invoices; the messages
about an invoice or a notice carry one live link."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import func, select

from app.collections.cases.interest_claims import interest_claims, interest_owed
from app.collections.notices import services as notices
from app.core.clock import tenant_today
from app.core.money import format_money
from app.message_templates import facts
from app.message_templates.defaults import default_template
from app.message_templates.rendering import message_context, render_for_channel
from app.outbox.secret_links import redact_secret_paths
from app.paylinks import checkout, services, statement
from app.paylinks.models import PayLink
from app.settings.services import workspace_settings
from tests.helpers import csrf_token_from, tenant_session
from tests.test_notices import books  # noqa: F401  (the fixture)

UPI = "udyam@okhdfcbank"


@pytest.fixture
def workspace(app, db_session, make_tenant, make_user, make_client, make_contact, make_invoice):
    """A tenant with a UPI id and bank details, a client owing two invoices (1,000 and 2,500)."""
    owner = make_user()
    tenant = make_tenant(
        owner=owner,
        name="Udyam Works",
        region="27",
        legal_name="Udyam Works Pvt Ltd",
        upi_vpa=UPI,
        payment_instructions="HDFC Bank, A/c 50200012345678, IFSC HDFC0000123",
        reply_to="accounts@udyam.example",
    )
    session = tenant_session(db_session, tenant)
    with app.app_context():
        client = make_client(session, name="Kaveri Builders")
        make_contact(session, client)
        first = make_invoice(session, tenant, client, ("1000.00",), due_on=date(2027, 2, 15))
        second = make_invoice(session, tenant, client, ("2500.00",), due_on=date(2027, 3, 1))
    session.commit()
    return tenant, owner, session, client, first, second


def _path(app, tenant, link) -> str:
    with app.app_context():
        return "/pay/" + services.make_token(tenant.id, link)


def _invoice_link(app, session, invoice) -> PayLink:
    with app.app_context():
        link = services.link_for_invoice(session, invoice)
    session.commit()
    return link


def test_the_page_shows_what_the_invoice_owes_with_bank_details_and_a_upi_qr(
    app, client, workspace
):
    tenant, _, session, _, first, _ = workspace
    link = _invoice_link(app, session, first)
    response = client.get(_path(app, tenant, link))
    assert response.status_code == 200
    page = html.unescape(response.text)
    assert "Udyam Works Pvt Ltd" in page and f"Invoice {first.number}" in page
    assert "₹1,000.00 due" in page
    assert "HDFC Bank, A/c 50200012345678" in page
    upi = re.search(r'href="(upi://pay\?[^"]+)"', page).group(1)
    assert upi.startswith(f"upi://pay?pa={UPI}&pn=Udyam%20Works%20Pvt%20Ltd&am=1000.00&cu=INR")
    assert "&tn=Invoice%20" in upi
    # The QR on the page (an image of its own) encodes exactly that request.
    qr = re.search(r'<img class="pay-qr" src="([^"]+)"', page).group(1)
    image = client.get(qr)
    assert image.status_code == 200 and image.mimetype == "image/svg+xml"
    assert image.data == statement.qr_svg(upi)
    # The amount in the image's address never raises what the QR asks for: without part
    # payments it is what is owed; a currency the link does not owe in has no QR.
    more = client.get(qr.replace("amount=1000.00", "amount=5000.00"))
    assert more.status_code == 200 and more.data == statement.qr_svg(upi)
    assert client.get(qr.replace("currency=INR", "currency=USD")).status_code == 404
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    # Nothing of the other invoice of the same client shows on this invoice's link.
    assert workspace[5].number not in page


def test_the_amount_is_read_when_the_page_opens_never_from_the_link(
    app, client, workspace, make_payment
):
    tenant, _, session, customer, first, _ = workspace
    link = _invoice_link(app, session, first)
    path = _path(app, tenant, link)
    assert "am=1000.00" in client.get(path).text
    with app.app_context():
        make_payment(session, customer, "400.00", allocate_to=[first])
    session.commit()
    page = html.unescape(client.get(path).text)
    assert "₹600.00 due" in page and "am=600.00" in page


def test_a_paid_invoice_says_so(app, client, workspace, make_payment):
    tenant, _, session, customer, first, _ = workspace
    link = _invoice_link(app, session, first)
    with app.app_context():
        make_payment(session, customer, "1000.00", allocate_to=[first])
    session.commit()
    response = client.get(_path(app, tenant, link))
    assert response.status_code == 200
    assert f"Invoice {first.number} is paid: there is nothing to pay on it." in response.text
    assert "upi://" not in response.text and "accounts@udyam.example" in response.text


def test_a_revoked_link_says_so_with_whom_to_contact(app, client, workspace):
    tenant, owner, session, _, first, _ = workspace
    link = _invoice_link(app, session, first)
    with app.app_context():
        services.revoke(session, link, owner.id)
    session.commit()
    response = client.get(_path(app, tenant, link))
    assert response.status_code == 410
    assert "This payment link was withdrawn" in response.text
    assert "accounts@udyam.example" in response.text and first.number not in response.text


def test_an_expired_link_says_so_and_the_next_message_gets_a_new_one(app, client, workspace):
    tenant, _, session, _, first, _ = workspace
    link = _invoice_link(app, session, first)
    link.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    session.commit()
    response = client.get(_path(app, tenant, link))
    assert response.status_code == 410 and "This payment link has expired" in response.text
    assert first.number not in response.text
    assert _invoice_link(app, session, first).id != link.id


def test_a_new_link_works_for_the_workspace_s_days_default_60(app, workspace):
    _, _, session, _, first, _ = workspace
    link = _invoice_link(app, session, first)
    assert timedelta(days=59, hours=23) < link.expires_at - datetime.now(UTC) <= timedelta(days=60)


@pytest.mark.parametrize("tamper", ["signature", "payload", "other secret", "made up"])
def test_a_tampered_or_forged_token_shows_nothing(app, client, workspace, tamper):
    tenant, _, session, _, first, _ = workspace
    link = _invoice_link(app, session, first)
    token = _path(app, tenant, link).removeprefix("/pay/")
    payload, signature = token.rsplit(".", 1)
    forged = {
        "signature": payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:],
        "payload": payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature,
        "other secret": URLSafeSerializer("another-secret", salt="duebook.pay-link").dumps(
            [tenant.id, link.id, link.nonce]
        ),
        "made up": "forged-token",
    }[tamper]
    response = client.get("/pay/" + forged)
    assert response.status_code == 404
    assert "Udyam" not in response.text and first.number not in response.text


def test_a_token_naming_another_workspace_shows_nothing_of_either(
    app, client, workspace, make_tenant, make_client, make_invoice, db_session
):
    tenant_a, _, session_a, _, first, _ = workspace
    link_a = _invoice_link(app, session_a, first)
    number_a, a_id, a_nonce = first.number, link_a.id, link_a.nonce
    assert client.get(_path(app, tenant_a, link_a)).status_code == 200  # A's own token works
    tenant_b = make_tenant(name="Other Traders", region="27", upi_vpa="other@okaxis")
    session_b = tenant_session(db_session, tenant_b)
    with app.app_context():
        invoice_b = make_invoice(session_b, tenant_b, make_client(session_b), ("777.00",))
    session_b.commit()
    # Each schema numbers its own links: A's link id may well exist in B too.
    session_b.add(
        PayLink(
            id=a_id,
            kind="invoice",
            client_id=invoice_b.client_id,
            invoice_id=invoice_b.id,
            nonce="b-nonce",
            expires_at=datetime.now(UTC) + timedelta(days=60),
        )
    )
    session_b.commit()
    with app.app_context():
        # B's workspace, A's link id and nonce: signed as genuinely as a link can be.
        crossed = services.make_token(tenant_b.id, SimpleNamespace(id=a_id, nonce=a_nonce))
    secrets = ("Udyam", "Other Traders", number_a, invoice_b.number, "777.00")
    response = client.get(f"/pay/{crossed}")
    assert response.status_code == 404
    for secret in secrets:
        assert secret not in response.text


def test_pdfs_only_of_the_link_s_own_invoices(app, client, workspace, storage_root):
    tenant, _, session, _, first, second = workspace
    path = _path(app, tenant, _invoice_link(app, session, first))
    own = client.get(f"{path}/invoices/{first.id}.pdf")
    assert own.status_code == 200 and own.data.startswith(b"%PDF-")
    assert client.get(f"{path}/invoices/{second.id}.pdf").status_code == 404
    with app.app_context():
        everything = services.link_for_client(session, first.client_id)
    session.commit()
    whole = _path(app, tenant, everything)
    assert client.get(f"{whole}/invoices/{second.id}.pdf").status_code == 200


def test_the_client_link_lists_everything_owed_oldest_due_first(app, client, workspace):
    tenant, _, session, customer, first, second = workspace
    with app.app_context():
        link = services.link_for_client(session, customer.id)
    session.commit()
    page = html.unescape(client.get(_path(app, tenant, link)).text)
    assert "₹3,500.00 due" in page
    assert page.index(first.number) < page.index(second.number)
    assert "&tn=Invoice%20CLIENT-" in page


def _allow_partial(session):
    services.pay_page_settings(session).allow_partial_payment = True
    session.commit()


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("0", "The amount must be more than zero."),
        ("-5", "The amount must be more than zero."),
        ("abc", "Type an amount in numbers"),
        ("10.005", "At most two decimal places."),
        ("1000.01", "At most ₹1,000.00, what is owed now."),
    ],
)
def test_a_part_amount_must_be_more_than_zero_and_no_more_than_owed(
    app, client, workspace, typed, error
):
    tenant, _, session, _, first, _ = workspace
    link = _invoice_link(app, session, first)
    _allow_partial(session)
    response = client.get(_path(app, tenant, link), query_string={"amount_INR": typed})
    assert response.status_code == 422
    assert error in html.unescape(response.text)


def test_a_part_amount_makes_the_upi_request_for_that_amount(app, client, workspace):
    tenant, _, session, _, first, _ = workspace
    link = _invoice_link(app, session, first)
    path = _path(app, tenant, link)
    # Not allowed: the whole amount, whatever is asked.
    assert "am=1000.00" in client.get(path, query_string={"amount_INR": "250"}).text
    _allow_partial(session)
    response = client.get(path, query_string={"amount_INR": "250"})
    assert response.status_code == 200 and "am=250.00" in response.text
    # Its QR asks for that part; a part above what is owed gets no QR.
    qr = html.unescape(re.search(r'<img class="pay-qr" src="([^"]+)"', response.text).group(1))
    upi = html.unescape(re.search(r'href="(upi://pay\?[^"]+)"', response.text).group(1))
    assert "amount=250.00" in qr and client.get(qr).data == statement.qr_svg(upi)
    assert client.get(qr.replace("amount=250.00", "amount=1000.01")).status_code == 404


@pytest.fixture
def gateway(monkeypatch):
    """A connected gateway, as the gateways area will offer it; its checkouts recorded."""
    started = []

    def options(session, *, currency):
        return [checkout.PayOption("razorpay", "Pay online")]

    def start(session, **asked):
        started.append(asked)
        return "https://checkout.example/session/1"

    monkeypatch.setattr(checkout, "pay_options", options)
    monkeypatch.setattr(checkout, "start_gateway_checkout", start)
    return started


def test_checkout_splits_what_is_owed_now_oldest_due_first(
    app, client, workspace, gateway, make_payment
):
    tenant, _, session, customer, first, second = workspace
    with app.app_context():
        link = services.link_for_client(session, customer.id)
    _allow_partial(session)
    path = _path(app, tenant, link)
    page = client.get(path)
    assert "Pay online: ₹3,500.00" in html.unescape(page.text)
    # Paid meanwhile, in another tab: the checkout reads the books, not the page.
    with app.app_context():
        make_payment(session, customer, "1000.00", allocate_to=[first])
    session.commit()
    token = csrf_token_from(page.text)
    too_much = client.post(
        f"{path}/checkout/razorpay",
        data={"csrf_token": token, "currency": "INR", "amount_INR": "3000"},
    )
    assert too_much.status_code == 422 and not gateway
    assert "At most ₹2,500.00, what is owed now." in html.unescape(too_much.text)
    response = client.post(
        f"{path}/checkout/razorpay",
        data={"csrf_token": token, "currency": "INR", "amount_INR": "2000"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "https://checkout.example/session/1"
    (asked,) = gateway
    assert asked["invoice_amounts"] == {second.id: Decimal("2000.00")}
    assert asked["interest_amounts"] == {}
    assert asked["client_id"] == customer.id and asked["currency"] == "INR"
    assert asked["pay_link_id"] == link.id
    assert asked["return_url"].endswith(f"{path}/done")
    done = html.unescape(client.get(f"{path}/done").text)
    assert "Thank you; we'll confirm when your bank does." in done


def test_without_a_gateway_there_is_no_pay_button_and_no_checkout(
    app, client, workspace, monkeypatch
):
    tenant, _, session, _, first, _ = workspace
    path = _path(app, tenant, _invoice_link(app, session, first))
    page = client.get(path)
    assert "/checkout/" not in page.text and "upi://" in page.text
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)  # the view's own answer
    response = client.post(f"{path}/checkout/razorpay", data={"currency": "INR"})
    assert response.status_code == 404


def test_the_public_pages_are_rate_limited_per_address(app, client, workspace, monkeypatch):
    tenant, _, session, _, first, _ = workspace
    path = _path(app, tenant, _invoice_link(app, session, first))
    monkeypatch.setitem(app.config, "PAY_PAGE_RATE_LIMIT", "2 per minute")
    assert client.get(path).status_code == 200
    assert client.get("/pay/forged-token").status_code == 404
    assert client.get(path).status_code == 429


def test_messages_carry_one_live_pay_link_per_invoice(app, workspace):
    tenant, _, session, customer, first, _ = workspace
    contact = customer.contacts[0]
    with app.app_context():
        context = message_context(session, tenant, customer, contact, first)
        email = render_for_channel(default_template("email", "invoice"), context)
        whatsapp = render_for_channel(
            default_template("whatsapp", "invoice"),
            message_context(session, tenant, customer, contact, first, "notice_1"),
        )
        preview = message_context(session, tenant, customer, contact, first, preview=True)
    link = session.scalars(select(PayLink)).one()  # one link, reused by both messages
    with app.app_context():
        url = services.pay_url(tenant.id, link)
    assert context["pay_link"] == url and f"See and pay it online: {url}" in email.text
    assert url in whatsapp.whatsapp["body_params"]
    assert "/pay/" in preview["pay_link"] and url != preview["pay_link"]


def test_a_notice_message_carries_the_notice_s_link(app, client, workspace, make_notice):
    tenant, _, session, customer, first, second = workspace
    notice = make_notice(session, customer, [first, second])
    session.commit()
    with app.app_context():
        url = facts.pay_link(session, notice_id=notice.id)
        again = facts.pay_link(session, notice_id=notice.id)
    session.commit()
    assert url == again
    link = session.scalars(select(PayLink).where(PayLink.kind == "notice")).one()
    assert link.notice_id == notice.id
    # Shown (with Revoke) on the page of each invoice the notice names.
    assert link in services.shown_links(session, second)
    page = html.unescape(client.get(url.split("localhost", 1)[-1].split("5000", 1)[-1]).text)
    assert first.number in page and second.number in page and "₹3,500.00 due" in page


def test_the_invoice_page_shows_the_link_and_revokes_it(app, client, workspace, login):
    tenant, owner, session, _, first, _ = workspace
    login(client, owner)
    invoice_page = client.get(f"/t/{tenant.slug}/invoices/{first.id}")
    response = client.post(
        f"/t/{tenant.slug}/pay-links/invoices/{first.id}",
        data={"csrf_token": csrf_token_from(invoice_page.text)},
    )
    assert response.status_code == 303
    link = session.scalars(select(PayLink)).one()
    page = client.get(f"/t/{tenant.slug}/invoices/{first.id}")
    with app.app_context():
        assert services.pay_url(tenant.id, link) in html.unescape(page.text)
    client.post(
        f"/t/{tenant.slug}/pay-links/invoices/{first.id}/links/{link.id}/revoke",
        data={"csrf_token": csrf_token_from(page.text)},
    )
    session.expire_all()
    assert session.get(PayLink, link.id).revoked_by == owner.id
    assert client.get(_path(app, tenant, link)).status_code == 410
    assert session.scalar(select(func.count()).select_from(PayLink)) == 1


def test_settings_check_the_link_lifetime(app, client, workspace, login):
    tenant, owner, session, _, _, _ = workspace
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/pay-links/settings")
    token = csrf_token_from(page.text)
    bad = client.post(
        f"/t/{tenant.slug}/pay-links/settings", data={"csrf_token": token, "link_days": "0"}
    )
    assert bad.status_code == 422 and "A whole number of days from 1 to 365." in bad.text
    good = client.post(
        f"/t/{tenant.slug}/pay-links/settings",
        data={"csrf_token": token, "link_days": "30", "allow_partial_payment": "on"},
    )
    assert good.status_code == 303
    session.expire_all()
    settings = services.pay_page_settings(session)
    assert (settings.link_days, settings.allow_partial_payment) == (30, True)
    assert workspace_settings(session, tenant.id).upi_vpa == UPI


def test_the_logs_hide_the_token_of_a_pay_link(app, workspace):
    tenant, _, session, _, first, _ = workspace
    path = _path(app, tenant, _invoice_link(app, session, first))
    token = path.removeprefix("/pay/")
    line = f'"GET {path}/invoices/{first.id}.pdf HTTP/1.1" 200 (referrer {path})'
    hidden = redact_secret_paths(line)
    assert token not in hidden and f"/pay/[hidden]/invoices/{first.id}.pdf" in hidden


def test_the_interest_a_notice_claimed_is_asked_for_and_a_part_pays_the_debt_first(
    app,
    client,
    books,  # noqa: F811
    gateway,
):
    """The page asks for the interest a sent notice claimed (not interest no notice claimed
    yet), and a part payment pays what the invoice owes before its interest."""
    books.client.late_interest_mode, books.client.late_interest_rate = "compound", Decimal(18)
    chased = books.invoice("100000.00")
    unchased = books.invoice("5000.00", issued=date(2026, 7, 2))
    notice = books.notice([chased], status="approved")
    books.session.commit()
    with app.app_context():
        assert notices.send_notices(books.session, books.tenant, [notice.id]) == {
            notice.id: "queued"
        }
        books.session.commit()
        link = services.link_for_client(books.session, books.client.id)
    books.session.commit()
    claimed = interest_claims(books.session, invoice_ids=[chased.id])[chased.id].unpaid
    # Interest runs on the other invoice too, but no notice claimed it: not asked for here.
    today = tenant_today(books.session)
    assert claimed > 0 and interest_owed(books.session, [unchased], today)[unchased.id].amount > 0
    path = _path(app, books.tenant, link)
    page = html.unescape(client.get(path).text)
    interest = format_money(claimed, "INR", "IN")
    assert f"Owed ₹1,00,000.00 + late-payment interest claimed in our notice {interest}." in page
    assert "Owed ₹5,000.00." in page
    assert f"am={Decimal('105000.00') + claimed:.2f}" in page

    _allow_partial(books.session)
    token = csrf_token_from(page)
    paid = client.post(
        f"{path}/checkout/razorpay",
        data={"csrf_token": token, "currency": "INR", "amount_INR": "100000"},
    )
    assert paid.status_code == 303
    assert gateway[-1]["invoice_amounts"] == {chased.id: Decimal("100000.00")}
    assert gateway[-1]["interest_amounts"] == {}
    client.post(
        f"{path}/checkout/razorpay",
        data={"csrf_token": token, "currency": "INR", "amount_INR": f"{100001 + claimed}"},
    )
    assert gateway[-1]["invoice_amounts"] == {
        chased.id: Decimal("100000.00") + claimed,
        unchased.id: Decimal("1.00"),
    }
    assert gateway[-1]["interest_amounts"] == {chased.id: claimed}


def test_the_pay_buttons_may_lead_to_the_gateways_checkout(app, client, workspace, monkeypatch):
    """The page's policy lets a Pay button's form go on to the gateway: any https checkout,
    and in the sandbox the local stand-ins' plain-http addresses (else the browser stops at
    the redirect and the payer sees nothing happen); no other plain-http address."""
    tenant, _, session, _, first, _ = workspace
    monkeypatch.setitem(app.config, "RAZORPAY_API_BASE", "http://127.0.0.1:60065")
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", "https://api.stripe.com")
    policy = client.get(_path(app, tenant, _invoice_link(app, session, first))).headers[
        "Content-Security-Policy"
    ]
    form_action = next(p for p in policy.split(";") if p.strip().startswith("form-action"))
    assert form_action.split()[1:] == ["'self'", "https:", "http://127.0.0.1:60065"]
