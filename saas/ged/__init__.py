"""GED: the commune's documents, versions, search, shares, retention and quota."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from saas.api import add_operations
    from saas.ged import api, tasks, uploads, views  # noqa: F401  (tasks: job kinds)

    app.register_blueprint(views.bp)
    add_operations(app, api.operations)
    add_operations(app, uploads.operations)
    app.after_request(uploads.tus_headers)
