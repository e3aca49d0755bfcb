"""The caller's own API tokens: list, read, rename, revoke (never their secret)."""

from __future__ import annotations

import uuid

from flask import g

from saas.api.helpers import iso, not_found, paginate
from saas.api.registry import Operations
from saas.auth import tokens as token_service
from saas.auth.models import ApiToken
from saas.errors import AppError
from saas.extensions import db

operations = Operations()

TOKEN = operations.schema("ApiToken", {
    "type": "object",
    "required": ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at", "current"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "prefix": {"type": "string", "description": "Premiers caractères du jeton, pour le reconnaître."},
        "created_at": {"type": "string", "format": "date-time"},
        "last_used_at": {"type": ["string", "null"], "format": "date-time",
                         "description": "Mis à jour au plus une fois par minute."},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "current": {"type": "boolean", "description": "Vrai pour le jeton de la requête."},
    },
})

TOKEN_UPDATE = operations.schema("ApiTokenUpdate", {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": token_service.NAME_MAX_LENGTH},
    },
})


def token_json(token: ApiToken) -> dict:
    return {
        "id": str(token.id),
        "name": token.name,
        "prefix": token.prefix,
        "created_at": iso(token.created_at),
        "last_used_at": iso(token.last_used_at),
        "revoked_at": iso(token.revoked_at),
        "current": token.id == g.api_token.id,
    }


def _own_token(token_id: uuid.UUID) -> ApiToken:
    token = token_service.get_token(token_id, user_id=request_user_id())
    if token is None:
        raise not_found(None)
    return token


def request_user_id() -> uuid.UUID:
    return g.api_token.user_id


@operations.operation("GET", "/tokens", summary="Mes jetons d'API dans cette commune", tags=("jetons",),
               response=TOKEN, paginated=True,
               description="Les plus récents d'abord, révoqués compris.")
def list_tokens():
    return paginate(token_service.tokens_query(user_id=request_user_id()), token_json)


@operations.operation("GET", "/tokens/<uuid:token_id>", summary="Un de mes jetons", tags=("jetons",),
               response=TOKEN)
def get_token(token_id: uuid.UUID):
    return token_json(_own_token(token_id))


@operations.operation("PATCH", "/tokens/<uuid:token_id>", summary="Renommer un de mes jetons",
               tags=("jetons",), request=TOKEN_UPDATE, response=TOKEN)
def update_token(token_id: uuid.UUID, body: dict):
    token = _own_token(token_id)
    try:
        token_service.rename_token(token, body["name"])
    except token_service.TokenError as exc:
        raise AppError(422, "validation_error", str(exc), {"fields": {"name": str(exc)}}) from None
    db.session.commit()
    return token_json(token)


@operations.operation("DELETE", "/tokens/<uuid:token_id>", summary="Révoquer un de mes jetons",
               tags=("jetons",), status=204, response_description="Révoqué (ou l'était déjà).",
               description="Révoquer le jeton de la requête est permis : les appels suivants "
                           "avec ce jeton répondent 401.")
def revoke_token(token_id: uuid.UUID):
    token = _own_token(token_id)
    if token_service.revoke_token(token):
        db.session.commit()
    return "", 204
