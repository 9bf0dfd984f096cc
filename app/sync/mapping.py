"""Duebook's records in the books' neutral shape (app.integrations.connectors.accounting) and
back: what a client, an invoice, a credit note and a payment allocation look like to the books,
the fields the engine compares, and writing what the books hold into Duebook through the
areas' own services (so every rule of a client, an invoice or a payment holds for synced ones).

Compared values are plain JSON (strings, money as "1234.50"), so they can be kept as what both
sides last agreed (`SyncLink.agreed`) and shown side by side on the conflicts page."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clients.models import Client, Contact
from app.clients.rules import ClientContext
from app.clients.services import (
    ClientError,
    NewClient,
    accounts_contact_name,
    client_context,
    create_client,
    create_clients,
    save_contact,
    update_client,
)
from app.core.money import to_money
from app.core.number_formats import fiscal_year_of
from app.core.regions import GST_TO_ISO, region_code
from app.core.terminology import term
from app.integrations.connectors.accounting import (
    Address,
    BookContact,
    BookCreditNote,
    BookInvoice,
    BookLine,
    BookPayment,
)
from app.invoicing.gst import place_of_supply_from_gstin
from app.invoicing.models import CreditNote, Invoice, InvoiceLine
from app.invoicing.services import InvoiceError, tax_setting
from app.invoicing.words import CURRENCIES as WORDED_CURRENCIES
from app.invoicing.words import amount_in_words
from app.payments.models import Payment, PaymentAllocation
from app.settings.models import WorkspaceSettings
from tenants.models import Tenant

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# The series of invoices that came from the books with the books' own numbers: Duebook's
# numbering never counts them.
BOOKS_SERIES = "BOOKS"
# Fields of a client both sides may change, as the books call them.
CONTACT_FIELDS = (
    "name",
    "email",
    "phone",
    "tax_number",
    "address_line1",
    "address_line2",
    "city",
    "postal_code",
)
CONTACT_LABELS = {
    "name": "Name",
    "email": "Billing e-mail",
    "phone": "Phone",
    "tax_number": "Tax number (GSTIN / ABN)",
    "address_line1": "Address",
    "address_line2": "Address, second line",
    "city": "City",
    "postal_code": "Postal code",
}


class NotAccepted(ValueError):
    """A record of the books Duebook cannot take; the message says why, for the run's list."""


def _text(value) -> str | None:
    text = " ".join(str(value or "").split())
    return text or None


def _money(value) -> str:
    return str(to_money(value))


# Clients --------------------------------------------------------------------------------------


def billing_contact(session: Session, client: Client) -> Contact | None:
    """The contact whose e-mail the books know: the billing one, else the first."""
    contacts = session.scalars(
        select(Contact)
        .where(Contact.client_id == client.id, Contact.deleted_at.is_(None))
        .order_by(Contact.id)
    ).all()
    for contact in contacts:
        if "billing" in (contact.roles or []):
            return contact
    return contacts[0] if contacts else None


def _tax_number(client: Client) -> str | None:
    if client.country == "IN":
        return client.gstin
    if client.country == "AU":
        return client.abn
    return client.vat_number or client.tin


def billing_contacts(session: Session, client_ids: list[int]) -> dict[int, Contact]:
    """`billing_contact` of many clients in one query."""
    chosen: dict[int, Contact] = {}
    for contact in session.scalars(
        select(Contact)
        .where(Contact.client_id.in_(client_ids), Contact.deleted_at.is_(None))
        .order_by(Contact.id)
    ):
        current = chosen.get(contact.client_id)
        if current is None or (
            "billing" in (contact.roles or []) and "billing" not in (current.roles or [])
        ):
            chosen[contact.client_id] = contact
    return chosen


_LOOK_UP = object()


def client_values(session: Session, client: Client, contact=_LOOK_UP) -> dict:
    """`contact`: the client's billing contact (or None) when the caller read it already."""
    contact = billing_contact(session, client) if contact is _LOOK_UP else contact
    return {
        "name": _text(client.full_name),
        "email": (contact.email or "").lower() or None if contact else None,
        "phone": contact.phone if contact else None,
        "tax_number": _tax_number(client),
        "address_line1": _text(client.address_line1),
        "address_line2": _text(client.address_line2),
        "city": _text(client.city),
        "postal_code": _text(client.postal_code),
    }


