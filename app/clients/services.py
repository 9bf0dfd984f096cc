"""Client rules that need the database: uniqueness, saving, conversion, the list, bulk actions,
contacts and consent, sites, and the client's timeline. Each client added or changed, from any
source (the form, an import, a sync, opening balances), is a domain event written here."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from flask import render_template
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Select,
    func,
    literal,
    literal_column,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.audit.services import SOURCE_KEY, insert_audited
from app.clients.models import (
    CONSENT_CHANNELS,
    SEARCH_EXPRESSION,
    STATUSES,
    Client,
    ClientCount,
    ClientCountChange,
    ClientRequiredField,
    Contact,
    Industry,
    Site,
)
from app.clients.rules import ClientContext, clean_client, clean_contact, clean_site
from app.core.clock import local_date
from app.core.events import emit, emit_many
from app.core.request_input import row_id
from app.core.signals import (
    DeletionBlocker,
    announce_client_archived,
    ask_client_deletion_blockers,
)
from app.core.terminology import worded
from app.custom_fields.models import CustomField
from app.custom_fields.services import (
    FORM_PREFIX,
    clean_values,
    custom_error_name,
    filter_clause,
    sort_is_numeric,
    sort_sql,
)
from app.custom_fields.services import definitions as custom_field_definitions
from app.outbox.services import queue_email
from tenants.binding import bound_schema, qualified
from tenants.models import Membership, Tenant, User

PAGE_SIZE = 25
COUNT_CAP = 10_000  # beyond this the list says "10,000+" instead of counting every row
# A filter on a custom field is answered by reading each record's JSON until the count is
# reached (the GIN index finds the rows, not their number): counting stops sooner.
CUSTOM_FILTER_COUNT_CAP = 1_000
# A search finds its matches by the trigram index first, at most this many, and the page is
# those clients sorted. Left to choose, PostgreSQL sometimes walked the clients in name order
# until a page had matched: its estimate of a search's matches comes from a sample, and at
# 100,000 clients one ANALYZE in three made it expect a thousand rows where 280 matched
# (22-30 ms a page instead of 1). A term more clients share is left to that walk.
SEARCH_NARROWS = 2_000
# What a person is told when a unique field is already another client's ("{client}": the
# workspace's word, filled by `taken_message`).
TAKEN = {
    "full_name": "Another {client} has this full name.",
    "short_name": "Another {client} has this short name.",
    "external_id": "Another {client} has this external id.",
}


def taken_message(key: str) -> str:
    return worded(TAKEN[key])


class ClientError(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def client_context(session: Session, tenant: Tenant) -> ClientContext:
    industries = session.execute(select(Industry.id, Industry.name).where(Industry.active)).all()
    members = session.scalars(
        select(Membership.user_id).where(
            Membership.tenant_id == tenant.id, Membership.active.is_(True)
        )
    )
    return ClientContext(
        tenant_country=tenant.country,
        tenant_currency=tenant.currency,
        today=local_date(tenant.time_zone),
        industries={name.lower(): industry_id for industry_id, name in industries},
        industry_ids=frozenset(industry_id for industry_id, _ in industries),
        member_ids=frozenset(members),
    )


def uniqueness_errors(session: Session, values: Mapping, exclude_id: int | None = None) -> dict:
    """Full name, short name and external id are unique among clients not deleted."""
    errors = {}
    for key in ("full_name", "short_name"):
        column = getattr(Client, key)
        query = select(Client.id).where(
            func.lower(column) == values[key].lower(), Client.deleted_at.is_(None)
        )
        if exclude_id:
            query = query.where(Client.id != exclude_id)
        if values.get(key) and session.scalar(query.limit(1)) is not None:
            errors[key] = taken_message(key)
    if values.get("external_id"):
        query = select(Client.id).where(
            Client.external_id == values["external_id"], Client.deleted_at.is_(None)
        )
        if exclude_id:
            query = query.where(Client.id != exclude_id)
        if session.scalar(query.limit(1)) is not None:
            errors["external_id"] = taken_message("external_id")
    return errors


def check_client(
    session: Session,
    context: ClientContext,
    raw: Mapping,
    exclude_id: int | None = None,
    current_custom: Mapping | None = None,
) -> dict:
    values, errors = clean_client(raw, context)
    errors.update(
        {k: v for k, v in uniqueness_errors(session, values, exclude_id).items() if k not in errors}
    )
    errors.update(_check_custom(session, raw, values, exclude_id is None, current_custom))
    if errors:
        raise ClientError(errors)
    return values


# The workspace's own fields come in raw["custom_fields"] ({key: value}) from every source: the
# form (read by custom_fields.submitted_from_form), an import row, the API. Their errors are
# keyed "cf.<key>", the name of the field's input on the form.
CUSTOM = "custom_fields"


def _check_custom(
    session: Session,
    raw: Mapping,
    values: dict,
    new: bool,
    current: Mapping | None,
    fields: list[CustomField] | None = None,
) -> dict[str, str]:
    """Custom values of a new client (defaults and required fields apply even when none were
    sent), or of an edit that sent some (the others keep theirs) into values[CUSTOM].
    `fields`: the clients' definitions, when a batch read them once."""
    submitted = raw.get(CUSTOM)
    if not new and not isinstance(submitted, Mapping):
        return {}
    if not isinstance(submitted, Mapping):
        submitted = {}
    custom, errors = clean_values(
        session, "clients", submitted, current=None if new else current, fields=fields
    )
    values[CUSTOM] = custom
    return {custom_error_name(key): problem for key, problem in errors.items()}


