"""People, their roles in each commune, sessions, second factor and API tokens."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from saas.api import add_operations, set_authenticator
    from saas.auth import api, bearer, members_views, sessions, tasks, tokens, views  # noqa: F401  (tasks: job kinds)
    from saas.extensions import login_manager

    sessions.init_app(app, login_manager)
    tokens.install_cache_invalidation()
    set_authenticator(app, bearer.authenticate_request)
    app.register_blueprint(views.bp)
    app.register_blueprint(members_views.bp)
    add_operations(app, api.operations)
