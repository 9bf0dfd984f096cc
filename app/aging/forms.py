"""The aging settings form (admins): basis and bucket boundaries."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, ValidationError
from wtforms.validators import InputRequired

from app.aging.services import BASIS_LABELS, parse_bounds
from app.form_choices import as_choices


class AgingSettingsForm(FlaskForm):
    basis = SelectField("Age invoices by", choices=as_choices(BASIS_LABELS.items()))
    buckets = StringField(
        "Bucket boundaries (days)",
        validators=[InputRequired(message="Enter at least one boundary, e.g. 30, 60, 90.")],
        description="Ascending whole days, 1 to 8 of them: 30, 60, 90 gives current, 1–30, "
        "31–60, 61–90 and 90+.",
    )

    def validate_buckets(self, field) -> None:
        try:
            self.bounds = parse_bounds(field.data or "")
        except ValueError as error:
            raise ValidationError(str(error)) from None
