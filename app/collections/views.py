"""Pages of this area (being written; see issue 5)."""

from flask import Blueprint

blueprint = Blueprint("collections", __name__, url_prefix="/t/<tenant_slug>/collections")
