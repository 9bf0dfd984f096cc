"""The calendar connectors and their stand-ins held to the providers' published documents
(tests/contracts/google_calendar: Google's Discovery document; tests/contracts/microsoft_graph:
Graph's CSDL), and Google's own SDK (google-api-python-client, built from that document) as
the oracle: it reads the events the connector wrote and writes one the connector then finds."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from jsonschema import Draft7Validator

from app.integrations.connectors.calendar import CalendarEvent
from app.integrations.connectors.google_calendar import (
    UID_PROPERTY,
    GoogleCalendarConnector,
    event_id_of,
)
from app.integrations.connectors.outlook_calendar import OutlookCalendarConnector
from app.sandbox.standins import GoogleCalendarStandin, MicrosoftGraphStandin

CONTRACTS = Path(__file__).parent / "contracts"
DISCOVERY = json.loads((CONTRACTS / "google_calendar" / "calendar.v3.json").read_text())
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
CSDL = ElementTree.parse(CONTRACTS / "microsoft_graph" / "calendar.csdl.xml").getroot()
DAY = date(2027, 3, 1)
EVENT = CalendarEvent(
    uid="invoice-7@acme.duebook",
    day=DAY,
    summary="Invoice INV/26-27/00007 due: Kaveri Traders",
    description="Invoice INV/26-27/00007 of Kaveri Traders, ₹1,180.00, falls due.",
    url="https://duebook.example/t/acme/invoices/7",
)


# -- Google: the Discovery document's schemas as JSON Schema -------------------------------


def _json_schema(node):
    """A Discovery schema as JSON Schema: `$ref: "Event"` points into definitions, `id` (a
    name, not a base URI here) dropped, and every object that lists its properties closed, so
    a property the document does not declare fails."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {}
    for key, value in node.items():
        if key == "$ref":
            converted["$ref"] = f"#/definitions/{value}"
        elif key in ("id", "annotations", "description"):
            continue
        elif key == "properties":
            converted["properties"] = {name: _json_schema(s) for name, s in value.items()}
        else:
            converted[key] = _json_schema(value)
    if "properties" in converted and "additionalProperties" not in converted:
        converted["additionalProperties"] = False
    return converted


DEFINITIONS = {name: _json_schema(schema) for name, schema in DISCOVERY["schemas"].items()}


def google_valid(schema: str, instance) -> None:
    validator = Draft7Validator({"$ref": f"#/definitions/{schema}", "definitions": DEFINITIONS})
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(instance)]
    assert not errors, errors


@pytest.fixture
def google(app, monkeypatch):
    with GoogleCalendarStandin() as standin:
        for setting in ("GOOGLE_ACCOUNTS_BASE", "GOOGLE_OAUTH_BASE", "GOOGLE_CALENDAR_API_BASE"):
            monkeypatch.setitem(app.config, setting, standin.url)
        yield standin


def test_what_the_google_connector_sends_is_an_event_as_the_document_declares_it():
    body = GoogleCalendarConnector({})._body(EVENT)
    google_valid("Event", {"id": event_id_of(EVENT.uid), **body})
    # The document's rules for a client-chosen id: base32hex (a-v, 0-9), 5 to 1,024 long.
    assert re.fullmatch(r"[a-v0-9]{5,1024}", event_id_of(EVENT.uid))
    assert event_id_of(EVENT.uid) == event_id_of(EVENT.uid) != event_id_of("invoice-8@acme.duebook")
    paths = {
        m["httpMethod"] + " " + m["path"]
        for m in DISCOVERY["resources"]["events"]["methods"].values()
    }
    assert {
        "POST calendars/{calendarId}/events",
        "PATCH calendars/{calendarId}/events/{eventId}",
        "DELETE calendars/{calendarId}/events/{eventId}",
    } <= paths


