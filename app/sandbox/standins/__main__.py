"""Run one stand-in as a process until SIGTERM or SIGINT:

    python -m app.sandbox.standins whatsapp --port 9101 --record-dir var/sandbox/messages \\
        --webhook-url http://127.0.0.1:5000/hooks/whatsapp --template 'invoice_due=Hello {{1}}'
    python -m app.sandbox.standins msg91 --port 9102 --template 'tpl1=Dear ##name##, pay ##amount##'
    python -m app.sandbox.standins twilio --port 9103 --rate 100 --status-script none
    python -m app.sandbox.standins stripe --port 9104 --webhook-url http://127.0.0.1:5000/hooks/stripe/T
    python -m app.sandbox.standins razorpay --port 9105 --webhook-url http://127.0.0.1:5000/hooks/razorpay/TOKEN
    python -m app.sandbox.standins zoho_books --port 9106 --seed demo --per-minute 100
    python -m app.sandbox.standins quickbooks --port 9107 --seed demo --customers 100 --invoices 500
    python -m app.sandbox.standins xero --port 9108 --seed demo --webhook-url http://127.0.0.1:5000/hooks/accounting/xero
    python -m app.sandbox.standins tally --port 9000 --seed demo --ledgers 5000 --vouchers 20000
    python -m app.sandbox.standins google_calendar --port 9109
    python -m app.sandbox.standins microsoft_graph --port 9110
    python -m app.sandbox.standins webhook_receiver --port 9111 --secret whsec_X --failure-ratio .5

The first line on stdout is the base URL (for scripts); a description goes to stderr.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import STANDINS
from . import google_calendar as google_calendar_standin
from . import microsoft_graph as microsoft_graph_standin
from . import quickbooks as quickbooks_standin
from . import razorpay as razorpay_standin
from . import stripe as stripe_standin
from . import xero as xero_standin
from . import zoho_books as zoho_books_standin
from .msg91 import DEFAULT_AUTHKEY
from .twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from .whatsapp import (
    DEFAULT_APP_SECRET,
    DEFAULT_DISPLAY_NUMBER,
    DEFAULT_PHONE_NUMBER_ID,
    DEFAULT_TOKEN,
    DEFAULT_WABA_ID,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.sandbox.standins")
    sub = parser.add_subparsers(dest="provider", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default="127.0.0.1", help="a loopback address")
    common.add_argument("--port", type=int, default=0)
    common.add_argument("--record-dir", help="write each accepted message as JSON here")
    common.add_argument("--webhook-url", help="POST status callbacks here")
    common.add_argument("--rate", type=float, help="accepted sends per second (429 above)")
    common.add_argument(
        "--status-script",
        default="default",
        help="comma-separated statuses, 'none' for no callbacks, 'default' for the provider's",
    )
    common.add_argument("--status-delay", type=float, default=0.0, help="seconds between them")
    common.add_argument("--webhook-retries", type=int, default=3)

    whatsapp = sub.add_parser("whatsapp", parents=[common], help="WhatsApp Cloud API")
    whatsapp.add_argument(
        "--phone-number-id",
        action="append",
        help="a business phone number it serves (repeat for more; all share the token)",
    )
    whatsapp.add_argument("--display-phone-number", default=DEFAULT_DISPLAY_NUMBER)
    whatsapp.add_argument("--token", default=DEFAULT_TOKEN)
    whatsapp.add_argument("--waba-id", default=DEFAULT_WABA_ID)
    whatsapp.add_argument("--app-secret", default=DEFAULT_APP_SECRET)
    whatsapp.add_argument(
        "--template",
        action="append",
        default=[],
        metavar="NAME[@LANG][#DOCUMENT]=BODY",
        help="register an approved template, e.g. 'invoice_due@en_US#DOCUMENT=Hi {{1}}'",
    )
    whatsapp.add_argument("--daily-cap", type=int, help="unique recipients per number per 24 h")
    whatsapp.add_argument("--pair-interval", type=float, help="seconds between sends to one user")
    whatsapp.add_argument("--batch-statuses", action="store_true")

    msg91 = sub.add_parser("msg91", parents=[common], help="MSG91 Flow API")
    msg91.add_argument("--authkey", default=DEFAULT_AUTHKEY)
    msg91.add_argument("--sender", default="DUEBKS")
    msg91.add_argument(
        "--template", action="append", default=[], metavar="TEMPLATE_ID=CONTENT with ##var##"
    )

    twilio = sub.add_parser("twilio", parents=[common], help="Twilio Messaging")
    twilio.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    twilio.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    twilio.add_argument("--idempotency-header", help="honour this request header (test aid)")

    stripe = sub.add_parser("stripe", parents=[common], help="Stripe Checkout")
    stripe.add_argument("--secret-key", default=stripe_standin.DEFAULT_SECRET_KEY)
    stripe.add_argument(
        "--webhook-secret", default=stripe_standin.DEFAULT_WEBHOOK_SECRET, help="signs events"
    )
    razorpay = sub.add_parser("razorpay", parents=[common], help="Razorpay Payment Links")
    razorpay.add_argument("--key-id", default=razorpay_standin.DEFAULT_KEY_ID)
    razorpay.add_argument("--key-secret", default=razorpay_standin.DEFAULT_KEY_SECRET)
    razorpay.add_argument("--webhook-secret", default=razorpay_standin.DEFAULT_WEBHOOK_SECRET)
    zoho = sub.add_parser("zoho_books", parents=[common], help="Zoho Books (accounts and API)")
    zoho.add_argument("--client-id", default=zoho_books_standin.DEFAULT_CLIENT_ID)
    zoho.add_argument("--client-secret", default=zoho_books_standin.DEFAULT_CLIENT_SECRET)
    zoho.add_argument("--per-minute", type=int, default=zoho_books_standin.DEFAULT_PER_MINUTE)
    zoho.add_argument("--per-day", type=int, help="API calls a day per organisation")
    zoho.add_argument("--location", default="in", help="the data centre the consent names")
    zoho.add_argument("--seed", choices=["demo"], help="fill one organisation with books")
    zoho.add_argument("--contacts", type=int, default=0, help="bulk customers to seed")
    zoho.add_argument("--invoices", type=int, default=0, help="bulk open invoices to seed")
    quickbooks = sub.add_parser("quickbooks", parents=[common], help="QuickBooks Online")
    quickbooks.add_argument("--client-id", default=quickbooks_standin.DEFAULT_CLIENT_ID)
    quickbooks.add_argument("--client-secret", default=quickbooks_standin.DEFAULT_CLIENT_SECRET)
    quickbooks.add_argument(
        "--verifier-token", default=quickbooks_standin.DEFAULT_VERIFIER_TOKEN, help="signs webhooks"
    )
    quickbooks.add_argument("--webhook-format", choices=("cloudevents", "legacy"))
    quickbooks.add_argument("--per-minute", type=int, default=500, help="requests per company")
    quickbooks.add_argument("--seed", choices=("demo",), help="fill the company with books")
    quickbooks.add_argument("--customers", type=int, default=0, help="bulk customers to add")
    quickbooks.add_argument("--invoices", type=int, default=0, help="bulk invoices to add")
    xero = sub.add_parser("xero", parents=[common], help="Xero identity and Accounting API")
    xero.add_argument("--client-id", default=xero_standin.DEFAULT_CLIENT_ID)
    xero.add_argument("--client-secret", default=xero_standin.DEFAULT_CLIENT_SECRET)
    xero.add_argument("--webhook-key", default=xero_standin.DEFAULT_WEBHOOK_KEY)
    xero.add_argument("--per-minute", type=int, default=60, help="calls a minute per organisation")
    xero.add_argument("--per-day", type=int, default=5000, help="calls a day per organisation")
    xero.add_argument("--concurrent", type=int, default=5, help="calls at once per organisation")
    xero.add_argument(
        "--refresh-grace",
        type=float,
        default=1800.0,
        help="seconds a used refresh token still answers",
    )
    xero.add_argument("--seed", choices=["demo"], help="fill the books: demo = an Indian SME's")
    xero.add_argument("--seed-contacts", type=int, default=0, help="bulk contacts (benchmarks)")
    xero.add_argument("--seed-invoices", type=int, default=0, help="bulk invoices (benchmarks)")
    xero.add_argument(
        "--write-faults", type=float, default=0.0, help="share of writes answered 429/500"
    )
    tally = sub.add_parser("tally", parents=[common], help="TallyPrime's XML over HTTP")
    tally.add_argument("--seed", choices=["demo"], help="load the demo company's books")
    tally.add_argument("--ledgers", type=int, default=0, help="bulk debtors (benchmarks)")
    tally.add_argument("--vouchers", type=int, default=0, help="bulk sales vouchers (benchmarks)")
    for name, module, title in (
        ("google_calendar", google_calendar_standin, "Google's OAuth and Calendar API v3"),
        ("microsoft_graph", microsoft_graph_standin, "Microsoft's identity platform and Graph"),
    ):
        calendar = sub.add_parser(name, parents=[common], help=title)
        calendar.add_argument("--client-id", default=module.DEFAULT_CLIENT_ID)
        calendar.add_argument("--client-secret", default=module.DEFAULT_CLIENT_SECRET)
    receiver = sub.add_parser(
        "webhook_receiver", parents=[common], help="a receiver of Standard Webhooks"
    )
    receiver.add_argument("--secret", help="the whsec_ secret signatures are checked with")
    receiver.add_argument(
        "--failure-ratio", type=float, default=0.0, help="share of POSTs answered 500"
    )
    return parser


def _whatsapp_template(spec: str) -> dict:
    head, _, body = spec.partition("=")
    head, _, header = head.partition("#")
    name, _, language = head.partition("@")
    return {
        "name": name,
        "body": body,
        "language": language or "en_US",
        "header": header.upper() or None,
    }


def build(args: argparse.Namespace):
    common = {
        "host": args.host,
        "port": args.port,
        "record_dir": args.record_dir,
        "webhook_url": args.webhook_url,
        "rate": args.rate,
        "status_script": args.status_script,
        "status_delay": args.status_delay,
        "webhook_retries": args.webhook_retries,
    }
    cls = STANDINS[args.provider]
    if args.provider == "whatsapp":
        first, *more = args.phone_number_id or [DEFAULT_PHONE_NUMBER_ID]
        standin = cls(
            phone_number_id=first,
            display_phone_number=args.display_phone_number,
            token=args.token,
            waba_id=args.waba_id,
            app_secret=args.app_secret,
            templates=[_whatsapp_template(t) for t in args.template],
            daily_cap=args.daily_cap,
            pair_interval=args.pair_interval,
            batch_statuses=args.batch_statuses,
            **common,
        )
        for phone_number_id in more:
            standin.add_phone_number(phone_number_id, args.token)
        return standin
    if args.provider == "msg91":
        templates = []
        for spec in args.template:
            template_id, _, content = spec.partition("=")
            templates.append(
                {"template_id": template_id, "content": content, "sender": args.sender}
            )
        return cls(authkey=args.authkey, templates=templates, **common)
    if args.provider == "stripe":
        return cls(secret_key=args.secret_key, webhook_secret=args.webhook_secret, **common)
    if args.provider == "xero":
        return cls(
            client_id=args.client_id,
            client_secret=args.client_secret,
            webhook_key=args.webhook_key,
            per_minute=args.per_minute,
            per_day=args.per_day,
            concurrent=args.concurrent,
            refresh_grace=args.refresh_grace,
            seed=args.seed,
            seed_contacts=args.seed_contacts,
            seed_invoices=args.seed_invoices,
            write_faults=args.write_faults,
            **common,
        )
    if args.provider in ("google_calendar", "microsoft_graph"):
        return cls(client_id=args.client_id, client_secret=args.client_secret, **common)
    if args.provider == "webhook_receiver":
        return cls(secret=args.secret, failure_ratio=args.failure_ratio, **common)
    if args.provider == "tally":
        return cls(seed=args.seed, seed_ledgers=args.ledgers, seed_vouchers=args.vouchers, **common)
    if args.provider == "razorpay":
        return cls(
            key_id=args.key_id,
            key_secret=args.key_secret,
            webhook_secret=args.webhook_secret,
            **common,
        )
    if args.provider == "zoho_books":
        return cls(
            client_id=args.client_id,
            client_secret=args.client_secret,
            per_minute=args.per_minute,
            per_day=args.per_day,
            location=args.location,
            seed=args.seed,
            contacts=args.contacts,
            invoices=args.invoices,
            **common,
        )
    if args.provider == "quickbooks":
        standin = cls(
            client_id=args.client_id,
            client_secret=args.client_secret,
            verifier_token=args.verifier_token,
            webhook_format=args.webhook_format or "cloudevents",
            per_minute=args.per_minute,
            seed=args.seed,
            **common,
        )
        standin.seed_bulk(quickbooks_standin.DEFAULT_REALM, args.customers, args.invoices)
        return standin
    return cls(
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        idempotency_header=args.idempotency_header,
        **common,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    standin = build(args)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    standin.start()
    print(standin.url, flush=True)
    print(f"{args.provider} stand-in serving on {standin.url}", file=sys.stderr, flush=True)
    try:
        stopping.wait()
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
