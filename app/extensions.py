"""Extensions created unbound; create_app() binds them to the application."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx

from tenants.binding import TenantSession

db = SQLAlchemy(session_options={"class_": TenantSession}, disable_autonaming=True)
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = Htmx()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
