from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField
from wtforms.validators import Email, InputRequired, Length

from tenants.roles import ROLE_LABELS


class InviteForm(FlaskForm):
    email = EmailField("E-mail", validators=[InputRequired(), Email(), Length(max=254)])
    role = SelectField("Role", choices=list(ROLE_LABELS.items()), default="finance")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=list(ROLE_LABELS.items()))
