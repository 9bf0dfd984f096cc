"""Settings come from environment variables only (documented in README.md)."""

from __future__ import annotations

import base64
import hashlib
import logging
import os

import argon2
from limits import parse_many

from app.core.outbound import parse_networks

ENVIRONMENTS = ("production", "development", "test")
# What a client import file may hold: one setting per limit of
# app.clients.imports.limits.ImportLimits, named after it (the defaults are there).
IMPORT_LIMIT_SETTINGS = (
    "IMPORT_MAX_ROWS",
    "IMPORT_MAX_COLUMNS",
    "IMPORT_MAX_CELL_CHARS",
    "IMPORT_XLSX_MAX_ENTRIES",
    "IMPORT_XLSX_MAX_ENTRY_BYTES",
    "IMPORT_XLSX_MAX_TOTAL_BYTES",
    "IMPORT_XLSX_MAX_RATIO",
)


def _database_url(raw: str) -> str:
    # Accept the usual postgres:// and postgresql:// forms; the app speaks psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    return raw


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secrets_keys(secret_key: str, local: bool) -> list[str]:
    keys = [k.strip() for k in os.environ.get("SECRETS_KEYS", "").split(",") if k.strip()]
    if keys:
        return keys
    if not local:
        raise RuntimeError(
            "SECRETS_KEYS is not set: one or more Fernet keys, comma-separated, newest first"
        )

    derived = hashlib.sha256(b"duebook-secrets:" + secret_key.encode()).digest()
    return [base64.urlsafe_b64encode(derived).decode()]


def _proxy_hops(local: bool) -> int:
    # The README's production runs behind one TLS proxy: without trusting its X-Forwarded-For,
    # every client would share the proxy's address and its log-in limits. Locally, no proxy.
    raw = os.environ.get("TRUSTED_PROXY_HOPS", "0" if local else "1").strip()
    if not raw.isdigit():
        raise RuntimeError(
            f"TRUSTED_PROXY_HOPS is {raw!r}: it must be the number of proxies in front of the "
            "web server that set X-Forwarded-For (0 or more; 1 behind one TLS proxy)"
        )
    return int(raw)


def _rate_limit(name: str, default: str) -> str:

    value = os.environ.get(name, default)
    try:
        parse_many(value)
    except ValueError:
        raise RuntimeError(f"{name} is {value!r}: write it like '10 per minute'") from None
    return value


def _refuse_inconsistent_production(config: dict) -> None:
    """Production is served over TLS (the README's proxy, or gunicorn's own). A public address
    without it contradicts the Secure cookie: no browser would keep the login cookie."""
    base_url = config["BASE_URL"]
    if config["SESSION_COOKIE_SECURE"] and base_url and not base_url.startswith("https://"):
        raise RuntimeError(
            f"BASE_URL is {base_url!r} but cookies are Secure (production): serve it over "
            "https:// behind the TLS proxy"
        )
    if not config["SESSION_COOKIE_SECURE"]:
        # Allowed for benchmarks of production over plain http on one machine, never meant
        # for users.
        logging.getLogger(__name__).warning(
            "COOKIE_SECURE is off in production: login cookies travel without TLS"
        )


