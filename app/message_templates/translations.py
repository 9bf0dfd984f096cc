"""The default templates in India's languages and in Filipino, beside the English ones of
`defaults.py`: one data file per language in `translations/` (e-mail subject and body, the
WhatsApp text with its parameters, the SMS text, for every purpose the English defaults cover),
using the same variables as the English ones of the country the file names (Filipino follows
the Philippine English texts, which carry no UPI link). A workspace adds a language's set when
it asks for it (*Message templates* → *Add the templates in Tamil*); a send then picks the
template in the contact's language (`services.template_for`).

WhatsApp templates carry the same name at Meta as the English ones (`duebook_notice_1`...):
Meta keeps one template name with a text per language. SMS texts in these scripts go out as
Unicode (70 characters a segment) and need a DLT registration of their own."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.core.language import LANGUAGE_NAMES, language_label
from app.core.regions import state_languages
from app.message_templates.defaults import NAMES, PURPOSES
from app.message_templates.models import MessageTemplate
from tenants.binding import bound_tenant_id

TRANSLATIONS = Path(__file__).with_name("translations")
CHANNELS = ("email", "whatsapp", "sms")
# Every Indian workspace writes Hindi besides its state's languages, so it follows them.
NATIONAL = {"IN": ("hi",)}


@cache
def _data(language: str) -> dict:
    return json.loads((TRANSLATIONS / f"{language}.json").read_text(encoding="utf-8"))


@cache
def available_languages() -> dict[str, str]:
    """Language code -> its name in English and in its own script ("Tamil (தமிழ்)"), for
    every language with a data file, ordered by code."""
    return {path.stem: language_label(path.stem) for path in sorted(TRANSLATIONS.glob("*.json"))}


def statement_words(language: str) -> dict[str, str] | None:
    """The words of a notice's statement of account in `language` (None: no data file)."""
    if language not in available_languages():
        return None
    return _data(language)["statement"]


def offered_languages(country: str, region: str | None) -> list[str]:
    """The languages a workspace is offered: its state's (or country's) first, then Hindi in
    India, then the rest."""
    first = [*state_languages(country, region), *NATIONAL.get(country.upper(), ())]
    return list(dict.fromkeys([*first, *available_languages()]))


def english_country(language: str) -> str:
    """The country whose English defaults a language's texts follow (India's unless the file
    names another)."""
    return _data(language).get("country", "IN")


def translated_template(language: str, channel: str, purpose: str) -> MessageTemplate:
    """A new (unsaved) template of this channel and purpose in `language`."""
    data = _data(language)
    template = MessageTemplate(
        name=f"{NAMES[purpose]} ({LANGUAGE_NAMES[language][0]})",
        channel=channel,
        purpose=purpose,
        language=language,
    )
    if channel == "email":
        template.subject = data["email"][purpose]["subject"]
        template.body = data["email"][purpose]["body"]
    elif channel == "whatsapp":
        whatsapp = data["whatsapp"][purpose]
        template.body = whatsapp["text"] + "\n---\n" + "\n".join(whatsapp["params"])
        template.provider_template_name = f"duebook_{purpose}"
    else:
        template.body = data["sms"][purpose]
    return template


def install_language(session: Session, language: str) -> int:
    """Add this language's templates the workspace does not have yet (per channel and
    purpose; an edited one is kept, a deleted one comes back). Returns how many were added."""
    if language not in available_languages():
        raise ValueError(f"no templates in {language!r}")
    # Two clicks at once must not both add the set.
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('message_template_translations'), :tenant)"),
        {"tenant": bound_tenant_id(session) or 0},
    )
    live = session.execute(
        select(MessageTemplate.channel, MessageTemplate.purpose, MessageTemplate.name).where(
            MessageTemplate.language == language, MessageTemplate.deleted_at.is_(None)
        )
    ).all()
    existing = {(channel, purpose) for channel, purpose, _ in live}
    names = {(channel, name.lower()) for channel, _, name in live}
    added = 0
    for channel in CHANNELS:
        for purpose in PURPOSES:
            if (channel, purpose) in existing:
                continue
            template = translated_template(language, channel, purpose)
            # A name the workspace already gave another template of this language is kept
            # for it (names are unique per channel and language).
            base, number = template.name, 1
            while (channel, template.name.lower()) in names:
                number += 1
                template.name = f"{base} {number}"
            session.add(template)
            added += 1
    if added:
        session.flush()
    return added


def installed_languages(session: Session) -> set[str]:
    return set(
        session.scalars(
            select(MessageTemplate.language).where(MessageTemplate.deleted_at.is_(None)).distinct()
        )
    )
