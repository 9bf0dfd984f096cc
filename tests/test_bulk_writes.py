"""A page of new records written set-based (a sync's first pull, a Tally file) ends exactly as
the same records written one at a time: the same clients, contacts, invoices and lines, the
same refusals in the same words, the same events, audit entries and aging figures. Each test
writes the records both ways in the same workspace (one way undone before the other) and
compares what each left."""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal

from sqlalchemy import event, select

from app.aging.models import AgingEntry
from app.audit.models import AuditEntry
from app.audit.services import SOURCE_KEY
from app.clients.models import Client, Contact
from app.clients.services import (
    ClientError,
    NewClient,
    accounts_contact_name,
    client_context,
    create_client,
    create_clients,
    save_contact,
)
from app.core.events import DomainEvent
from app.custom_fields import services as custom_fields
from app.integrations.connectors.accounting import BookInvoice, BookLine
from app.invoicing.bulk import insert_invoices
from app.invoicing.models import Invoice, InvoiceLine
from app.sync import mapping
from tests.helpers import tenant_session

# Values that differ between two writes of the same record (keys, moments).
MOMENTS_AND_KEYS = {"id", "created_at", "updated_at", "client_id", "invoice_id", "number"}

TERMS = {"country": "IN", "location": "local", "payment_terms": "net", "payment_days": "30"}
ENTRIES = [
    # Goes in, with its billing contact named after its accounts.
    NewClient(
        {"full_name": "Kaveri Foods Private Limited", "short_name": "Kaveri", **TERMS},
        {"email": "accounts@kaveri.example", "phone": ""},
    ),
    # Another client of the workspace has this name already.
    NewClient({"full_name": "Existing Traders", "short_name": "Existing2", **TERMS}),
    # A GSTIN with a wrong check character.
    NewClient(
        {
            "full_name": "Deccan Steel Works",
            "short_name": "Deccan",
            **TERMS,
            "gstin": "36AABCD9052E1ZX",
        }
    ),
    # The same short name as the first one of this page.
    NewClient({"full_name": "Kaveri Foods (Mysuru)", "short_name": "kaveri", **TERMS}),
    # Its billing e-mail is not an address: the whole customer is refused.
    NewClient(
        {"full_name": "Malnad Spices", "short_name": "Malnad", **TERMS},
        {"email": "not-an-address", "phone": ""},
    ),
    # Refused above (its contact), so its name is free here.
    NewClient({"full_name": "Malnad Spices", "short_name": "Malnad", **TERMS}),
    # A prospect (an enquiry): lead.received too.
    NewClient({"full_name": "Tunga Exports", "short_name": "Tunga", **TERMS, "status": "prospect"}),
]


def _one_at_a_time(session, context, entry: NewClient) -> int | ClientError:
    """What the per-record path does with one new customer (create_client, then its billing
    contact), each in a savepoint of its own."""
    try:
        with session.begin_nested():
            client = create_client(session, context, entry.raw)
            if entry.billing is not None:
                raw = {
                    "full_name": accounts_contact_name(client.short_name),
                    "roles": ["billing"],
                    **entry.billing,
                }
                save_contact(session, client, raw, context.tenant_country)
    except ClientError as error:
        return error
    return client.id


def _plain(values: dict) -> str:
    return json.dumps(
        {k: v for k, v in values.items() if k not in MOMENTS_AND_KEYS}, sort_keys=True, default=str
    )


def _left_by_clients(session, since_event: int, since_entry: int) -> dict:
    clients = session.scalars(select(Client).order_by(Client.short_name)).all()
    names = {client.id: client.short_name for client in clients}
    contacts = session.scalars(select(Contact).order_by(Contact.id)).all()
    events = session.scalars(
        select(DomainEvent).where(DomainEvent.id > since_event).order_by(DomainEvent.id)
    ).all()
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.id > since_entry).order_by(AuditEntry.id)
    ).all()
    return {
        "clients": [_plain(_columns(client)) for client in clients],
        "contacts": sorted(
            (names[contact.client_id], _plain(_columns(contact))) for contact in contacts
        ),
        "events": sorted(
            (event.type, names[event.subject_id], event.user_id, _plain(event.data))
            for event in events
        ),
        "audit": sorted(
            (
                entry.entity,
                entry.action,
                entry.actor_user_id,
                entry.source,
                names[int(entry.subject.split(":")[1])],
                _plain(entry.changes),
            )
            for entry in entries
        ),
    }


def _columns(record) -> dict:
    return {column.key: getattr(record, column.key) for column in type(record).__table__.c}


def _last_ids(session) -> tuple[int, int]:
    event = session.scalar(select(DomainEvent.id).order_by(DomainEvent.id.desc()).limit(1)) or 0
    entry = session.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1)) or 0
    return event, entry