def contact_values(record: BookContact) -> dict:
    return {
        "name": _text(record.name),
        "email": (record.email or "").strip().lower() or None,
        "phone": _text(record.phone),
        "tax_number": (record.tax_number or "").replace(" ", "").upper() or None,
        "address_line1": _text(record.address.line1),
        "address_line2": _text(record.address.line2),
        "city": _text(record.address.city),
        "postal_code": _text(record.address.postal_code),
    }


def contact_to_json(record: BookContact) -> dict:
    data = asdict(record)
    data["updated_at"] = record.updated_at.isoformat() if record.updated_at else None
    return data


def contact_from_json(data: dict) -> BookContact:
    values = dict(data)
    values["address"] = Address(**(values.get("address") or {}))
    if values.get("updated_at"):
        values["updated_at"] = datetime.fromisoformat(values["updated_at"])
    return BookContact(**values)


def book_contact(client: Client, values: dict, remote_id: str | None, version=None):
    return BookContact(
        remote_id=remote_id,
        name=values["name"] or client.short_name,
        email=values["email"],
        phone=values["phone"],
        tax_number=values["tax_number"],
        currency=client.currency,
        address=Address(
            line1=values["address_line1"],
            line2=values["address_line2"],
            city=values["city"],
            region=client.region,
            postal_code=values["postal_code"],
            country=client.country,
        ),
        version=version,
        payment_days=client.payment_days,
    )


def _client_raw(tenant: Tenant, record: BookContact, values: dict) -> dict:
    """The client form's fields for a customer of the books."""
    country = (record.address.country or tenant.country or "").upper()[:2] or tenant.country
    tax = values["tax_number"] or ""
    raw = {
        "full_name": values["name"] or "",
        "short_name": (values["name"] or "")[:60],
        "location": "local" if country == tenant.country else "foreign",
        "country": country,
        "currency": (record.currency or "").upper() or tenant_currency(tenant),
        "payment_terms": "net",
        "payment_days": str(record.payment_days or 30),
        "address_line1": values["address_line1"] or "",
        "address_line2": values["address_line2"] or "",
        "city": values["city"] or "",
        "postal_code": values["postal_code"] or "",
    }
    if country == "IN" and tax:
        raw["gstin"] = tax
        with suppress(ValueError):  # the client rules say what is wrong with the GSTIN
            raw["region"] = place_of_supply_from_gstin(tax)
    elif country == "AU" and tax:
        raw["abn"] = tax
    elif tax:
        raw["tin"] = tax
    if country == "IN" and "region" not in raw and record.address.region:
        raw["region"] = gst_state(record.address.region) or record.address.region
    return raw


ISO_TO_GST = {iso: gst for gst, iso in GST_TO_ISO.items()}


def gst_state(region: str) -> str | None:
    """An Indian state as the books write it (GST code "29", name, or ISO "KA" / "IN-KA") as
    its GST state code."""
    text = (region or "").strip().upper().removeprefix("IN-")
    return ISO_TO_GST.get(text) or region_code(region or "")


def tenant_currency(tenant: Tenant) -> str:
    return {"IN": "INR", "AU": "AUD", "PH": "PHP"}.get(tenant.country, "INR")


def _refused(error: ClientError) -> NotAccepted:
    said = "; ".join(f"{key.replace('_', ' ')}: {reason}" for key, reason in error.errors.items())
    return NotAccepted(f"Duebook cannot take this customer ({said})")


def create_client_from(
    session: Session, tenant: Tenant, record: BookContact, context: ClientContext | None = None
) -> Client:
    """`context`: the workspace's client context when the caller keeps one for many records."""
    values = contact_values(record)
    if not values["name"]:
        raise NotAccepted("The customer has no name in the books.")
    try:
        client = create_client(
            session, context or client_context(session, tenant), _client_raw(tenant, record, values)
        )
    except ClientError as error:
        raise _refused(error) from None
    if values["email"] or values["phone"]:
        _set_billing(session, client, values, tenant, contact=None)  # a new client has none
    return client


def create_clients_from(
    session: Session, tenant: Tenant, records: list[BookContact], context: ClientContext
) -> list[int | NotAccepted]:
    """`create_client_from` for a page of new customers at once (set-based, by the same rules:
    app.clients.services.create_clients): per record, its new client's id or why it was
    refused."""
    entries: list[NewClient] = []
    refusals: list[NotAccepted | None] = []
    for record in records:
        values = contact_values(record)
        if not values["name"]:
            refusals.append(NotAccepted("The customer has no name in the books."))
            continue
        billing = (
            {"email": values["email"], "phone": values["phone"]}
            if values["email"] or values["phone"]
            else None
        )
        entries.append(NewClient(_client_raw(tenant, record, values), billing))
        refusals.append(None)
    made = iter(create_clients(session, context, entries))
    outcomes: list[int | NotAccepted] = []
    for refusal in refusals:
        outcome = refusal or next(made)
        outcomes.append(_refused(outcome) if isinstance(outcome, ClientError) else outcome)
    return outcomes


