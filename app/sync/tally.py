"""Tally's own steps around the sync engine: no consent screen, so a workspace sets Tally up,
pairs the agent on the Tally computer with a one-time code, and picks the company the agent
finds open in Tally; or, without an agent, names its company and exchanges XML files by hand.

Files: a person uploads what they exported from Tally (the ledgers and the day book, together)
and a run reads them through the same connector readers, mapping and links as the agent's
answers (so a voucher read twice is linked once, and a voucher Duebook wrote comes back linked
to its invoice). The other way, `import_file` is the XML of what Duebook still owes Tally (new
customers as party ledgers, invoices as sales vouchers, credit notes, receipts): each voucher's
GUID and REMOTEID come from the same stable key a push through the agent would use, so
importing the file twice alters the vouchers instead of doubling them, and pairing an agent
later finds them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.core.regions import region_code, state_name
from app.core.storage import get_storage, save_in_transaction, tenant_key
from app.integrations import agent_relay
from app.integrations.connectors import Field
from app.integrations.connectors.accounting import AccountingError
from app.integrations.connectors.tally import AGENT_SILENT_AFTER, TallyConnector
from app.integrations.connectors.tally_xml import (
    LedgerNames,
    credit_note_voucher_xml,
    import_envelope,
    party_ledger_xml,
    receipt_voucher_xml,
    sales_voucher_xml,
)
from app.integrations.models import IntegrationConnection
from app.invoicing.balance import outstanding
from app.invoicing.models import Invoice
from app.payments.models import Payment, PaymentAllocation
from app.sync import mapping, outgoing
from app.sync.books import build_connector
from app.sync.engine import record_key
from app.sync.models import SyncLink, SyncRun
from app.sync.services import (
    SyncError,
    active_run,
    choose_book,
    offered_books,
    start_run,
)
from tenants.binding import bound_tenant_id

PROVIDER = "tally"
# An uploaded export: a day book of a busy company for a year is tens of MB.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_FILES = 4


def tally_connection(session: Session) -> IntegrationConnection | None:
    return session.scalar(
        select(IntegrationConnection).where(
            IntegrationConnection.provider == PROVIDER,
            IntegrationConnection.status != "disconnected",
        )
    )


def set_up(session: Session, user_id: int) -> IntegrationConnection:
    """The workspace's Tally connection (made on first use)."""
    connection = tally_connection(session)
    if connection is None:
        connection = IntegrationConnection(
            provider=PROVIDER,
            status="enabled",
            verification="verified",
            connected_by=user_id,
            settings={},
        )
        session.add(connection)
        session.flush()
    return connection


def pairing_code(session: Session, connection: IntegrationConnection, replace: bool) -> str:
    return agent_relay.new_pairing_code(session, connection, replace)


def revoke_agent(session: Session, connection: IntegrationConnection) -> None:
    agent_relay.revoke(session, connection)


def ledger_fields(connection: IntegrationConnection | None) -> list[tuple[Field, str]]:
    """The ledger names a company posts to, with the connection's current choice of each."""
    settings = (connection.settings or {}) if connection else {}
    return [(item, settings.get(item.name, "")) for item in TallyConnector.fields]


def save_ledger_names(session: Session, connection: IntegrationConnection, raw) -> dict[str, str]:
    """The ledgers this company uses (empty: the usual name). Errors by field."""
    chosen, errors = {}, {}
    for item in TallyConnector.fields:
        value = " ".join(str(raw.get(item.name) or "").split())
        if len(value) > 120:
            errors[item.name] = f"Keep the {item.label.lower()}'s name to 120 characters."
        chosen[item.name] = value
    if errors:
        return errors
    settings = {k: v for k, v in (connection.settings or {}).items() if k not in chosen}
    settings.update({name: value for name, value in chosen.items() if value})
    connection.settings = settings
    session.flush()
    return {}


@dataclass(frozen=True)
class AgentStatus:
    paired: bool
    machine: str | None
    seen_at: datetime | None
    reachable: bool
    software: str | None
    problem: str | None
    pairing_expires_at: datetime | None

    @property
    def running(self) -> bool:
        return self.seen_at is not None and datetime.now(UTC) - self.seen_at < AGENT_SILENT_AFTER