def test_new_customers_written_together_end_as_written_one_at_a_time(
    db_session, make_tenant, make_user, make_client
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    session = tenant_session(db_session, tenant, actor_id=owner.id)
    session.info[SOURCE_KEY] = "Tally sync"
    make_client(
        session, name="Existing Traders", short_name="Existing", full_name="Existing Traders"
    )
    context = client_context(session, tenant)
    since = _last_ids(session)

    with session.begin_nested() as one_by_one:
        singly = [_one_at_a_time(session, context, entry) for entry in ENTRIES]
        left_singly = _left_by_clients(session, *since)
        one_by_one.rollback()
    together = create_clients(session, context, ENTRIES)
    left_together = _left_by_clients(session, *since)

    said = [str(outcome) if isinstance(outcome, ClientError) else "in" for outcome in together]
    assert said == [
        str(outcome) if isinstance(outcome, ClientError) else "in" for outcome in singly
    ]
    assert said[0] == "in" and said[5] == "in" and said[6] == "in"
    assert said[1] == "full_name: Another client has this full name."
    assert "gstin" in said[2]
    assert said[3] == "short_name: Another client has this short name."
    assert said[4].startswith("email:")
    assert left_together == left_singly
    # Written, not merely alike: each created client is there with its billing contact,
    # events and audit entries.
    kaveri = session.get(Client, together[0])
    assert kaveri.short_name == "Kaveri"
    [contact] = session.scalars(select(Contact).where(Contact.client_id == kaveri.id)).all()
    assert (contact.full_name, contact.roles) == ("Accounts, Kaveri", ["billing"])
    assert {event[0] for event in left_together["events"]} == {"client.created", "lead.received"}
    assert {(entry[0], entry[3]) for entry in left_together["audit"]} == {
        ("clients", "Tally sync"),
        ("client_contacts", "Tally sync"),
    }


def _book_invoice(number: str, client_gstin_state: str = "29") -> BookInvoice:
    lines = (
        BookLine(
            "Cotton yarn, 40s",
            Decimal("10"),
            Decimal("1200.00"),
            Decimal("12000.00"),
            Decimal("18"),
            Decimal("2160.00"),
            "5205",
        ),
        BookLine(
            "Freight",
            Decimal("1"),
            Decimal("500.00"),
            Decimal("500.00"),
            Decimal("18"),
            Decimal("90.00"),
            "9965",
        ),
    )
    return BookInvoice(
        remote_id=f"tally-{number}",
        number=number,
        contact_remote_id="ledger-1",
        issue_date=date(2026, 9, 1),
        due_date=date(2026, 10, 1),
        currency="INR",
        state="open",
        lines=lines,
        subtotal=Decimal("12500.00"),
        tax_total=Decimal("2250.00"),
        total=Decimal("14750.00"),
        amount_due=Decimal("14750.00"),
        place_of_supply=client_gstin_state,
    )


def _left_by_invoice(session, invoice_id: int, since_entry: int) -> dict:
    session.expire_all()  # as the database holds them
    invoice = session.get(Invoice, invoice_id)
    lines = session.scalars(
        select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.id)
    ).all()
    aging = session.get(AgingEntry, invoice_id)
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.id > since_entry).order_by(AuditEntry.id)
    ).all()
    return {
        "invoice": _plain(_columns(invoice)),
        "lines": [_plain(_columns(line)) for line in lines],
        "aging": _plain(_columns(aging)),
        # A line's subject is its own id: told apart by its entity alone.
        "audit": sorted(
            (
                e.entity,
                e.action,
                e.actor_user_id,
                e.source,
                e.subject if e.entity == "invoices" else None,
                _plain(e.changes),
            )
            for e in entries
        ),
    }


def test_new_invoices_written_together_end_as_written_one_at_a_time(
    db_session, make_tenant, make_user, make_client
):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="29")
    session = tenant_session(db_session, tenant, actor_id=owner.id)
    session.info[SOURCE_KEY] = "Tally sync"
    client = make_client(session, gstin="29AAGCB1286Q1Z4", region="29")
    today = date(2026, 12, 5)
    since = _last_ids(session)[1]

    flushed = mapping.invoice_from(session, tenant, client, _book_invoice("T-1"), today)
    session.add(flushed)
    session.flush()
    left_flushed = _left_by_invoice(session, flushed.id, since)
    since = _last_ids(session)[1]

    written = [
        mapping.invoice_from(session, tenant, client, _book_invoice(number), today)
        for number in ("T-2", "T-3")
    ]
    insert_invoices(session, written)
    assert written[0].id and written[1].id and written[0].id != flushed.id
    left_written = _left_by_invoice(session, written[0].id, since)
    assert [line.invoice_id for line in session.get(Invoice, written[1].id).lines] == [
        written[1].id,
        written[1].id,
    ]

    assert left_written["invoice"] == left_flushed["invoice"]
    assert left_written["lines"] == left_flushed["lines"]
    assert left_written["aging"] == left_flushed["aging"]
    # Each of the two has the audit entries (its own, its lines') the flush wrote for the one
    # written alone.
    assert left_written["audit"] == sorted(left_flushed["audit"] * 2)


def test_new_customers_written_together_take_custom_defaults_reading_definitions_once(
    db_session, make_tenant, make_user
):
    """A first sync brings thousands of customers: each gets the workspace's custom-field
    defaults, and the definitions are read once for the page, not once a customer."""
    owner = make_user()
    tenant = make_tenant(owner=owner)
    session = tenant_session(db_session, tenant, actor_id=owner.id)
    custom_fields.save_field(
        session,
        "clients",
        {
            "label": "Segment",
            "field_type": "choice",
            "choices": "Retail\nExport",
            "default_value": "retail",
        },
    )
    context = client_context(session, tenant)
    entries = [
        NewClient({"full_name": f"Trader {n}", "short_name": f"T{n}", **TERMS}) for n in range(12)
    ]
    definitions_read = []

    def seen(_conn, _cursor, statement, *_):
        if re.search(r"FROM\s+\S*custom_fields\b", statement):
            definitions_read.append(statement)

    event.listen(session.get_bind(), "before_cursor_execute", seen)
    try:
        made = create_clients(session, context, entries)
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", seen)

    assert len(definitions_read) == 1
    assert all(not isinstance(outcome, ClientError) for outcome in made)
    assert {session.get(Client, client_id).custom_fields["segment"] for client_id in made} == {
        "retail"
    }