@dataclass
class ManagerNotice:
    """How to tell a newly assigned engagement manager: the client's URL for them."""

    tenant: Tenant
    client_url: Callable[[int], str]


def create_client(
    session: Session, context: ClientContext, raw: Mapping, notice: ManagerNotice | None = None
) -> Client:
    values = check_client(session, context, raw)
    client = Client(**values)
    if client.status != "prospect":
        client.converted_at = None
    _save_unique(session, client)
    announce_client_created(session, client)
    if notice and client.engagement_manager_user_id:
        notify_engagement_manager(session, client, notice)
    return client


@dataclass
class NewClient:
    """A client for `create_clients`: the form's raw fields, and its billing contact's (e-mail,
    phone), if any; a billing contact without a name is the client's accounts
    (`accounts_contact_name`)."""

    raw: Mapping
    billing: Mapping | None = None


def accounts_contact_name(short_name: str) -> str:
    return f"Accounts, {short_name}"


def create_clients(
    session: Session, context: ClientContext, new: Sequence[NewClient]
) -> list[int | ClientError]:
    """`create_client` (and `save_contact` of each billing contact) for many clients at once,
    set-based: each checked by the same rules, unique against the clients there (one query)
    and the earlier ones of `new`; the accepted ones written by one multi-row INSERT ...
    RETURNING, their contacts by another, their events and audit entries in bulk. Per entry,
    the new client's id or the ClientError that refused it: the rest go in."""
    if not new:
        return []
    # The definitions read once for the batch, not once a client (a first sync brings 5,000).
    fields = custom_field_definitions(session, "clients", archived=True)
    checked = [_checked_new_client(session, context, entry, fields) for entry in new]
    taken = _names_taken(session, [values for values, _, _ in checked])
    for values, contact, errors in checked:
        unique = {key: _unique_key(key, values[key]) for key in TAKEN if values.get(key)}
        errors.update(
            (key, taken_message(key))
            for key, value in unique.items()
            if key not in errors and (key, value) in taken
        )
        if not errors and contact is not None:
            errors.update(contact[1])
        if not errors:
            taken.update(unique.items())
    accepted = [(values, contact) for values, contact, errors in checked if not errors]
    try:
        with session.begin_nested():
            ids = _insert_new_clients(session, accepted)
    except IntegrityError as error:
        if not _name_clash(error):
            raise
        # Another request saved one of these names since the check: each on its own, as
        # create_client does, so that only that one is refused.
        return [_create_one(session, context, entry) for entry in new]
    made = iter(ids)
    return [ClientError(errors) if errors else next(made) for _, _, errors in checked]


def _checked_new_client(
    session: Session, context: ClientContext, entry: NewClient, fields: list[CustomField]
) -> tuple:
    """(values, (contact values, contact errors) or None, errors): the client checked as
    create_client checks it, its billing contact as save_contact does."""
    values, errors = clean_client(entry.raw, context)
    errors.update(_check_custom(session, entry.raw, values, True, None, fields))
    contact = None
    if entry.billing is not None and not errors:
        raw = _billing_raw(entry.billing, values["short_name"])
        contact = clean_contact(raw, context.tenant_country)
    return values, contact, errors


def _billing_raw(billing: Mapping, short_name: str) -> dict:
    return {
        "full_name": billing.get("full_name") or accounts_contact_name(short_name),
        "roles": ["billing"],
        "email": billing.get("email") or "",
        "phone": billing.get("phone") or "",
    }


def _unique_key(key: str, value: str) -> str:
    return value if key == "external_id" else value.lower()


