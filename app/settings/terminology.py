"""The terminology page's rules: the workspace's word for each noun, singular and plural, as
letters and spaces (2 to 30 of them). A blank field means the product's own word; a noun set
back to both of its defaults is not kept. The words live on the tenant row and are read by
app.core.terminology."""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy.orm import Session

from app.core.terminology import NOUNS, Vocabulary, forget_vocabulary
from tenants.binding import bound_tenant_id
from tenants.models import Tenant

WORD = re.compile(r"^[^\W\d_]+(?: [^\W\d_]+)*$")  # letters, single spaces between words
FIELDS = tuple(f"{noun}_{number}" for noun in NOUNS for number in ("singular", "plural"))


def form_values(words: Vocabulary) -> dict[str, str]:
    """The fields as the page shows them: every noun's current words, capitalised."""
    values = {}
    for noun, (_, plural) in NOUNS.items():
        values[f"{noun}_singular"] = words.title(noun)
        values[f"{noun}_plural"] = words.title(plural)
    return values


def clean_terminology(form: Mapping[str, str]) -> tuple[dict[str, tuple[str, str]], dict]:
    """Every noun's (singular, plural), blanks replaced by the defaults, and the errors by
    field name."""
    chosen, errors = {}, {}
    for noun, defaults in NOUNS.items():
        words = []
        for number, default in zip(("singular", "plural"), defaults, strict=True):
            field = f"{noun}_{number}"
            word = " ".join((form.get(field) or "").split())
            if not word:
                word = default.capitalize()
            elif not 2 <= len(word) <= 30:
                errors[field] = "Use 2 to 30 characters."
            elif not WORD.match(word):
                errors[field] = "Use letters and spaces only."
            words.append(word)
        chosen[noun] = (words[0], words[1])
    return chosen, errors


def save_terminology(session: Session, form: Mapping[str, str]) -> dict[str, str]:
    """Save the words, or nothing at all when any field is wrong (its errors are returned)."""
    chosen, errors = clean_terminology(form)
    if errors:
        return errors
    tenant = session.get(Tenant, bound_tenant_id(session))
    tenant.terminology = {
        noun: [singular, plural]
        for noun, (singular, plural) in chosen.items()
        if (singular.lower(), plural.lower()) != NOUNS[noun]
    }
    session.flush()
    forget_vocabulary()
    return {}
