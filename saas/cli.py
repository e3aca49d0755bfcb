"""The `saas` console script: the operator's commands (see API.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from saas import create_app


def _create_app():
    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def main() -> None:
    """Mutualis: operate the intercommunality's platform."""


@main.command("init")
@with_appcontext
def init_command() -> None:
    """Create or upgrade the database schema, then grant the application role its rights."""
    from alembic import command
    from alembic.config import Config

    from saas.tenancy.rls import check_app_role, grant_app_role

    settings = current_app.config["SAAS_SETTINGS"]
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    cfg = Config(str(Path(__file__).parent / "migrations" / "alembic.ini"))
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    owner_engine = sa.create_engine(settings.database_owner_url)
    try:
        with owner_engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            if conn.dialect.name == "postgresql":
                app_role = sa.engine.make_url(settings.database_url).username
                owner_role = conn.execute(sa.text("SELECT current_user")).scalar()
                if app_role and app_role != owner_role:
                    grant_app_role(conn, app_role)
    finally:
        owner_engine.dispose()
    if sa.engine.make_url(settings.database_url).get_backend_name() == "postgresql":
        # The walls between communes rest on row-level security, which some roles bypass.
        app_engine = sa.create_engine(settings.database_url)
        try:
            with app_engine.connect() as conn:
                problem = check_app_role(conn)
        finally:
            app_engine.dispose()
        if problem:
            click.echo(
                f"refusé : {problem}. L'application (SAAS_DATABASE_URL) doit se connecter avec un "
                "rôle sans privilège, distinct du propriétaire du schéma (SAAS_DATABASE_OWNER_URL) : "
                "CREATE ROLE mutualis_app LOGIN NOSUPERUSER NOBYPASSRLS, puis relancez `saas init`.",
                err=True,
            )
            sys.exit(1)
    click.echo("schéma à jour")


# The two pools of `saas serve`. Behind the production reverse proxy, the upload endpoints
# (multipart deposits and tus PATCH, which stream large bodies for minutes) go to their own
# pool, so that slow uploads can only ever hold upload threads: pages, the API and /healthz
# keep theirs. Each pool reads SAAS_<POOL>_BIND, _WORKERS and _THREADS.
POOLS = {
    "web": {"bind": "127.0.0.1:8000", "workers": 2, "threads": 4},
    "uploads": {"bind": "127.0.0.1:8001", "workers": 1, "threads": 8},
}


@main.command("serve")
@click.option("--bind", default=None, help="adresse:port (par défaut 127.0.0.1:8000, 8001 pour les envois)")
@click.option("--workers", type=int, default=None, help="processus gunicorn")
@click.option("--threads", type=int, default=None, help="fils d'exécution par processus")
@click.option("--pool", type=click.Choice(sorted(POOLS)), default="web", show_default=True,
              help="« uploads » : le groupe de processus réservé aux envois de fichiers")
def serve_command(bind: str | None, workers: int | None, threads: int | None, pool: str) -> None:
    """Run the web server (gunicorn, threaded workers) on the configured instance."""
    defaults = POOLS[pool]
    prefix = f"SAAS_{pool.upper()}_"

    def env(key: str) -> str | None:
        # The web pool also reads SAAS_BIND, its name before there were two pools.
        legacy = os.environ.get(f"SAAS_{key}") if pool == "web" and key == "BIND" else None
        return os.environ.get(prefix + key) or legacy

    args = [
        sys.executable, "-m", "gunicorn", "saas:create_app()",
        "--config", "python:saas.gunicorn_conf",
        "--bind", bind or env("BIND") or defaults["bind"],
        "--workers", str(workers or int(env("WORKERS") or defaults["workers"])),
        # gthread: a connection waits in the worker's poller, without a thread, until its
        # request arrives; the body is then read under SAAS_HTTP_BODY_TIMEOUT (saas/bodies.py).
        "--worker-class", "gthread",
        "--threads", str(threads or int(env("THREADS") or defaults["threads"])),
        "--access-logfile", "-",
        "--forwarded-allow-ips", os.environ.get("SAAS_FORWARDED_ALLOW_IPS", "127.0.0.1"),
    ]
    os.execv(sys.executable, args)


def _register_groups() -> None:
    from saas.admin.cli import tenants_group
    from saas.audit.cli import audit_group
    from saas.auth.cli import keys_group, tokens_group, users_group
    from saas.demo import demo_group
    from saas.jobs.cli import jobs_group, scheduler_command, worker_command

    main.add_command(tenants_group)
    main.add_command(users_group)
    main.add_command(tokens_group)
    main.add_command(keys_group)
    main.add_command(audit_group)
    main.add_command(demo_group)
    main.add_command(worker_command)
    main.add_command(scheduler_command)
    main.add_command(jobs_group)


_register_groups()
