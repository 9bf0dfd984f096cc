from __future__ import annotations

import zoneinfo

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import Email, EqualTo, InputRequired, Length, Optional, ValidationError

from app.auth.services import password_problems
from app.form_choices import as_choices
from tenants.services import COUNTRIES, CURRENCIES

COUNTRY_CHOICES = [(code, name) for code, (name, _, _) in COUNTRIES.items()]
CURRENCY_CHOICES = [(code, code) for code in CURRENCIES]


def time_zone_choices() -> list[tuple[str, str]]:
    return [
        (tz, tz.replace("_", " "))
        for tz in sorted(zoneinfo.available_timezones())
        if "/" in tz and not tz.startswith(("Etc/", "SystemV/", "US/"))
    ]


class StrongPassword:
    def __init__(self, email_field: str | None = "email"):
        self.email_field = email_field

    def __call__(self, form, field):
        email = form[self.email_field].data if self.email_field and self.email_field in form else ""
        problems = password_problems(field.data or "", email or "")
        if problems:
            raise ValidationError(" ".join(problems))


class WorkspaceFields(FlaskForm):
    organisation = StringField("Organisation name", validators=[InputRequired(), Length(2, 191)])
    slug = StringField(
        "Workspace address",
        validators=[Optional(), Length(3, 40)],
        description="Letters, digits and hyphens; used in your links: /t/<address>/. "
        "Leave empty to make one from the name.",
    )
    country = SelectField("Country", choices=as_choices(COUNTRY_CHOICES), default="IN")
    region = StringField("State or region", validators=[Optional(), Length(max=64)])
    time_zone = SelectField("Time zone", default="Asia/Kolkata")
    currency = SelectField("Currency", choices=as_choices(CURRENCY_CHOICES), default="INR")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_zone.choices = as_choices(time_zone_choices())


class SignupForm(WorkspaceFields):
    full_name = StringField("Your name", validators=[InputRequired(), Length(2, 191)])
    email = EmailField("Work e-mail", validators=[InputRequired(), Email(), Length(max=254)])
    password = PasswordField(
        "Password",
        validators=[InputRequired(), StrongPassword()],
        description="At least 10 characters; a phrase is easiest to remember.",
    )


class ConfirmSignupForm(FlaskForm):
    slug = StringField(
        "Workspace address",
        validators=[InputRequired(), Length(3, 40)],
        description="Letters, digits and hyphens; used in your links: /t/<address>/.",
    )
    password = PasswordField("The password you chose", validators=[InputRequired()])


class NewWorkspaceForm(WorkspaceFields):
    pass


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[InputRequired(), Email()])
    password = PasswordField("Password", validators=[InputRequired()])


class ForgotPasswordForm(FlaskForm):
    email = EmailField("E-mail", validators=[InputRequired(), Email()])


class ResetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[InputRequired(), StrongPassword(None)])
    confirm = PasswordField(
        "Repeat the new password",
        validators=[InputRequired(), EqualTo("password", "The passwords differ.")],
    )


class ChangePasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[InputRequired()])
    password = PasswordField("New password", validators=[InputRequired(), StrongPassword(None)])
    confirm = PasswordField(
        "Repeat the new password",
        validators=[InputRequired(), EqualTo("password", "The passwords differ.")],
    )


class AcceptInvitationForm(FlaskForm):
    full_name = StringField("Your name", validators=[InputRequired(), Length(2, 191)])
    password = PasswordField(
        "Choose a password", validators=[InputRequired(), StrongPassword(None)]
    )
