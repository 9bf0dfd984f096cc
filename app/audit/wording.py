"""The audit log in words: "Asha updated client Kaveri: payment terms Net 30 → Net 45; credit
limit ₹1,00,000.00 → ₹2,00,000.00", one entry per action (the changes one request or job
committed together), with the raw diff kept beside it.

The audit area sits below the business areas, so it knows none of their fields: each area
registers how its records are worded (`register_wording`, from the labels and choices of its
own forms) when the app is made. A table nobody registered is still described, with its
column names made readable."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Numeric,
    Text,
    any_,
    bindparam,
    cast,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.core.money import format_money
from app.core.terminology import reworded
from tenants.base import TenantModel

HIDDEN = "(hidden)"
# A value longer than this is cut in the sentence; the raw diff has all of it.
SENTENCE_VALUE_CHARS = 60
# Bookkeeping every row has: in the raw diff, not worth a sentence.
UNSAID_FIELDS = frozenset({"created_at", "updated_at", "created_by", "updated_by"})
VERBS = {"insert": "added", "update": "updated", "delete": "removed"}
# An action that wrote more records than this is said as counts per kind; its details list all.
SPELLED_OUT_PARTS = 5
# Where a stored file lives is bookkeeping: the sentence says a file was stored or removed.
FILE_KEY_SUFFIX = "_key"


@dataclass(frozen=True)
class Together:
    """Fields said as one ("payment terms Net 30" from payment_terms and payment_days): the
    recorder keeps all of them in an update that changes one, so the sentence can say both
    sides. `say` gets the fields' recorded values and gives the phrase."""

    fields: tuple[str, ...]
    label: str
    say: Callable[[Mapping[str, object]], str]


@dataclass(frozen=True)
class Wording:
    noun: str  # "client"
    name_field: str | None = None  # the column that names a record in a sentence
    labels: Mapping[str, str] = field(default_factory=dict)
    choices: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    money_fields: frozenset[str] = frozenset()
    currency_field: str | None = None  # the record's currency, for its money fields
    people_fields: frozenset[str] = frozenset()  # user ids, said as names
    references: Mapping[str, str] = field(default_factory=dict)  # field -> table it names
    together: tuple[Together, ...] = ()


_wordings: dict[str, Wording] = {}
# Columns holding several fields in one JSON object (a record's custom fields): the area that
# owns their definitions says each changed field as a change of its own, (label, old, new) in
# words, from the session, the table and the object before and after.
SubFieldSayer = Callable[[Session, str, Mapping, Mapping], list[tuple[str, str, str]]]
_sub_field_sayers: dict[str, SubFieldSayer] = {}
# Columns that name a record, in order of preference, for tables nobody registered.
NAMING_COLUMNS = ("short_name", "name", "full_name", "number", "title", "reference")


def register_sub_fields(column: str, sayer: SubFieldSayer) -> None:
    _sub_field_sayers[column] = sayer


def register_wording(table: str, wording: Wording) -> None:
    _wordings[table] = wording
    wording_of.cache_clear()
    _names_query.cache_clear()


@cache
def wording_of(table: str) -> Wording:
    """How a table's records are said: what its area registered, the rest read from the
    table itself (see `_read_from_table`)."""
    read = _read_from_table(table)
    registered = _wordings.get(table)
    if registered is None:
        return read
    given = {
        f.name: getattr(registered, f.name)
        for f in fields(Wording)
        if getattr(registered, f.name) not in (None, (), frozenset(), {})
    }
    return replace(read, **given)


def _read_from_table(table: str) -> Wording:
    """Its name made singular, the first naming column it has, its two-decimal amounts as
    money in its `currency`, and its foreign keys said as the records they point to."""
    noun = table.replace("_", " ")
    if noun.endswith("ies"):
        noun = noun[:-3] + "y"
    elif noun.endswith("s") and not noun.endswith("ss"):
        noun = noun[:-1]
    found = TenantModel.metadata.tables.get(f"tenant.{table}")
    if found is None:
        return Wording(noun=noun)
    columns = found.c
    has_currency = "currency" in columns
    return Wording(
        noun=noun,
        name_field=next((name for name in NAMING_COLUMNS if name in columns), None),
        money_fields=frozenset(
            c.name
            for c in columns
            if has_currency and isinstance(c.type, Numeric) and c.type.scale == 2
        ),
        currency_field="currency" if has_currency else None,
        references={
            # "tenant.clients.id": read from the key's text, as the table it names may not
            # be loaded in this process.
            c.name: next(iter(c.foreign_keys)).target_fullname.split(".")[-2]
            for c in columns
            if len(c.foreign_keys) == 1
        },
    )


