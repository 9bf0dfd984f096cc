"""The Razorpay connector and its stand-in, checked against Razorpay's own artefacts: the
official Python SDK (the oracle: it verifies what the stand-in signs and reads what it
answers, pointed at the stand-in) and the SDK's published sample answers (tests/contracts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import razorpay as sdk
from razorpay.errors import BadRequestError, SignatureVerificationError

from app.integrations.catalogue import entry_for
from app.integrations.connectors import DeliveryError
from app.integrations.connectors.razorpay import (
    GatewayRefusal,
    RazorpayConnector,
    read_event,
    valid_signature,
)
from app.integrations.connectors.wire import BadWebhookBody
from app.sandbox.standins import STANDINS
from app.sandbox.standins.razorpay import RazorpayStandin

CONTRACTS = Path(__file__).parent / "contracts" / "razorpay"
# The SDK's sample payment (2016) names the fee's tax `service_tax`; Razorpay's payment entity
# documents it as `tax` today (providers-2.md §2), which is what the stand-in sends.
RENAMED = {"service_tax": "tax"}


@pytest.fixture
def standin():
    server = RazorpayStandin().start()
    server.kept = []
    server.webhook_url = "http://127.0.0.1:9/kept"
    server.webhooks.post = lambda url, body, headers, delay=0: server.kept.append((body, headers))
    yield server
    server.stop()


@pytest.fixture
def oracle(standin):
    """The official SDK, pointed at the stand-in."""
    return sdk.Client(auth=(standin.key_id, standin.key_secret), base_url=standin.url)


def connector(standin, **secrets) -> RazorpayConnector:
    return RazorpayConnector(
        settings={"key_id": standin.key_id, "webhook_token": "t" * 32},
        secrets={
            "key_secret": standin.key_secret,
            "webhook_secret": standin.webhook_secret,
            **secrets,
        },
        config={"RAZORPAY_API_BASE": standin.url, "BASE_URL": "https://duebook.example"},
    )


def new_link(standin, amount="1180.00", reference="INV-1001 #1") -> str:
    return (
        connector(standin)
        .create_payment_link(
            amount=Decimal(amount),
            currency="INR",
            reference_id=reference,
            description="Invoice INV-1001",
            customer={"name": "Kaveri Traders", "email": ""},
            callback_url="https://duebook.example/pay/done",
            notes={"duebook_checkout": 1},
        )
        .id
    )


def _types(value):
    return type(None) if value is None else (int if isinstance(value, bool) else type(value))


def assert_same_shape(ours: dict, published: dict, where: str) -> None:
    """Every key of Razorpay's sample is in ours, with the same JSON type (either may be
    null: Razorpay's samples leave some fields empty)."""
    published = {RENAMED.get(key, key): value for key, value in published.items()}
    missing = sorted(set(published) - set(ours))
    assert not missing, f"{where} lacks {missing}"
    for key, value in published.items():
        if value is None or ours[key] is None:
            continue
        if ours[key] == [] and isinstance(value, dict):
            continue  # Razorpay (PHP) encodes an empty object, such as no notes, as []
        assert _types(ours[key]) is _types(value) or (ours[key] == {} and value == []), (
            f"{where}.{key} is {type(ours[key]).__name__}, Razorpay sends {type(value).__name__}"
        )


# Signatures -------------------------------------------------------------------------------------


def test_the_published_signature_vectors_are_accepted_and_a_changed_byte_is_not():
    v3 = (
        b'{"entity":"event","event":"payment_link.paid","payload":{"payment_link":{"entity":'
        b'{"id":"plink_T1","reference_id":"INV-1001","status":"paid"}}}}'
    )
    v3_signature = "1e451c46bc087b3c837d79cfb29fddb1a91839b50cef7b62188928c65b9191b9"
    assert valid_signature(v3, v3_signature, "rzp_whsec_test")
    assert not valid_signature(v3.replace(b"paid", b"PAID"), v3_signature, "rzp_whsec_test")
    respaced = json.dumps(json.loads(v3)).encode()  # the same JSON, other spacing
    assert not valid_signature(respaced, v3_signature, "rzp_whsec_test")
    body = b'{"entity":"event","event":"payment.captured"}'
    signature = "f67526d51b583329efb5415d3e39688506fea1bdbdc8df6b2c8132ce4ffe3cf2"
    assert valid_signature(body, signature, "whsec")
    assert not valid_signature(body, signature, "")
    assert not valid_signature(body, "", "whsec")


