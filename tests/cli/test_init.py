"""`saas init` migrates as the owner, then refuses an application role that would bypass RLS."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner
from flask.cli import ScriptInfo

from tests.support.postgres import ADMIN_URL


def _init_as(app_overrides, database_url: str):
    from saas import create_app
    from saas.cli import main

    app = create_app({**app_overrides, "DATABASE_URL": database_url})
    try:
        with app.app_context():  # the command runs in this app, not in the test's outer one
            return CliRunner().invoke(main, ["init"], obj=ScriptInfo(create_app=lambda: app))
    finally:
        with app.app_context():
            from saas.extensions import db

            db.engine.dispose()


def test_init_accepts_an_unprivileged_app_role(app, app_overrides):
    result = _init_as(app_overrides, app_overrides["DATABASE_URL"])
    assert result.exit_code == 0, result.output
    assert "schéma à jour" in result.output


def test_init_refuses_when_the_app_connects_as_the_schema_owner(app, app_overrides):
    result = _init_as(app_overrides, app_overrides["DATABASE_OWNER_URL"])
    assert result.exit_code == 1
    assert "refusé" in result.output and "possède des tables" in result.output
    assert "SAAS_DATABASE_OWNER_URL" in result.output


def test_init_refuses_a_superuser_app_role(app, app_overrides, pg_database):
    superuser = sa.engine.make_url(ADMIN_URL).set(database=pg_database.name)
    result = _init_as(app_overrides, superuser.render_as_string(hide_password=False))
    assert result.exit_code == 1
    assert "superutilisateur" in result.output