def _names_taken(session: Session, candidates: list[dict]) -> set[tuple[str, str]]:
    """(field, value) pairs of the unique fields among clients not deleted that `candidates`
    would repeat (names compared without case), in one query."""
    wanted = {
        key: sorted({_unique_key(key, values[key]) for values in candidates if values.get(key)})
        for key in TAKEN
    }
    if not any(wanted.values()):
        return set()
    rows = session.execute(
        select(func.lower(Client.full_name), func.lower(Client.short_name), Client.external_id)
        .where(Client.deleted_at.is_(None))
        .where(
            func.lower(Client.full_name).in_(wanted["full_name"])
            | func.lower(Client.short_name).in_(wanted["short_name"])
            | Client.external_id.in_(wanted["external_id"])
        )
    ).all()
    taken = set()
    for row in rows:
        taken.update((key, value) for key, value in zip(TAKEN, row, strict=True) if value)
    return taken


def _insert_new_clients(session: Session, accepted: list[tuple[dict, tuple | None]]) -> list[int]:
    if not accepted:
        return []
    clients = [Client(**values) for values, _ in accepted]
    for client in clients:
        if client.status != "prospect":
            client.converted_at = None
    written = insert_audited(session, Client, clients)
    contacts = [
        Contact(client_id=row.id, **contact[0])
        for row, (_, contact) in zip(written, accepted, strict=True)
        if contact is not None
    ]
    insert_audited(session, Contact, contacts)
    emit_many(
        session,
        "client.created",
        "client",
        [(row.id, created_facts(row.id, row.short_name)) for row in written],
    )
    source = session.info.get(SOURCE_KEY) or "manual"
    emit_many(
        session,
        "lead.received",
        "client",
        [
            (row.id, {"client_id": row.id, "source": source})
            for row in written
            if row.status == "prospect"
        ],
    )
    return [row.id for row in written]


def _create_one(session: Session, context: ClientContext, entry: NewClient) -> int | ClientError:
    try:
        with session.begin_nested():
            client = create_client(session, context, entry.raw)
            if entry.billing is not None:
                raw = _billing_raw(entry.billing, client.short_name)
                save_contact(session, client, raw, context.tenant_country)
    except ClientError as error:
        return error
    return client.id


def _name_clash(error: IntegrityError) -> bool:
    index = getattr(getattr(error.orig, "diag", None), "constraint_name", None) or ""
    return index.startswith("uq_clients_") and index.removeprefix("uq_clients_") in TAKEN


def update_client(
    session: Session,
    context: ClientContext,
    client: Client,
    raw: Mapping,
    notice: ManagerNotice | None = None,
) -> Client:
    """Apply a full or partial edit: fields not in `raw` keep their current values."""
    current = client_form_values(client)
    merged = {**current, **{k: v for k, v in raw.items() if k in current}}
    if CUSTOM in raw:
        merged[CUSTOM] = raw[CUSTOM]
    values = check_client(
        session, context, merged, exclude_id=client.id, current_custom=client.custom_fields
    )
    previous_manager = client.engagement_manager_user_id
    if client.status == "prospect" and values["status"] != "prospect":
        client.converted_at = datetime.now(UTC)
    changed = [key for key, value in values.items() if getattr(client, key) != value]
    for key in changed:
        setattr(client, key, values[key])
    _save_unique(session, client)
    announce_client_updated(session, client, changed)
    if notice and client.engagement_manager_user_id not in (None, previous_manager):
        notify_engagement_manager(session, client, notice)
    return client


def new_client_defaults(tenant) -> dict[str, str]:
    """What a new client is unless said otherwise: the new-client page starts from these, and
    the API fills in what a caller leaves out with them."""
    return {
        "location": "local",
        "country": tenant.country,
        "currency": tenant.currency,
        "payment_terms": "net",
        "payment_days": "30",
        "status": "active",
        "preferred_language": "en",
        "preferred_channel": "email",
    }


def created_facts(client_id: int, short_name: str) -> dict:
    return {"client_id": client_id, "name": short_name}


def updated_facts(client_id: int, short_name: str, fields: list[str]) -> dict:
    return {"client_id": client_id, "name": short_name, "fields": fields}


def announce_client_created(session: Session, client: Client) -> None:
    """client.created, and lead.received when it arrives as a prospect (an enquiry): from a
    sync, its source; else a person entered it."""
    emit(
        session, "client.created", "client", client.id, created_facts(client.id, client.short_name)
    )
    if client.status == "prospect":
        emit(
            session,
            "lead.received",
            "client",
            client.id,
            {"client_id": client.id, "source": session.info.get(SOURCE_KEY) or "manual"},
        )


def announce_client_updated(session: Session, client: Client, fields: list[str]) -> None:
    """client.updated naming the fields that changed; nothing when none did."""
    if fields:
        emit(
            session,
            "client.updated",
            "client",
            client.id,
            updated_facts(client.id, client.short_name, sorted(fields)),
        )


