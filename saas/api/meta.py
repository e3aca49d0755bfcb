"""Who am I, and the API's own description."""

from __future__ import annotations

from flask import g, jsonify, request

from saas.api import current_api
from saas.api.registry import Operations

operations = Operations()

ME = operations.schema("Me", {
    "type": "object",
    "required": ["user", "tenant", "roles"],
    "properties": {
        "user": {
            "type": "object",
            "required": ["id", "email", "name"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "email": {"type": "string", "format": "email"},
                "name": {"type": "string"},
            },
        },
        "tenant": {
            "type": "object",
            "required": ["slug", "name", "insee"],
            "properties": {
                "slug": {"type": "string"},
                "name": {"type": "string"},
                "insee": {"type": ["string", "null"], "description": "Code INSEE (null pour l'EPCI)."},
            },
        },
        "roles": {
            "type": "array",
            "items": {"type": "string", "enum": ["admin", "agent", "elu"]},
            "description": "Rôles de la personne dans cette commune.",
        },
    },
})


@operations.operation("GET", "/me", summary="La personne et la commune du jeton", tags=("compte",),
               response=ME)
def me():
    user, tenant = request.api_user, g.tenant
    return {
        "user": {"id": str(user.id), "email": user.email, "name": user.name},
        "tenant": {"slug": tenant.slug, "name": tenant.name, "insee": tenant.insee},
        "roles": [g.membership.role],
    }


@operations.operation("GET", "/openapi.json", summary="Description OpenAPI 3.1 de l'API",
               tags=("méta",), public=True, response={"type": "object"},
               description="Publique (sans jeton), à l'adresse d'une commune.")
def openapi():
    api = current_api()
    response = jsonify(api.openapi(request.url_root.rstrip("/") + api.blueprint.url_prefix))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
