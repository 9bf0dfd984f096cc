"""Local stand-in for the Microsoft identity platform (v2.0 endpoints) and the part of Microsoft
Graph v1.0 the Outlook calendar connector uses, for tests and the `make run` sandbox.

Contract followed (Graph's v1.0 CSDL metadata, copied trimmed into tests/contracts/
microsoft_graph, whose tests check every property sent and answered here is declared there):
- OAuth: `GET /common/oauth2/v2.0/authorize` shows a consent page ("Allow" redirects with
  `code` and `state`, "Cancel" with `error=access_denied`); PKCE S256 required.
  `POST /common/oauth2/v2.0/token` answers `{token_type, scope, expires_in: 3599,
  access_token, refresh_token}`; refresh tokens rotate (the used one stops working); a revoked
  consent answers 400 `invalid_grant`.
- `GET /v1.0/me/calendars` (`$select`, `$top`): the calendars with `canEdit` and
  `isDefaultCalendar`.
- `POST /v1.0/me/calendars/{id}/events`: 201 with the event; a `transactionId` already used by a
  live event of the mailbox answers that event again instead of a second one;
  `singleValueExtendedProperties` are kept (answered only when `$expand`ed, as Graph does).
  `GET` the same address with `$filter=singleValueExtendedProperties/Any(ep: ep/id eq '<id>'
  and ep/value eq '<value>')` finds events by a property (the only `$filter` implemented).
- `/v1.0/me/events/{id}`: GET, PATCH (200 with the event), DELETE (204); an unknown id 404
  `ErrorItemNotFound`. A bad or expired token: 401 `InvalidAuthenticationToken`.

Sandbox operations (`/_standin/graph/...`): `events` (GET: every calendar's events), `revoke`
(POST: every consent revoked), `expire` (POST: every access token expires), besides the base's
faults and stats.

Not implemented: attendees, recurrence, online meetings, time zones other than UTC, delta
queries, `$orderby`, paging of events."""

from __future__ import annotations

import re
import secrets
import threading
from copy import deepcopy
from datetime import UTC, datetime
from urllib.parse import unquote

from .base import Fault, Request, Response, StandinServer, json_response
from .oauth import AuthorizationServer

DEFAULT_CLIENT_ID = "00000000-0000-4000-8000-00000000d0eb"
DEFAULT_CLIENT_SECRET = "sandbox-microsoft-client-secret"
ACCOUNT = "arjun@sandbox.onmicrosoft.com"
LOGIN = "/common/oauth2/v2.0"
API = "/v1.0"
CALENDAR_EVENTS = re.compile(rf"^{API}/me/calendars/([^/]+)/events$")
EVENT = re.compile(rf"^{API}/me/events/([^/]+)$")
PROPERTY_FILTER = re.compile(
    r"^singleValueExtendedProperties/Any\(ep:\s*ep/id eq '((?:[^']|'')*)' and "
    r"ep/value eq '((?:[^']|'')*)'\)$"
)
# Event properties a client may write that the stand-in keeps; anything else is refused.
WRITABLE = {
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "showAs",
    "isReminderOn",
    "categories",
    "location",
    "sensitivity",
    "importance",
    "transactionId",
    "singleValueExtendedProperties",
}


def graph_error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"error": {"code": code, "message": message}})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


