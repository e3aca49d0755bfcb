"""Pages common to every host: the portal, a commune's home."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from saas.web import assets, template_globals, views

    assets.init_app(app)
    app.register_blueprint(views.bp)
    template_globals.init_app(app)
