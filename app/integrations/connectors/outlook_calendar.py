"""Outlook calendars through Microsoft Graph v1.0 (its CSDL metadata, tests/contracts/
microsoft-graph): a member's chosen calendar gets Duebook's entries as all-day events.

- OAuth 2.0 authorization code with PKCE (S256) on the Microsoft identity platform (v2.0
  endpoints, the `common` tenant: work, school and personal accounts): consent at
  MICROSOFT_LOGIN_BASE `/common/oauth2/v2.0/authorize`, tokens at `/common/oauth2/v2.0/token`.
  Refresh tokens rotate (each refresh answers a new one); `invalid_grant` is ConsentRevoked.
- Scopes: `offline_access Calendars.ReadWrite User.Read`.
- Each event carries the entry's UID in a single-value extended property (a named property in
  Duebook's own property set), and is created with a `transactionId` derived from the UID, which
  Graph uses to recognise a retried POST. Before creating an entry it has no id for, the
  connector looks the UID up (`$filter` on the property), so an answer lost after Graph made
  the event never leads to a second one.
- All-day events: `isAllDay` with midnight-to-midnight `start`/`end` in UTC.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import quote, urlencode

from app.integrations.connectors.calendar import (
    CalendarConnector,
    CalendarEvent,
    CalendarGone,
    RemoteCalendar,
    Tokens,
)

SCOPES = "offline_access Calendars.ReadWrite User.Read"
# Duebook's property set for its named MAPI properties (a GUID of its own, fixed forever).
PROPERTY_SET = "{3f7cbb1c-6f0e-4a0b-9d38-5b1d2b4c8e21}"
UID_PROPERTY_ID = f"String {PROPERTY_SET} Name DuebookUid"
TRANSACTION_NAMESPACE = uuid.UUID("8d1f2e3c-4b5a-4c6d-8e7f-9a0b1c2d3e4f")


def transaction_id_of(uid: str) -> str:
    return str(uuid.uuid5(TRANSACTION_NAMESPACE, uid))


def _day_time(day) -> str:
    return f"{day.isoformat()}T00:00:00.0000000"


class OutlookCalendarConnector(CalendarConnector):
    provider = "outlook_calendar"
    title = "Outlook"
    client_id_setting = "MICROSOFT_CLIENT_ID"
    client_secret_setting = "MICROSOFT_CLIENT_SECRET"

    def _api(self, path: str) -> str:
        return self.config["MICROSOFT_GRAPH_BASE"].rstrip("/") + "/v1.0" + path

    def _login(self, path: str) -> str:
        return self.config["MICROSOFT_LOGIN_BASE"].rstrip("/") + "/common/oauth2/v2.0" + path

    # -- OAuth ---------------------------------------------------------------------------

    def authorization_url(self, redirect_uri: str, state: str, code_challenge: str) -> str:
        query = urlencode(
            {
                "client_id": self.client_id,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "response_mode": "query",
                "scope": SCOPES,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{self._login('/authorize')}?{query}"

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> Tokens:
        return self._token_request(
            self._login("/token"),
            {
                "grant_type": "authorization_code",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "scope": SCOPES,
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            },
        )

    def refresh(self, tokens: Tokens) -> Tokens:
        return self._token_request(
            self._login("/token"),
            {
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "scope": SCOPES,
                "refresh_token": tokens.refresh_token or "",
            },
            tokens,
        )

    # -- calendars and events ------------------------------------------------------------

    def calendars(self, access_token: str) -> list[RemoteCalendar]:
        found = []
        url = (
            self._api("/me/calendars")
            + "?"
            + urlencode({"$select": "id,name,canEdit,isDefaultCalendar", "$top": "100"})
        )
        while url:
            response = self._call("GET", url, access_token)
            if response.status_code != 200:
                raise self._refused(response, "the calendar list")
            answer = response.json()
            found += [
                RemoteCalendar(
                    item["id"], item.get("name") or item["id"], bool(item.get("isDefaultCalendar"))
                )
                for item in answer.get("value", [])
                if item.get("canEdit", True)
            ]
            url = answer.get("@odata.nextLink")
        return found

    def _body(self, event: CalendarEvent) -> dict:
        return {
            "subject": event.summary,
            "body": {"contentType": "text", "content": f"{event.description}\n\n{event.url}"},
            "start": {"dateTime": _day_time(event.day), "timeZone": "UTC"},
            "end": {"dateTime": _day_time(event.day + timedelta(days=1)), "timeZone": "UTC"},
            "isAllDay": True,
            "showAs": "free",
            "isReminderOn": False,
        }

    def _calendar_events(self, calendar_id: str) -> str:
        return self._api(f"/me/calendars/{quote(calendar_id, safe='')}/events")

    def find(self, access_token: str, calendar_id: str, uid: str) -> str | None:
        """The id of the event already carrying `uid`, if any."""
        escaped = uid.replace("'", "''")
        query = urlencode(
            {
                "$filter": "singleValueExtendedProperties/Any(ep: ep/id eq "
                f"'{UID_PROPERTY_ID}' and ep/value eq '{escaped}')",
                "$select": "id",
            }
        )
        response = self._call("GET", f"{self._calendar_events(calendar_id)}?{query}", access_token)
        if response.status_code == 404:
            raise CalendarGone("The chosen Outlook calendar is gone.")
        if response.status_code != 200:
            raise self._refused(response, "the search for an event")
        found = response.json().get("value", [])
        return found[0]["id"] if found else None

    def upsert(self, access_token, calendar_id, event, remote_id):
        body = self._body(event)
        remote_id = remote_id or self.find(access_token, calendar_id, event.uid)
        if remote_id:
            response = self._call(
                "PATCH",
                self._api(f"/me/events/{quote(remote_id, safe='')}"),
                access_token,
                json=body,
            )
            if response.status_code == 200:
                return remote_id
            if response.status_code != 404:
                raise self._refused(response, "the update")
        response = self._call(
            "POST",
            self._calendar_events(calendar_id),
            access_token,
            json={
                **body,
                "transactionId": transaction_id_of(event.uid),
                "singleValueExtendedProperties": [{"id": UID_PROPERTY_ID, "value": event.uid}],
            },
        )
        if response.status_code in (200, 201):
            return response.json()["id"]
        if response.status_code in (403, 404):
            raise CalendarGone("The chosen Outlook calendar is gone or can no longer be written.")
        raise self._refused(response, "the event")

    def delete(self, access_token, calendar_id, remote_id):
        response = self._call(
            "DELETE", self._api(f"/me/events/{quote(remote_id, safe='')}"), access_token
        )
        if response.status_code in (204, 404):
            return
        raise self._refused(response, "the removal")