def test_the_sdk_accepts_what_the_standin_signs_and_rejects_forgeries(standin, oracle):
    standin.pay(new_link(standin))
    assert len(standin.kept) == 2
    for body, headers in standin.kept:
        signature = headers["X-Razorpay-Signature"]
        assert oracle.utility.verify_webhook_signature(
            body.decode(), signature, standin.webhook_secret
        )
        assert valid_signature(body, signature, standin.webhook_secret)  # ours agrees
        with pytest.raises(SignatureVerificationError):
            oracle.utility.verify_webhook_signature(body.decode(), signature, "another secret")
        forged = body.replace(b'"amount":118000', b'"amount":1')
        with pytest.raises(SignatureVerificationError):
            oracle.utility.verify_webhook_signature(
                forged.decode(), signature, standin.webhook_secret
            )
        assert not valid_signature(forged, signature, standin.webhook_secret)
    ids = {headers["X-Razorpay-Event-Id"] for _, headers in standin.kept}
    assert len(ids) == 2


def test_the_hosted_page_pays_and_sends_the_payer_back_with_a_signature_the_sdk_accepts(
    standin, oracle
):
    link_id = new_link(standin)
    short_url = standin.links[link_id]["short_url"]
    page = httpx.get(short_url)
    assert page.status_code == 200 and "INR 1,180.00" in page.text and ">Pay<" in page.text
    answer = httpx.post(f"{short_url}/pay", data={"outcome": "captured"})
    assert answer.status_code == 303
    location = urlsplit(answer.headers["Location"])
    assert location.path == "/pay/done"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert oracle.utility.verify_payment_link_signature(
        {
            "razorpay_payment_id": query["razorpay_payment_id"],
            "payment_link_id": query["razorpay_payment_link_id"],
            "payment_link_reference_id": query["razorpay_payment_link_reference_id"],
            "payment_link_status": query["razorpay_payment_link_status"],
            "razorpay_signature": query["razorpay_signature"],
        }
    )
    assert [json.loads(body)["event"] for body, _ in standin.kept] == [
        "payment.captured",
        "payment_link.paid",
    ]
    assert "already paid" in httpx.post(f"{short_url}/pay", data={"outcome": "captured"}).text


def test_failing_on_the_hosted_page_sends_payment_failed_and_leaves_the_link_open(standin):
    link_id = new_link(standin)
    answer = httpx.post(f"{standin.links[link_id]['short_url']}/pay", data={"outcome": "failed"})
    assert "Payment failed" in answer.text
    [(body, _)] = standin.kept
    event = read_event(body)
    assert event["event"] == "payment.failed"
    assert event["payload"]["payment"]["entity"]["status"] == "failed"
    assert standin.links[link_id]["status"] == "created"


# Requests and answers -------------------------------------------------------------------------


def test_the_sdk_reads_the_link_our_connector_created(standin, oracle):
    link_id = new_link(standin, amount="1180.00", reference="INV-1001 #7")
    link = oracle.payment_link.fetch(link_id)
    assert link["amount"] == 118000 and link["currency"] == "INR"
    assert link["reference_id"] == "INV-1001 #7" and link["status"] == "created"
    assert link["notes"] == {"duebook_checkout": "1"}
    assert link["customer"] == {"name": "Kaveri Traders"}  # empty values not sent
    assert link["notify"] == {"sms": False, "email": False}
    assert link["callback_method"] == "get"
    assert [each["id"] for each in oracle.payment_link.all()["payment_links"]] == [link_id]