def from_environment() -> dict:
    env = os.environ.get("DUEBOOK_ENV", "production")
    if env not in ENVIRONMENTS:
        raise RuntimeError(f"DUEBOOK_ENV is {env!r}: one of {', '.join(ENVIRONMENTS)}")
    local = env in {"development", "test"}
    secret = os.environ.get("SECRET_KEY")
    if not secret:
        raise RuntimeError("SECRET_KEY is not set (make run sets one for development)")
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        raise RuntimeError("DATABASE_URL is not set (make run starts an embedded PostgreSQL)")
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        raise RuntimeError("REDIS_URL is not set (make run starts an embedded Redis)")
    config = {
        "DUEBOOK_ENV": env,
        "SECRET_KEY": secret,
        "SQLALCHEMY_DATABASE_URI": _database_url(database_url),
        "SQLALCHEMY_ENGINE_OPTIONS": {
            "pool_size": int(os.environ.get("DB_POOL_SIZE", "10")),
            "max_overflow": int(os.environ.get("DB_MAX_OVERFLOW", "10")),
            "pool_pre_ping": True,
            # Each schema a connection touches stays in its catalog cache (~175 KiB per
            # tenant) until it disconnects; see tenants.binding for the per-schema limit.
            "pool_recycle": int(os.environ.get("DB_POOL_RECYCLE_SECONDS", "1800")),
            # No server-side prepared statements: after a few runs PostgreSQL would switch
            # them to generic plans, which cannot use a trigram index for `LIKE $1` (a client
            # search went from 1 ms to 150 ms), and with schema-per-tenant every tenant's
            # statements would be prepared again on every pooled connection.
            # No JIT: a page's statement that touches a few thousand rows is priced past
            # jit_above_cost, and compiling it took longer than running it (the collector's
            # queue at 10,000 open invoices: 39 ms of JIT for 19 ms of work).
            "connect_args": {"prepare_threshold": None, "options": "-c jit=off"},
        },
        "DB_MAX_TENANTS_PER_CONNECTION": int(
            os.environ.get("DB_MAX_TENANTS_PER_CONNECTION", "200")
        ),
        "REDIS_URL": redis_url,
        "SMTP_URL": os.environ.get("SMTP_URL", "smtp://127.0.0.1:25"),
        "MAIL_FROM": os.environ.get("MAIL_FROM", "Duebook <no-reply@duebook.local>"),
        "SANDBOX_MAILDIR": os.environ.get("SANDBOX_MAILDIR") or None,
        "SANDBOX_MESSAGES_DIR": os.environ.get("SANDBOX_MESSAGES_DIR") or None,
        "BASE_URL": os.environ.get("BASE_URL") or None,
        "SESSION_COOKIE_SECURE": _flag("COOKIE_SECURE", not local),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_NAME": "__Host-duebook" if _flag("COOKIE_SECURE", not local) else "duebook",
        "REMEMBER_COOKIE_DURATION": 0,
        "PERMANENT_SESSION_LIFETIME": int(os.environ.get("SESSION_LIFETIME_SECONDS", "43200")),
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the login session
        "RATELIMIT_STORAGE_URI": redis_url,
        "RATELIMIT_KEY_PREFIX": "duebook-limits",
        "RATELIMIT_HEADERS_ENABLED": True,
        # Calls of the API per key (app.api.rest): past it, 429 with Retry-After.
        "API_RATE_LIMIT": os.environ.get("API_RATE_LIMIT", "600 per minute"),
        # Log-in attempts: from one browser or address at one account (all attempts); failed
        # ones from one address at any account (spraying); failed ones at one account from
        # browsers that never logged in to it (guessing from many addresses). A browser that
        # logged in to the account before is judged by its own budget only, so an attack on
        # an account never locks its owner out (see app/auth/devices.py).
        "LOGIN_RATE_LIMIT": _rate_limit("LOGIN_RATE_LIMIT", "10 per minute"),
        "LOGIN_ADDRESS_RATE_LIMIT": _rate_limit("LOGIN_ADDRESS_RATE_LIMIT", "20 per 10 minutes"),
        "LOGIN_ACCOUNT_RATE_LIMIT": _rate_limit("LOGIN_ACCOUNT_RATE_LIMIT", "20 per 10 minutes"),
        # The public pay page, per address: a payer reloads it a few times; a script walking
        # guessed tokens (which fail their signature anyway) is slowed down.
        "PAY_PAGE_RATE_LIMIT": _rate_limit("PAY_PAGE_RATE_LIMIT", "60 per minute"),
        # Fetches of calendar feeds (/calendar/<token>.ics) from one address: calendar apps
        # poll every few minutes to hours, so this only stops someone guessing addresses.
        "CALENDAR_FEED_RATE_LIMIT": _rate_limit("CALENDAR_FEED_RATE_LIMIT", "30 per minute"),
        # Argon2id's cost for password hashes (argon2-cffi's defaults, RFC 9106's low-memory
        # profile: 3 passes over 64 MiB in 4 lanes). A hash made at another cost is made again
        # at this one when its owner next logs in. The tests use the cheapest.
        "PASSWORD_HASH_TIME_COST": int(
            os.environ.get("PASSWORD_HASH_TIME_COST", argon2.DEFAULT_TIME_COST)
        ),
        "PASSWORD_HASH_MEMORY_COST": int(
            os.environ.get("PASSWORD_HASH_MEMORY_COST", argon2.DEFAULT_MEMORY_COST)
        ),
        "PASSWORD_HASH_PARALLELISM": int(
            os.environ.get("PASSWORD_HASH_PARALLELISM", argon2.DEFAULT_PARALLELISM)
        ),
        "LOGIN_DEVICE_DAYS": int(os.environ.get("LOGIN_DEVICE_DAYS", "180")),
        "TRUSTED_PROXY_HOPS": _proxy_hops(local),
        "TOKEN_MAX_AGE_SECONDS": int(os.environ.get("TOKEN_MAX_AGE_SECONDS", "86400")),
        "INVITATION_DAYS": int(os.environ.get("INVITATION_DAYS", "7")),
        "STORAGE_BACKEND": os.environ.get("STORAGE_BACKEND", "local"),
        "STORAGE_ROOT": os.environ.get("STORAGE_ROOT") or None,
        # Integration credentials are encrypted with the first of these Fernet keys and read
        # with any of them (rotation: put a new key first, run `flask secrets rotate`, then
        # drop the old one). Unset outside production: derived from SECRET_KEY.
        "SECRETS_KEYS": _secrets_keys(secret, local),
        # Destinations a tenant sets (its SMTP server) must be public addresses, checked when
        # connecting; these networks (comma-separated CIDRs, e.g. "127.0.0.0/8,::1") are let
        # through anyway. Empty by default; `make run` and the tests allow loopback, where
        # their sandbox servers listen. The platform's own settings (SMTP_URL, the API bases
        # below) are not checked.
        "OUTBOUND_ALLOWED_NETWORKS": parse_networks(
            os.environ.get("OUTBOUND_ALLOWED_NETWORKS", "")
        ),
        # The DNS server the "Your domain" check asks (SPF, DKIM, DMARC of a workspace's own
        # mail domain), as "host:port"; empty: the system's resolver. Tests point it at the
        # DNS stand-in (app/sandbox/standins/dns.py).
        "DNS_RESOLVER": os.environ.get("DNS_RESOLVER", "").strip(),
        # Providers' API addresses (tests and `make run` point them at local stand-ins).
        "WHATSAPP_API_BASE": os.environ.get("WHATSAPP_API_BASE", "https://graph.facebook.com"),
        "WHATSAPP_API_VERSION": os.environ.get("WHATSAPP_API_VERSION", "v21.0"),
        "MSG91_API_BASE": os.environ.get("MSG91_API_BASE", "https://control.msg91.com"),
        "TWILIO_API_BASE": os.environ.get("TWILIO_API_BASE", "https://api.twilio.com"),
        "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE", "https://api.stripe.com"),
        "RAZORPAY_API_BASE": os.environ.get("RAZORPAY_API_BASE", "https://api.razorpay.com"),
        # The accounting sync (app.sync). The providers' app credentials and base URLs are
        # each connector's own settings (XERO_*, QBO_*, ZOHO_*, below them); these are the
        # engine's: the app's webhook signing keys, the waits, and when a run counts as dead.
        "QBO_WEBHOOK_VERIFIER": os.environ.get("QBO_WEBHOOK_VERIFIER") or None,
        # A page that fails (5xx, timeout) is tried again after these many seconds, then the
        # run fails and the next one resumes from that page.
        "SYNC_RETRY_DELAYS": tuple(
            float(part) for part in os.environ.get("SYNC_RETRY_DELAYS", "1,4,15").split(",") if part
        ),
        # A 429 asking for a longer wait than this pauses the run (the sweeper resumes it).
        "SYNC_MAX_WAIT": float(os.environ.get("SYNC_MAX_WAIT", "65")),
        # Pace calls under each provider's per-minute limit (off only in tests of the engine).
        "SYNC_PACING": os.environ.get("SYNC_PACING", "1") != "0",
        # A running run without a heartbeat for this long lost its worker: handed over again.
        "SYNC_STALE_SECONDS": int(os.environ.get("SYNC_STALE_SECONDS", "120")),
        # Pages of a pass fetched ahead by a thread while the run writes the ones it has (0:
        # none; each page is held in memory until written).
        "SYNC_FETCH_AHEAD": int(os.environ.get("SYNC_FETCH_AHEAD", "200")),
        # Zoho Books: the platform's OAuth app, its accounts server (the `.com` one is replaced
        # by the connection's data centre's; any other address, the sandbox's stand-in, is used
        # as is) and, when set, one API address for every data centre (the stand-in).
        "ZOHO_CLIENT_ID": os.environ.get("ZOHO_CLIENT_ID", "1000.STANDINZOHOBOOKSCLIENT"),
        "ZOHO_CLIENT_SECRET": os.environ.get("ZOHO_CLIENT_SECRET", "standin-zoho-client-secret"),
        "ZOHO_ACCOUNTS_BASE": os.environ.get("ZOHO_ACCOUNTS_BASE", "https://accounts.zoho.com"),
        "ZOHO_API_BASE": os.environ.get("ZOHO_API_BASE", ""),
        # QuickBooks Online: the data API, the OAuth discovery document (Intuit's own lists
        # the authorize and token endpoints) and the platform's Intuit app (the sandbox
        # defaults are the ones the QuickBooks stand-in accepts).
        "QBO_API_BASE": os.environ.get("QBO_API_BASE", "https://quickbooks.api.intuit.com"),
        "QBO_DISCOVERY_URL": os.environ.get(
            "QBO_DISCOVERY_URL", "https://developer.intuit.com/.well-known/openid_configuration/"
        ),
        "QBO_CLIENT_ID": os.environ.get("QBO_CLIENT_ID", "duebook-sandbox-qbo-client"),
        "QBO_CLIENT_SECRET": os.environ.get("QBO_CLIENT_SECRET", "duebook-sandbox-qbo-secret"),
        # Xero: consent page, token endpoint, API (make run points all three at its stand-in).
        "XERO_LOGIN_BASE": os.environ.get("XERO_LOGIN_BASE", "https://login.xero.com"),
        "XERO_IDENTITY_BASE": os.environ.get("XERO_IDENTITY_BASE", "https://identity.xero.com"),
        "XERO_API_BASE": os.environ.get("XERO_API_BASE", "https://api.xero.com"),
        # The platform's Xero app; unset, the sandbox app's (app/sandbox/standins/xero.py
        # accepts it; production sets its own). Its webhook key has no default: unset, Xero's
        # webhooks are refused (make run sets the stand-in's).
        "XERO_CLIENT_ID": os.environ.get("XERO_CLIENT_ID", "SANDBOXXEROCLIENTID0000000000000"),
        "XERO_CLIENT_SECRET": os.environ.get(
            "XERO_CLIENT_SECRET", "sandbox-xero-client-secret-000000000000000000"
        ),
        "XERO_WEBHOOK_KEY": os.environ.get("XERO_WEBHOOK_KEY") or None,
        # Calendars: the platform's Google and Microsoft OAuth apps and the providers'
        # addresses (make run and the tests point them at the stand-ins, whose sandbox apps
        # these defaults are; production sets its own).
        "GOOGLE_CALENDAR_CLIENT_ID": os.environ.get(
            "GOOGLE_CALENDAR_CLIENT_ID", "sandbox-duebook.apps.googleusercontent.com"
        ),
        "GOOGLE_CALENDAR_CLIENT_SECRET": os.environ.get(
            "GOOGLE_CALENDAR_CLIENT_SECRET", "sandbox-google-client-secret"
        ),
        "GOOGLE_ACCOUNTS_BASE": os.environ.get(
            "GOOGLE_ACCOUNTS_BASE", "https://accounts.google.com"
        ),
        "GOOGLE_OAUTH_BASE": os.environ.get("GOOGLE_OAUTH_BASE", "https://oauth2.googleapis.com"),
        "GOOGLE_CALENDAR_API_BASE": os.environ.get(
            "GOOGLE_CALENDAR_API_BASE", "https://www.googleapis.com"
        ),
        "MICROSOFT_CLIENT_ID": os.environ.get(
            "MICROSOFT_CLIENT_ID", "00000000-0000-4000-8000-00000000d0eb"
        ),
        "MICROSOFT_CLIENT_SECRET": os.environ.get(
            "MICROSOFT_CLIENT_SECRET", "sandbox-microsoft-client-secret"
        ),
        "MICROSOFT_LOGIN_BASE": os.environ.get(
            "MICROSOFT_LOGIN_BASE", "https://login.microsoftonline.com"
        ),
        "MICROSOFT_GRAPH_BASE": os.environ.get(
            "MICROSOFT_GRAPH_BASE", "https://graph.microsoft.com"
        ),
        # Tally, through the workspace's agent: how long a sync waits for one answer (a month
        # of a busy day book), and a page (choosing the company) for the company list.
        "TALLY_ANSWER_SECONDS": float(os.environ.get("TALLY_ANSWER_SECONDS", "120")),
        "TALLY_PAGE_WAIT_SECONDS": float(os.environ.get("TALLY_PAGE_WAIT_SECONDS", "20")),
        # make run's stand-in Tally, shown on the Tally page in the sandbox (the agent calls it).
        "TALLY_STANDIN_URL": os.environ.get("TALLY_STANDIN_URL") or None,
        # Outbound webhooks: seconds to connect to a workspace's receiver and to wait for each
        # read of its answer (Standard Webhooks suggests 15-30 s in all; tests shorten them).
        "WEBHOOK_CONNECT_SECONDS": float(os.environ.get("WEBHOOK_CONNECT_SECONDS", "5")),
        "WEBHOOK_READ_SECONDS": float(os.environ.get("WEBHOOK_READ_SECONDS", "10")),
        # make run's sandbox webhook receiver (app/sandbox/standins/webhook_receiver.py): the
        # demo workspace's endpoint for every event points at it.
        "WEBHOOK_RECEIVER_URL": os.environ.get("WEBHOOK_RECEIVER_URL") or None,
        # Seconds a Xero call may take before the page is left for the next run.
        "XERO_TIMEOUT_SECONDS": float(os.environ.get("XERO_TIMEOUT_SECONDS", "30")),
        # The daily gateway reconciliation reads from the start of this many days ago (1:
        # yesterday and today so far); more catches what a longer outage lost.
        "GATEWAY_RECONCILIATION_DAYS": int(os.environ.get("GATEWAY_RECONCILIATION_DAYS", "1")),
        # The platform's WhatsApp app: its secret signs every webhook Meta sends us, and the
        # verify token answers Meta's subscription handshake.
        "WHATSAPP_APP_SECRET": os.environ.get("WHATSAPP_APP_SECRET") or None,
        "WHATSAPP_VERIFY_TOKEN": os.environ.get("WHATSAPP_VERIFY_TOKEN") or None,
        # Per tenant and channel: messages a second handed to providers, whatever the provider
        # allows, so one tenant cannot use up a shared number's or account's capacity.
        "TENANT_MESSAGES_PER_SECOND": float(os.environ.get("TENANT_MESSAGES_PER_SECOND", "50")),
        # A claimed message whose worker died is handed out again after this long.
        "MESSAGE_LEASE_SECONDS": int(os.environ.get("MESSAGE_LEASE_SECONDS", "300")),
        # An intent handed to Redis but not picked up within this long is handed out again.
        "MESSAGE_REDELIVERY_SECONDS": int(os.environ.get("MESSAGE_REDELIVERY_SECONDS", "120")),
        # E-mail bounces: every message's envelope sender is bounces+<signed token>@ this
        # domain (unset: the From address's domain), and an inbound-mail relay posts each
        # bounce report to /hooks/email/bounces/<BOUNCE_WEBHOOK_TOKEN> (unset: hook off).
        "BOUNCE_DOMAIN": os.environ.get("BOUNCE_DOMAIN") or None,
        "BOUNCE_WEBHOOK_TOKEN": os.environ.get("BOUNCE_WEBHOOK_TOKEN") or None,
        # Optional DKIM signature of the platform's own e-mail (tenants with their own SMTP
        # connection set their own key): d= domain, s= selector, and an RSA key in PEM.
        "DKIM_DOMAIN": os.environ.get("DKIM_DOMAIN") or None,
        "DKIM_SELECTOR": os.environ.get("DKIM_SELECTOR") or None,
        "DKIM_PRIVATE_KEY_FILE": os.environ.get("DKIM_PRIVATE_KEY_FILE") or None,
        # Uploads (documents, imports) raise this for their own requests.
        "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
        **{name: int(os.environ[name]) for name in IMPORT_LIMIT_SETTINGS if name in os.environ},
    }
    if not local:
        _refuse_inconsistent_production(config)
    return config
