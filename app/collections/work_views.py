"""Pages of this area (being written; see issue 5)."""

from flask import Blueprint

blueprint = Blueprint("work", __name__, url_prefix="/t/<tenant_slug>/work")
