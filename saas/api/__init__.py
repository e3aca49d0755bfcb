"""The HTTP API /api/v1 (see API.md): bearer tokens, JSON errors, tenant from the host.

Each feature declares its endpoints on an `Operations` set (saas/api/registry.py) and hands it
over in its `init_app` with `add_operations(app, operations)`; the factory then calls
`init_app(app)`, which builds this application's API blueprint from every set: routes,
authentication and role rules, request validation, rate limits and the OpenAPI description.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Flask, Response, current_app

from saas.api.registry import ApiRegistry, Operations

PREFIX = "/api/v1"
_SETS = "saas_api_operation_sets"
_AUTHENTICATOR = "saas_api_authenticator"


def add_operations(app: Flask, operations: Operations) -> None:
    """Offer a feature's operations to `app`'s API (call from the feature's init_app)."""
    if "saas_api" in app.extensions:
        raise RuntimeError("the API blueprint is already built: add operations before init_app")
    app.extensions.setdefault(_SETS, []).append(operations)


def set_authenticator(app: Flask, authenticate: Callable[[ApiRegistry], Response | None]) -> None:
    """Name the before-request check that authenticates API callers (auth's init_app does)."""
    app.extensions[_AUTHENTICATOR] = authenticate


def init_app(app: Flask) -> None:
    """Build and register the API blueprint from every set offered (after the features)."""
    from saas.api import idempotency, meta
    from saas.extensions import csrf

    authenticate = app.extensions.get(_AUTHENTICATOR)
    if authenticate is None:
        # Fail closed: an API without its authentication must not be served at all.
        raise RuntimeError("no API authenticator: saas.auth must be among the features")
    blueprint = Blueprint("api", __name__, url_prefix=PREFIX)
    registry = ApiRegistry(blueprint)
    registry.add(meta.operations, *app.extensions.pop(_SETS, []))
    blueprint.before_request(lambda: authenticate(registry))
    app.register_blueprint(blueprint)
    csrf.exempt(blueprint)
    app.extensions["saas_api"] = registry
    idempotency.init_app(app)


def current_api() -> ApiRegistry:
    """The API registry of the application in context (operations, schemas, OpenAPI)."""
    return current_app.extensions["saas_api"]