def agent_status(connection: IntegrationConnection) -> AgentStatus:
    settings = connection.settings or {}
    agent = settings.get("agent") or {}
    pairing = settings.get("pairing") or {}
    seen = agent.get("seen_at")
    expires = pairing.get("expires_at")
    return AgentStatus(
        paired=bool(agent),
        machine=agent.get("machine"),
        seen_at=datetime.fromisoformat(seen) if seen else None,
        reachable=bool(agent.get("reachable")),
        software=agent.get("software_version"),
        problem=agent.get("problem"),
        pairing_expires_at=datetime.fromisoformat(expires) if expires else None,
    )


def find_companies(session: Session, connection: IntegrationConnection) -> list[dict]:
    """The companies open in Tally, asked through the agent (kept for the admin to pick)."""
    connector = build_connector(PROVIDER, connection.settings or {}, {})
    connector.relay = (bound_tenant_id(session), connection.id)
    connector.answer_timeout = float(current_app.config.get("TALLY_PAGE_WAIT_SECONDS", 20))
    try:
        books = connector.organisations("", None)
    except AccountingError as error:
        raise SyncError(f"Tally could not be asked for its companies: {error}") from None
    if not books:
        raise SyncError("Tally has no company open. Open your company in Tally and ask again.")
    offered = offered_books(books)
    connection.settings = {**(connection.settings or {}), "books_offered": offered}
    session.flush()
    return offered


def use_files(
    session: Session, connection: IntegrationConnection, raw, user_id: int
) -> dict[str, str]:
    """Without an agent: the company is named by the person (its state decides CGST+SGST or
    IGST). Errors by field; nothing is read until the first upload."""
    name = (raw.get("company") or "").strip()
    state = region_code((raw.get("state") or "").strip()) if raw.get("state") else None
    errors = {}
    if not name:
        errors["company"] = "Give the company's name as Tally shows it."
    elif len(name) > 191:
        errors["company"] = "Keep the company's name to 191 characters."
    if state is None:
        errors["state"] = "Choose the state the company is registered in."
    if errors:
        return errors
    book_id = f"file-{secrets.token_hex(8)}"
    connection.settings = {
        **(connection.settings or {}),
        "books_offered": [
            {"id": book_id, "name": name, "country": "IN", "region": state, "books_from": None}
        ],
        "files_only": True,
    }
    choose_book(session, connection, book_id, user_id, start=False)
    return {}


def upload(
    session: Session, connection: IntegrationConnection, files, user_id: int
) -> tuple[SyncRun | None, dict[str, str]]:
    """Keep the uploaded Tally exports and start the run that reads them."""
    if not (connection.settings or {}).get("book_id"):
        return None, {"files": "Choose the company first."}
    if active_run(session, connection.id) is not None:
        return None, {
            "files": "A sync is running: upload when it has finished (its progress is shown)."
        }
    chosen = [item for item in files if item and item.filename]
    if not chosen:
        return None, {"files": "Choose the XML files you exported from Tally."}
    if len(chosen) > MAX_FILES:
        return None, {"files": f"Upload at most {MAX_FILES} files at a time."}
    storage = get_storage(current_app)
    tenant_id = bound_tenant_id(session)
    keys, names = [], []
    for index, item in enumerate(chosen):
        head = item.stream.read(512)
        item.stream.seek(0)
        if b"<" not in head.replace(b"\x00", b""):
            return None, {"files": f"{item.filename}: this is not an XML file from Tally."}
        key = tenant_key(tenant_id, "tally", connection.id, f"{secrets.token_hex(8)}-{index}.xml")
        size, _ = save_in_transaction(session, storage, key, item.stream)
        if size > MAX_UPLOAD_BYTES:
            session.rollback()
            return None, {"files": f"{item.filename}: larger than 64 MB. Export a shorter period."}
        keys.append(key)
        names.append(item.filename[:120])
    connection.settings = {
        **(connection.settings or {}),
        "upload": {
            "keys": keys,
            "names": names,
            "at": datetime.now(UTC).isoformat(),
            "by": user_id,
        },
    }
    session.flush()
    return start_run(
        session, connection, "file" if connection.settings.get("matched_at") else "review", user_id
    ), {}


# The import file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportFile:
    content: bytes
    ledgers: int
    invoices: int
    credit_notes: int
    receipts: int

    @property
    def empty(self) -> bool:
        return not (self.ledgers or self.invoices or self.credit_notes or self.receipts)