def announce_clients_imported(
    session: Session,
    created: list[tuple[int, str, str]],
    changed: list[tuple[int, str, list[str]]],
    user_id: int | None,
) -> None:
    """The events of an import's chunk, written set-based: client.created for each client
    added (and lead.received for each prospect), client.updated for each client changed."""
    emit_many(
        session,
        "client.created",
        "client",
        [(client_id, created_facts(client_id, name)) for client_id, name, _ in created],
        user_id,
    )
    emit_many(
        session,
        "lead.received",
        "client",
        [
            (client_id, {"client_id": client_id, "source": "import"})
            for client_id, _, status in created
            if status == "prospect"
        ],
        user_id,
    )
    emit_many(
        session,
        "client.updated",
        "client",
        [
            (client_id, updated_facts(client_id, name, sorted(fields)))
            for client_id, name, fields in changed
        ],
        user_id,
    )


def _save_unique(session: Session, client: Client) -> None:
    """Flush the client. Another request may have saved the same name between the check and
    this write (two tabs, a double click): the unique index refuses it, and the person gets the
    same form error as when the check finds it, not a server error."""
    try:
        with session.begin_nested():
            session.add(client)
            session.flush()
    except IntegrityError as error:
        index = getattr(getattr(error.orig, "diag", None), "constraint_name", None) or ""
        field = index.removeprefix("uq_clients_")
        if not index.startswith("uq_clients_") or field not in TAKEN:
            raise
        raise ClientError({field: taken_message(field)}) from error


def client_form_values(client: Client) -> dict[str, str]:
    """The client as the raw strings a form would send back unchanged."""

    def as_sent(value) -> str:
        return "" if value is None else str(value)

    return {
        "full_name": client.full_name,
        "short_name": client.short_name,
        "status": client.status,
        "location": client.location,
        "country": client.country,
        "address_line1": as_sent(client.address_line1),
        "address_line2": as_sent(client.address_line2),
        "city": as_sent(client.city),
        "region": as_sent(client.region),
        "postal_code": as_sent(client.postal_code),
        "external_id": as_sent(client.external_id),
        "gstin": as_sent(client.gstin),
        "pan": as_sent(client.pan),
        "abn": as_sent(client.abn),
        "vat_number": as_sent(client.vat_number),
        "tin": as_sent(client.tin),
        "tax_registration": as_sent(client.tax_registration),
        "remittance_details": as_sent(client.remittance_details),
        "payment_terms": client.payment_terms,
        "payment_days": as_sent(client.payment_days),
        "payment_terms_note": as_sent(client.payment_terms_note),
        "engagement_manager_user_id": as_sent(client.engagement_manager_user_id),
        "new_business_year": as_sent(client.new_business_year),
        "industry_id": as_sent(client.industry_id),
        "currency": client.currency,
        "credit_limit": as_sent(client.credit_limit),
        "preferred_language": client.preferred_language,
        "preferred_channel": client.preferred_channel,
        "tags": ", ".join(client.tags or []),
    }


def notify_engagement_manager(session: Session, client: Client, notice: ManagerNotice) -> None:
    manager = session.get(User, client.engagement_manager_user_id)
    if manager is None or not manager.active:
        return
    context = {
        "manager": manager,
        "client": client,
        "tenant": notice.tenant,
        "url": notice.client_url(client.id),
    }
    queue_email(
        session,
        to=manager.email,
        tenant_id=notice.tenant.id,
        subject=f"You are now the engagement manager for {client.short_name}",
        text_body=render_template("email/engagement_manager.txt", **context),
        idempotency_key=f"engagement-manager:{notice.tenant.id}:{client.id}:{uuid.uuid4().hex}",
    )


def convert_prospect(session: Session, client: Client) -> None:
    """A prospect becomes an active client; the record, its id and its history stay."""
    if client.status != "prospect":
        raise ClientError({"status": "Only a prospect can be converted."})
    client.status = "active"
    client.converted_at = datetime.now(UTC)
    session.flush()
    announce_client_updated(session, client, ["status"])


class ClientStillHeld(ValueError):
    """The client cannot be deleted: the areas above still hold something of it (open
    invoices, open notices), each a `DeletionBlocker` saying what and how to settle it."""

    def __init__(self, blockers: list[DeletionBlocker]):
        super().__init__("; ".join(blocker.holds for blocker in blockers))
        self.blockers = blockers


