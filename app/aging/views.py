"""Pages of this area (being written; see issue 5)."""

from flask import Blueprint

blueprint = Blueprint("aging", __name__, url_prefix="/t/<tenant_slug>/aging")