def apply_contact(
    session: Session, tenant: Tenant, client: Client, values: dict, fields: set[str]
) -> None:
    """Write the books' values of `fields` into the client (and its billing contact)."""
    if not fields:
        return
    raw = {}
    for name in fields & {"name", "address_line1", "address_line2", "city", "postal_code"}:
        raw["full_name" if name == "name" else name] = values[name] or ""
    if "tax_number" in fields:
        key = {"IN": "gstin", "AU": "abn"}.get(client.country, "tin")
        raw[key] = values["tax_number"] or ""
    if raw:
        try:
            update_client(session, client_context(session, tenant), client, raw)
        except ClientError as error:
            raise _refused(error) from None
    if fields & {"email", "phone"}:
        _set_billing(session, client, values, tenant)


def _set_billing(
    session: Session, client: Client, values: dict, tenant: Tenant, contact=_LOOK_UP
) -> None:
    contact = billing_contact(session, client) if contact is _LOOK_UP else contact
    if not (values["email"] or values["phone"]):
        return
    raw = {
        "full_name": contact.full_name if contact else accounts_contact_name(client.short_name),
        "roles": contact.roles if contact else ["billing"],
        "email": values["email"] or "",
        "phone": values["phone"] or "",
    }
    try:
        save_contact(session, client, raw, tenant.country, contact)
    except ClientError as error:
        raise _refused(error) from None


# Invoices --------------------------------------------------------------------------------------


def _state(invoice: Invoice, owed: Decimal | None) -> str:
    if invoice.status == "void":
        return "void"
    if invoice.status == "draft":
        return "draft"
    if invoice.status == "paid" or (owed is not None and owed <= 0):
        return "paid"
    return "open"


def invoice_values(invoice: Invoice, owed: Decimal | None = None) -> dict:
    return {
        "number": invoice.number,
        "issue_date": invoice.issue_date.isoformat() if invoice.issue_date else None,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "currency": invoice.currency,
        "total": _money(invoice.total),
        "state": _state(invoice, owed),
    }


def book_invoice_values(record: BookInvoice) -> dict:
    return {
        "number": record.number,
        "issue_date": record.issue_date.isoformat(),
        "due_date": record.due_date.isoformat() if record.due_date else None,
        "currency": record.currency.upper(),
        "total": _money(record.total),
        "state": record.state,
    }


def books_facts(record) -> dict:
    """What the reconciliation report keeps of a record as the books showed it."""
    facts = {"deleted": record.deleted}
    if isinstance(record, BookInvoice | BookCreditNote):
        facts.update(
            number=record.number,
            date=record.issue_date.isoformat(),
            currency=record.currency.upper(),
            total=_money(record.total),
            state=record.state,
        )
        if isinstance(record, BookInvoice):
            facts["amount_due"] = _money(record.amount_due)
    elif isinstance(record, BookPayment):
        facts.update(
            date=record.paid_on.isoformat(),
            currency=record.currency.upper(),
            total=_money(record.amount),
        )
    return facts


def _line_of(line: InvoiceLine) -> BookLine:
    tax = line.cgst + line.sgst + line.igst + line.other_tax
    return BookLine(
        description=line.description,
        quantity=line.quantity,
        unit_price=line.unit_price,
        net_amount=line.taxable_value,
        tax_rate=line.tax_rate,
        tax_amount=tax,
        hsn_sac=line.hsn_sac,
    )


def book_invoice(
    invoice: Invoice, contact_remote_id: str, owed: Decimal, remote_id: str | None = None
) -> BookInvoice:
    return BookInvoice(
        remote_id=remote_id,
        number=invoice.number,
        contact_remote_id=contact_remote_id,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        currency=invoice.currency,
        state=_state(invoice, owed),
        lines=tuple(_line_of(line) for line in sorted(invoice.lines, key=lambda x: x.position)),
        subtotal=invoice.subtotal,
        tax_total=invoice.cgst + invoice.sgst + invoice.igst + invoice.other_tax,
        total=invoice.total,
        amount_due=owed,
        place_of_supply=invoice.place_of_supply,
    )


@dataclass(frozen=True)
class _Split:
    cgst: Decimal
    sgst: Decimal
    igst: Decimal
    other: Decimal


