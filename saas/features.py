"""The features the platform is made of, in the order they are wired.

`create_app()` calls each package's `init_app(app)`, which registers everything the feature
brings: blueprints, API operations, error handlers, console card, job kinds (by importing its
`tasks` module). A worker builds the same application, so it knows exactly the web app's job
kinds. tests/test_features.py fails when a package with pages, API operations or job kinds is
missing here.
"""

from __future__ import annotations

import importlib

from flask import Flask

FEATURES: tuple[str, ...] = (
    "saas.auth",
    "saas.jobs",
    "saas.ged",
    "saas.admin",
    "saas.web",
    "saas.ops",
)


def init_features(app: Flask) -> None:
    for name in FEATURES:
        importlib.import_module(name).init_app(app)