def delete_client(session: Session, client: Client) -> None:
    """Soft delete: the record stays (and its names may be used again). Refused while money
    is owed or a notice is open (ClientStillHeld): a deleted client would drop out of the
    collections while its invoices stay in the books. Archive it instead, or settle first."""
    blockers = ask_client_deletion_blockers(session, client)
    if blockers:
        raise ClientStillHeld(blockers)
    client.deleted_at = datetime.now(UTC)
    session.flush()


def archive_client(session: Session, client: Client, user_id: int | None) -> None:
    """The client leaves the list and is no longer chased; its invoices stay in the books
    (the aging, payments) and its open notices are closed in this transaction by whoever
    listens to client_archived (collections)."""
    if client.is_archived:
        raise ClientError({"": f"{client.short_name} is archived already."})
    client.archived_at = datetime.now(UTC)
    session.flush()
    announce_client_archived(session, client, user_id)


def restore_client(session: Session, client: Client) -> None:
    """Back in the list and chased again by the next daily run (its closed notices stay
    closed: the run makes new ones for what is still owed)."""
    if not client.is_archived:
        raise ClientError({"": f"{client.short_name} is not archived."})
    client.archived_at = None
    session.flush()


def get_client(session: Session, client_id: int) -> Client | None:
    return session.scalar(select(Client).where(Client.id == client_id, Client.deleted_at.is_(None)))


# The list -----------------------------------------------------------------------------------

SORTS = {
    "name": (func.lower(Client.full_name), "asc"),
    "-name": (func.lower(Client.full_name), "desc"),
    "short": (func.lower(Client.short_name), "asc"),
    "-short": (func.lower(Client.short_name), "desc"),
    "created": (Client.created_at, "asc"),
    "-created": (Client.created_at, "desc"),
}
DEFAULT_SORT = "name"


@dataclass
class ClientFilters:
    """What the list shows, all of it carried in the URL so a view can be bookmarked. The
    workspace's own fields offered in lists (`fields`) add filters (cf.<key>=value), sorting
    (sort=cf.<key>) and columns (columns=key,key)."""

    q: str = ""
    prospects: bool = False
    archived: bool = False
    location: str = ""
    status: str = ""
    industry_id: int | None = None
    manager_id: int | None = None
    tag: str = ""
    sort: str = DEFAULT_SORT
    custom: dict[str, str] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    fields: dict[str, CustomField] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_args(cls, args: Mapping, fields: Sequence[CustomField] = ()) -> ClientFilters:
        def number(key):
            return row_id(args.get(key))

        by_key = {f.key: f for f in fields}
        sort = args.get("sort") or DEFAULT_SORT
        custom_sort = sort.lstrip("-").startswith(FORM_PREFIX)
        if custom_sort and sort.lstrip("-").removeprefix(FORM_PREFIX) not in by_key:
            sort = DEFAULT_SORT
        custom = {
            key: value
            for key in by_key
            if (value := (args.get(FORM_PREFIX + key) or "").strip()[:255])
        }
        given = args.getlist("columns") if hasattr(args, "getlist") else [args.get("columns")]
        wanted = [key for value in given for key in (value or "").split(",")]
        return cls(
            q=(args.get("q") or "").strip()[:100],
            prospects=args.get("prospects") == "1",
            archived=args.get("archived") == "1",
            location=args.get("location") if args.get("location") in ("local", "foreign") else "",
            status=args.get("status") if args.get("status") in STATUSES else "",
            industry_id=number("industry"),
            manager_id=number("manager"),
            tag=(args.get("tag") or "").strip().lower()[:40],
            sort=sort if sort in SORTS or custom_sort else DEFAULT_SORT,
            custom=custom,
            columns=tuple(key for key in by_key if key in wanted),
            fields=by_key,
        )

    def as_args(self) -> dict[str, str]:
        args = {
            "q": self.q,
            "location": self.location,
            "status": self.status,
            "industry": self.industry_id or "",
            "manager": self.manager_id or "",
            "tag": self.tag,
            "sort": "" if self.sort == DEFAULT_SORT else self.sort,
            "prospects": "1" if self.prospects else "",
            "archived": "1" if self.archived else "",
            "columns": ",".join(self.columns),
            **{FORM_PREFIX + key: value for key, value in self.custom.items()},
        }
        return {k: str(v) for k, v in args.items() if v}

    @property
    def shown_fields(self) -> list[CustomField]:
        return [self.fields[key] for key in self.columns]

    @property
    def custom_filter(self) -> dict[str, str]:
        """The filters on custom fields, as templates/custom_fields/_list.html reads them."""
        return self.custom


