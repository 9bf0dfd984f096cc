"""Aging: buckets at their boundaries in the tenant's time zone, by due date or invoice date,
configurable buckets, DSO, and the maintained summary equal to a full recomputation after every
one of a few hundred random invoices (alone, or several in one statement as a sync writes
them), payments, un-allocations, voids, credit notes, write-offs, disputes, settings changes
and day rolls.

`Books` (imported by the other aging tests) makes issued invoices directly with one line each,
so that a test can put an invoice exactly on a boundary."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.aging import services as aging
from app.clients.models import Client
from app.core.clock import local_date
from app.invoicing import listing
from app.invoicing.bulk import insert_invoices
from app.invoicing.listing import InvoiceFilters
from app.invoicing.models import Invoice, InvoiceLine
from app.payments import services as payments
from tests.helpers import tenant_session, unique

ZERO = Decimal("0.00")
OWING = ("issued", "sent", "overdue", "partly_paid", "disputed")
_numbers = itertools.count(1)


class Books:
    def __init__(self, db_session, tenant):
        self.tenant = tenant
        self.session = tenant_session(db_session, tenant)

    def client(self, name: str | None = None, currency: str = "INR", **fields) -> Client:
        name = name or unique("Client ")
        client = Client(
            full_name=name,
            short_name=name[:60],
            location="local",
            country="IN",
            currency=currency,
            payment_terms="net",
            payment_days=30,
            **fields,
        )
        self.session.add(client)
        self.session.flush()
        return client

    def invoice(
        self,
        client: Client,
        amount: str = "1000.00",
        due: date | None = None,
        issued: date | None = None,
        status: str = "issued",
    ) -> Invoice:
        invoice = self.unwritten_invoice(client, amount, due, issued, status)
        self.session.add(invoice)
        self.session.flush()
        return invoice

    def invoices_at_once(self, specs: list[tuple]) -> list[Invoice]:
        """Invoices (each `unwritten_invoice`'s arguments) in one INSERT per table, as a sync
        writes a page of them (app.invoicing.bulk)."""
        invoices = [self.unwritten_invoice(*spec) for spec in specs]
        insert_invoices(self.session, invoices)
        return [self.session.get(Invoice, invoice.id) for invoice in invoices]

    def unwritten_invoice(
        self,
        client: Client,
        amount: str = "1000.00",
        due: date | None = None,
        issued: date | None = None,
        status: str = "issued",
    ) -> Invoice:
        total = Decimal(amount)
        issued = issued or due or date(2027, 1, 1)
        number = None if status == "draft" else f"AG/{next(_numbers):06d}"
        invoice = Invoice(
            client_id=client.id,
            number=number,
            status=status,
            currency=client.currency,
            issue_date=None if status == "draft" else issued,
            due_date=None if status == "draft" else (due or issued),
            tax_regime="other",
            subtotal=total,
            cgst=ZERO,
            sgst=ZERO,
            igst=ZERO,
            other_tax=ZERO,
            total=total,
            amount_in_words="",
        )
        invoice.lines = [
            InvoiceLine(
                position=1,
                description="Work",
                quantity=Decimal(1),
                unit_price=total,
                taxable_value=total,
                tax_rate=ZERO,
                cgst=ZERO,
                sgst=ZERO,
                igst=ZERO,
                other_tax=ZERO,
                total=total,
            )
        ]
        return invoice

    def pay(self, client: Client, invoice: Invoice, amount: str, tds: str = "0"):
        payment = payments.record_payment(
            self.session, client, {"amount": amount, "received_on": "2027-03-01", "method": "cash"}
        )
        section, rate = ("194J", "10") if Decimal(tds) > 0 else (None, None)
        [allocation] = payments.allocate(
            self.session, payment, [(invoice.id, amount, tds, section, rate)]
        )
        return payment, allocation


@pytest.fixture
def books(db_session, make_tenant):
    return Books(db_session, make_tenant())


def check_summary(session, today):
    """The maintained summary, entries, sales and the dashboard's totals (per currency and
    bucket, per client past due) equal the full recomputation, exactly."""
    settings = aging.settings_of(session)
    basis, bounds = settings.aging_basis, settings.aging_buckets
    recomputed = aging.full_recomputation(session, today)
    assert aging.maintained_summary(session) == recomputed
    assert aging.maintained_totals(session) == aging.totals_of(recomputed)
    assert aging.maintained_invoices(session) == aging.recomputed_invoices(
        session, today, basis, bounds
    )
    assert aging.maintained_sales(session) == aging.recomputed_sales(session)
    check_report_pages(session, aging.Buckets(tuple(bounds)))
    # The invoice list's kept totals (and the aging's outstanding it shows) equal its invoices.
    for status in ("", "open", "draft", "paid", "void", "written_off"):
        filters = InvoiceFilters(status=status)
        kept, capped = listing.totals(session, filters, today)
        assert (kept, capped) == (listing.counted_totals(session, filters, today), False)


def check_report_pages(session, buckets, page_size=2):
    """The report's pages (the default order's found by the past-due index, its totals the
    kept ones) are the slices of the whole report added up from the summary."""
    for currency in ("", "INR", "USD"):
        whole = aging.client_rows(
            session, buckets, aging.AgingFilters(currency=currency), page_size=None
        )
        for page in range(1, 4):
            filters = aging.AgingFilters(currency=currency, page=page)
            report = aging.client_rows(session, buckets, filters, page_size=page_size)
            start = (page - 1) * page_size
            assert report.rows == whole.rows[start : start + page_size]
            assert report.totals == whole.totals
            assert report.client_count == len(whole.rows)


def test_buckets_at_their_boundaries_by_due_date(books):
    session, client = books.session, books.client()
    today = date(2027, 4, 30)
    aging.ensure_current(session, today)
    days = [-5, 0, 1, 30, 31, 60, 61, 90, 91, 400]
    invoices = {
        d: books.invoice(
            client,
            f"{100 + d}.00",
            due=today - timedelta(days=d),
            issued=today - timedelta(days=d + 30),
        )
        for d in days
    }
    buckets = aging.Buckets((30, 60, 90))
    assert buckets.labels == ("Current", "1–30", "31–60", "61–90", "90+")
    expected = {-5: 0, 0: 0, 1: 1, 30: 1, 31: 2, 60: 2, 61: 3, 90: 3, 91: 4, 400: 4}
    found = {d: aging.maintained_invoices(session)[inv.id][3] for d, inv in invoices.items()}
    assert found == expected
    assert {d: buckets.of(d) for d in days} == expected
    [inr] = aging.bucket_totals(session, buckets, today)
    assert inr.counts == [2, 2, 2, 2, 2]
    assert inr.amounts == [
        Decimal("195.00"),
        Decimal("231.00"),
        Decimal("291.00"),
        Decimal("351.00"),
        Decimal("691.00"),
    ]
    assert inr.overdue == inr.outstanding - Decimal("195.00")
    check_summary(session, today)
    # One day later every boundary invoice has moved on by exactly one day.
    assert aging.roll(session, today + timedelta(days=1)) == 4  # those at days 0, 30, 60, 90
    moved = {d: aging.maintained_invoices(session)[inv.id][3] for d, inv in invoices.items()}
    assert moved == {-5: 0, 0: 1, 1: 1, 30: 2, 31: 2, 60: 3, 61: 3, 90: 4, 91: 4, 400: 4}
    check_summary(session, today + timedelta(days=1))


def test_aging_by_invoice_date_and_other_buckets(books):
    session, client = books.session, books.client()
    today = date(2027, 6, 1)
    aging.ensure_current(session, today)
    young = books.invoice(client, "100.00", issued=today - timedelta(days=10), due=today)
    old = books.invoice(
        client, "200.00", issued=today - timedelta(days=50), due=today + timedelta(days=5)
    )
    assert {e[3] for e in aging.maintained_invoices(session).values()} == {0}  # nothing due
    assert aging.update_settings(session, "issue_date", (15, 45), today)
    entries = aging.maintained_invoices(session)
    assert (entries[young.id][3], entries[old.id][3]) == (1, 3)  # 10 days: 1-15; 50: 45+
    check_summary(session, today)
    assert not aging.update_settings(session, "issue_date", (15, 45), today)  # no change
    assert aging.Buckets((15, 45)).labels == ("Current", "1–15", "16–45", "45+")


def test_bucket_boundaries_are_checked():
    assert aging.parse_bounds("30, 60, 90") == (30, 60, 90)
    assert aging.parse_bounds("7") == (7,)
    for raw, message in [
        ("", "at least one"),
        ("60, 30", "ascending"),
        ("30, 30", "ascending"),
        ("0, 30", "1 or more"),
        ("x", "whole number"),
        ("1.5", "whole number"),
        ("1,2,3,4,5,6,7,8,9", "At most 8"),
        ("9999", "at most"),
    ]:
        with pytest.raises(ValueError, match=message):
            aging.parse_bounds(raw)


def test_the_day_is_the_tenants_own(books):
    """At 00:30 in Kolkata (19:00 UTC the day before) an invoice due "yesterday" is overdue."""
    moment = datetime(2027, 3, 31, 19, 0, tzinfo=UTC)
    assert local_date("Asia/Kolkata", moment) == date(2027, 4, 1)
    assert local_date("UTC", moment) == date(2027, 3, 31)
    session, client = books.session, books.client()
    invoice = books.invoice(client, due=date(2027, 3, 31))
    aging.ensure_current(session, local_date("Asia/Kolkata", moment))
    assert aging.maintained_invoices(session)[invoice.id][3] == 1
    aging.ensure_current(session, local_date("UTC", moment))  # rolls back a day too
    assert aging.maintained_invoices(session)[invoice.id][3] == 0


def test_dso_is_outstanding_over_90_days_of_credit_sales(books):
    session, client = books.session, books.client()
    today = date(2027, 5, 31)
    aging.ensure_current(session, today)
    paid = books.invoice(client, "3000.00", issued=today - timedelta(days=10))
    books.pay(client, paid, "3000.00")
    books.invoice(client, "1500.00", issued=today - timedelta(days=89))
    books.invoice(client, "500.00", issued=today - timedelta(days=90))  # outside the 90 days
    books.invoice(client, "999.00", status="draft")
    [inr] = aging.bucket_totals(session, aging.Buckets((30, 60, 90)), today)
    assert inr.credit_sales_90 == Decimal("4500.00")
    assert inr.outstanding == Decimal("2000.00")
    assert inr.dso == Decimal("40.0")  # 2,000 / 4,500 x 90


def test_summary_equals_the_full_recomputation_through_random_changes(books):
    from app.invoicing import credits
    from app.invoicing import services as invoicing
    from app.payments.models import PaymentAllocation

    rng = random.Random(20271)
    session = books.session
    clients = [
        books.client(currency="INR"),
        books.client(currency="INR"),
        books.client(currency="USD"),
        books.client(currency="USD"),
    ]
    today = date(2027, 3, 1)
    aging.ensure_current(session, today)
    invoices, payments_made = [], []

    def owing():
        return [i for i in invoices if i.status in OWING and payments.outstanding(session, i) > 0]

    def money(upper: Decimal) -> str:
        return str((upper * Decimal(rng.randint(1, 100)) / 100).quantize(Decimal("0.01")))

    operations = Counter()
    for _ in range(250):
        choice = rng.choice(
            [
                "invoice",
                "invoice",
                "several_invoices",
                "pay",
                "pay",
                "unallocate",
                "void_payment",
                "credit",
                "write_off",
                "void",
                "dispute",
                "resolve",
                "due_date",
                "issue_draft",
                "roll",
                "roll",
                "settings",
            ]
        )
        candidates = owing()
        if choice == "invoice" or not invoices:
            client = rng.choice(clients)
            due = today + timedelta(days=rng.randint(-150, 40))
            status = "draft" if rng.random() < 0.15 else "issued"
            amount = f"{rng.randint(1, 90000)}.{rng.randint(0, 99):02d}"
            issued = due - timedelta(days=30)
            invoices.append(books.invoice(client, amount, due=due, issued=issued, status=status))
        elif choice == "several_invoices":
            # One statement: some of the same client, day and bucket, some drafts and voids.
            specs = []
            for _ in range(rng.randint(2, 6)):
                client = rng.choice(clients[:2] if rng.random() < 0.5 else clients)
                due = today + timedelta(
                    days=rng.choice([-100, -100, -10, 5, rng.randint(-150, 40)])
                )
                status = rng.choice(["issued", "issued", "issued", "draft", "void"])
                amount = f"{rng.randint(1, 90000)}.{rng.randint(0, 99):02d}"
                specs.append((client, amount, due, due - timedelta(days=30), status))
            invoices.extend(books.invoices_at_once(specs))
        elif choice == "pay" and candidates:
            invoice = rng.choice(candidates)
            client = session.get(Client, invoice.client_id)
            left = payments.outstanding(session, invoice)
            tds = money(left / 10) if rng.random() < 0.3 else "0"
            cash = money(left - Decimal(tds)) if Decimal(tds) < left else "0.01"
            if Decimal(cash) + Decimal(tds) <= left and Decimal(cash) > 0:
                payments_made.append(books.pay(client, invoice, cash, tds)[0])
        elif choice == "unallocate":
            live = session.scalars(
                select(PaymentAllocation).where(PaymentAllocation.removed_at.is_(None))
            ).all()
            if live:
                payments.unallocate(session, rng.choice(live))
        elif choice == "void_payment":
            live = [p for p in payments_made if p.voided_at is None]
            if live:
                payments.void_payment(session, rng.choice(live), "cheque bounced")
        elif choice == "credit" and candidates:
            invoice = rng.choice(candidates)
            left = payments.outstanding(session, invoice)
            amount = "" if rng.random() < 0.2 else money(left)
            credits.issue_credit_note(session, books.tenant, invoice, amount, "discount", today)
        elif choice == "write_off":
            allowed = [i for i in candidates if i.status != "disputed"]
            if allowed:
                invoicing.write_off(session, rng.choice(allowed), "bad debt")
        elif choice == "void":
            allowed = [
                i
                for i in invoices
                if i.status in ("draft", "issued", "sent", "overdue")
                and payments.outstanding(session, i) == i.total
            ]
            if allowed:
                invoicing.void(session, rng.choice(allowed))
        elif choice == "dispute":
            allowed = [
                i for i in invoices if i.status in ("issued", "sent", "overdue", "partly_paid")
            ]
            if allowed:
                invoicing.dispute(session, rng.choice(allowed), "wrong quantity")
        elif choice == "resolve":
            allowed = [i for i in invoices if i.status == "disputed"]
            if allowed:
                invoicing.resolve_dispute(session, rng.choice(allowed), today)
        elif choice == "due_date" and candidates:
            invoice = rng.choice(candidates)
            invoice.due_date = invoice.due_date + timedelta(days=rng.randint(-40, 40))
            session.flush()
        elif choice == "issue_draft":
            drafts = [i for i in invoices if i.status == "draft"]
            if drafts:
                draft = rng.choice(drafts)
                draft.number, draft.status = f"AG/D{draft.id}", "issued"
                draft.issue_date, draft.due_date = today, today + timedelta(days=15)
                session.flush()
        elif choice == "roll":
            today += timedelta(days=rng.choice([1, 1, 1, 2, 7, 29, 30, 31, 200]))
            aging.ensure_current(session, today)
        elif choice == "settings" and rng.random() < 0.3:
            bounds = sorted(rng.sample(range(1, 120), rng.randint(1, 5)))
            aging.update_settings(session, rng.choice(["due_date", "issue_date"]), bounds, today)
        operations[choice] += 1
        check_summary(session, today)
    assert operations["pay"] > 20 and operations["roll"] > 20 and operations["credit"] > 5
    assert operations["several_invoices"] > 5
    assert aging.maintained_summary(session)  # something is still owed at the end


def test_daily_job_rolls_each_tenant_and_keeps_a_snapshot(app, books, run_jobs):
    from app.aging.models import AgingSnapshot
    from jobs.aging import roll_aging_all

    session, client = books.session, books.client()
    today = local_date(books.tenant.time_zone)
    books.invoice(client, "700.00", due=today - timedelta(days=40))
    aging.rebuild(session, today - timedelta(days=400), "due_date", (30, 60, 90))  # long ago
    session.commit()
    with app.app_context():
        assert roll_aging_all(every_tenant=True) >= 1
    run_jobs(["default"])
    assert aging.current_state(session).as_of == today
    [snapshot] = session.scalars(select(AgingSnapshot).where(AgingSnapshot.snapshot_on == today))
    assert snapshot.outstanding == Decimal("700.00") and snapshot.overdue == Decimal("700.00")
    check_summary(session, today)
    assert aging.maintained_summary(session)[(client.id, "INR", 2)] == (Decimal("700.00"), 1)
