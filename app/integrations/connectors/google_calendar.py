"""Google Calendar (API v3, its Discovery document calendar.v3.json; tests/contracts/
google-calendar): a member's chosen calendar gets Duebook's entries as all-day events.

- OAuth 2.0 authorization code with PKCE (S256) for a web server app: consent at
  GOOGLE_ACCOUNTS_BASE `/o/oauth2/v2/auth` with `access_type=offline` and `prompt=consent` (so
  a refresh token comes back every time), tokens at GOOGLE_OAUTH_BASE `/token`. A refresh
  answers a new access token and keeps the refresh token; `invalid_grant` means the consent is
  gone (withdrawn, or expired), which is ConsentRevoked.
- Scopes: the calendar list (read) and events (read and write), nothing of the rest.
- Each entry's event id is derived from its UID (base32hex of its SHA-256, the alphabet Google
  allows), so creating is idempotent by construction: a retried insert answers 409 and becomes
  a patch, never a second event. The UID is kept in `extendedProperties.private` too.
- A deleted event stays on Google as `status: cancelled` under its id: writing the entry again
  patches it back to `confirmed`.
- Rate limits answer 403 `rateLimitExceeded`/`userRateLimitExceeded` or 429: CalendarUnavailable.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote, urlencode

from app.integrations.connectors.calendar import (
    CalendarConnector,
    CalendarEvent,
    CalendarGone,
    CalendarUnavailable,
    RemoteCalendar,
    Tokens,
    base32hex,
    uid_digest,
)

SCOPES = (
    "https://www.googleapis.com/auth/calendar.calendarlist.readonly "
    "https://www.googleapis.com/auth/calendar.events"
)
API_PATH = "/calendar/v3"
UID_PROPERTY = "duebookUid"
RATE_REASONS = ("rateLimitExceeded", "userRateLimitExceeded")


def event_id_of(uid: str) -> str:
    """The Google event id of an entry: 52 characters of base32hex, the same for every retry."""
    return base32hex(uid_digest(uid))


class GoogleCalendarConnector(CalendarConnector):
    provider = "google_calendar"
    title = "Google Calendar"
    client_id_setting = "GOOGLE_CALENDAR_CLIENT_ID"
    client_secret_setting = "GOOGLE_CALENDAR_CLIENT_SECRET"

    def _api(self, path: str) -> str:
        return self.config["GOOGLE_CALENDAR_API_BASE"].rstrip("/") + API_PATH + path

    # -- OAuth ---------------------------------------------------------------------------

    def authorization_url(self, redirect_uri: str, state: str, code_challenge: str) -> str:
        query = urlencode(
            {
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": SCOPES,
                "access_type": "offline",
                "prompt": "consent",
                "include_granted_scopes": "true",
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{self.config['GOOGLE_ACCOUNTS_BASE'].rstrip('/')}/o/oauth2/v2/auth?{query}"

    def _token_url(self) -> str:
        return self.config["GOOGLE_OAUTH_BASE"].rstrip("/") + "/token"

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> Tokens:
        return self._token_request(
            self._token_url(),
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )

    def refresh(self, tokens: Tokens) -> Tokens:
        return self._token_request(
            self._token_url(),
            {
                "grant_type": "refresh_token",
                "refresh_token": tokens.refresh_token or "",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
            tokens,
        )

    # -- calendars and events ------------------------------------------------------------

    def _checked(self, response, what: str):
        if response.status_code == 403 and _reason(response) in RATE_REASONS:
            raise CalendarUnavailable(f"Google Calendar asks to slow down ({what}).")
        return response

    def calendars(self, access_token: str) -> list[RemoteCalendar]:
        found, page = [], None
        while True:
            params = {"minAccessRole": "writer", "maxResults": "250"}
            if page:
                params["pageToken"] = page
            response = self._checked(
                self._call("GET", self._api("/users/me/calendarList"), access_token, params=params),
                "listing calendars",
            )
            if response.status_code != 200:
                raise self._refused(response, "the calendar list")
            answer = response.json()
            found += [
                RemoteCalendar(
                    item["id"], item.get("summary") or item["id"], bool(item.get("primary"))
                )
                for item in answer.get("items", [])
            ]
            page = answer.get("nextPageToken")
            if not page:
                return found

    def _body(self, event: CalendarEvent) -> dict:
        return {
            "summary": event.summary,
            "description": f"{event.description}\n\n{event.url}",
            "start": {"date": event.day.isoformat()},
            "end": {"date": (event.day + timedelta(days=1)).isoformat()},
            "transparency": "transparent",
            "status": "confirmed",
            "source": {"title": "Duebook", "url": event.url},
            "extendedProperties": {"private": {UID_PROPERTY: event.uid}},
        }

    def _events(self, calendar_id: str, event_id: str = "") -> str:
        path = f"/calendars/{quote(calendar_id, safe='')}/events"
        return self._api(path + (f"/{quote(event_id, safe='')}" if event_id else ""))

    def upsert(self, access_token, calendar_id, event, remote_id):
        event_id = remote_id or event_id_of(event.uid)
        body = self._body(event)
        if remote_id:
            response = self._checked(
                self._call("PATCH", self._events(calendar_id, event_id), access_token, json=body),
                "updating an event",
            )
            if response.status_code == 200:
                return event_id
            if response.status_code not in (404, 410):
                raise self._refused(response, "the update")
        response = self._checked(
            self._call(
                "POST", self._events(calendar_id), access_token, json={"id": event_id, **body}
            ),
            "adding an event",
        )
        if response.status_code == 200:
            return response.json()["id"]
        if response.status_code == 409:  # written before (a retry, or deleted and back)
            response = self._checked(
                self._call("PATCH", self._events(calendar_id, event_id), access_token, json=body),
                "updating an event",
            )
            if response.status_code == 200:
                return event_id
        if response.status_code in (403, 404):
            raise CalendarGone("The chosen Google calendar is gone or can no longer be written.")
        raise self._refused(response, "the event")

    def delete(self, access_token, calendar_id, remote_id):
        response = self._checked(
            self._call("DELETE", self._events(calendar_id, remote_id), access_token),
            "removing an event",
        )
        if response.status_code in (200, 204, 404, 410):
            return
        raise self._refused(response, "the removal")


def _reason(response) -> str | None:
    try:
        errors = response.json()["error"]["errors"]
        return errors[0].get("reason")
    except (ValueError, KeyError, IndexError, TypeError):
        return None
