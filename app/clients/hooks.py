"""What the clients area tells the areas below it: how the audit log words its records (the
labels and choices of the client form, app.audit.wording); and what it reads from the domain
events (the client timeline's consumer). Connected by `create_app`."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from app.audit.wording import Together, Wording, register_wording
from app.clients import timeline
from app.clients.forms import ALL_FIELDS, CONTACT_FIELDS, SITE_FIELDS, TERMS_CHOICES
from app.core.events import register_consumer

# "Net 30", "MFI 45": the terms as people say them, the days after the kind.
TERMS_SAID = {"net": "Net", "mfi": "MFI", **dict(TERMS_CHOICES)}


def payment_terms(values: Mapping[str, object]) -> str:
    terms = TERMS_SAID.get(str(values.get("payment_terms")), str(values.get("payment_terms")))
    if values.get("payment_days") is not None and values.get("payment_terms") in ("net", "mfi"):
        return f"{terms} {values['payment_days']}"
    if values.get("payment_terms") == "custom" and values.get("payment_terms_note"):
        return f"{terms} ({values['payment_terms_note']})"
    return terms


def _labels(specs) -> dict[str, str]:
    return {spec.name: spec.label for spec in specs}


def _choices(specs) -> dict[str, dict[str, str]]:
    return {spec.name: dict(spec.choices) for spec in specs if spec.choices}


def init_app(app: Flask) -> None:
    register_consumer(timeline.CONSUMER, timeline.file_events)
    register_wording(
        "clients",
        Wording(
            noun="client",
            name_field="short_name",
            labels=_labels(ALL_FIELDS),
            choices=_choices(ALL_FIELDS),
            money_fields=frozenset({"credit_limit"}),
            currency_field="currency",
            people_fields=frozenset({"engagement_manager_user_id"}),
            references={"industry_id": "industries"},
            together=(
                Together(
                    ("payment_terms", "payment_days", "payment_terms_note"),
                    "payment terms",
                    payment_terms,
                ),
            ),
        ),
    )
    register_wording("industries", Wording(noun="industry", name_field="name"))
    contact_references = {"client_id": "clients"}
    register_wording(
        "client_contacts",
        Wording(
            noun="contact",
            name_field="full_name",
            labels=_labels(CONTACT_FIELDS),
            choices=_choices(CONTACT_FIELDS),
            references=contact_references,
        ),
    )
    register_wording(
        "client_sites",
        Wording(
            noun="site",
            name_field="name",
            labels=_labels(SITE_FIELDS),
            choices=_choices(SITE_FIELDS),
            references=contact_references,
        ),
    )
    register_wording(
        "client_documents",
        Wording(noun="document", name_field="title", references=contact_references),
    )
