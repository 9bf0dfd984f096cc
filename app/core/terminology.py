"""The workspace's own words for the product's main nouns (issue 22's terminology): a firm
that calls its clients "customers" and its milestones "stages" sees those words in the pages'
titles, headings, buttons and navigation, and on its PDFs.

Templates ask `term('client')` or `term('clients')` for a word as it reads mid-sentence and
`Term('client')` at the start of a heading or label; `term('a client')` gives the word with the
article it needs ("a customer", "an engagement"). Text inside a template's own expressions, and
Python text shown to users (flashes, errors, choices, e-mails), writes the nouns as placeholders:
`'The whole {client}'|worded`, `worded("No {clients} match.")`. The words are the request's
workspace's (or, in a job, those of the workspace the session is bound to), kept on `g`; outside a
workspace, and for nouns a workspace never changed, the defaults. Only the product's own
wording uses them: what users typed (a client named "Client 1") is never touched.

The choices live on the workspace's tenant row (`tenants.terminology`: noun -> [singular,
plural], only the nouns it changed), which every request loads with the signed-in user, so a
page pays no query for them; the settings area edits them (app/settings/terminology.py). This
module belongs to no business area."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from flask import Flask, g
from jinja2 import pass_context

from app.core.current import current_g
from app.extensions import db
from tenants.binding import bound_tenant_id
from tenants.models import Tenant

# noun -> its default singular and plural, as they read mid-sentence.
NOUNS: dict[str, tuple[str, str]] = {
    "client": ("client", "clients"),
    "project": ("project", "projects"),
    "milestone": ("milestone", "milestones"),
    "notice": ("notice", "notices"),
}
PLURALS = {plural: noun for noun, (_, plural) in NOUNS.items()}
# How many texts a vocabulary remembers in its words (see Vocabulary.reworded): more than
# Duebook has of its own, few enough that texts with users' words in them cannot fill memory.
REMEMBERED_TEXTS = 2048


def _mid_sentence(word: str) -> str:
    """ "Customer" reads "customer" inside a sentence; an acronym ("GST Client") stays."""
    if len(word) > 1 and word[:2].isupper():
        return word
    return word[:1].lower() + word[1:]


def _at_start(word: str) -> str:
    return word[:1].upper() + word[1:]


# Words whose first letter misleads: "a user", "a one-off", but "an hour", "an MSME".
_A_DESPITE_VOWEL = ("uni", "use", "usu", "uti", "eu", "one", "once")
_AN_DESPITE_CONSONANT = ("hour", "honest", "honou", "heir")


def _with_article(word: str) -> str:
    """'a' or 'an' by how the word sounds: its first letter, a few common exceptions, and an
    acronym by its first letter's name ("an MSME", "a GST job")."""
    lower = word.lower()
    if word[:2].isupper():
        vowel_sound = word[0] in "AEFHILMNORSX"
    elif lower.startswith(_A_DESPITE_VOWEL):
        vowel_sound = False
    else:
        vowel_sound = lower.startswith(_AN_DESPITE_CONSONANT) or lower[:1] in "aeiou"
    return f"{'an' if vowel_sound else 'a'} {word}"


@dataclass(frozen=True)
class Vocabulary:
    """One workspace's words (hashable: the navigation's cache is keyed by it)."""

    # (noun, singular, plural) for every noun, in NOUNS' order.
    words: tuple[tuple[str, str, str], ...]
    # Each name's word and title, worked out once: a page asks for the same few ~150 times.
    _said: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    _titled: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    # Phrases reworded and texts worded: Duebook's own few hundred (an audit page rewords a
    # table's name and field labels per row), remembered up to REMEMBERED_TEXTS each.
    _rephrased: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    _filled: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def word(self, name: str) -> str:
        """`name` is a noun or its plural ('client', 'clients'), or a noun with an article
        ('a client': "a customer", "an engagement"); unknown names raise."""
        said = self._said.get(name)
        if said is None:
            said = self._said[name] = self._word(name)
        return said

    def _word(self, name: str) -> str:
        article, _, noun = name.partition(" ")
        if noun and article in ("a", "an"):
            return _with_article(self.word(noun))
        plural = name in PLURALS
        noun = PLURALS.get(name, name)
        for known, singular, plural_word in self.words:
            if known == noun:
                return _mid_sentence(plural_word if plural else singular)
        raise KeyError(f"no such noun in the terminology: {name!r}")

    def title(self, name: str) -> str:
        titled = self._titled.get(name)
        if titled is None:
            titled = self._titled[name] = _at_start(self.word(name))
        return titled

    def forms(self) -> dict[str, str]:
        """Every form by its placeholder: 'client' -> 'customer', 'Clients' -> 'Customers',
        'a client' -> 'a customer', 'A project' -> 'An engagement'."""
        forms = {}
        for noun, (_, plural) in NOUNS.items():
            for name in (noun, plural, f"a {noun}"):
                forms[name] = self.word(name)
                forms[_at_start(name)] = self.title(name)
        return forms

    def reworded(self, text: str) -> str:
        """Duebook's own text written without placeholders (a table's name, "client contacts";
        an event's description, "A client was added") in these words: each noun as a whole
        word, its article with it ("A project" -> "An engagement"), names such as
        `client.created` or client_id left alone. Never for text users typed."""
        said = self._rephrased.get(text)
        if said is None:
            said = self._reword(text)
            if len(self._rephrased) < REMEMBERED_TEXTS:
                self._rephrased[text] = said
        return said

    def _reword(self, text: str) -> str:
        def say(found: re.Match) -> str:
            article, noun = found["article"], found["noun"]
            if article:
                said = self.word(f"a {noun.lower()}")
                return _at_start(said) if article[0].isupper() else said
            said = self.word(noun.lower())
            return _at_start(said) if noun[0].isupper() else said

        return _NOUN_IN_TEXT.sub(say, text)

    def worded(self, text: str) -> str:
        """`text` with its placeholders ("{Clients}", "{a client}") in these words; other
        braces are left as they are."""
        if "{" not in text:
            return text
        filled = self._filled.get(text)
        if filled is None:
            forms = _forms_of(self)
            filled = _PLACEHOLDER.sub(lambda found: forms.get(found[1], found[0]), text)
            if len(self._filled) < REMEMBERED_TEXTS:
                self._filled[text] = filled
        return filled