def import_file(session: Session, connection: IntegrationConnection) -> ImportFile:
    """Tally's import XML of everything Duebook still owes the books (what a push through the
    agent would send), for Gateway of Tally > Import > Transactions."""
    settings = connection.settings or {}
    tenant_id = bound_tenant_id(session)
    names = LedgerNames.from_settings(settings)
    state = settings.get("book_region") or ""
    company = settings.get("book_name")

    def key(entity: str, local_id: int) -> str:
        return record_key(tenant_id, connection.id, entity, local_id)

    links = {
        (link.entity, link.local_id): link
        for link in session.scalars(select(SyncLink).where(SyncLink.connection_id == connection.id))
    }
    masters, vouchers = [], []
    parties: dict[int, tuple[str, str | None]] = {}

    def party_of(client: Client) -> tuple[str, str | None]:
        if client.id in parties:
            return parties[client.id]
        values = mapping.client_values(session, client)
        link = links.get(("contact", client.id))
        if link is None:
            record = mapping.book_contact(client, values, None)
            masters.append(party_ledger_xml(record, key=key("contact", client.id)))
            name = record.name
        else:
            name = (link.agreed or {}).get("name") or client.full_name
        parties[client.id] = (name, values["tax_number"])
        return parties[client.id]

    bills: dict[int, tuple[str, str]] = {}
    invoice_ids = session.scalars(outgoing.invoices_to_push(connection)).all()
    for invoice in session.scalars(select(Invoice).where(Invoice.id.in_(invoice_ids))):
        client = session.get(Client, invoice.client_id)
        party, gstin = party_of(client)
        record = mapping.book_invoice(invoice, "", outstanding(session, invoice))
        vouchers.append(
            sales_voucher_xml(
                record,
                party=party,
                key=key("invoice", invoice.id),
                names=names,
                company_state=state,
                party_gstin=gstin,
            )
        )
        bills[invoice.id] = (invoice.number, party)
    for invoice_id, link in ((k[1], v) for k, v in links.items() if k[0] == "invoice"):
        number = (link.books or {}).get("number")
        if number and invoice_id not in bills:
            invoice = session.get(Invoice, invoice_id)
            client = session.get(Client, invoice.client_id) if invoice else None
            if client is not None:
                bills[invoice_id] = (number, party_of(client)[0])
    credit_notes = 0
    for note in session.scalars(outgoing.credit_notes_to_push(connection)):
        if note.invoice_id not in bills:
            continue
        number, party = bills[note.invoice_id]
        invoice = session.get(Invoice, note.invoice_id)
        record = mapping.book_credit_note(note, "", "")
        vouchers.append(
            credit_note_voucher_xml(
                record,
                party=party,
                invoice_number=number,
                key=key("credit_note", note.id),
                names=names,
                company_state=state,
                place_of_supply=invoice.place_of_supply,
                party_gstin=parties.get(note.client_id, (None, None))[1],
            )
        )
        credit_notes += 1
    receipts = 0
    rows = session.execute(
        select(PaymentAllocation, Payment)
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .where(
            PaymentAllocation.removed_at.is_(None),
            Payment.voided_at.is_(None),
            PaymentAllocation.amount > 0,
            PaymentAllocation.created_at >= outgoing.push_from(connection),
            PaymentAllocation.id.not_in(outgoing.linked_ids(connection.id, "payment")),
        )
        .order_by(PaymentAllocation.id)
    ).all()
    for allocation, payment in rows:
        if allocation.invoice_id not in bills:
            continue
        number, party = bills[allocation.invoice_id]
        record = mapping.with_our_reference(
            mapping.book_payment(allocation, payment, "", None), allocation.id
        )
        vouchers.append(
            receipt_voucher_xml(
                record,
                party=party,
                invoice_number=number,
                key=key("payment", allocation.id),
                names=names,
            )
        )
        receipts += 1
    content = import_envelope(masters + vouchers, company=company)
    return ImportFile(
        content=content,
        ledgers=len(masters),
        invoices=len(invoice_ids),
        credit_notes=credit_notes,
        receipts=receipts,
    )


def import_file_name(connection: IntegrationConnection) -> str:
    return f"duebook-for-tally-{date.today():%Y-%m-%d}.xml"


def state_choices() -> list[tuple[str, str]]:
    """India's states and union territories by GST code, for the files-only form."""
    return [
        (code, name)
        for code, name in ((f"{n:02d}", state_name(f"{n:02d}")) for n in range(1, 39))
        if name
    ]