class MicrosoftGraphStandin(StandinServer):
    name = "microsoft_graph"
    default_status_script = ()

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.oauth = AuthorizationServer(
            provider="Microsoft",
            client_id=client_id,
            client_secret=client_secret,
            account=ACCOUNT,
            access_seconds=3599,
            rotate_refresh_tokens=True,
        )
        self._state = threading.Lock()
        self.reset_state()

    def reset_state(self) -> None:
        self.oauth.reset()
        self.calendars = {
            "AAMkCalendar": {"name": "Calendar", "isDefaultCalendar": True, "canEdit": True},
            "AAMkCollections": {"name": "Collections", "isDefaultCalendar": False, "canEdit": True},
            "AAMkBirthdays": {"name": "Birthdays", "isDefaultCalendar": False, "canEdit": False},
        }
        # event id -> (calendar id, event with its extended properties)
        self.events: dict[str, tuple[str, dict]] = {}

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        if path == f"{LOGIN}/authorize":
            return self.oauth.authorize(request, f"{LOGIN}/authorize")
        if path == f"{LOGIN}/token" and request.method == "POST":
            return self.oauth.token(request)
        if not path.startswith(API + "/"):
            return graph_error(404, "BadRequest", "Resource not found for the segment.")
        if self.oauth.grant_of(request) is None:
            return graph_error(401, "InvalidAuthenticationToken", "Access token has expired.")
        fault = self.take_fault()
        if fault is not None:
            return fault
        if path == f"{API}/me/calendars" and request.method == "GET":
            return self._calendars()
        match = CALENDAR_EVENTS.match(path)
        if match:
            calendar_id = unquote(match.group(1))
            if calendar_id not in self.calendars:
                return graph_error(404, "ErrorItemNotFound", "The specified object was not found.")
            if request.method == "POST":
                return self._create(request, calendar_id)
            if request.method == "GET":
                return self._find(request, calendar_id)
        match = EVENT.match(path)
        if match:
            event_id = unquote(match.group(1))
            if request.method == "GET":
                return self._get(request, event_id)
            if request.method == "PATCH":
                return self._update(request, event_id)
            if request.method == "DELETE":
                return self._delete(event_id)
        return graph_error(400, "BadRequest", "Unsupported request.")

    def fault_response(self, fault: Fault) -> Response:
        code = "TooManyRequests" if fault.status == 429 else "ServiceNotAvailable"
        return graph_error(fault.status, code, fault.message or "injected fault")

    def admin(self, request: Request) -> Response | None:
        route = (request.method, request.path.rstrip("/"))
        if route == ("GET", "/_standin/graph/events"):
            with self._state:
                return json_response(200, {"events": [e for _, e in self.events.values()]})
        if route == ("POST", "/_standin/graph/revoke"):
            self.oauth.revoke_all()
            return json_response(200, {"revoked": True})
        if route == ("POST", "/_standin/graph/expire"):
            self.oauth.expire_access_tokens()
            return json_response(200, {"expired": True})
        return None

    # -- calendars -----------------------------------------------------------------------

    def _calendars(self) -> Response:
        value = [
            {
                "id": calendar_id,
                "name": values["name"],
                "color": "auto",
                "changeKey": secrets.token_hex(6),
                "canShare": values["canEdit"],
                "canViewPrivateItems": True,
                "canEdit": values["canEdit"],
                "isDefaultCalendar": values["isDefaultCalendar"],
                "owner": {"name": "Arjun", "address": ACCOUNT},
            }
            for calendar_id, values in self.calendars.items()
        ]
        return json_response(
            200, {"@odata.context": f"{self.url}{API}/$metadata#me/calendars", "value": value}
        )

    # -- events --------------------------------------------------------------------------

    def _body(self, request: Request) -> tuple[dict | None, Response | None]:
        try:
            body = request.json()
        except ValueError:
            return None, graph_error(400, "BadRequest", "Unable to read JSON request payload.")
        if not isinstance(body, dict):
            return None, graph_error(400, "BadRequest", "Unable to read JSON request payload.")
        unknown = set(body) - WRITABLE
        if unknown:
            return None, graph_error(
                400, "BadRequest", f"Not supported by the stand-in: {', '.join(sorted(unknown))}"
            )
        return body, None

    def _answer(self, event: dict, request: Request, status: int = 200) -> Response:
        shown = {k: v for k, v in event.items() if k != "singleValueExtendedProperties"}
        if "singleValueExtendedProperties" in (request.arg("$expand") or ""):
            shown["singleValueExtendedProperties"] = event.get("singleValueExtendedProperties", [])
        shown["@odata.context"] = f"{self.url}{API}/$metadata#users('{ACCOUNT}')/events/$entity"
        shown["@odata.etag"] = f'W/"{event["changeKey"]}"'
        return json_response(status, deepcopy(shown))

    def _create(self, request: Request, calendar_id: str) -> Response:
        if not self.calendars[calendar_id]["canEdit"]:
            return graph_error(403, "ErrorAccessDenied", "Access is denied.")
        body, refused = self._body(request)
        if refused:
            return refused
        if not isinstance(body.get("start"), dict) or not isinstance(body.get("end"), dict):
            return graph_error(400, "ErrorInvalidRequest", "start and end are required.")
        with self._state:
            transaction = body.get("transactionId")
            for _, existing in self.events.values():
                if transaction and existing.get("transactionId") == transaction:
                    return self._answer(existing, request, 201)
            event_id = "AAMkEvent" + secrets.token_hex(12)
            moment = _now()
            event = {
                "id": event_id,
                "createdDateTime": moment,
                "lastModifiedDateTime": moment,
                "changeKey": secrets.token_hex(6),
                "categories": [],
                "transactionId": transaction,
                "originalStartTimeZone": "UTC",
                "originalEndTimeZone": "UTC",
                "iCalUId": "040000008200E00074C5B7101A82E008" + secrets.token_hex(16),
                "reminderMinutesBeforeStart": 15,
                "isReminderOn": True,
                "subject": "",
                "bodyPreview": "",
                "importance": "normal",
                "sensitivity": "normal",
                "isAllDay": False,
                "isCancelled": False,
                "isOrganizer": True,
                "showAs": "busy",
                "type": "singleInstance",
                "webLink": f"{self.url}/owa/?itemid={event_id}",
                **body,
            }
            event["bodyPreview"] = ((event.get("body") or {}).get("content") or "")[:255]
            self.events[event_id] = (calendar_id, event)
            self.record({"op": "create", "calendar": calendar_id, "id": event_id})
            return self._answer(event, request, 201)

    def _find(self, request: Request, calendar_id: str) -> Response:
        wanted = PROPERTY_FILTER.match(request.arg("$filter") or "")
        if request.arg("$filter") and wanted is None:
            return graph_error(400, "BadRequest", "Only the extended property filter is supported.")
        with self._state:
            found = [
                event
                for owner, event in self.events.values()
                if owner == calendar_id
                and (
                    wanted is None
                    or any(
                        prop.get("id") == wanted.group(1).replace("''", "'")
                        and prop.get("value") == wanted.group(2).replace("''", "'")
                        for prop in event.get("singleValueExtendedProperties", [])
                    )
                )
            ]
            fields = [f for f in (request.arg("$select") or "").split(",") if f]
            value = [
                {k: v for k, v in e.items() if not fields or k in fields or k == "id"}
                for e in found
            ]
            for item in value:
                item.pop("singleValueExtendedProperties", None)
        return json_response(
            200, {"@odata.context": f"{self.url}{API}/$metadata#events", "value": deepcopy(value)}
        )

    def _get(self, request: Request, event_id: str) -> Response:
        with self._state:
            found = self.events.get(event_id)
            if found is None:
                return graph_error(404, "ErrorItemNotFound", "The specified object was not found.")
            return self._answer(found[1], request)

    def _update(self, request: Request, event_id: str) -> Response:
        body, refused = self._body(request)
        if refused:
            return refused
        with self._state:
            found = self.events.get(event_id)
            if found is None:
                return graph_error(404, "ErrorItemNotFound", "The specified object was not found.")
            event = found[1]
            event.update(body)
            event["bodyPreview"] = ((event.get("body") or {}).get("content") or "")[:255]
            event["lastModifiedDateTime"] = _now()
            event["changeKey"] = secrets.token_hex(6)
            self.record({"op": "update", "id": event_id})
            return self._answer(event, request)

    def _delete(self, event_id: str) -> Response:
        with self._state:
            if self.events.pop(event_id, None) is None:
                return graph_error(404, "ErrorItemNotFound", "The specified object was not found.")
            self.record({"op": "delete", "id": event_id})
            return Response(204)

    # -- for tests -----------------------------------------------------------------------

    def live_events(self, calendar_id: str = "AAMkCalendar") -> list[dict]:
        with self._state:
            return [deepcopy(e) for owner, e in self.events.values() if owner == calendar_id]
