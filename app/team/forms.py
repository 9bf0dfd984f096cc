from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField
from wtforms.validators import Email, InputRequired, Length

from app.form_choices import as_choices
from tenants.roles import ROLE_LABELS


class InviteForm(FlaskForm):
    email = EmailField("E-mail", validators=[InputRequired(), Email(), Length(max=254)])
    role = SelectField("Role", choices=as_choices(ROLE_LABELS.items()), default="finance")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=as_choices(ROLE_LABELS.items()))
