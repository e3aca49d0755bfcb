"""Mutualis: the intercommunality's shared e-administration platform."""

from __future__ import annotations

from flask import Flask

from saas.config import Settings, load_settings


def create_app(overrides: dict | None = None, settings: Settings | None = None) -> Flask:
    """Build the WSGI application: settings, extensions, tenancy walls, blueprints."""
    settings = settings or load_settings(overrides)
    app = Flask(__name__, instance_path=str(settings.instance_path), instance_relative_config=False)
    app.config.update(settings.flask_config())
    app.config["SAAS_SETTINGS"] = settings
    from saas.config import SETTING_KEYS

    # Overrides that are not settings (TESTING, SAAS_PASSWORD_HASHER, …) go to app.config as is.
    for key, value in (overrides or {}).items():
        if key.isupper() and key not in SETTING_KEYS:
            app.config[key] = value

    from saas import wiring

    wiring.configure(app, settings)
    return app
