"""A stand-in TallyPrime: the XML envelope over HTTP POST on one port, as TallyPrime serves it on
9000 once a company is loaded (shared reference providers.md §5.1). Tally publishes no schema;
what is served here is checked in the tests against tests/contracts/tally/envelopes.xsd.

Served (POST /, text/xml, UTF-8 or UTF-16 bodies):
- Export, TYPE Collection: the collections Duebook asks for: Company; Ledger (CHILDOF Sundry
  Debtors); Voucher in the period SVFROMDATE..SVTODATE. The TDL filters understood are the ones
  Duebook sends (`$AlterID > N`, `$$IsSales:$VoucherTypeName OR ...`, `$$IsEqual:$VoucherNumber:
  "X"`); another formula is answered as Tally answers what it cannot evaluate: STATUS 0 and
  a LINEERROR. A COMPUTE of `$Guid:Ledger:$PartyLedgerName` adds PARTYLEDGERGUID to vouchers.
- Import, TYPE Data (Vouchers or All Masters): a voucher naming a ledger that does not exist
  -> LINEERROR "Ledger 'X' does not exist!"; debits and credits that differ -> LINEERROR;
  a voucher whose REMOTEID (or, for ACTION Alter, number and type) is known is altered, not
  created again; a ledger is unique by name. Each change takes the next AlterID.
- SVCURRENTCOMPANY names the company; one not loaded (closed, or another loaded instead) is
  refused as Tally refuses it, STATUS 0 "Could not set 'SVCurrentCompany' to '<name>'".

Admin (besides the base's stats, reset and 500/429 faults):
  GET  /_standin/books?company=NAME         the ledgers and vouchers as JSON, to read back
  POST /_standin/companies {"name", "state"} add a company (loaded)
  POST /_standin/load {"names": [...]}      the loaded companies ([]: none open)
  POST /_standin/ledgers {"company", "name", "parent", "address": [...], FIELD: value}
                                            add or alter a ledger, as the accountant would
  POST /_standin/vouchers/alter {"company", "number", "kind", "cancel"|"narration"}
  POST /_standin/misbehave {"malformed": N, "lineerror": "words", "slow": seconds,
                           "utf16": "bom"|"plain"|null, "control_characters": bool}
Misbehaving: `malformed` cuts the next N answers in half; `lineerror` refuses the next import
with those words; `slow` delays every answer; `utf16` answers in UTF-16 as older releases do;
`control_characters` writes `&#4;` references and a raw control character into ledgers, as
real Tally does before reserved names.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from xml.etree.ElementTree import Element, ParseError, tostring
from xml.sax.saxutils import escape, quoteattr

from defusedxml.ElementTree import fromstring

from app.core.regions import state_name

from .base import Request, Response, StandinServer, json_response
from .xero import demo_gstin

DEMO_COMPANY = "Demo Traders Private Limited"
DEMO_STATE = "29"
SUNDRY_DEBTORS = "Sundry Debtors"
# Ledgers every Tally company has, and the ones a GST-registered trader makes first.
STANDARD_LEDGERS = ("Cash", "Sales", "CGST", "SGST", "IGST", "Round Off", "HDFC Bank")
KIND_TESTS = {"$$IsSales": "Sales", "$$IsReceipt": "Receipt", "$$IsCreditNote": "Credit Note"}


@dataclass
class Ledger:
    name: str
    guid: str
    alter_id: int
    master_id: int
    parent: str = SUNDRY_DEBTORS
    fields: dict[str, str] = field(default_factory=dict)  # LEDSTATENAME, EMAIL, PARTYGSTIN...
    address: list[str] = field(default_factory=list)


@dataclass
class Voucher:
    guid: str
    remote_id: str
    kind: str
    number: str
    day: date
    party: str
    alter_id: int
    master_id: int
    body: str  # the voucher's children as XML, without DATE, GUID, ALTERID and MASTERID


@dataclass
class Company:
    name: str
    guid: str
    state: str
    books_from: date = date(2025, 4, 1)
    alter_id: int = 0
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    vouchers: dict[str, Voucher] = field(default_factory=dict)  # by GUID

    def next_alter_id(self) -> int:
        self.alter_id += 1
        return self.alter_id


class _Refused(Exception):
    """Tally's STATUS 0 answer, in its words."""


def _answer_envelope(data: str, status: int = 1) -> str:
    return (
        f"<ENVELOPE><HEADER><VERSION>1</VERSION><STATUS>{status}</STATUS></HEADER>"
        f"<BODY><DESC></DESC><DATA>{data}</DATA></BODY></ENVELOPE>"
    )


def _decode(body: bytes) -> str:
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        return body.decode("utf-16")
    if len(body) >= 2 and body[1] == 0:
        return body.decode("utf-16-le")
    return body.decode("utf-8-sig")


