"""The intercommunal console (admin.<base domain>), for platform administrators."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from saas.admin import tasks, views  # noqa: F401  (tasks: job kinds)

    app.register_blueprint(views.bp)
