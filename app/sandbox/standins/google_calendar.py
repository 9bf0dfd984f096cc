"""Local stand-in for Google's OAuth 2.0 server and the part of Google Calendar API v3 the
Google Calendar connector uses, for tests and the `make run` sandbox.

Contract followed (Google's Discovery document calendar.v3.json, copied trimmed into
tests/contracts/google_calendar, whose tests check every answer here against its schemas;
google-api-python-client, Google's SDK, built from that document, reads and writes here):
- OAuth: `GET /o/oauth2/v2/auth` shows a consent page ("Allow" redirects to `redirect_uri`
  with `code`, `state` and `scope`; "Cancel" with `error=access_denied`); PKCE S256 required.
  `POST /token` exchanges a code (its redirect_uri and verifier checked) for `{access_token,
  expires_in: 3599, refresh_token, scope, token_type}`; a refresh answers a new access token
  and no new refresh token (Google keeps the old one); a revoked grant answers 400
  `invalid_grant`.
- `GET /calendar/v3/users/me/calendarList` (`minAccessRole`, `maxResults`, `pageToken`).
- `/calendar/v3/calendars/{calendarId}/events`: POST inserts (a client-chosen `id` must be 5 to
  1,024 characters of base32hex; an id already used in the calendar, even by a deleted event,
  answers 409 `duplicate`), GET lists (`privateExtendedProperty=name=value`, `showDeleted`,
  `maxResults`, `pageToken`); `/{eventId}`: GET, PATCH (merges the body, raises `sequence`, a
  deleted event patched to `confirmed` comes back), DELETE (204; the event stays as `cancelled`;
  again: 410 `deleted`).
- Errors in Google's JSON error shape; a bad or expired token answers 401 `authError`.

Sandbox operations (`/_standin/google/...`): `events` (GET: every calendar's events),
`revoke` (POST: every grant revoked, as removing the app's access in the Google account),
`expire` (POST: every access token expires), besides the base's faults and stats.

Not implemented: recurring events, attendees, conferencing, reminders, watch channels, sync
tokens, ACLs, calendars' own CRUD."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from copy import deepcopy
from datetime import UTC, datetime
from urllib.parse import unquote

from .base import Fault, Request, Response, StandinServer, json_response
from .oauth import AuthorizationServer

DEFAULT_CLIENT_ID = "sandbox-duebook.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "sandbox-google-client-secret"
ACCOUNT = "priya@sandbox.example"
API = "/calendar/v3"
EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
EVENTS = re.compile(rf"^{API}/calendars/([^/]+)/events(?:/([^/]+))?$")
# The writable fields of an Event the stand-in keeps (the rest of the document is not
# implemented and is refused, so a connector sending it learns early).
WRITABLE = {
    "id",
    "summary",
    "description",
    "location",
    "start",
    "end",
    "status",
    "transparency",
    "visibility",
    "source",
    "extendedProperties",
    "colorId",
    "reminders",
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


def google_error(status: int, reason: str, message: str) -> Response:
    statuses = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        404: "NOT_FOUND",
        409: "ALREADY_EXISTS",
    }
    return json_response(
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"domain": "global", "reason": reason, "message": message}],
                **({"status": statuses[status]} if status in statuses else {}),
            }
        },
    )


class GoogleCalendarStandin(StandinServer):
    name = "google_calendar"
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
            provider="Google",
            client_id=client_id,
            client_secret=client_secret,
            account=ACCOUNT,
            access_seconds=3599,
            rotate_refresh_tokens=False,
        )
        self._state = threading.Lock()
        self.reset_state()

    def reset_state(self) -> None:
        self.oauth.reset()
        self.calendars = {
            ACCOUNT: {"summary": ACCOUNT, "primary": True, "accessRole": "owner"},
            "team-dates@group.calendar.google.com": {
                "summary": "Team dates",
                "primary": False,
                "accessRole": "writer",
            },
            "holidays@group.v.calendar.google.com": {
                "summary": "Holidays in India",
                "primary": False,
                "accessRole": "reader",
            },
        }
        self.events: dict[str, dict[str, dict]] = {calendar: {} for calendar in self.calendars}

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        if path == "/o/oauth2/v2/auth":
            return self.oauth.authorize(request, "/o/oauth2/v2/auth")
        if path == "/token" and request.method == "POST":
            return self.oauth.token(request)
        if not path.startswith(API + "/"):
            return google_error(404, "notFound", "Not Found")
        if self.oauth.grant_of(request) is None:
            return google_error(401, "authError", "Request had invalid authentication credentials.")
        fault = self.take_fault()
        if fault is not None:
            return fault
        if path == f"{API}/users/me/calendarList" and request.method == "GET":
            return self._calendar_list(request)
        match = EVENTS.match(path)
        if match is None:
            return google_error(404, "notFound", "Not Found")
        calendar_id, event_id = unquote(match.group(1)), match.group(2)
        if calendar_id not in self.calendars:
            return google_error(404, "notFound", "Not Found")
        if event_id is None:
            if request.method == "POST":
                return self._insert(request, calendar_id)
            if request.method == "GET":
                return self._list(request, calendar_id)
        else:
            event_id = unquote(event_id)
            if request.method == "GET":
                return self._get(calendar_id, event_id)
            if request.method == "PATCH":
                return self._patch(request, calendar_id, event_id)
            if request.method == "DELETE":
                return self._delete(calendar_id, event_id)
        return google_error(405, "methodNotAllowed", "Method not allowed")

    def fault_response(self, fault: Fault) -> Response:
        reason = "rateLimitExceeded" if fault.status == 429 else "backendError"
        return google_error(fault.status, reason, fault.message or "injected fault")

    def admin(self, request: Request) -> Response | None:
        route = (request.method, request.path.rstrip("/"))
        if route == ("GET", "/_standin/google/events"):
            with self._state:
                return json_response(200, {"calendars": deepcopy(self.events)})
        if route == ("POST", "/_standin/google/revoke"):
            self.oauth.revoke_all()
            return json_response(200, {"revoked": True})
        if route == ("POST", "/_standin/google/expire"):
            self.oauth.expire_access_tokens()
            return json_response(200, {"expired": True})
        return None

    # -- calendars -----------------------------------------------------------------------

    def _calendar_list(self, request: Request) -> Response:
        ranks = {"freeBusyReader": 0, "reader": 1, "writer": 2, "owner": 3}
        least = ranks.get(request.arg("minAccessRole") or "freeBusyReader", 0)
        items = [
            {
                "kind": "calendar#calendarListEntry",
                "etag": _etag(calendar_id),
                "id": calendar_id,
                "summary": values["summary"],
                "timeZone": "Asia/Kolkata",
                "accessRole": values["accessRole"],
                **({"primary": True} if values["primary"] else {}),
            }
            for calendar_id, values in self.calendars.items()
            if ranks[values["accessRole"]] >= least
        ]
        return json_response(
            200, {"kind": "calendar#calendarList", "etag": _etag("list"), "items": items}
        )

    # -- events --------------------------------------------------------------------------

    def _body(self, request: Request) -> tuple[dict | None, Response | None]:
        try:
            body = request.json()
        except ValueError:
            return None, google_error(400, "parseError", "Parse Error")
        if not isinstance(body, dict):
            return None, google_error(400, "parseError", "Parse Error")
        unknown = set(body) - WRITABLE
        if unknown:
            return None, google_error(
                400, "invalid", f"Not supported by the stand-in: {', '.join(sorted(unknown))}"
            )
        for edge in ("start", "end"):
            if edge in body and not (
                isinstance(body[edge], dict) and ("date" in body[edge] or "dateTime" in body[edge])
            ):
                return None, google_error(400, "required", f"Missing {edge} time.")
        return body, None

    def _insert(self, request: Request, calendar_id: str) -> Response:
        if self.calendars[calendar_id]["accessRole"] not in ("writer", "owner"):
            return google_error(403, "forbidden", "Forbidden")
        body, refused = self._body(request)
        if refused:
            return refused
        if "start" not in body or "end" not in body:
            return google_error(400, "required", "Missing time.")
        event_id = body.get("id") or hashlib.sha256(json.dumps(body).encode()).hexdigest()[:26]
        if not EVENT_ID.match(event_id):
            return google_error(400, "invalid", "Invalid resource id value.")
        with self._state:
            if event_id in self.events[calendar_id]:
                return google_error(409, "duplicate", "The requested identifier already exists.")
            moment = _now()
            event = {
                "kind": "calendar#event",
                "id": event_id,
                "status": "confirmed",
                "htmlLink": f"{self.url}/calendar/event?eid={event_id}",
                "created": moment,
                "updated": moment,
                "creator": {"email": ACCOUNT, "self": True},
                "organizer": {"email": calendar_id, "self": True},
                "iCalUID": f"{event_id}@google.com",
                "sequence": 0,
                "reminders": {"useDefault": True},
                "eventType": "default",
                **{key: value for key, value in body.items() if key != "id"},
            }
            event["etag"] = _etag(json.dumps(event, sort_keys=True))
            self.events[calendar_id][event_id] = event
            self.record({"op": "insert", "calendar": calendar_id, "id": event_id})
            return json_response(200, deepcopy(event))

    def _get(self, calendar_id: str, event_id: str) -> Response:
        with self._state:
            event = self.events[calendar_id].get(event_id)
            if event is None:
                return google_error(404, "notFound", "Not Found")
            return json_response(200, deepcopy(event))

    def _patch(self, request: Request, calendar_id: str, event_id: str) -> Response:
        body, refused = self._body(request)
        if refused:
            return refused
        with self._state:
            event = self.events[calendar_id].get(event_id)
            if event is None:
                return google_error(404, "notFound", "Not Found")
            body.pop("id", None)
            event.update(body)
            event["sequence"] += 1
            event["updated"] = _now()
            event["etag"] = _etag(json.dumps(event, sort_keys=True))
            self.record({"op": "patch", "calendar": calendar_id, "id": event_id})
            return json_response(200, deepcopy(event))

    def _delete(self, calendar_id: str, event_id: str) -> Response:
        with self._state:
            event = self.events[calendar_id].get(event_id)
            if event is None:
                return google_error(404, "notFound", "Not Found")
            if event["status"] == "cancelled":
                return google_error(410, "deleted", "Resource has been deleted")
            event["status"] = "cancelled"
            event["updated"] = _now()
            self.record({"op": "delete", "calendar": calendar_id, "id": event_id})
            return Response(204)

    def _list(self, request: Request, calendar_id: str) -> Response:
        wanted = [
            value.partition("=") for value in request.query.get("privateExtendedProperty", [])
        ]
        show_deleted = request.arg("showDeleted") == "true"
        with self._state:
            items = [
                deepcopy(event)
                for event in self.events[calendar_id].values()
                if (show_deleted or event["status"] != "cancelled")
                and all(
                    (event.get("extendedProperties") or {}).get("private", {}).get(name) == value
                    for name, _, value in wanted
                )
            ]
        size = int(request.arg("maxResults") or 250)
        start = int(request.arg("pageToken") or 0)
        answer = {
            "kind": "calendar#events",
            "etag": _etag(str(len(items))),
            "summary": self.calendars[calendar_id]["summary"],
            "updated": _now(),
            "timeZone": "Asia/Kolkata",
            "accessRole": self.calendars[calendar_id]["accessRole"],
            "items": items[start : start + size],
        }
        if start + size < len(items):
            answer["nextPageToken"] = str(start + size)
        return json_response(200, answer)

    # -- for tests and the sandbox page --------------------------------------------------

    def live_events(self, calendar_id: str = ACCOUNT) -> list[dict]:
        with self._state:
            return [
                deepcopy(e) for e in self.events[calendar_id].values() if e["status"] != "cancelled"
            ]


def _etag(text: str) -> str:
    return '"' + str(int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)) + '"'
