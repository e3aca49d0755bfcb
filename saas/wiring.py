"""The configure_* steps create_app() runs, in order."""

from __future__ import annotations

import uuid

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from saas import transactions
from saas.config import Settings
from saas.extensions import babel, csrf, db, limiter, migrate


def configure(app: Flask, settings: Settings) -> None:
    configure_logs(app, settings)
    configure_proxy(app, settings)
    configure_bodies(app, settings)
    configure_compression(app)
    configure_extensions(app, settings)
    configure_tenancy(app, settings)
    configure_storage(app, settings)
    configure_mail(app, settings)
    configure_features(app)
    configure_errors(app)
    configure_security_headers(app)


def configure_logs(app: Flask, settings: Settings) -> None:
    from saas.logs import bind_context, clear_context, configure_logging

    if not app.testing:
        configure_logging(json_output=settings.production)

    @app.before_request
    def _log_context() -> None:
        clear_context()
        g.request_id = _request_id()
        bind_context(request_id=g.request_id)

    @app.teardown_request
    def _log_context_end(exc) -> None:
        clear_context()


def configure_proxy(app: Flask, settings: Settings) -> None:
    # Behind the platform's reverse proxy(ies): the client address (login throttling keys on it)
    # and the scheme come from the last `hops` values of X-Forwarded-For/-Proto, the ones the
    # proxies appended; what the client sent before them is ignored. The host chooses the
    # commune: it stays the Host header (which the proxy passes on) unless the proxy is declared
    # to set X-Forwarded-Host itself, since a proxy that only relays it would let a client pick.
    if settings.proxy_hops:
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops,
                                x_host=hops if settings.proxy_forwards_host else 0)


def configure_bodies(app: Flask, settings: Settings) -> None:
    # The size limits are Flask's MAX_* settings (settings.flask_config); the time limit wraps
    # wsgi.input under gunicorn. Innermost, so the ProxyFix environ is the one it sees.
    from saas.bodies import BodyDeadline

    app.wsgi_app = BodyDeadline(app.wsgi_app, timeout=settings.http.body_timeout)


def configure_compression(app: Flask) -> None:
    # First after_request hook registered, so the last to run: it compresses the final body.
    from saas.web import compression

    compression.init_app(app)


def configure_extensions(app: Flask, settings: Settings) -> None:
    from pathlib import Path

    db.init_app(app)
    transactions.init_app(app, db)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    csrf.init_app(app)
    babel.init_app(app, locale_selector=lambda: "fr", timezone_selector=lambda: "Europe/Paris")
    limiter.init_app(app)

    @app.before_request
    def _bind_request() -> None:
        g.settings = settings


def _request_id() -> str:
    # Accept the load balancer's id only if it looks like one (it ends up in every log line).
    incoming = request.headers.get("X-Request-Id", "")
    if 8 <= len(incoming) <= 64 and incoming.replace("-", "").isalnum():
        return incoming
    return uuid.uuid4().hex


def configure_tenancy(app: Flask, settings: Settings) -> None:
    from saas.tenancy import resolver, scoping

    scoping.install()
    resolver.init_app(app, settings.base_domain)


def configure_storage(app: Flask, settings: Settings) -> None:
    from saas.storage import build_store

    app.extensions["saas_store"] = build_store(settings)


def configure_mail(app: Flask, settings: Settings) -> None:
    from saas.mail import build_mailer

    app.extensions["saas_mailer"] = build_mailer(settings)


def configure_features(app: Flask) -> None:
    from saas import api
    from saas.features import init_features

    init_features(app)
    api.init_app(app)  # after the features: it is built from the operations they offered


def configure_errors(app: Flask) -> None:
    from saas import errors

    errors.init_app(app)


def configure_security_headers(app: Flask) -> None:
    @app.after_request
    def _headers(response):
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        response.headers["X-Request-Id"] = g.get("request_id", "")
        if request.is_secure:
            # Every commune is a sub-domain of the base domain, all served over HTTPS.
            response.headers.setdefault("Strict-Transport-Security",
                                        "max-age=31536000; includeSubDomains")
        return response