def _money(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01")), "f")


class TallyStandin(StandinServer):
    """TallyPrime stand-in. See the module docstring for what it serves."""

    name = "tally"
    default_status_script = ()

    def __init__(
        self,
        *,
        seed: str | None = None,
        seed_ledgers: int = 0,
        seed_vouchers: int = 0,
        today: date | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.today = today or date.today()
        self._state = threading.RLock()
        self.companies: dict[str, Company] = {}
        self.loaded: list[str] = []
        self._misbehaviour: dict = {}
        self._seed = (seed, seed_ledgers, seed_vouchers)
        self.reset_state()

    # -- state ---------------------------------------------------------------------------------

    def reset_state(self) -> None:
        with self._state:
            self.companies.clear()
            self.loaded.clear()
            self._misbehaviour = {"malformed": 0, "lineerror": None, "slow": 0.0, "utf16": None}
            self._misbehaviour["control_characters"] = False
            seed, ledgers, vouchers = self._seed
            if seed == "demo" or ledgers or vouchers:
                company = self.add_company(DEMO_COMPANY, DEMO_STATE)
                if seed == "demo":
                    self._seed_demo(company)
                if ledgers or vouchers:
                    self.seed_bulk(company, ledgers, vouchers)

    def add_company(self, name: str, state: str) -> Company:
        with self._state:
            company = Company(name, str(uuid.uuid4()), state)
            # Books beginning with the financial year (1 April) before last: the seeds date
            # vouchers up to a year back.
            earliest = self.today - timedelta(days=400)
            company.books_from = date(earliest.year - (earliest.month < 4), 4, 1)
            for ledger in STANDARD_LEDGERS:
                parent = "Duties & Taxes" if "GST" in ledger else "Sales Accounts"
                self._save_ledger(company, ledger, {}, [], parent)
            self.companies[name] = company
            self.loaded.append(name)
            return company

    def _save_ledger(self, company, name, fields, address, parent=SUNDRY_DEBTORS) -> Ledger:
        ledger = company.ledgers.get(name)
        alter_id = company.next_alter_id()
        if ledger is None:
            ledger = Ledger(name, str(uuid.uuid4()), alter_id, alter_id, parent)
            company.ledgers[name] = ledger
        ledger.alter_id = alter_id
        ledger.fields.update({key: value for key, value in fields.items() if value})
        if address:
            ledger.address = list(address)
        return ledger

    def _save_voucher(self, company, remote_id, kind, number, day, party, body) -> Voucher:
        existing = company.vouchers.get(remote_id)
        alter_id = company.next_alter_id()
        if existing is None:
            voucher = Voucher(remote_id, remote_id, kind, number, day, party, alter_id, 0, body)
            voucher.master_id = alter_id
            company.vouchers[remote_id] = voucher
            return voucher
        existing.kind, existing.number, existing.day = kind, number, day
        existing.party, existing.body, existing.alter_id = party, body, alter_id
        return existing

    # -- HTTP ----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        fault = self.take_fault()
        if fault is not None:
            return fault
        if request.method != "POST":
            # TallyPrime answers a browser's GET with this line; it is how people check it runs.
            return Response(200, b"<RESPONSE>TallyPrime Server is Running</RESPONSE>")
        with self._state:
            slow = self._misbehaviour["slow"]
        if slow:
            time.sleep(slow)
        try:
            envelope = fromstring(_decode(request.body))
        except (ParseError, UnicodeDecodeError, ValueError):
            return self._reply("<RESPONSE>Unknown Request, cannot be processed</RESPONSE>")
        header = envelope.find("HEADER")
        verb = (header.findtext("TALLYREQUEST") or "").strip() if header is not None else ""
        try:
            if verb == "Export":
                text = self._export(envelope)
            elif verb == "Import":
                text = self._import(envelope)
            else:
                text = "<RESPONSE>Unknown Request, cannot be processed</RESPONSE>"
        except _Refused as refusal:
            text = _answer_envelope(f"<LINEERROR>{escape(str(refusal))}</LINEERROR>", status=0)
        return self._reply(text)

    def fault_response(self, fault) -> Response:
        # Tally itself never answers 5xx; an injected fault stands for whatever sits between
        # (the agent's machine, a proxy) failing, so it carries no envelope.
        words = fault.message or "injected fault"
        return Response(fault.status, words.encode(), [("Content-Type", "text/plain")])

    def _reply(self, text: str) -> Response:
        with self._state:
            misbehaviour = self._misbehaviour
            encoding = misbehaviour["utf16"]
            malformed = misbehaviour["malformed"] > 0
            if malformed:
                misbehaviour["malformed"] -= 1
        if encoding:
            body = text.encode("utf-16" if encoding == "bom" else "utf-16-le")
            content_type = "text/xml; charset=utf-16"
        else:
            body = text.encode("utf-8")
            content_type = "text/xml; charset=utf-8"
        if malformed:
            body = body[: len(body) // 2]
        return Response(200, body, [("Content-Type", content_type)])

    def _company(self, envelope) -> Company:
        named = (envelope.findtext(".//STATICVARIABLES/SVCURRENTCOMPANY") or "").strip()
        with self._state:
            name = named or (self.loaded[0] if self.loaded else "")
            if name not in self.loaded:
                raise _Refused(f"Could not set 'SVCurrentCompany' to '{name}'")
            return self.companies[name]

    # -- export --------------------------------------------------------------------------------

    def _export(self, envelope) -> str:
        collection = envelope.find(".//TDL/TDLMESSAGE/COLLECTION")
        if collection is None:
            raise _Refused("Could not find the collection to export")
        kind = (collection.findtext("TYPE") or "").strip()
        formulae = {
            system.get("NAME"): (system.text or "").strip()
            for system in envelope.iter("SYSTEM")
            if system.get("TYPE") == "Formulae"
        }
        used = [name.strip() for name in (collection.findtext("FILTER") or "").split(",")]
        filters = [formulae.get(name, "") for name in used if name]
        if kind == "Company":
            with self._state:
                loaded = [self.companies[name] for name in self.loaded]
            return _answer_envelope(
                "<COLLECTION>" + "".join(self._company_xml(c) for c in loaded) + "</COLLECTION>"
            )
        company = self._company(envelope)
        after, kinds, equal = self._filters(filters)
        number = equal.get("VoucherNumber")
        if kind == "Ledger":
            one = "Guid" in equal or "Name" in equal
            with self._state:
                ledgers = sorted(company.ledgers.values(), key=lambda ledger: ledger.alter_id)
                chosen = [
                    self._ledger_xml(ledger)
                    for ledger in ledgers
                    if (one or ledger.parent == SUNDRY_DEBTORS)
                    and ledger.alter_id > after
                    and equal.get("Guid", ledger.guid) == ledger.guid
                    and equal.get("Name", ledger.name) == ledger.name
                ]
            return _answer_envelope("<COLLECTION>" + "".join(chosen) + "</COLLECTION>")
        if kind == "Voucher":
            statics = envelope.find(".//STATICVARIABLES")
            first = _tally_day(statics.findtext("SVFROMDATE") if statics is not None else None)
            last = _tally_day(statics.findtext("SVTODATE") if statics is not None else None)
            party_guid = "$Guid:Ledger:$PartyLedgerName" in "".join(
                (node.text or "") for node in collection.iter("COMPUTE")
            )
            with self._state:
                vouchers = sorted(
                    company.vouchers.values(), key=lambda v: (v.day, v.alter_id, v.number)
                )
                chosen = [
                    self._voucher_xml(company, voucher, party_guid)
                    for voucher in vouchers
                    if voucher.alter_id > after
                    and (kinds is None or voucher.kind in kinds)
                    and (number is None or voucher.number == number)
                    and (first is None or voucher.day >= first)
                    and (last is None or voucher.day <= last)
                ]
            return _answer_envelope("<COLLECTION>" + "".join(chosen) + "</COLLECTION>")
        raise _Refused(f"Could not find Collection type '{kind}'")

    @staticmethod
    def _filters(filters: list[str]) -> tuple[int, set[str] | None, dict[str, str]]:
        """(AlterID above, voucher kinds or None, {"VoucherNumber"|"Guid"|"Name": value})."""
        after, kinds, equal = 0, None, {}
        for formula in filters:
            if found := re.fullmatch(r"\$AlterID\s*>\s*(\d+)", formula):
                after = int(found.group(1))
            elif found := re.fullmatch(
                r'\$\$IsEqual:\$(VoucherNumber|Guid|Name):"([^"]*)"', formula
            ):
                equal[found.group(1)] = found.group(2)
            elif all(
                part.strip().removesuffix(":$VoucherTypeName") in KIND_TESTS
                for part in formula.split(" OR ")
            ):
                kinds = {
                    KIND_TESTS[part.strip().removesuffix(":$VoucherTypeName")]
                    for part in formula.split(" OR ")
                }
            else:
                raise _Refused(f"Could not evaluate the formula '{formula}'")
        return after, kinds, equal

    def _company_xml(self, company: Company) -> str:
        return (
            f"<COMPANY NAME={quoteattr(company.name)}><NAME>{escape(company.name)}</NAME>"
            f"<GUID>{company.guid}</GUID><STATENAME>{state_name(company.state)}</STATENAME>"
            "<COUNTRYNAME>India</COUNTRYNAME><BASECURRENCYNAME>INR</BASECURRENCYNAME>"
            f"<BOOKSFROM>{company.books_from.strftime('%Y%m%d')}</BOOKSFROM></COMPANY>"
        )

    def _ledger_xml(self, ledger: Ledger) -> str:
        parts = [
            f"<NAME>{escape(ledger.name)}</NAME><GUID>{ledger.guid}</GUID>",
            f"<ALTERID> {ledger.alter_id}</ALTERID><PARENT>{escape(ledger.parent)}</PARENT>",
        ]
        if ledger.address:
            parts.append(
                "<ADDRESS.LIST>"
                + "".join(f"<ADDRESS>{escape(line)}</ADDRESS>" for line in ledger.address)
                + "</ADDRESS.LIST>"
            )
        for tag, value in ledger.fields.items():
            parts.append(f"<{tag}>{escape(value)}</{tag}>")
        if self._misbehaviour["control_characters"]:
            parts.append("<LEDGERCONTACT>&#4; Not Applicable\x01</LEDGERCONTACT>")
        return f'<LEDGER NAME={quoteattr(ledger.name)} RESERVEDNAME="">{"".join(parts)}</LEDGER>'

    def _voucher_xml(self, company: Company, voucher: Voucher, party_guid: bool) -> str:
        extra = ""
        if party_guid and voucher.party in company.ledgers:
            extra = f"<PARTYLEDGERGUID>{company.ledgers[voucher.party].guid}</PARTYLEDGERGUID>"
        return (
            f"<VOUCHER REMOTEID={quoteattr(voucher.remote_id)} "
            f'VCHTYPE={quoteattr(voucher.kind)} ACTION="Create">'
            f"<DATE>{voucher.day.strftime('%Y%m%d')}</DATE>"
            f"<GUID>{escape(voucher.guid)}</GUID><ALTERID> {voucher.alter_id}</ALTERID>"
            f"<MASTERID> {voucher.master_id}</MASTERID>{extra}{voucher.body}</VOUCHER>"
        )

    # -- import --------------------------------------------------------------------------------

    def _import(self, envelope) -> str:
        company = self._company(envelope)
        counters = dict.fromkeys(
            ("CREATED", "ALTERED", "DELETED", "COMBINED", "IGNORED", "ERRORS", "CANCELLED"), 0
        )
        counters["EXCEPTIONS"] = 0
        errors: list[str] = []
        last_voucher = last_master = 0
        with self._state:
            refusal, self._misbehaviour["lineerror"] = self._misbehaviour["lineerror"], None
            for message in envelope.iter("TALLYMESSAGE"):
                for item in message:
                    if refusal:
                        errors.append(refusal)
                        counters["ERRORS"] += 1
                    elif item.tag == "LEDGER":
                        created, ledger = self._import_ledger(company, item)
                        counters["CREATED" if created else "ALTERED"] += 1
                        last_master = ledger.master_id
                    elif item.tag == "VOUCHER":
                        try:
                            created, voucher = self._import_voucher(company, item)
                        except _Refused as error:
                            errors.append(str(error))
                            counters["ERRORS"] += 1
                            continue
                        counters["CREATED" if created else "ALTERED"] += 1
                        last_voucher = voucher.master_id
                    else:
                        counters["IGNORED"] += 1
        result = "".join(f"<LINEERROR>{escape(words)}</LINEERROR>" for words in errors)
        result += "".join(f"<{tag}>{count}</{tag}>" for tag, count in counters.items())
        result += f"<LASTVCHID>{last_voucher}</LASTVCHID><LASTMID>{last_master}</LASTMID>"
        return _answer_envelope(f"<IMPORTRESULT>{result}</IMPORTRESULT>")

    def _import_ledger(self, company: Company, item: Element) -> tuple[bool, Ledger]:
        name = (item.get("NAME") or item.findtext("NAME") or "").strip()
        fields = {
            child.tag: (child.text or "").strip()
            for child in item
            if child.tag
            not in ("NAME", "GUID", "ALTERID", "PARENT", "ADDRESS.LIST", "LANGUAGENAME.LIST")
        }
        address = [(node.text or "").strip() for node in item.iter("ADDRESS")]
        created = name not in company.ledgers
        parent = (item.findtext("PARENT") or SUNDRY_DEBTORS).strip()
        return created, self._save_ledger(company, name, fields, address, parent)

    def _import_voucher(self, company: Company, item: Element) -> tuple[bool, Voucher]:
        kind = (item.findtext("VOUCHERTYPENAME") or item.get("VCHTYPE") or "").strip()
        number = (item.findtext("VOUCHERNUMBER") or "").strip()
        party = (item.findtext("PARTYLEDGERNAME") or "").strip()
        day = _tally_day(item.findtext("DATE"))
        if day is None:
            raise _Refused("Voucher date is missing or not a date!")
        named = [party] + [
            (entry.findtext("LEDGERNAME") or "").strip()
            for entry in item.iter("ALLLEDGERENTRIES.LIST")
        ]
        for ledger in named:
            if ledger and ledger not in company.ledgers:
                raise _Refused(f"Ledger '{ledger}' does not exist!")
        entries = [
            Decimal((entry.findtext("AMOUNT") or "0").strip())
            for entry in item.findall("ALLLEDGERENTRIES.LIST")
        ]
        debit = -sum((amount for amount in entries if amount < 0), Decimal(0))
        credit = sum((amount for amount in entries if amount > 0), Decimal(0))
        if debit != credit:
            raise _Refused(
                f"Voucher totals do not match! Dr: {_money(debit)} Dr Cr: {_money(credit)} Cr"
            )
        remote_id = (item.get("REMOTEID") or item.findtext("GUID") or "").strip()
        if item.get("ACTION") == "Alter" and remote_id not in company.vouchers:
            known = next(
                (
                    voucher.guid
                    for voucher in company.vouchers.values()
                    if voucher.number == number and voucher.kind == kind
                ),
                None,
            )
            if known is None:
                raise _Refused(f"Voucher '{number}' of type '{kind}' does not exist!")
            remote_id = known
        remote_id = remote_id or str(uuid.uuid4())
        created = remote_id not in company.vouchers
        body = "".join(
            tostring(child, encoding="unicode")
            for child in item
            if child.tag not in ("DATE", "GUID", "ALTERID", "MASTERID", "PARTYLEDGERGUID")
        )
        return created, self._save_voucher(company, remote_id, kind, number, day, party, body)

    # -- admin ---------------------------------------------------------------------------------

    def admin(self, request: Request) -> Response | None:
        route = (request.method, request.path.rstrip("/"))
        if route == ("GET", "/_standin/books"):
            return self._books(request.arg("company") or DEMO_COMPANY)
        if route == ("GET", "/_standin/tally"):
            return self._books_page()
        spec = request.json() if request.method == "POST" else None
        spec = spec or {}
        with self._state:
            if route == ("POST", "/_standin/companies"):
                company = self.add_company(spec["name"], spec.get("state", DEMO_STATE))
                return json_response(200, {"name": company.name, "guid": company.guid})
            if route == ("POST", "/_standin/load"):
                unknown = [name for name in spec.get("names", []) if name not in self.companies]
                if unknown:
                    return json_response(404, {"error": f"no such company: {unknown}"})
                self.loaded[:] = spec.get("names", [])
                return json_response(200, {"loaded": self.loaded})
            if route == ("POST", "/_standin/misbehave"):
                unknown = set(spec) - set(self._misbehaviour)
                if unknown:
                    return json_response(400, {"error": f"unknown misbehaviour: {unknown}"})
                self._misbehaviour.update(spec)
                return json_response(200, dict(self._misbehaviour))
            if route == ("POST", "/_standin/ledgers"):
                company = self.companies[spec.pop("company", DEMO_COMPANY)]
                name = spec.pop("name")
                address = spec.pop("address", [])
                parent = spec.pop("parent", SUNDRY_DEBTORS)
                ledger = self._save_ledger(company, name, spec, address, parent)
                return json_response(200, {"guid": ledger.guid, "alter_id": ledger.alter_id})
            if route == ("POST", "/_standin/vouchers/alter"):
                return self._alter_voucher(spec)
        return None

    def _alter_voucher(self, spec: dict) -> Response:
        company = self.companies[spec.get("company", DEMO_COMPANY)]
        voucher = next(
            (
                v
                for v in company.vouchers.values()
                if v.number == spec["number"] and v.kind == spec.get("kind", "Sales")
            ),
            None,
        )
        if voucher is None:
            return json_response(404, {"error": "no such voucher"})
        body = voucher.body
        if spec.get("cancel"):
            body = body.replace("<ISCANCELLED>No</ISCANCELLED>", "<ISCANCELLED>Yes</ISCANCELLED>")
        if "narration" in spec:
            body = re.sub(r"<NARRATION>.*?</NARRATION>", "", body)
            body += f"<NARRATION>{escape(spec['narration'])}</NARRATION>"
        self._save_voucher(
            company, voucher.guid, voucher.kind, voucher.number, voucher.day, voucher.party, body
        )
        return json_response(200, {"guid": voucher.guid, "alter_id": voucher.alter_id})

    def _books_page(self) -> Response:
        """The loaded companies' debtors and vouchers as a page, newest voucher first: where a
        person sees what Duebook wrote into "Tally"."""
        parts = [
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<title>Stand-in TallyPrime</title><style>body{font-family:sans-serif;margin:1rem}"
            "table{border-collapse:collapse;width:100%;font-size:.9rem}td,th{border-bottom:1px "
            "solid #ddd;padding:.3rem;text-align:left}td.num{text-align:right}"
            ".wrap{overflow-x:auto}</style></head><body><h1>Stand-in TallyPrime</h1>"
        ]
        with self._state:
            for name in self.loaded:
                company = self.companies[name]
                parts.append(f"<h2>{escape(name)}</h2><h3>Day book</h3><div class='wrap'><table>")
                parts.append(
                    "<tr><th>Date</th><th>Type</th><th>No.</th><th>Party</th>"
                    "<th class='num'>Amount</th></tr>"
                )
                vouchers = sorted(
                    company.vouchers.values(), key=lambda v: (v.day, v.alter_id), reverse=True
                )
                for voucher in vouchers:
                    amount = re.search(
                        rf"<LEDGERNAME>{re.escape(escape(voucher.party))}</LEDGERNAME>.*?"
                        r"<AMOUNT>\s*(-?[\d.]+)</AMOUNT>",
                        voucher.body,
                        re.S,
                    )
                    parts.append(
                        f"<tr><td>{voucher.day:%d-%b-%Y}</td><td>{escape(voucher.kind)}</td>"
                        f"<td>{escape(voucher.number)}</td><td>{escape(voucher.party)}</td>"
                        f"<td class='num'>{_money(abs(Decimal(amount.group(1)))) if amount else ''}"
                        "</td></tr>"
                    )
                parts.append("</table></div><h3>Sundry Debtors</h3><ul>")
                for ledger in company.ledgers.values():
                    if ledger.parent == SUNDRY_DEBTORS:
                        gstin = ledger.fields.get("PARTYGSTIN", "")
                        parts.append(f"<li>{escape(ledger.name)} {escape(gstin)}</li>")
                parts.append("</ul>")
        parts.append("</body></html>")
        return Response(
            200, "".join(parts).encode(), [("Content-Type", "text/html; charset=utf-8")]
        )

    def _books(self, name: str) -> Response:
        with self._state:
            company = self.companies.get(name)
            if company is None:
                return json_response(404, {"error": "no such company"})
            return json_response(
                200,
                {
                    "company": company.name,
                    "alter_id": company.alter_id,
                    "ledgers": [
                        {
                            "name": ledger.name,
                            "guid": ledger.guid,
                            "alter_id": ledger.alter_id,
                            "parent": ledger.parent,
                            **ledger.fields,
                        }
                        for ledger in company.ledgers.values()
                    ],
                    "vouchers": [
                        {
                            "guid": voucher.guid,
                            "kind": voucher.kind,
                            "number": voucher.number,
                            "date": voucher.day.isoformat(),
                            "party": voucher.party,
                            "alter_id": voucher.alter_id,
                            "xml": self._voucher_xml(company, voucher, False),
                        }
                        for voucher in company.vouchers.values()
                    ],
                },
            )

    # -- seeds ---------------------------------------------------------------------------------

    def _seed_demo(self, company: Company) -> None:
        """A small Karnataka trader's books: six debtors (two the demo workspace already has as
        clients), ten sales vouchers intra-state (CGST+SGST) and inter-state (IGST), one of
        them with stock items, one optional (a draft) and one cancelled, three receipts set
        bill-wise against them and a credit note."""
        debtors = [
            ("Sahyadri Textiles LLP", "27", "AAJFS4821K", "Pune", "accounts@sahyadri.example"),
            ("Nilgiri Logistics", "33", "AAHFN7316M", "Coimbatore", "accounts@nilgiri.example"),
            (
                "Tungabhadra Agro Foods Pvt Ltd",
                "29",
                "AAECT5567P",
                "Hubballi",
                "finance@tungabhadra.example",
            ),
            ("Malnad Coffee Traders", "29", "ABNPM2290Q", "Chikkamagaluru", "ap@malnad.example"),
            ("Deccan Steel Fabricators", "36", "AACCD8843R", "Hyderabad", "ap@deccan.example"),
            ("Konkan Marine Exports", "30", "AAGFK1198S", "Panaji", "accounts@konkan.example"),
        ]
        # Credit periods as the accountant set them (the rest: 30 days).
        credit_days = {"Tungabhadra Agro Foods Pvt Ltd": 45, "Malnad Coffee Traders": 15}
        for name, state, pan, city, email in debtors:
            self._save_ledger(
                company,
                name,
                {
                    "LEDSTATENAME": state_name(state),
                    "COUNTRYNAME": "India",
                    "EMAIL": email,
                    "LEDGERMOBILE": "9845012345",
                    "GSTREGISTRATIONTYPE": "Regular",
                    "PARTYGSTIN": demo_gstin(state, pan),
                    "BILLCREDITPERIOD": f"{credit_days.get(name, 30)} Days",
                },
                ["Plot 7, Industrial Area", city],
            )
        states = {name: state for name, state, *_ in debtors}
        # (number, party, days ago, net, GST rate, HSN, optional, cancelled, stock item)
        sales = [
            ("TD/001", "Sahyadri Textiles LLP", 125, "240000", "18", "998314", False, False, ""),
            ("TD/002", "Sahyadri Textiles LLP", 70, "85000", "18", "998314", False, False, ""),
            ("TD/003", "Nilgiri Logistics", 60, "150000", "12", "996511", False, False, ""),
            (
                "TD/004",
                "Tungabhadra Agro Foods Pvt Ltd",
                5,
                "62000",
                "18",
                "998314",
                False,
                False,
                "",
            ),
            ("TD/005", "Malnad Coffee Traders", 45, "38000", "5", "0901", False, False, "Beans"),
            ("TD/006", "Deccan Steel Fabricators", 50, "210000", "18", "7308", False, False, ""),
            ("TD/007", "Konkan Marine Exports", 2, "95000", "28", "998314", True, False, ""),
            (
                "TD/008",
                "Tungabhadra Agro Foods Pvt Ltd",
                30,
                "12000",
                "18",
                "998314",
                False,
                False,
                "",
            ),
            ("TD/009", "Malnad Coffee Traders", 20, "46000", "12", "998314", False, True, ""),
            ("TD/010", "Nilgiri Logistics", 8, "72000", "18", "996511", False, False, ""),
        ]
        totals = {}
        for number, party, days, net, rate, hsn, optional, cancelled, item in sales:
            day = self.today - timedelta(days=days)
            body, total = self._sales_body(
                company, number, party, states[party], Decimal(net), Decimal(rate), hsn, item
            )
            body = body.replace(
                "<ISOPTIONAL>No</ISOPTIONAL>",
                f"<ISOPTIONAL>{'Yes' if optional else 'No'}</ISOPTIONAL>",
            ).replace(
                "<ISCANCELLED>No</ISCANCELLED>",
                f"<ISCANCELLED>{'Yes' if cancelled else 'No'}</ISCANCELLED>",
            )
            totals[number] = (party, total)
            self._save_voucher(company, str(uuid.uuid4()), "Sales", number, day, party, body)
        # (number, days ago, [(bill, amount)]): paid in full, part paid, two bills at once.
        receipts = [
            ("R/001", 40, [("TD/002", totals["TD/002"][1])]),
            ("R/002", 10, [("TD/001", Decimal("100000.00"))]),
            ("R/003", 3, [("TD/003", totals["TD/003"][1]), ("TD/010", Decimal("20000.00"))]),
        ]
        for number, days, bills in receipts:
            party = totals[bills[0][0]][0]
            body = self._receipt_body(number, party, bills)
            day = self.today - timedelta(days=days)
            self._save_voucher(company, str(uuid.uuid4()), "Receipt", number, day, party, body)
        self._save_voucher(
            company,
            str(uuid.uuid4()),
            "Credit Note",
            "CN/001",
            self.today - timedelta(days=15),
            "Deccan Steel Fabricators",
            self._credit_note_body(
                "CN/001", "Deccan Steel Fabricators", "TD/006", Decimal("10000"), Decimal("18")
            ),
        )

    def seed_bulk(self, company: Company, ledgers: int, vouchers: int) -> None:
        """`ledgers` debtors and `vouchers` sales vouchers spread over the last year, built as
        strings (no parsing) so that 20,000 take seconds, for benchmarks."""
        with self._state:
            names = []
            for index in range(ledgers):
                name = f"Bulk Debtor {index + 1:05d}"
                names.append(name)
                self._save_ledger(
                    company,
                    name,
                    {
                        "LEDSTATENAME": "Karnataka" if index % 2 else "Maharashtra",
                        "EMAIL": f"debtor{index + 1}@bulk.example",
                        "BILLCREDITPERIOD": "30 Days",
                    },
                    [f"Shop {index + 1}", "Market Road"],
                )
            names = names or ["Sahyadri Textiles LLP"]
            if names[0] not in company.ledgers:
                self._save_ledger(company, names[0], {"LEDSTATENAME": "Maharashtra"}, [])
            for index in range(vouchers):
                party = names[index % len(names)]
                state = (
                    "29"
                    if "Karnataka" in company.ledgers[party].fields.get("LEDSTATENAME", "")
                    else "27"
                )
                number = f"BLK/{index + 1:06d}"
                body, _ = self._sales_body(
                    company,
                    number,
                    party,
                    state,
                    Decimal(1000 + index % 9000),
                    Decimal("18"),
                    "998314",
                    "",
                )
                day = self.today - timedelta(days=index % 365)
                self._save_voucher(company, str(uuid.uuid4()), "Sales", number, day, party, body)

    @staticmethod
    def _entry(ledger: str, amount: Decimal, inner: str = "") -> str:
        return (
            f"<ALLLEDGERENTRIES.LIST><LEDGERNAME>{escape(ledger)}</LEDGERNAME>"
            f"<ISDEEMEDPOSITIVE>{'Yes' if amount < 0 else 'No'}</ISDEEMEDPOSITIVE>"
            f"<AMOUNT>{_money(amount)}</AMOUNT>{inner}</ALLLEDGERENTRIES.LIST>"
        )

    def _sales_body(self, company, number, party, party_state, net, rate, hsn, item):
        ledger = company.ledgers.get(party)
        gstin = ledger.fields.get("PARTYGSTIN", "") if ledger else ""
        intra = party_state == company.state
        tax = (net * rate / 100).quantize(Decimal("0.01"))
        half = (tax / 2).quantize(Decimal("0.01"))
        taxes = [("CGST", half), ("SGST", tax - half)] if intra else [("IGST", tax)]
        total = net + tax
        bill = (
            f"<BILLALLOCATIONS.LIST><NAME>{escape(number)}</NAME><BILLTYPE>New Ref</BILLTYPE>"
            f"<BILLCREDITPERIOD>30 Days</BILLCREDITPERIOD><AMOUNT>{_money(-total)}</AMOUNT>"
            "</BILLALLOCATIONS.LIST>"
        )
        if item:
            quantity = Decimal(40)
            lines = (
                f"<ALLINVENTORYENTRIES.LIST><STOCKITEMNAME>{item}</STOCKITEMNAME>"
                f"<GSTHSNNAME>{hsn}</GSTHSNNAME><ISDEEMEDPOSITIVE>No</ISDEEMEDPOSITIVE>"
                f"<RATE>{_money(net / quantity)}/Kg</RATE><ACTUALQTY> 40 Kg</ACTUALQTY>"
                f"<BILLEDQTY> 40 Kg</BILLEDQTY><AMOUNT>{_money(net)}</AMOUNT>"
                "<ACCOUNTINGALLOCATIONS.LIST><LEDGERNAME>Sales</LEDGERNAME>"
                f"<ISDEEMEDPOSITIVE>No</ISDEEMEDPOSITIVE><AMOUNT>{_money(net)}</AMOUNT>"
                "</ACCOUNTINGALLOCATIONS.LIST></ALLINVENTORYENTRIES.LIST>"
            )
        else:
            lines = self._entry("Sales", net, f"<GSTHSNNAME>{hsn}</GSTHSNNAME>")
        body = (
            "<VOUCHERTYPENAME>Sales</VOUCHERTYPENAME>"
            f"<VOUCHERNUMBER>{escape(number)}</VOUCHERNUMBER>"
            f"<PARTYLEDGERNAME>{escape(party)}</PARTYLEDGERNAME>"
            + (f"<PARTYGSTIN>{gstin}</PARTYGSTIN>" if gstin else "")
            + f"<PLACEOFSUPPLY>{state_name(party_state)}</PLACEOFSUPPLY>"
            "<ISOPTIONAL>No</ISOPTIONAL><ISCANCELLED>No</ISCANCELLED>"
            + self._entry(party, -total, bill)
            + (lines if not item else "")
            + "".join(self._entry(name, amount) for name, amount in taxes)
            + (lines if item else "")
        )
        return body, total

    def _receipt_body(self, number, party, bills) -> str:
        total = sum((amount for _, amount in bills), Decimal(0))
        allocations = "".join(
            f"<BILLALLOCATIONS.LIST><NAME>{escape(bill)}</NAME><BILLTYPE>Agst Ref</BILLTYPE>"
            f"<AMOUNT>{_money(amount)}</AMOUNT></BILLALLOCATIONS.LIST>"
            for bill, amount in bills
        )
        return (
            "<VOUCHERTYPENAME>Receipt</VOUCHERTYPENAME>"
            f"<VOUCHERNUMBER>{escape(number)}</VOUCHERNUMBER>"
            f"<PARTYLEDGERNAME>{escape(party)}</PARTYLEDGERNAME>"
            "<NARRATION>Received by NEFT</NARRATION>"
            + self._entry(party, total, allocations)
            + self._entry("HDFC Bank", -total)
        )

    def _credit_note_body(self, number, party, bill, net, rate) -> str:
        tax = (net * rate / 100).quantize(Decimal("0.01"))
        total = net + tax
        allocation = (
            f"<BILLALLOCATIONS.LIST><NAME>{escape(bill)}</NAME><BILLTYPE>Agst Ref</BILLTYPE>"
            f"<AMOUNT>{_money(total)}</AMOUNT></BILLALLOCATIONS.LIST>"
        )
        return (
            "<VOUCHERTYPENAME>Credit Note</VOUCHERTYPENAME>"
            f"<VOUCHERNUMBER>{escape(number)}</VOUCHERNUMBER>"
            f"<PARTYLEDGERNAME>{escape(party)}</PARTYLEDGERNAME>"
            "<PLACEOFSUPPLY>Telangana</PLACEOFSUPPLY><NARRATION>Short supply returned</NARRATION>"
            "<ISOPTIONAL>No</ISOPTIONAL><ISCANCELLED>No</ISCANCELLED>"
            + self._entry(party, total, allocation)
            + self._entry("Sales", -net, "<GSTHSNNAME>7308</GSTHSNNAME>")
            + self._entry("IGST", -tax)
        )


def _tally_day(text: str | None) -> date | None:
    text = (text or "").strip()
    if not re.fullmatch(r"\d{8}", text):
        return None
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))