def test_the_standins_answers_have_razorpays_published_shapes(standin, oracle):
    published_link = json.loads((CONTRACTS / "fake_payment_link.json").read_text())
    published_list = json.loads((CONTRACTS / "payment_link_collection.json").read_text())
    published_event = json.loads((CONTRACTS / "fake_payment_authorized_webhook.json").read_text())

    created = oracle.payment_link.create(
        {"amount": 500, "currency": "INR", "description": "Invoice 9", "reference_id": "R-9"}
    )
    assert_same_shape(created, published_link, "payment link")
    assert_same_shape(oracle.payment_link.all(), published_list, "collection")
    standin.pay(created["id"])
    paid = oracle.payment_link.fetch(created["id"])
    assert_same_shape(paid, published_link, "paid payment link")
    assert_same_shape(paid["payments"][0], published_link["payments"][0], "link payment")
    event = json.loads(standin.kept[0][0])
    assert_same_shape(event, published_event, "event")
    assert_same_shape(
        event["payload"]["payment"]["entity"],
        published_event["payload"]["payment"]["entity"],
        "payment",
    )


def test_a_reference_is_unique_per_link_as_razorpay_enforces(standin, oracle):
    new_link(standin, reference="INV-1 #1")
    with pytest.raises(GatewayRefusal, match="already exists"):
        new_link(standin, reference="INV-1 #1")
    with pytest.raises(BadRequestError):
        oracle.payment_link.create({"amount": 500, "currency": "INR", "reference_id": "INV-1 #1"})


def test_payments_are_read_page_by_page_by_the_connector_and_the_sdk(standin, oracle):
    paid = [standin.pay(new_link(standin, amount="10.00", reference=f"R{n}")) for n in range(103)]
    ours = list(connector(standin).payments_between(0, 4765046400))
    assert sorted(p["id"] for p in ours) == sorted(p["id"] for p in paid)
    assert len(standin.recorded()) >= 103
    page = oracle.payment.all({"from": 0, "to": 4765046400, "count": 100})
    assert page["entity"] == "collection" and page["count"] == 100
    assert oracle.payment.fetch(paid[0]["id"])["amount"] == 1000
    with pytest.raises(BadRequestError):
        oracle.payment.all({"count": 101})


def test_wrong_keys_are_refused_and_a_refusal_is_worded_for_the_page(standin):
    assert "accepted" in connector(standin).test_connection()
    with pytest.raises(DeliveryError) as refused:
        connector(standin, key_secret="wrong").test_connection()
    assert refused.value.permanent
    with pytest.raises(GatewayRefusal, match="atleast INR 1.00"):
        new_link(standin, amount="0.50")


# The connect form and the catalogue -------------------------------------------------------------


def test_the_catalogue_connects_razorpay_and_the_form_keeps_its_webhook_url():
    assert entry_for("razorpay").connector_class() is RazorpayConnector
    assert STANDINS["razorpay"] is RazorpayStandin
    raw = {"key_id": "rzp_live_ABCDEF123456", "key_secret": "s", "webhook_secret": "w"}
    settings, secrets, errors = RazorpayConnector.clean(raw)
    assert errors == {} and set(secrets) == {"key_secret", "webhook_secret"}
    token = settings["webhook_token"]
    again, _, _ = RazorpayConnector.clean({**raw, "webhook_token": token})
    assert again["webhook_token"] == token
    _, _, errors = RazorpayConnector.clean({**raw, "key_id": "live_123"})
    assert "rzp_live_" in errors["key_id"]
    _, _, errors = RazorpayConnector.clean({"key_id": "rzp_test_ABCDEF123456"})
    assert set(errors) == {"key_secret", "webhook_secret"}
    made = RazorpayConnector(
        settings=settings, secrets=secrets, config={"BASE_URL": "https://x.in"}
    )
    assert made.report_url() == f"https://x.in/hooks/razorpay/{token}"


@pytest.mark.parametrize(
    "body",
    [
        b'{"entity":"event","event":"payment.captured","payload":{"payment":{"entity":{"amount":"1"}}}}',
        b'{"entity":"order"}',
        b'{"entity":"event","event":"payment.captured","payload":[]}',
    ],
)
def test_an_event_of_the_wrong_shape_is_refused(body):
    with pytest.raises(BadWebhookBody):
        read_event(body)


