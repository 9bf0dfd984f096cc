"""Forms of the notice pages. The CSRF token is checked for every POST by CSRFProtect and sits
in each form as a plain hidden input (several forms share one page)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.validators import Optional

from app.clients.documents import ACCEPT, FILE_TYPES_LABEL, MAX_FILE_LABEL
from app.collections.models import NOTICE_CLOSE_REASONS
from app.collections.notices.services import CLOSE_LABELS, NOTE_LENGTH
from app.form_choices import as_choices


class _Form(FlaskForm):
    class Meta:
        csrf = False


class ResponseForm(_Form):
    response_date = DateField("Response date", validators=[Optional()])
    response_note = TextAreaField(
        "What the {client} said", render_kw={"maxlength": NOTE_LENGTH, "rows": 3}
    )


class CloseForm(_Form):
    reason = SelectField(
        "Why it ends",
        choices=as_choices(
            [("cancelled", "Cancel: nothing more to chase")]
            + [(k, f"Close: {CLOSE_LABELS[k]}") for k in NOTICE_CLOSE_REASONS if k != "cancelled"]
        ),
    )
    note = StringField("Reason (required to cancel)", render_kw={"maxlength": 500})


class ResendForm(_Form):
    # Choices are the client's contacts reachable on the notice's channel, set by the page.
    contact_id = SelectField("Send to", choices=[], validate_choice=False)


class NotesForm(_Form):
    notes = TextAreaField("Notes", render_kw={"maxlength": NOTE_LENGTH, "rows": 4})


class FileForm(_Form):
    title = StringField("Title (optional)", render_kw={"maxlength": 191})
    file = FileField(
        "File",
        description=f"{FILE_TYPES_LABEL}; up to {MAX_FILE_LABEL}.",
        render_kw={"accept": ACCEPT},
    )


class LinkForm(_Form):
    title = StringField("Title", render_kw={"maxlength": 191})
    url = StringField("Link", render_kw={"maxlength": 2048, "placeholder": "https://"})


def show_errors(form, errors: dict[str, str]) -> None:
    """Put a service's errors next to their fields ("" = the form as a whole is ignored)."""
    for name, message in errors.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [message]
