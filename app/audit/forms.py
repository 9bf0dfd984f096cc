from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectField
from wtforms.validators import NumberRange, Optional

from app.form_choices import as_choices

ACTIONS = [("", "Any change"), ("insert", "Created"), ("update", "Changed"), ("delete", "Deleted")]


class AuditFilterForm(FlaskForm):
    """Filters travel in the query string, so a filtered view is a link to share."""

    class Meta:
        csrf = False

    entity = SelectField(
        "Record type", choices=as_choices([("", "Any record")]), validators=[Optional()]
    )
    action = SelectField("Change", choices=as_choices(ACTIONS), validators=[Optional()])
    actor = SelectField("By", choices=as_choices([("", "Anyone")]), validators=[Optional()])
    since = DateField("From", validators=[Optional()])
    until = DateField("To", validators=[Optional()])
    before = IntegerField(validators=[Optional(), NumberRange(min=1, max=2**63 - 1)])  # BIGINT ids