def test_the_google_standin_answers_as_the_document_declares(app, google):
    access = google.oauth.grant_token()["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    base = f"{google.url}/calendar/v3"
    listed = httpx.get(f"{base}/users/me/calendarList", headers=headers).json()
    google_valid("CalendarList", listed)
    body = {"id": event_id_of(EVENT.uid), **GoogleCalendarConnector({})._body(EVENT)}
    created = httpx.post(f"{base}/calendars/primary-missing/events", headers=headers, json=body)
    assert created.status_code == 404
    calendar = "team-dates@group.calendar.google.com"
    created = httpx.post(f"{base}/calendars/{calendar}/events", headers=headers, json=body)
    assert created.status_code == 200
    google_valid("Event", created.json())
    again = httpx.post(f"{base}/calendars/{calendar}/events", headers=headers, json=body)
    assert (again.status_code, again.json()["error"]["errors"][0]["reason"]) == (409, "duplicate")
    bad_id = httpx.post(
        f"{base}/calendars/{calendar}/events", headers=headers, json={**body, "id": "UPPER_x"}
    )
    assert bad_id.status_code == 400
    patched = httpx.patch(
        f"{base}/calendars/{calendar}/events/{body['id']}", headers=headers, json={"summary": "x"}
    )
    google_valid("Event", patched.json())
    assert patched.json()["sequence"] == 1
    google_valid("Events", httpx.get(f"{base}/calendars/{calendar}/events", headers=headers).json())
    assert httpx.get(f"{base}/users/me/calendarList").status_code == 401


def test_googles_sdk_reads_what_the_connector_wrote_and_the_connector_finds_what_it_wrote(
    app, google
):
    access = google.oauth.grant_token()["access_token"]
    sdk = build_from_document(
        DISCOVERY,
        credentials=Credentials(token=access),
        client_options={"api_endpoint": f"{google.url}/calendar/v3/"},
    )
    writable = sdk.calendarList().list(minAccessRole="writer").execute()["items"]
    calendar = next(c["id"] for c in writable if not c.get("primary"))
    with app.app_context():
        connector = GoogleCalendarConnector(app.config)
        remote_id = connector.upsert(access, calendar, EVENT, None)
    found = (
        sdk.events()
        .list(calendarId=calendar, privateExtendedProperty=f"{UID_PROPERTY}={EVENT.uid}")
        .execute()["items"]
    )
    assert [(e["id"], e["start"], e["summary"]) for e in found] == [
        (remote_id, {"date": "2027-03-01"}, EVENT.summary)
    ]

    # An event the SDK made under the id the entry derives (as a first push whose answer was
    # lost): the connector's create becomes an update of it, not a second event.
    other = CalendarEvent("promise-3@acme.duebook", DAY + timedelta(days=2), "Promise", "", "u")
    sdk.events().insert(
        calendarId=calendar,
        body={
            "id": event_id_of(other.uid),
            "summary": "old words",
            "start": {"date": "2027-03-03"},
            "end": {"date": "2027-03-04"},
        },
    ).execute()
    with app.app_context():
        assert connector.upsert(access, calendar, other, None) == event_id_of(other.uid)
        connector.delete(access, calendar, remote_id)
        connector.delete(access, calendar, remote_id)  # gone already: not an error
    remaining = sdk.events().list(calendarId=calendar).execute()["items"]
    assert [(e["summary"], e["sequence"]) for e in remaining] == [("Promise", 1)]


# -- Microsoft Graph: the CSDL's declared properties ------------------------------------------


def declared(type_name: str) -> set[str]:
    """The properties (structural and navigation) of a CSDL type, its base types' included."""
    names: set[str] = set()
    while type_name:
        node = next(
            n
            for n in CSDL.iter()
            if n.tag in (f"{EDM}EntityType", f"{EDM}ComplexType") and n.get("Name") == type_name
        )
        names |= {
            p.get("Name") for p in node if p.tag in (f"{EDM}Property", f"{EDM}NavigationProperty")
        }
        type_name = (node.get("BaseType") or "").removeprefix("graph.")
    return names


def members(enum_name: str) -> set[str]:
    node = next(n for n in CSDL.iter(f"{EDM}EnumType") if n.get("Name") == enum_name)
    return {m.get("Name") for m in node}


def test_what_the_outlook_connector_sends_is_declared_by_graphs_metadata():
    connector = OutlookCalendarConnector({})
    body = {
        **connector._body(EVENT),
        "transactionId": "t",
        "singleValueExtendedProperties": [{"id": "String {x} Name y", "value": EVENT.uid}],
    }
    assert set(body) <= declared("event")
    assert set(body["body"]) <= declared("itemBody")
    assert body["body"]["contentType"] in members("bodyType")
    assert set(body["start"]) <= declared("dateTimeTimeZone") >= set(body["end"])
    assert body["showAs"] in members("freeBusyStatus")
    assert set(body["singleValueExtendedProperties"][0]) <= declared(
        "singleValueLegacyExtendedProperty"
    )


def test_the_graph_standin_answers_only_what_graphs_metadata_declares(app):
    with MicrosoftGraphStandin() as graph:
        access = graph.oauth.grant_token()["access_token"]
        headers = {"Authorization": f"Bearer {access}"}
        calendars = httpx.get(f"{graph.url}/v1.0/me/calendars", headers=headers).json()["value"]
        for calendar in calendars:
            assert set(calendar) <= declared("calendar")
            assert set(calendar["owner"]) <= declared("emailAddress")
        body = {**OutlookCalendarConnector({})._body(EVENT), "transactionId": "t-1"}
        created = httpx.post(
            f"{graph.url}/v1.0/me/calendars/AAMkCalendar/events", headers=headers, json=body
        )
        assert created.status_code == 201
        event = {k: v for k, v in created.json().items() if not k.startswith("@odata.")}
        assert set(event) <= declared("event")
        assert created.json()["@odata.etag"].startswith('W/"')
        again = httpx.post(
            f"{graph.url}/v1.0/me/calendars/AAMkCalendar/events", headers=headers, json=body
        )
        assert again.json()["id"] == created.json()["id"]  # the same transactionId: no second
        missing = httpx.patch(f"{graph.url}/v1.0/me/events/AAMkNone", headers=headers, json={})
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "ErrorItemNotFound")
        refused = httpx.get(f"{graph.url}/v1.0/me/calendars")
        assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"
