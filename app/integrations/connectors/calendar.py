"""What the calendar connectors (Google Calendar, Outlook through Microsoft Graph) share: the
tokens of a member's consent, the calendars it reaches, the entry to write, and the errors a
push tells apart. Wire protocol only: an entry arrives as plain values (its UID, day, words)
and nothing here knows where it came from."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx

from app.integrations.connectors import pooled_client, retry_after_seconds

# An access token this close to its end is refreshed before a push starts.
REFRESH_MARGIN = timedelta(minutes=2)


class CalendarError(Exception):
    """The provider refused or failed; the message says what, in plain words."""


class ConsentRevoked(CalendarError):
    """The refresh token no longer works (consent withdrawn, expired, the account gone): the
    member must connect again."""


class AccessExpired(CalendarError):
    """The access token was refused (401): refresh it and try once more."""


class CalendarUnavailable(CalendarError):
    """A 5xx, a timeout or a 429: try again later (`retry_after` seconds when the provider
    said)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class CalendarGone(CalendarError):
    """The chosen calendar no longer exists or can no longer be written."""


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_at: datetime

    def secrets(self) -> dict:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at.isoformat(),
        }

    @classmethod
    def from_secrets(cls, values: dict) -> Tokens:
        return cls(
            values["access_token"],
            values.get("refresh_token"),
            datetime.fromisoformat(values["expires_at"]),
        )

    def expiring(self, now: datetime | None = None) -> bool:
        return self.expires_at - REFRESH_MARGIN <= (now or datetime.now(UTC))


@dataclass(frozen=True)
class RemoteCalendar:
    id: str
    name: str
    primary: bool


@dataclass(frozen=True)
class CalendarEvent:
    """One all-day entry: `uid` is the stable key ("invoice-7@acme.duebook")."""

    uid: str
    day: date
    summary: str
    description: str
    url: str


def uid_digest(uid: str) -> bytes:
    return hashlib.sha256(uid.encode()).digest()


def base32hex(data: bytes) -> str:
    """RFC 4648 base32hex, lower case and unpadded: the alphabet Google's event ids allow."""
    return base64.b32hexencode(data).decode().rstrip("=").lower()


class CalendarConnector:
    provider = ""
    title = ""
    # Config settings: the platform's OAuth app, and the provider's addresses.
    client_id_setting = ""
    client_secret_setting = ""

    def __init__(self, config):
        self.config = config
        self.client = pooled_client(timeout=httpx.Timeout(20.0))

    @property
    def client_id(self) -> str:
        return self.config[self.client_id_setting]

    @property
    def client_secret(self) -> str:
        return self.config[self.client_secret_setting]

    def authorization_url(self, redirect_uri: str, state: str, code_challenge: str) -> str:
        raise NotImplementedError

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> Tokens:
        raise NotImplementedError

    def refresh(self, tokens: Tokens) -> Tokens:
        raise NotImplementedError

    def calendars(self, access_token: str) -> list[RemoteCalendar]:
        raise NotImplementedError

    def upsert(
        self, access_token: str, calendar_id: str, event: CalendarEvent, remote_id: str | None
    ) -> str:
        """Write the entry (create it, or update the one already written); its remote id."""
        raise NotImplementedError

    def delete(self, access_token: str, calendar_id: str, remote_id: str) -> None:
        """Remove the entry; one already gone is not an error."""
        raise NotImplementedError

    # -- shared by both connectors -------------------------------------------------------

    def _token_request(self, url: str, form: dict, old: Tokens | None = None) -> Tokens:
        try:
            response = self.client.post(url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise CalendarUnavailable(f"{self.title} could not be reached: {error}") from None
        answer = _json(response)
        if response.status_code == 400 and answer.get("error") == "invalid_grant":
            raise ConsentRevoked(
                f"{self.title} no longer accepts Duebook's access; connect the calendar again."
            )
        if response.status_code >= 500 or response.status_code == 429:
            raise CalendarUnavailable(
                f"{self.title} is not answering ({response.status_code}).",
                retry_after_seconds(response.headers.get("Retry-After")),
            )
        if response.status_code != 200 or not answer.get("access_token"):
            raise CalendarError(
                f"{self.title} refused the sign-in: "
                f"{answer.get('error_description') or answer.get('error') or response.status_code}."
            )
        lifetime = int(answer.get("expires_in") or 3600)
        return Tokens(
            access_token=answer["access_token"],
            # Google answers a refresh without a new refresh token: the old one stays good.
            refresh_token=answer.get("refresh_token") or (old.refresh_token if old else None),
            expires_at=datetime.now(UTC) + timedelta(seconds=lifetime),
        )

    def _call(self, method: str, url: str, access_token: str, **options) -> httpx.Response:
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        try:
            response = self.client.request(method, url, headers=headers, **options)
        except httpx.HTTPError as error:
            raise CalendarUnavailable(f"{self.title} could not be reached: {error}") from None
        if response.status_code == 401:
            raise AccessExpired(f"{self.title} refused the access token.")
        if response.status_code == 429 or response.status_code >= 500:
            raise CalendarUnavailable(
                f"{self.title} is busy or failing ({response.status_code}); trying again later.",
                retry_after_seconds(response.headers.get("Retry-After")),
            )
        return response

    def _refused(self, response: httpx.Response, what: str) -> CalendarError:
        answer = _json(response)
        error = answer.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        return CalendarError(f"{self.title} refused {what}: {message or response.status_code}.")


def _json(response: httpx.Response) -> dict:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