def sort_of(filters: ClientFilters):
    """(SQL to sort by, "asc"/"desc", whether its values are numbers) of the list's order."""
    if filters.sort in SORTS:
        return (*SORTS[filters.sort], False)
    custom = filters.fields[filters.sort.lstrip("-").removeprefix(FORM_PREFIX)]
    # The same SQL text as the field's list index (custom_fields.ensure_list_index).
    expression = literal_column(sort_sql(custom, "clients"))
    return expression, "desc" if filters.sort.startswith("-") else "asc", sort_is_numeric(custom)


def filtered_clients(filters: ClientFilters, session: Session | None = None) -> Select:
    query = select(Client).where(Client.deleted_at.is_(None))
    # Archived clients have a list of their own; every other list leaves them out.
    query = query.where(
        Client.archived_at.is_not(None) if filters.archived else Client.archived_at.is_(None)
    )
    query = query.where(_status_clause(Client.status, filters))
    if filters.location:
        query = query.where(Client.location == filters.location)
    if filters.industry_id:
        query = query.where(Client.industry_id == filters.industry_id)
    if filters.manager_id:
        query = query.where(Client.engagement_manager_user_id == filters.manager_id)
    if filters.tag:
        query = query.where(Client.tags.contains([filters.tag]))
    if filters.q:
        query = query.where(SEARCH_HAYSTACK.like(search_pattern(filters.q)))
    for key, value in filters.custom.items():
        custom = filters.fields[key]
        query = query.where(filter_clause(session, Client.custom_fields, custom, value))
    return query


def _status_clause(status, filters: ClientFilters):
    """Which statuses the list shows, of clients (Client.status) or of their kept counts
    (ClientCount.status, ClientCountChange.status)."""
    if filters.prospects:
        return status == "prospect"
    if filters.status:
        return status == filters.status
    return status != "prospect"


def kept_count_answers(filters: ClientFilters) -> bool:
    """Whether client_counts holds the list's size: its filters are no more than which
    statuses and whether archived (the order and the columns shown change no count). Any
    other filter, and any added later, is counted from the clients."""
    built_in_taken_away = replace(
        filters, prospects=False, archived=False, status="", sort=DEFAULT_SORT, columns=()
    )
    return built_in_taken_away == ClientFilters()


# Names, short names, tax ids, external ids and cities; trigram-indexed (ix_clients_search).
SEARCH_HAYSTACK = literal_column(SEARCH_EXPRESSION)


def search_pattern(q: str) -> str:
    """The LIKE pattern finding `q` anywhere in SEARCH_HAYSTACK, its wildcards taken literally."""
    return "%" + q.lower().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"


@dataclass
class ClientPage:
    clients: list[Client]
    total: int
    total_is_capped: bool
    next_cursor: str | None
    previous_cursor: str | None
    filters: ClientFilters = field(default_factory=ClientFilters)


