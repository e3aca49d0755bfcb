"""Bearer authentication for every API endpoint, on commune hosts only.

The API layer knows nothing of people: `saas.auth.init_app` hands it `authenticate_request`,
which the API blueprint runs before each request (saas/api/__init__.py).

Operations declared with `session=True` also accept the web session cookie (a logged-in member
of the commune) when no Authorization header is sent, with the page's CSRF token in X-CSRFToken.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import ValidationError, validate_csrf

from saas.api.registry import ApiRegistry
from saas.auth.tokens import TokenRejection, authenticate
from saas.errors import AppError, json_error
from saas.tenancy.context import set_user
from saas.tenancy.resolver import HostKind

REALM = "mutualis"


def _rejection_messages() -> dict[str, str]:
    return {
        "malformed": _("Jeton d'API mal formé : il commence par « mut_ » et compte 47 caractères."),
        "unknown": _("Jeton d'API inconnu pour cette commune : vérifiez le jeton et l'adresse appelée."),
        "revoked": _("Ce jeton d'API a été révoqué : demandez-en un nouveau."),
        "inactive_user": _("Le compte associé à ce jeton est désactivé."),
        "no_membership": _("Le compte associé à ce jeton n'a plus accès à cette commune."),
    }


def unauthorized(message: str, error: str | None = None) -> Response:
    """401 JSON with the RFC 6750 challenge."""
    response = json_error(401, "unauthorized", message)
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    response.headers["WWW-Authenticate"] = challenge
    return response


def authenticate_request(registry: ApiRegistry) -> Response | None:
    """Resolve the bearer token of the request; a before_request hook for API blueprints."""
    if g.get("host_kind") != HostKind.TENANT:
        # The API exists only on a commune's own address: the portal and console have none.
        raise AppError(404, "not_found",
                       _("L'API n'est servie qu'à l'adresse d'une commune (https://<commune>.…/api/v1)."))
    op = registry.find(request.endpoint)
    if op is not None and op.public:
        return None
    header = request.headers.get("Authorization", "")
    if not header and op is not None and op.session and current_user.is_authenticated \
            and g.get("membership") is not None:
        _check_csrf_header()
        return None
    if not header:
        return unauthorized(_("Authentification requise : envoyez l'en-tête "
                              "« Authorization: Bearer <jeton> »."))
    scheme, _sep, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return unauthorized(_("En-tête Authorization invalide : utilisez « Bearer <jeton> »."),
                            error="invalid_request")
    result = authenticate(value)
    if isinstance(result, TokenRejection):
        return unauthorized(_rejection_messages()[result.reason], error="invalid_token")
    request.api_user = result.user
    set_user(result.user)
    g.membership = result.membership
    g.api_token = result.token
    return None


def _check_csrf_header() -> None:
    try:
        validate_csrf(request.headers.get("X-CSRFToken"))
    except ValidationError:
        raise AppError(400, "csrf_failed", _("Jeton CSRF absent ou expiré : rechargez la page.")) from None


def install(blueprint: Blueprint, registry: ApiRegistry) -> None:
    """Require a bearer token (or, where declared, the session) on every non-public endpoint."""
    blueprint.before_request(lambda: authenticate_request(registry))