def _split(tax: Decimal, regime: str) -> _Split:
    """The books give one tax amount per line; Duebook keeps India's as CGST + SGST (within a
    state) or IGST (between states), and other countries' as one tax."""
    if regime == "intra":
        cgst = (tax / 2).quantize(CENT, rounding=ROUND_HALF_UP)
        return _Split(cgst, tax - cgst, ZERO, ZERO)
    if regime in ("inter", "export"):
        return _Split(ZERO, ZERO, tax, ZERO)
    return _Split(ZERO, ZERO, ZERO, tax)


def _regime(
    session: Session,
    tenant: Tenant,
    client: Client,
    record: BookInvoice,
    workspace: WorkspaceSettings | None = None,
) -> str:
    workspace = workspace or session.get(WorkspaceSettings, tenant.id)
    try:
        regime = tax_setting(tenant, workspace, client).regime
    except InvoiceError:
        regime = "other"
    if tenant.country == "IN" and client.country == "IN" and record.place_of_supply:
        supplier = (tenant.region or "").zfill(2)
        regime = "intra" if record.place_of_supply.zfill(2) == supplier else "inter"
    if regime == "export" and record.tax_total > 0:
        regime = "inter"  # exported with IGST paid rather than under the LUT
    return regime


def check_book_invoice(record: BookInvoice) -> None:
    if not record.number or len(record.number) > 16:
        raise NotAccepted(
            f"The invoice number “{record.number or ''}” is empty or longer than Duebook's 16 "
            "characters."
        )
    if record.currency.upper() not in WORDED_CURRENCIES and len(record.currency) != 3:
        raise NotAccepted(f"The currency “{record.currency}” is not one Duebook knows.")
    if not record.lines:
        raise NotAccepted(f"Invoice {record.number} has no lines in the books.")
    if record.total < 0:
        raise NotAccepted(f"Invoice {record.number} has a negative total.")


def _lines(record: BookInvoice, regime: str) -> list[InvoiceLine]:
    lines = []
    for position, line in enumerate(record.lines, start=1):
        split = _split(to_money(line.tax_amount), regime)
        net = to_money(line.net_amount)
        lines.append(
            InvoiceLine(
                position=position,
                description=(line.description or "Item")[:255],
                hsn_sac=(line.hsn_sac or None) and line.hsn_sac[:8],
                quantity=line.quantity,
                unit_price=to_money(line.unit_price),
                taxable_value=net,
                tax_rate=min(line.tax_rate, Decimal("100")).quantize(CENT),
                cgst=split.cgst,
                sgst=split.sgst,
                igst=split.igst,
                other_tax=split.other,
                total=net + split.cgst + split.sgst + split.igst + split.other,
            )
        )
    return lines


def _totals(invoice: Invoice, lines: list[InvoiceLine]) -> None:
    invoice.subtotal = sum((line.taxable_value for line in lines), ZERO)
    invoice.cgst = sum((line.cgst for line in lines), ZERO)
    invoice.sgst = sum((line.sgst for line in lines), ZERO)
    invoice.igst = sum((line.igst for line in lines), ZERO)
    invoice.other_tax = sum((line.other_tax for line in lines), ZERO)
    invoice.total = sum((line.total for line in lines), ZERO)
    invoice.amount_in_words = (
        amount_in_words(invoice.total, invoice.currency)
        if invoice.currency in WORDED_CURRENCIES
        else ""
    )


def invoice_from(
    session: Session,
    tenant: Tenant,
    client: Client,
    record: BookInvoice,
    today: date,
    workspace: WorkspaceSettings | None = None,
) -> Invoice:
    """An issued invoice with the books' number, lines and tax, not added to the session (the
    caller writes a page of them at once: app.invoicing.bulk); its status follows what is paid
    (the books' payments arrive as payments). `workspace`: the workspace's settings when the
    caller holds them for many invoices."""
    check_book_invoice(record)
    if record.currency.upper() != client.currency:
        raise NotAccepted(
            f"Invoice {record.number} is in {record.currency.upper()} but its {term('client')} "
            f"{client.full_name} is billed in {client.currency}."
        )
    regime = _regime(session, tenant, client, record, workspace)
    invoice = Invoice(
        client_id=client.id,
        number=record.number,
        series=BOOKS_SERIES,
        fiscal_year=fiscal_year_of(record.issue_date, tenant.country),
        status="void" if record.state == "void" else "issued",
        issue_date=record.issue_date,
        due_date=record.due_date or record.issue_date,
        currency=record.currency.upper(),
        recipient_gstin=client.gstin,
        place_of_supply=record.place_of_supply
        or (client.region if tenant.country == "IN" else None),
        tax_regime=regime,
    )
    lines = _lines(record, regime)
    invoice.lines.extend(lines)
    _totals(invoice, lines)
    if invoice.total != to_money(record.total):
        raise NotAccepted(
            f"Invoice {record.number}: its lines add up to {invoice.total} but the books say "
            f"{to_money(record.total)}."
        )
    if invoice.status == "issued":
        invoice.status = invoice.resting_status(today)
    return invoice