def fields_kept_together(table: str, changed: Iterable[str]) -> set[str]:
    """The fields an update of `changed` records besides them (see Together)."""
    changed = set(changed)
    extra: set[str] = set()
    for group in wording_of(table).together:
        if changed & set(group.fields):
            extra |= set(group.fields) - changed
    return extra


@dataclass
class Change:
    label: str
    old: str
    new: str


@dataclass
class Described:
    """One audit row in words: the sentence about its record and the raw entry it came from."""

    entry: AuditEntry
    noun: str  # "client", Duebook's word (said in the workspace's when shown)
    record: str  # "customer Kaveri": in the workspace's words
    changes: list[Change]

    @property
    def verb(self) -> str:
        return VERBS[self.entry.action]

    def clause(self) -> str:
        """ "updated client Kaveri: payment terms Net 30 → Net 45" (without the actor)."""
        if self.entry.action != "update" or not self.changes:
            return f"{self.verb} {self.record}"
        said = "; ".join(f"{c.label} {c.old} → {c.new}" for c in self.changes)
        return f"{self.verb} {self.record}: {said}"


@dataclass
class Action:
    """The audit rows one request or job committed together, as one entry."""

    actor: str
    occurred_at: datetime
    parts: list[Described]

    @property
    def sentence(self) -> str:
        if len(self.parts) > SPELLED_OUT_PARTS:  # an import, a seeding, a daily run: counted
            return f"{self.actor} {self.summary()}"
        if len(self.parts) == 1 and self.parts[0].entry.action == "update":
            part = self.parts[0]
            if len(part.changes) == 1:  # "Asha changed the payment terms of client Kaveri ..."
                change = part.changes[0]
                return (
                    f"{self.actor} changed the {change.label} of {part.record} "
                    f"from {change.old} to {change.new}"
                )
        return f"{self.actor} " + "; and ".join(part.clause() for part in self.parts)

    def summary(self) -> str:
        """ "made 120 changes: added 40 invoices, updated 12 clients, ..." by verb and kind."""
        counts: dict[tuple[str, str], int] = {}
        for part in self.parts:
            key = (part.verb, part.noun)
            counts[key] = counts.get(key, 0) + 1
        said = ", ".join(
            f"{verb} {count} {reworded(noun if count == 1 else plural(noun))}"
            for (verb, noun), count in counts.items()
        )
        return f"made {len(self.parts):,} changes: {said}"


def plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"


def _actor(entry: AuditEntry, people: Mapping[int, str]) -> str:
    """Who made the change: a person, what else did (the source: "Xero sync"), or both when
    a person's action applied what the source held ("Asha, through Xero sync")."""
    person = people.get(entry.actor_user_id, "System") if entry.actor_user_id else None
    if entry.source:
        return f"{person}, through {entry.source}" if person else entry.source
    return person or "System"


def describe(
    session: Session,
    entries: list[AuditEntry],
    people: Mapping[int, str],
    country: str | None,
    time_zone: str,
) -> list[Action]:
    """The entries (newest first) grouped per action, each with its sentence."""
    names = _record_names(session, entries)
    zone = ZoneInfo(time_zone)
    actions: list[Action] = []
    for entry in entries:
        actor = _actor(entry, people)
        described = _describe_entry(session, entry, names, people, country, zone)
        last = actions[-1] if actions else None
        if (
            last is not None
            and last.occurred_at == entry.occurred_at
            and last.parts[0].entry.actor_user_id == entry.actor_user_id
            and last.parts[0].entry.source == entry.source
        ):
            last.parts.append(described)
        else:
            actions.append(Action(actor, entry.occurred_at, [described]))
    for action in actions:  # in the order they were done
        action.parts.reverse()
    return actions


def _describe_entry(session, entry, names, people, country, zone) -> Described:
    wording = wording_of(entry.entity)
    changes = entry.changes or {}

    def value_of(key: str, side: int):
        pair = changes.get(key)
        return pair[side] if isinstance(pair, list) and len(pair) == 2 else None

    side = 0 if entry.action == "delete" else 1
    name = None
    if wording.name_field:
        name = value_of(wording.name_field, side) or value_of(wording.name_field, 0)
    name = name or names.get((entry.entity, entry.entity_id))
    noun = reworded(wording.noun)
    record = f"{noun} {_cut(str(name))}" if name else f"{noun} #{entry.entity_id}"
    currency = None
    if wording.currency_field:
        currency = value_of(wording.currency_field, 1) or names.get(
            ("currency", entry.entity, entry.entity_id)
        )

    def say(key: str, value) -> str:
        return _say(wording, key, value, names, people, country, currency, zone)

    said: list[Change] = []
    grouped: set[str] = set()
    if entry.action == "update":
        for group in wording.together:
            if not set(group.fields) & changes.keys():
                continue
            grouped |= set(group.fields)
            old = _cut(group.say({k: value_of(k, 0) for k in group.fields}))
            new = _cut(group.say({k: value_of(k, 1) for k in group.fields}))
            if old != new:
                said.append(Change(reworded(group.label), old, new))
        for key, pair in changes.items():
            if key in grouped or key in UNSAID_FIELDS or not isinstance(pair, list):
                continue
            if pair[0] == pair[1] != HIDDEN:  # kept beside a changed field for the sentence
                continue
            if key in _sub_field_sayers:
                old, new = (side if isinstance(side, dict) else {} for side in pair)
                for label, before, after in _sub_field_sayers[key](session, entry.entity, old, new):
                    said.append(Change(label.lower(), _cut(before), _cut(after)))
                continue
            label = wording.labels.get(key) or _readable(key.removesuffix(FILE_KEY_SUFFIX))
            said.append(Change(reworded(label.lower()), say(key, pair[0]), say(key, pair[1])))
    return Described(entry, wording.noun, record, said)