@lru_cache(maxsize=256)
def _forms_of(words: Vocabulary) -> dict[str, str]:
    """A page fills many placeholders (a select's options): its workspace's forms once."""
    return words.forms()


_NOUN_IN_TEXT = re.compile(
    r"(?<![\w.`/-])(?:(?P<article>[aA]n?) (?=(?:client|project|milestone|notice)\b))?"
    r"(?P<noun>(?i:clients?|projects?|milestones?|notices?))(?![\w`-]|[.:]\w)"
)
_PLACEHOLDER = re.compile(r"\{((?:[aA] )?[A-Za-z]+)\}")

DEFAULT = Vocabulary(tuple((noun, *words) for noun, words in NOUNS.items()))


def vocabulary_of(tenant: Tenant | None) -> Vocabulary:
    """A workspace's words (the defaults outside a workspace)."""
    chosen = (tenant.terminology or {}) if tenant is not None else {}
    return _shared(tuple((noun, *chosen.get(noun, defaults)) for noun, defaults in NOUNS.items()))


@lru_cache(maxsize=1024)
def _shared(words: tuple[tuple[str, str, str], ...]) -> Vocabulary:
    """One Vocabulary for the same words, so that what it worked out serves every request."""
    return Vocabulary(words)


def vocabulary() -> Vocabulary:
    """The words of the request's workspace (its tenant row, loaded with the user: no query),
    or in a job of the workspace the session is bound to; kept on `g`, keyed by the workspace,
    so a job that renders for several workspaces never mixes their words. Outside an app
    context (a rule checked on its own) the defaults.

    A page asks ~150 times: `g` is read without its proxy (app.core.current)."""
    context_g = current_g()
    if context_g is None:
        return DEFAULT
    tenant = getattr(context_g, "tenant", None)
    tenant_id = tenant.id if tenant is not None else bound_tenant_id(db.session())
    cached = getattr(context_g, "_vocabulary", None)
    if cached is None or cached[0] != tenant_id:
        if tenant is None and tenant_id is not None:
            tenant = db.session().get(Tenant, tenant_id)
        cached = (tenant_id, vocabulary_of(tenant))
        context_g._vocabulary = cached
    return cached[1]


def forget_vocabulary() -> None:
    """After the words were changed, so that the rest of the request shows the new ones."""
    g.pop("_vocabulary", None)


def term(name: str) -> str:
    return vocabulary().word(name)


def title_term(name: str) -> str:
    return vocabulary().title(name)


def worded(text: str) -> str:
    """Text for a user, its placeholders ("{a client}", "{Notices}") in the workspace's words."""
    return vocabulary().worded(text)


def reworded(phrase: str) -> str:
    """A phrase made from Duebook's own names ("client contacts") in the workspace's words."""
    return vocabulary().reworded(phrase)


@pass_context
def _worded_filter(_context, text: str) -> str:
    return worded(text)


@pass_context
def _reworded_filter(_context, text: str) -> str:
    return reworded(text)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["term"] = term
    app.jinja_env.globals["Term"] = title_term
    # "The whole {client}"|worded: for text inside a template's own expressions. The filters
    # take the context only so that Jinja does not run them once, when it compiles a template
    # (it folds a plain filter of a literal into a constant: the first workspace's words).
    app.jinja_env.filters["worded"] = _worded_filter
    app.jinja_env.filters["reworded"] = _reworded_filter
