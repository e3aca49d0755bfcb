"""One declaration per endpoint: route, authentication, roles, body validation, rate limit, OpenAPI.

    operations = Operations()

    @operations.operation("PATCH", "/tokens/<uuid:token_id>", summary="Renommer un jeton",
                          request=TOKEN_UPDATE, response=TOKEN)
    def update_token(token_id, body): ...

declares an endpoint; once the feature hands its set to the API (`saas.api.add_operations`),
the registry adds the Flask route to the application's API blueprint, validates the JSON body
against `request` (422 with the offending fields, see validation.py), applies the per-token
rate limit and the role check, and records everything `GET /api/v1/openapi.json` publishes.
Bearer authentication is done for the whole blueprint (saas/auth/bearer.py); `public=True` opts
an operation out of it, and `session=True` also accepts the web session cookie with the CSRF
token in X-CSRFToken (the pages' own scripts, e.g. resumable uploads).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import wraps
from typing import Any

from flask import Blueprint, current_app, g, request
from flask_babel import gettext as _

from saas.api import idempotency
from saas.api.helpers import MAX_PAGE
from saas.api.validation import check_schema, validate, validation_error
from saas.bodies import cap_body
from saas.config import current_settings
from saas.errors import STATUS_CODES, AppError
from saas.extensions import limiter
from saas.netutil import client_ip

DEFAULT_RATE_LIMIT = "600 per minute"
# Nesting accepted in a JSON body: every request schema is a few levels deep; deeper bodies
# would only cost recursion (in the validator and the views) and are refused with 400.
MAX_JSON_DEPTH = 32
OPENAPI_VERSION = "3.1.0"

_CONVERTER_SCHEMAS = {
    "default": {"type": "string"},
    "string": {"type": "string"},
    "path": {"type": "string"},
    "uuid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
}
_RULE_ARG = re.compile(r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")


@dataclass(frozen=True)
class QueryParam:
    name: str
    schema: dict
    description: str
    required: bool = False


@dataclass
class Operation:
    method: str
    rule: str  # Flask rule relative to the blueprint, e.g. "/tokens/<uuid:token_id>"
    endpoint: str  # "api.update_token"
    summary: str
    description: str = ""
    tags: tuple[str, ...] = ()
    status: int = 200
    response: dict | None = None
    response_description: str = ""
    request: dict | None = None
    query: tuple[QueryParam, ...] = ()
    public: bool = False
    session: bool = False
    roles: tuple[str, ...] = ()
    paginated: bool = False
    extra_responses: dict[int, str] = field(default_factory=dict)

    @property
    def path_params(self) -> list[tuple[str, str]]:
        """(name, converter) of each variable part of the rule."""
        return [(m["name"], m["converter"] or "default") for m in _RULE_ARG.finditer(self.rule)]

    def openapi_path(self) -> str:
        return _RULE_ARG.sub(lambda m: "{" + m["name"] + "}", self.rule)


PAGINATION_PARAMS = (
    QueryParam("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
               "Numéro de page (à partir de 1)."),
    QueryParam("per_page", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
               "Éléments par page (100 au plus)."),
)

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Code stable, pour les programmes."},
                "message": {"type": "string", "description": "Explication en français."},
                "details": {"type": "object", "description": "Précisions (champs invalides…)."},
            },
        }
    },
}

_ERROR_RESPONSES = {
    400: ("BadRequest", "Requête incorrecte (JSON illisible, paramètre invalide)."),
    401: ("Unauthorized", "Jeton absent, invalide ou révoqué."),
    403: ("Forbidden", "Commune suspendue ou rôle insuffisant."),
    404: ("NotFound", "Ressource introuvable (ou d'une autre commune)."),
    409: ("Conflict", "Conflit avec l'état actuel de la ressource."),
    413: ("PayloadTooLarge", "Corps de requête trop volumineux."),
    415: ("UnsupportedMediaType", "Le corps doit être du JSON (Content-Type: application/json)."),
    422: ("ValidationError", "Champs invalides : voir error.details.fields."),
    429: ("TooManyRequests", "Limite de requêtes atteinte pour ce jeton."),
    500: ("InternalError", "Erreur interne."),
}


@dataclass(frozen=True)
class DeclaredOperation:
    operation: Operation
    view: Callable


class Operations:
    """One feature's API operations and named schemas, declared at import time.

        operations = Operations()
        TOKEN = operations.schema("ApiToken", {...})

        @operations.operation("PATCH", "/tokens/<uuid:token_id>", summary="Renommer un jeton",
                              request=TOKEN_UPDATE, response=TOKEN)
        def update_token(token_id, body): ...

    Declaring registers nothing: the feature's `init_app` hands the set to the platform
    (`saas.api.add_operations`), which builds each application's API blueprint from every set.
    """

    def __init__(self) -> None:
        self.declared: list[DeclaredOperation] = []
        self.schemas: dict[str, dict] = {}

    def schema(self, name: str, schema: dict) -> dict:
        """Declare a named schema (components/schemas) and return a $ref to it."""
        if name in self.schemas:
            raise ValueError(f"schema {name} declared twice")
        check_schema(schema)
        self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def operation(self, method: str, rule: str, *, summary: str, description: str = "",
                  tags: Iterable[str] = (), status: int = 200, response: dict | None = None,
                  response_description: str = "", request: dict | None = None,
                  query: Iterable[QueryParam] = (), public: bool = False,
                  session: bool = False, roles: Iterable[str] = (), paginated: bool = False,
                  errors: dict[int, str] | None = None) -> Callable:
        """Declare one endpoint (one method of one rule); unsupported schema keywords fail here."""
        for schema in (request, response):
            if schema is not None:
                check_schema(schema)
        query = tuple(query) + (PAGINATION_PARAMS if paginated else ())

        def decorator(view: Callable) -> Callable:
            op = Operation(
                method=method.upper(), rule=rule, endpoint=view.__name__, summary=summary,
                description=description, tags=tuple(tags), status=status, response=response,
                response_description=response_description, request=request, query=query,
                public=public, session=session, roles=tuple(roles), paginated=paginated,
                extra_responses=dict(errors or {}),
            )
            self.declared.append(DeclaredOperation(op, view))
            return view

        return decorator


class ApiRegistry:
    """The API's operations and named schemas; the OpenAPI document is built from them."""

    def __init__(self, blueprint: Blueprint, *, title: str = "Mutualis API", version: str = "1"):
        self.blueprint = blueprint
        self.title = title
        self.version = version
        self.operations: list[Operation] = []
        self.schemas: dict[str, dict] = {"Error": ERROR_SCHEMA}
        self._by_endpoint: dict[str, Operation] = {}

    # -- declaration -------------------------------------------------------------------------

    def schema(self, name: str, schema: dict) -> dict:
        """Register a named schema (components/schemas) and return a $ref to it."""
        if name in self.schemas:
            raise ValueError(f"schema {name} declared twice")
        check_schema(schema, self)
        self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def add(self, *sets: Operations) -> None:
        """Register every schema, then every operation, of the given features' sets."""
        for ops in sets:
            for name, schema in ops.schemas.items():
                if name in self.schemas:
                    raise ValueError(f"schema {name} declared twice")
                self.schemas[name] = schema
        for ops in sets:
            for name in ops.schemas:
                check_schema(self.schemas[name], self)
            for declared in ops.declared:
                self._register(declared)

    def _register(self, declared: DeclaredOperation) -> None:
        op, view = declared.operation, declared.view
        if op.request is not None:
            check_schema(op.request, self)
        if op.response is not None:
            check_schema(op.response, self)
        endpoint = f"{self.blueprint.name}.{view.__name__}"
        if endpoint in self._by_endpoint:
            raise ValueError(f"endpoint {endpoint} declared twice")
        op = replace(op, endpoint=endpoint)

        @wraps(view)
        def checked(*args: Any, **kwargs: Any):
            if op.roles:
                require_roles(op.roles)
            if op.method == "POST" and not op.public:
                # Before the body is read or streamed: a repetition is answered from the store.
                replayed = idempotency.begin_api(streamed=op.request is None)
                if replayed is not None:
                    return replayed
            if op.request is not None:
                kwargs["body"] = self.validated_body(op.request)
            return view(*args, **kwargs)

        limited = limiter.shared_limit(
            _rate_limit_value, scope="api", key_func=rate_limit_key,
            error_message=_rate_limit_message,
        )(checked)
        self.blueprint.add_url_rule(op.rule, endpoint=view.__name__, view_func=limited,
                                    methods=[op.method])
        self.operations.append(op)
        self._by_endpoint[endpoint] = op

    def find(self, endpoint: str | None) -> Operation | None:
        return self._by_endpoint.get(endpoint or "")

    # -- request bodies ------------------------------------------------------------------------

    def validated_body(self, schema: dict) -> Any:
        """The request's JSON body, checked against `schema` (415, 400 or 422 otherwise)."""
        if request.mimetype != "application/json":
            raise AppError(415, "unsupported_media_type",
                           _("Envoyez le corps en JSON, avec l'en-tête Content-Type: application/json."))
        # Capped before reading: a larger Content-Length is refused (413) without reading a
        # byte, a chunked body is stopped at the cap.
        cap_body(request, current_settings().http.max_json)
        raw = request.get_data(cache=True)
        try:
            data = json.loads(raw or b"")
        except RecursionError:
            raise _too_deep() from None
        except ValueError:
            raise AppError(400, "invalid_json", _("Le corps de la requête n'est pas un JSON valide.")) from None
        if _depth_over(data, MAX_JSON_DEPTH):
            raise _too_deep()
        problems = validate(data, schema, self)
        if problems:
            raise validation_error(problems)
        return data

    # -- OpenAPI -----------------------------------------------------------------------------

    def resolve(self, schema: dict) -> dict:
        ref = schema.get("$ref")
        if ref is None:
            return schema
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith("#/components/schemas/") or name not in self.schemas:
            raise ValueError(f"unknown schema reference {ref}")
        return self.resolve(self.schemas[name])

    def openapi(self, server_url: str) -> dict:
        """The OpenAPI 3.1 document of every declared operation."""
        paths: dict[str, dict] = {}
        for op in sorted(self.operations, key=lambda o: (o.openapi_path(), o.method)):
            paths.setdefault(op.openapi_path(), {})[op.method.lower()] = self._operation_doc(op)
        responses = {}
        for status, (name, text) in _ERROR_RESPONSES.items():
            resp: dict = {"description": text,
                          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            if status == 401:
                resp["headers"] = {"WWW-Authenticate": {
                    "description": "Toujours « Bearer », avec error=\"invalid_token\" si le jeton est refusé.",
                    "schema": {"type": "string"}}}
            if status == 429:
                resp["headers"] = {"Retry-After": {
                    "description": "Secondes avant de réessayer.", "schema": {"type": "integer"}}}
            responses[name] = resp
        return {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": self.title,
                "version": self.version,
                "description": (
                    "API de la plateforme mutualisée. La commune est celle de l'adresse appelée ; "
                    "chaque jeton appartient à une personne dans une commune. Les objets d'une autre "
                    "commune répondent 404, exactement comme s'ils n'existaient pas."
                ),
            },
            "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
            "servers": [{"url": server_url}],
            "security": [{"bearer": []}],
            "paths": paths,
            "components": {
                "securitySchemes": {"bearer": {
                    "type": "http", "scheme": "bearer", "bearerFormat": "mut_…",
                    "description": "Jeton créé par `saas tokens create` ; envoyé en "
                                   "« Authorization: Bearer <jeton> ».",
                }, "session": {
                    "type": "apiKey", "in": "cookie", "name": "session",
                    "description": "Cookie de session de l'interface web, avec le jeton CSRF de "
                                   "la page dans l'en-tête X-CSRFToken (opérations qui l'acceptent).",
                }},
                "schemas": dict(sorted(self.schemas.items())),
                "responses": responses,
            },
        }

    def _operation_doc(self, op: Operation) -> dict:
        doc: dict = {"operationId": op.endpoint.split(".", 1)[-1], "summary": op.summary}
        description = op.description
        if op.roles:
            description = (description + "\n\n" if description else "") + (
                "Rôles autorisés : " + ", ".join(op.roles) + ".")
        if description:
            doc["description"] = description
        if op.tags:
            doc["tags"] = list(op.tags)
        params = [
            {"name": name, "in": "path", "required": True, "schema": dict(_CONVERTER_SCHEMAS.get(conv, {"type": "string"}))}
            for name, conv in op.path_params
        ]
        params += [
            {"name": q.name, "in": "query", "required": q.required, "description": q.description,
             "schema": q.schema}
            for q in op.query
        ]
        if op.method == "POST" and not op.public:
            params.append(dict(idempotency.PARAMETER_DOC))
        if params:
            doc["parameters"] = params
        if op.request is not None:
            doc["requestBody"] = {"required": True,
                                  "content": {"application/json": {"schema": op.request}}}
        responses: dict[str, dict] = {}
        success: dict = {"description": op.response_description or op.summary}
        if op.response is not None:
            schema = op.response
            if op.paginated:
                schema = {
                    "type": "object",
                    "required": ["items", "total", "page", "per_page"],
                    "properties": {
                        "items": {"type": "array", "items": op.response},
                        "total": {"type": "integer", "minimum": 0},
                        "page": {"type": "integer", "minimum": 1},
                        "per_page": {"type": "integer", "minimum": 1},
                    },
                }
            success["content"] = {"application/json": {"schema": schema}}
        responses[str(op.status)] = success
        errors = {403, 404, 429, 500}
        if not op.public:
            errors.add(401)
        if op.request is not None:
            errors |= {400, 415, 422}
        if op.query:
            errors.add(422)
        errors |= set(op.extra_responses)
        if op.method == "POST" and not op.public:
            errors |= {400, 409, 422}
        for status in sorted(errors):
            name = _ERROR_RESPONSES[status][0] if status in _ERROR_RESPONSES else None
            if status in op.extra_responses or name is None:
                responses[str(status)] = {
                    "description": op.extra_responses.get(status) or STATUS_CODES.get(status, "erreur"),
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            else:
                responses[str(status)] = {"$ref": f"#/components/responses/{name}"}
        doc["responses"] = responses
        if op.public:
            doc["security"] = []
        elif op.session:
            doc["security"] = [{"bearer": []}, {"session": []}]
        return doc


# -- authentication-related checks used by the wrapper --------------------------------------


def require_roles(roles: Iterable[str]) -> None:
    """403 unless the authenticated member's role in this commune is one of `roles`."""
    membership = g.get("membership")
    if membership is None:
        raise AppError(401, "unauthorized", _("Authentification requise."))
    if membership.role not in tuple(roles):
        raise AppError(403, "forbidden", _("Votre rôle dans cette commune ne permet pas cette action."))


def rate_limit_key() -> str:
    """Per token when authenticated, per client address otherwise (public endpoints)."""
    token = g.get("api_token")
    return f"token:{token.id}" if token is not None else f"ip:{client_ip()}"


def _rate_limit_value() -> str:
    return current_app.config.get("API_RATE_LIMIT") or DEFAULT_RATE_LIMIT


def _rate_limit_message() -> str:
    return _("Trop de requêtes avec ce jeton : patientez une minute avant de réessayer.")


# -- the JSON Schema subset -----------------------------------------------------------------


def _too_deep() -> AppError:
    return AppError(400, "json_too_deep",
                    _("Le corps JSON est trop imbriqué : %(n)d niveaux au plus.", n=MAX_JSON_DEPTH))


def _depth_over(value: Any, limit: int) -> bool:
    """Whether `value` nests lists and objects more than `limit` levels deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