def apply_invoice(
    session: Session, tenant: Tenant, invoice: Invoice, record: BookInvoice, fields: set[str]
) -> None:
    """The books own an invoice's ledger fields: their dates, lines and state replace ours.
    Lines change only while nothing is paid on it (a paid amount would no longer match)."""
    if "due_date" in fields and record.due_date:
        invoice.due_date = record.due_date
    if "issue_date" in fields:
        invoice.issue_date = record.issue_date
    if "total" in fields:
        paid = session.scalar(
            select(PaymentAllocation.id).where(
                PaymentAllocation.invoice_id == invoice.id, PaymentAllocation.removed_at.is_(None)
            )
        )
        if paid is not None:
            raise NotAccepted(
                f"Invoice {invoice.number} changed total in the books but has payments in "
                "Duebook: change it by a credit note instead."
            )
        client = session.get(Client, invoice.client_id)
        regime = _regime(session, tenant, client, record)
        for line in list(invoice.lines):
            session.delete(line)
        session.flush()
        lines = _lines(record, regime)
        invoice.lines.extend(lines)
        invoice.tax_regime = regime
        _totals(invoice, lines)
    if "state" in fields and record.state == "void" and invoice.status != "void":
        paid = session.scalar(
            select(PaymentAllocation.id).where(
                PaymentAllocation.invoice_id == invoice.id, PaymentAllocation.removed_at.is_(None)
            )
        )
        if paid is not None:
            raise NotAccepted(
                f"Invoice {invoice.number} is voided in the books but has payments in Duebook."
            )
        invoice.status = "void"
    session.flush()


# Credit notes ------------------------------------------------------------------------------------


def credit_note_values(record: BookCreditNote) -> dict:
    return {
        "number": record.number,
        "issue_date": record.issue_date.isoformat(),
        "currency": record.currency.upper(),
        "total": _money(record.total),
        "state": record.state,
    }


# Payments ----------------------------------------------------------------------------------------


def book_payment_values(record: BookPayment) -> dict:
    return {
        "paid_on": record.paid_on.isoformat(),
        "amount": _money(record.amount),
        "currency": record.currency.upper(),
        "reference": record.reference,
    }


def book_payment(
    allocation: PaymentAllocation,
    payment: Payment,
    invoice_remote_id: str,
    contact_remote_id: str | None,
) -> BookPayment:
    return BookPayment(
        remote_id=None,
        invoice_remote_id=invoice_remote_id,
        contact_remote_id=contact_remote_id,
        paid_on=payment.received_on,
        amount=allocation.amount,
        currency=payment.currency,
        reference=(payment.reference or f"Duebook payment {payment.id}")[:120],
    )


def with_our_reference(record: BookPayment, allocation_id: int) -> BookPayment:
    """A pushed payment's reference carries our allocation id, so `find` recognises it after a
    crash, and a payment that comes back from the books unlinked (an import file) is known as
    ours (the payer's own reference stays in front)."""
    tag = f"DB-{allocation_id}"
    reference = f"{record.reference} {tag}" if record.reference else tag
    return replace(record, reference=reference[-120:])


def book_credit_note(
    note: CreditNote, contact_remote_id: str, invoice_remote_id: str
) -> BookCreditNote:
    return BookCreditNote(
        remote_id=None,
        number=note.number,
        contact_remote_id=contact_remote_id,
        issue_date=note.issue_date,
        currency=note.currency,
        state="open",
        lines=tuple(
            BookLine(
                description=line.description,
                quantity=Decimal(1),
                unit_price=line.taxable_value,
                net_amount=line.taxable_value,
                tax_rate=line.tax_rate,
                tax_amount=line.cgst + line.sgst + line.igst + line.other_tax,
                hsn_sac=line.hsn_sac,
            )
            for line in note.lines
        ),
        subtotal=note.subtotal,
        tax_total=note.cgst + note.sgst + note.igst + note.other_tax,
        total=note.total,
        invoice_remote_id=invoice_remote_id,
        reason=note.reason[:255],
    )