def test_the_standin_runs_as_a_process_with_razorpays_defaults():
    from app.sandbox.standins.__main__ import _parser, build

    made = build(_parser().parse_args(["razorpay", "--webhook-url", "http://127.0.0.1:9/h"]))
    try:
        assert isinstance(made, RazorpayStandin) and made.webhook_url == "http://127.0.0.1:9/h"
        assert (
            RazorpayConnector.clean(
                {"key_id": made.key_id, "key_secret": "s", "webhook_secret": "w"}
            )[2]
            == {}
        )
    finally:
        made.stop()


def test_the_standin_writes_nothing_into_the_sandbox_inbox(tmp_path):
    made = RazorpayStandin(record_dir=tmp_path).start()
    try:
        made.pay(new_link(made))
    finally:
        made.stop()
    assert list(tmp_path.iterdir()) == []
    assert [entry.get("event") for entry in made.recorded()][-2:] == [
        "payment.captured",
        "payment_link.paid",
    ]


def test_settlements_are_read_by_the_connector_and_the_sdk_in_razorpays_shape(standin, oracle):
    """Razorpay's settlement entity (api/settlements: id setl_, entity, amount in paise,
    status created|processed|failed, fees, tax, utr, created_at) in a collection."""
    first = standin.pay(new_link(standin, amount="1000.00", reference="S1"))
    standin.pay(new_link(standin, amount="500.00", reference="S2"))
    settled = standin.settle()
    assert standin.settle() is None  # nothing is settled twice
    fees = sum(p["fee"] for p in standin.payments.values())
    assert settled["amount"] == 150000 - fees and settled["fees"] == fees
    page = oracle.settlement.all({"from": 0, "to": 4765046400, "count": 10})
    assert page["entity"] == "collection" and page["count"] == 1
    assert set(page["items"][0]) == {
        "id", "entity", "amount", "status", "fees", "tax", "utr", "created_at"
    }  # fmt: skip
    assert page["items"][0]["id"].startswith("setl_") and first["status"] == "captured"

    start = datetime.fromtimestamp(settled["created_at"] - 60, UTC)
    [report] = connector(standin).payouts_on(start, start + timedelta(hours=1))
    assert (report.payout_id, report.amount, report.currency) == (
        settled["id"],
        Decimal(settled["amount"]) / 100,
        "INR",
    )
    assert (report.status, report.bank_reference) == ("processed", settled["utr"])
    later = start + timedelta(hours=2)
    assert connector(standin).payouts_on(later, later + timedelta(hours=1)) == []


def _request_fields(interface: str) -> dict[str, bool]:
    """{field: required} of a TypeScript interface of the official typings, its own level
    only (a nested object's fields are not the interface's)."""
    text = (CONTRACTS / "paymentLink.request.d.ts").read_text()
    body = text[text.index(f"interface {interface} {{") :].split("{", 1)[1]
    fields, depth = {}, 0
    for line in body.splitlines():
        stripped = line.strip()
        if depth == 0 and stripped.startswith("}"):
            break
        if depth == 0 and ":" in stripped and not stripped.startswith(("*", "/")):
            name = stripped.split(":", 1)[0]
            fields[name.rstrip("?")] = not name.endswith("?")
        depth += stripped.count("{") - stripped.count("}")
    return fields


def test_the_connectors_payment_link_request_follows_razorpays_typings(standin, monkeypatch):
    """What our connector sends to create a Payment Link, against the request body Razorpay's
    official typings declare: only declared fields, every required one, amounts in paise as
    numbers, and a customer of name, e-mail and contact only."""
    sent = []
    create = standin._create_link

    def keep(request):
        sent.append(request.json())
        return create(request)

    monkeypatch.setattr(standin, "_create_link", keep)
    new_link(standin, amount="1180.50")
    [body] = sent
    declared = _request_fields("RazorpayPaymentLinkBaseRequestBody")
    assert set(body) <= set(declared), set(body) - set(declared)
    assert {name for name, required in declared.items() if required} <= set(body)
    assert body["amount"] == 118050 and isinstance(body["amount"], int)
    assert set(body["customer"]) <= {"name", "email", "contact"}
    assert all(isinstance(value, str | int) for value in body.get("notes", {}).values())