def _say(wording, key, value, names, people, country, currency, zone) -> str:
    """A recorded value as a person reads it, cut to a sentence's length."""
    if value is None or value == "":
        return "(none)"
    if value == HIDDEN:
        return HIDDEN
    if key.endswith(FILE_KEY_SUFFIX):
        return "a stored file"
    if key in wording.choices:
        return _cut(wording.choices[key].get(str(value), str(value)))
    if key in wording.people_fields:
        return people.get(_as_int(value), f"user #{value}")
    if key in wording.references:
        found = names.get((wording.references[key], str(value)))
        return _cut(str(found)) if found else f"#{value}"
    if key in wording.money_fields and currency:
        try:
            return format_money(Decimal(str(value)), currency, country)
        except (InvalidOperation, ValueError):
            return _cut(str(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return _cut(", ".join(str(v) for v in value) or "(none)")
    if isinstance(value, dict):
        return "(see the details)"
    if isinstance(value, str):
        return _cut(_readable_moment(value, zone))
    return _cut(str(value))


def _readable_moment(text: str, zone: ZoneInfo) -> str:
    """An ISO date or time (as the recorder writes them) in the way pages show them."""
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        try:
            return date.fromisoformat(text).strftime("%d %b %Y")
        except ValueError:
            return text
    if len(text) > 18 and text[4] == "-" and text[10] == "T":
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(zone).strftime("%d %b %Y, %H:%M")
    return text


def _cut(text: str) -> str:
    if len(text) <= SENTENCE_VALUE_CHARS:
        return text
    return text[: SENTENCE_VALUE_CHARS - 1].rstrip() + "…"


def _readable(key: str) -> str:
    return key.removesuffix("_id").replace("_", " ").capitalize()


def _as_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _record_names(session: Session, entries: list[AuditEntry]) -> dict:
    """{(table, id): name} of the records the entries are about or name by id (a contact's
    client), and {("currency", table, id): currency} for their money: one statement, a
    branch per table (a page of the log names records of five tables or so)."""
    wanted: dict[str, set[str]] = {}
    for entry in entries:
        wording = wording_of(entry.entity)
        if wording.name_field or wording.currency_field:
            wanted.setdefault(entry.entity, set()).add(entry.entity_id)
        for key, table in wording.references.items():
            for value in entry.changes.get(key) or []:
                if value is not None:
                    wanted.setdefault(table, set()).add(str(value))
    ids = {}
    for table_name, wanted_ids in sorted(wanted.items()):
        table = TenantModel.metadata.tables.get(f"tenant.{table_name}")
        numeric = [int(i) for i in wanted_ids if i.isdigit()]
        if table is not None and "id" in table.c and numeric:
            ids[table_name] = numeric
    found: dict = {}
    if not ids:
        return found
    values = {f"ids_{position}": numeric for position, numeric in enumerate(ids.values())}
    for table_name, record_id, name, currency in session.execute(_names_query(tuple(ids)), values):
        key = str(record_id)
        if name is not None:
            found[(table_name, key)] = name
        if currency is not None:
            found[("currency", table_name, key)] = currency
    return found


@lru_cache(maxsize=256)
def _names_query(tables: tuple[str, ...]):
    """The names and currencies of some records of each of `tables` (their ids in parameters
    ids_0, ids_1, ...): built once per set of tables, as its SQL and cache key cost more than
    the database takes to answer."""
    branches = []
    for position, table_name in enumerate(tables):
        wording = wording_of(table_name)
        table = TenantModel.metadata.tables[f"tenant.{table_name}"]
        name, currency = (
            cast(table.c[column] if column and column in table.c else null(), Text)
            for column in (wording.name_field, wording.currency_field)
        )
        wanted = bindparam(f"ids_{position}", type_=ARRAY(BigInteger))
        branches.append(
            select(literal(table_name, Text), table.c.id, name, currency).where(
                table.c.id == any_(wanted)
            )
        )
    return union_all(*branches)
