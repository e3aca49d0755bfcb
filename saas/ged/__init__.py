"""GED: the commune's documents, versions, search, shares, retention and quota.

Other features use `saas.ged.public` only; everything else here is private to the GED.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from saas.api import PREFIX, add_operations
    from saas.config import current_settings
    from saas.files.resumable import protocol_headers
    from saas.ged import api, tasks, views  # noqa: F401  (tasks: job kinds)

    app.register_blueprint(views.bp)
    add_operations(app, api.operations)
    app.after_request(protocol_headers(PREFIX + api.UPLOADS_PATH,
                                       lambda: current_settings().ged.max_upload))
