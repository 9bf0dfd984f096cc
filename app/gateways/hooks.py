"""How online payments are said on the client's timeline (the audit log in words): "online
payment pay_… added: status failed, amount ₹1,000.00, reason …"; and a new bank statement's
credits that are gateway payouts taken before banking offers them as invoice payments.
Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.audit.wording import Wording, register_wording
from app.core import signals
from app.gateways.payouts import match_to_bank


def init_app(app: Flask) -> None:
    signals.statement_lines_added.connect(take_payouts_from_statement)
    register_wording(
        "gateway_payments",
        Wording(
            noun="online payment",
            name_field="provider_payment_id",
            labels={
                "provider": "gateway",
                "status": "status",
                "failure_reason": "reason",
                "fee": "gateway fee",
                "fee_tax": "tax on the fee",
                "refunded": "refunded",
            },
            choices={
                "status": {
                    "captured": "paid",
                    "failed": "failed",
                    "refunded": "refunded",
                    "partly_refunded": "partly refunded",
                    "disputed": "disputed by the payer's bank",
                }
            },
            money_fields=frozenset({"amount", "fee", "fee_tax", "refunded"}),
            currency_field="currency",
        ),
    )
    register_wording(
        "gateway_checkouts",
        Wording(
            noun="online pay request",
            name_field="provider_reference",
            choices={"status": {"open": "open", "paid": "paid", "failed": "failed"}},
            money_fields=frozenset({"amount"}),
            currency_field="currency",
        ),
    )


def take_payouts_from_statement(session, **facts) -> None:
    match_to_bank(session)
