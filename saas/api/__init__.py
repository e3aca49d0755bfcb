"""The HTTP API /api/v1 (see API.md): bearer tokens, JSON errors, tenant from the host."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")
