"""Errors as values people and programs can act on: French pages, stable JSON codes."""

from __future__ import annotations

from flask import Flask, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, SecurityError

from saas.units import format_size

# Stable machine codes per HTTP status, for the API's {"error": {"code": …}}.
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    423: "locked",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def _messages() -> dict[str, str]:
    return {
        "unknown_host": _("Aucune commune n'est servie à cette adresse."),
        "tenant_suspended": _(
            "Cette commune est suspendue : ses services sont momentanément indisponibles. "
            "Contactez le service informatique de l'intercommunalité."
        ),
        "tenant_archived": _("Cette commune est archivée : ses services ne sont plus ouverts."),
    }


def _default_message(status: int) -> str:
    return {
        400: _("La requête est incorrecte."),
        401: _("Authentification requise."),
        403: _("Vous n'avez pas accès à cette page."),
        404: _("Page introuvable."),
        405: _("Méthode non autorisée."),
        408: _("Le corps de la requête arrive trop lentement : la connexion est fermée. "
               "Réessayez avec une meilleure connexion."),
        409: _("Conflit avec l'état actuel de la ressource."),
        410: _("Cette ressource n'existe plus."),
        413: _("Le fichier envoyé est trop volumineux."),
        415: _("Type de contenu non pris en charge."),
        422: _("Les données envoyées sont invalides."),
        429: _("Trop de tentatives : réessayez dans quelques minutes."),
        500: _("Une erreur interne est survenue. L'équipe technique a été prévenue."),
        503: _("Service momentanément indisponible."),
    }.get(status, _("Erreur."))


class AppError(Exception):
    """A refusal people and programs can act on: HTTP status, stable `code`, French message.

    Raised by any layer; an API caller gets {"error": {"code", "message", "details"?}}, a person
    gets the error page with the message.
    """

    def __init__(self, status: int, code: str, message: str, details: dict | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers or {}


def wants_json() -> bool:
    return request.path.startswith("/api/") or (
        request.accept_mimetypes.best == "application/json"
    )


def json_error(status: int, code: str, message: str, details: dict | None = None):
    body: dict = {"code": code, "message": message}
    if details:
        body["details"] = details
    response = jsonify({"error": body})
    response.status_code = status
    return response


def _describe(exc: HTTPException) -> tuple[str, str]:
    """(code, message) for an HTTP exception; abort(…, description='tenant_suspended') maps here."""
    status = exc.code or 500
    desc = exc.description if isinstance(exc.description, str) else None
    messages = _messages()
    if desc in messages:
        return desc, messages[desc]
    if desc and desc != type(exc).description and not desc.startswith("The "):
        return STATUS_CODES.get(status, "error"), desc
    return STATUS_CODES.get(status, "error"), _default_message(status)


def init_app(app: Flask) -> None:
    @app.errorhandler(AppError)
    def _app_error(exc: AppError):
        if wants_json():
            response = json_error(exc.status, exc.code, exc.message, exc.details)
        else:
            response = app.make_response((render_template(
                "error.html", status=exc.status, message=exc.message, code=exc.code), exc.status))
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(SecurityError)
    def _untrusted_host(exc):
        # A host outside the base domain and the declared custom domains: nothing lives there.
        # No URL adapter exists for such a host, so no template with links can be rendered.
        message = _messages()["unknown_host"]
        if request.path.startswith("/api/"):
            return json_error(404, "unknown_host", message)
        return message + "\n", 404, {"Content-Type": "text/plain; charset=utf-8"}

    @app.errorhandler(CSRFError)
    def _csrf(exc):
        message = _("Le formulaire a expiré ou n'est pas valide : rechargez la page et recommencez.")
        if wants_json():
            return json_error(400, "csrf_failed", message)
        return render_template("error.html", status=400, message=message), 400

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        # The body limit of this request (the platform's, or an upload endpoint's): refused
        # before the body was read, or when a chunked body passed it.
        limit = request.max_content_length
        message = _("Requête trop volumineuse : %(max)s au plus pour cette adresse.",
                    max=format_size(limit)) if limit is not None else _default_message(413)
        if wants_json():
            return json_error(413, "payload_too_large", message,
                              {"max_bytes": limit} if limit is not None else None)
        return render_template("error.html", status=413, message=message,
                               code="payload_too_large"), 413

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        code, message = _describe(exc)
        if wants_json():
            response = json_error(status, code, message)
        else:
            response = app.make_response(
                (render_template("error.html", status=status, message=message, code=code), status)
            )
        for key, value in (exc.get_headers() if status in (401, 405, 429) else []):
            if key.lower() != "content-type":
                response.headers[key] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error", extra={"request_id": g.get("request_id")})
        if wants_json():
            return json_error(500, "internal_error", _default_message(500))
        return render_template("error.html", status=500, message=_default_message(500)), 500
