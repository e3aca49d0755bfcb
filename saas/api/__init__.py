"""The HTTP API /api/v1 (see API.md): bearer tokens, JSON errors, tenant from the host.

Endpoints are declared with `api.operation(...)` (saas/api/registry.py), which registers the
Flask route, its authentication and role rules, its request validation, its rate limit and its
OpenAPI description in one place.
"""

from flask import Blueprint

from saas.api.registry import ApiRegistry

bp = Blueprint("api", __name__, url_prefix="/api/v1")
api = ApiRegistry(bp)

# Route modules register themselves on `api` when imported.
from saas.api import auth, meta, tokens  # noqa: E402,F401