def _encode_cursor(key, client_id: int) -> str:
    key = key.isoformat() if isinstance(key, datetime) else key
    key = str(key) if isinstance(key, Decimal) else key
    return base64.urlsafe_b64encode(json.dumps([key, client_id]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str, numeric: bool = False):
    try:
        key, client_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if sort.lstrip("-") == "created":
            key = datetime.fromisoformat(key)
        elif numeric:
            key = Decimal(key)
        client_id = row_id(client_id)
        return (key, client_id) if client_id else None
    except (ValueError, TypeError, InvalidOperation):
        return None


def list_clients(
    session: Session,
    filters: ClientFilters,
    after: str | None = None,
    before: str | None = None,
    page_size: int = PAGE_SIZE,
) -> ClientPage:
    """One page, keyset-paginated on (sort key, id): as fast on page 4,000 as on page 1."""
    sort_key, direction, numeric = sort_of(filters)
    base = filtered_clients(filters, session)
    query = base.add_columns(sort_key.label("sort_key"))
    matching = None
    if filters.q:
        matching = session.scalars(
            base.with_only_columns(Client.id).limit(SEARCH_NARROWS + 1)
        ).all()
        if len(matching) <= SEARCH_NARROWS:
            query = query.where(Client.id == func.any(literal(list(matching), ARRAY(BigInteger))))
        else:
            matching = None
    cursor = (
        _decode_cursor(before or after or "", filters.sort, numeric) if (before or after) else None
    )
    backwards = bool(before) and cursor is not None
    ascending = (direction == "asc") != backwards
    if cursor is not None:
        key, client_id = cursor
        row = tuple_(sort_key, Client.id)
        query = query.where(
            row > tuple_(key, client_id) if ascending else row < tuple_(key, client_id)
        )
    order = (sort_key.asc(), Client.id.asc()) if ascending else (sort_key.desc(), Client.id.desc())
    rows = session.execute(query.order_by(*order).limit(page_size + 1)).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    if backwards:
        rows.reverse()
    clients = [row[0] for row in rows]
    keys = [(row[1], row[0].id) for row in rows]
    has_next = more if not backwards else True
    has_previous = (cursor is not None) if not backwards else more
    total, total_is_capped = _count(session, filters, base, matching)
    return ClientPage(
        clients=clients,
        total=total,
        total_is_capped=total_is_capped,
        next_cursor=_encode_cursor(*keys[-1]) if keys and has_next else None,
        previous_cursor=_encode_cursor(*keys[0]) if keys and has_previous else None,
        filters=filters,
    )


def _count(
    session: Session, filters: ClientFilters, base: Select, matching: list[int] | None
) -> tuple[int, bool]:
    """(How many clients the list holds, whether that number is only "at least"): exact from
    the kept counts where they answer, else counted from the clients up to a cap."""
    if kept_count_answers(filters):
        return _kept_count(session, filters), False
    cap = CUSTOM_FILTER_COUNT_CAP if filters.custom else COUNT_CAP
    if matching is not None:  # a search's matches, all of them read already
        counted = len(matching)
    else:
        counted = session.scalar(
            select(func.count()).select_from(
                base.with_only_columns(Client.id).limit(cap + 1).subquery()
            )
        )
    return min(counted, cap), counted > cap


def _kept_count(session: Session, filters: ClientFilters) -> int:
    """The folded counts plus the changes since, of the statuses and archiving the list shows,
    in one statement (so a fold between two reads cannot count a change twice or not at all)."""
    kept = union_all(
        *(
            select(table.client_count).where(
                table.archived == filters.archived, _status_clause(table.status, filters)
            )
            for table in (ClientCount, ClientCountChange)
        )
    ).subquery()
    return session.scalar(select(func.coalesce(func.sum(kept.c.client_count), 0)))


def fold_counts(session: Session) -> None:
    """Fold the kept counts' changes into them (safe beside writers; the daily aging roll
    calls it, so the list reads a day's changes at most)."""
    session.execute(text(f"SELECT {qualified(bound_schema(session), 'client_counts_fold')}()"))


# Bulk actions -------------------------------------------------------------------------------


def bulk_update(
    session: Session,
    client_ids: list[int],
    *,
    tag: str | None = None,
    manager_id: int | None = None,
    status: str | None = None,
    context: ClientContext | None = None,
) -> int:
    """Tag, assign a manager or set the status of many clients; returns how many changed.
    Each client is changed through the ORM, so every change is in the audit log."""
    if manager_id is not None and context is not None and manager_id not in context.member_ids:
        raise ClientError({"manager": "Choose a member of this workspace."})
    if status is not None and status not in STATUSES:
        raise ClientError({"status": "Choose a status from the list."})
    clients = session.scalars(
        select(Client).where(Client.id.in_(client_ids), Client.deleted_at.is_(None))
    ).all()
    changed = 0
    for client in clients:
        before = (list(client.tags), client.engagement_manager_user_id, client.status)
        if tag and tag not in client.tags:
            client.tags = [*client.tags, tag]
        if manager_id is not None:
            client.engagement_manager_user_id = manager_id
        if status is not None:
            if client.status == "prospect" and status != "prospect":
                client.converted_at = datetime.now(UTC)
            client.status = status
        after = (client.tags, client.engagement_manager_user_id, client.status)
        fields = [
            name for name, old, new in zip(BULK_FIELDS, before, after, strict=True) if old != new
        ]
        announce_client_updated(session, client, fields)
        changed += bool(fields)
    session.flush()
    return changed


# What a bulk action may change, in the order bulk_update compares them.
BULK_FIELDS = ("tags", "engagement_manager_user_id", "status")


# Contacts and consent -----------------------------------------------------------------------


def get_contact(session: Session, client: Client, contact_id: int) -> Contact | None:
    return session.scalar(
        select(Contact).where(
            Contact.id == contact_id, Contact.client_id == client.id, Contact.deleted_at.is_(None)
        )
    )


def save_contact(
    session: Session,
    client: Client,
    raw: Mapping,
    default_region: str,
    contact: Contact | None = None,
    custom: Mapping | None = None,
) -> Contact:
    """A new contact, or a change of `contact`; `custom`: its custom field values sent ({key:
    value}; a new contact gets its fields' defaults and must have the required ones)."""
    values, errors = clean_contact(raw, default_region)
    if custom is not None or contact is None:
        current = contact.custom_fields if contact is not None else None
        values[CUSTOM], problems = clean_values(session, "contacts", custom or {}, current=current)
        errors.update((custom_error_name(key), problem) for key, problem in problems.items())
    if errors:
        raise ClientError(errors)
    if contact is not None and (values.get("email") or "").lower() != (contact.email or "").lower():
        # A new address has not bounced: e-mail may go to it again.
        values.update(email_bounced_at=None, email_bounce_reason=None)
    return _save_child(session, Contact, client, values, contact)


def _save_child(session: Session, model, client: Client, values: dict, existing):
    """Create a record of the client's (contact, site) or update the one given."""
    if existing is None:
        existing = model(client_id=client.id, **values)
        session.add(existing)
    else:
        for key, value in values.items():
            setattr(existing, key, value)
    session.flush()
    return existing


def set_consent(contact: Contact, channel: str, opted_in: bool, source: str) -> None:
    """Record an opt-in or opt-out, when and how it was given. An opt-out always wins later:
    `may_contact` says no until a new opt-in is recorded."""
    if channel not in CONSENT_CHANNELS:
        raise ClientError({"channel": "Consent is kept for e-mail, SMS and WhatsApp."})
    if not source.strip():
        raise ClientError({"source": "Say how the consent was given (e.g. signed form)."})
    setattr(contact, f"{channel}_consent", "opted_in" if opted_in else "opted_out")
    setattr(contact, f"{channel}_consent_at", datetime.now(UTC))
    setattr(contact, f"{channel}_consent_source", source.strip()[:100])


def may_contact(contact: Contact, channel: str) -> bool:
    """E-mail may go to anyone who has not opted out; SMS and WhatsApp need an opt-in."""
    state = getattr(contact, f"{channel}_consent", None) if channel in CONSENT_CHANNELS else None
    if channel == "email":
        return contact.email is not None and state != "opted_out"
    if channel in ("sms", "whatsapp"):
        return contact.phone is not None and state == "opted_in"
    return True


def delete_contact(session: Session, contact: Contact) -> None:
    contact.deleted_at = datetime.now(UTC)
    session.execute(
        update(Site).where(Site.site_contact_id == contact.id).values(site_contact_id=None)
    )
    session.flush()


# Sites --------------------------------------------------------------------------------------


def get_site(session: Session, client: Client, site_id: int) -> Site | None:
    return session.scalar(
        select(Site).where(
            Site.id == site_id, Site.client_id == client.id, Site.deleted_at.is_(None)
        )
    )


def list_sites(session: Session, client: Client) -> list[Site]:
    return list(
        session.scalars(
            select(Site)
            .where(Site.client_id == client.id, Site.deleted_at.is_(None))
            .order_by(Site.name)
        )
    )


def save_site(session: Session, client: Client, raw: Mapping, site: Site | None = None) -> Site:
    values, errors = clean_site(raw)
    if (
        values.get("site_contact_id")
        and get_contact(session, client, values["site_contact_id"]) is None
    ):
        errors["site_contact_id"] = worded("Choose one of this {client}'s contacts.")
    if errors:
        raise ClientError(errors)
    return _save_child(session, Site, client, values, site)


def delete_site(session: Session, site: Site) -> None:
    site.deleted_at = datetime.now(UTC)
    session.flush()


# Timeline and managed lists -----------------------------------------------------------------


def timeline(session: Session, client: Client, limit: int = 100) -> list[AuditEntry]:
    """Every recorded change of the client and of its contacts, sites and documents."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.subject == f"clients:{client.id}")
            .order_by(AuditEntry.id.desc())
            .limit(limit)
        )
    )


def industries(session: Session) -> list[Industry]:
    return list(session.scalars(select(Industry).where(Industry.active).order_by(Industry.name)))


def add_industry(session: Session, name: str) -> Industry:
    name = " ".join(name.split())
    if not 2 <= len(name) <= 100:
        raise ClientError({"name": "Name the industry (2 to 100 characters)."})
    existing = session.scalar(select(Industry).where(func.lower(Industry.name) == name.lower()))
    if existing is not None:
        existing.active = True
        return existing
    industry = Industry(name=name)
    session.add(industry)
    session.flush()
    return industry


def members_for_choice(session: Session, tenant_id: int) -> list[tuple[int, str]]:
    return list(
        session.execute(
            select(User.id, User.full_name)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.tenant_id == tenant_id, Membership.active.is_(True))
            .order_by(User.full_name)
        )
    )


def invoice_fields_required(session: Session, client_id: int | None) -> set[str]:
    """Keys of the custom fields of invoices this client's invoices must fill in (set by
    rules), besides those every invoice must."""
    if client_id is None:
        return set()
    return set(
        session.scalars(
            select(ClientRequiredField.field_key).where(ClientRequiredField.client_id == client_id)
        )
    )
