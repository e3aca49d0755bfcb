"""The configure_* steps create_app() runs, in order."""

from __future__ import annotations

import uuid

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from saas import transactions
from saas.config import Settings
from saas.extensions import babel, csrf, db, limiter, login_manager, migrate


def configure(app: Flask, settings: Settings) -> None:
    configure_logs(app, settings)
    configure_proxy(app, settings)
    configure_extensions(app, settings)
    configure_tenancy(app, settings)
    configure_login(app)
    configure_storage(app, settings)
    configure_mail(app, settings)
    configure_jobs(app, settings)
    configure_blueprints(app)
    configure_errors(app)
    configure_security_headers(app)
    configure_templates(app)


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
    # Behind the platform's reverse proxy(ies): client address and scheme come from X-Forwarded-*
    # (login throttling keys on the client address).
    if settings.proxy_hops:
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


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


def configure_login(app: Flask) -> None:
    from saas.auth import sessions

    sessions.init_app(app, login_manager)


def configure_storage(app: Flask, settings: Settings) -> None:
    from saas.storage import build_store

    app.extensions["saas_store"] = build_store(settings)


def configure_mail(app: Flask, settings: Settings) -> None:
    from saas.mail import build_mailer

    app.extensions["saas_mailer"] = build_mailer(settings)


def configure_jobs(app: Flask, settings: Settings) -> None:
    # Before configure_blueprints: it adds GET /api/v1/jobs/<id> to the API blueprint.
    from saas.jobs.setup import init_app

    init_app(app, settings)


def configure_blueprints(app: Flask) -> None:
    from saas.admin.routes import bp as console_bp
    from saas.api import bp as api_bp
    from saas.auth.routes import bp as auth_bp
    from saas.ged import api as _ged_api  # noqa: F401  (registers the GED API routes)
    from saas.ged import uploads as _ged_uploads  # noqa: F401  (tus routes)
    from saas.ged.routes import bp as ged_bp
    from saas.web.health import bp as health_bp
    from saas.web.routes import bp as web_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(web_bp)
    app.register_blueprint(console_bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)
    app.register_blueprint(ged_bp)


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
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


def configure_templates(app: Flask) -> None:
    from saas.web import template_globals

    template_globals.init_app(app)
