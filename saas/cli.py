"""The `saas` console script: the operator's commands (see API.md)."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from saas import create_app

# Click's own messages (usage line, headings, the --help option, errors), in French like the
# rest of the product. Click looks each one up through gettext at the moment it prints it; the
# `saas` command answers those look-ups from this table (unknown messages stay as they are).
CLICK_FRENCH = {
    "Usage:": "Utilisation :",
    "Options": "Options",
    "Commands": "Commandes",
    "Positional arguments": "Arguments",
    "Show this message and exit.": "Afficher cette aide et quitter.",
    "Show the version and exit.": "Afficher la version et quitter.",
    "default: {default}": "par défaut : {default}",
    "required": "obligatoire",
    "env var: {var}": "variable d'environnement : {var}",
    "deprecated": "obsolète",
    "(dynamic)": "(dynamique)",
    "Error: {message}": "Erreur : {message}",
    "Try '{command} {option}' for help.": "« {command} {option} » pour l'aide.",
    "Aborted!": "Interrompu.",
    "Missing command.": "Commande manquante.",
    "No such command {name!r}.": "Commande inconnue : {name!r}.",
    "No such option {name!r}.": "Option inconnue : {name!r}.",
    "Option {name!r} does not take a value.": "L'option {name!r} ne prend pas de valeur.",
    "Missing argument": "Argument manquant",
    "Missing option": "Option manquante",
    "Missing parameter": "Paramètre manquant",
    "Missing parameter: {param_name}": "Paramètre manquant : {param_name}",
    "Missing {param_type}": "{param_type} manquant",
    "Invalid value: {message}": "Valeur invalide : {message}",
    "Invalid value for {param_hint}: {message}": "Valeur invalide pour {param_hint} : {message}",
    "{value!r} is not a valid {number_type}.": "{value!r} n'est pas un {number_type} valide.",
    "{value} is not in the range {range}.": "{value} n'est pas dans l'intervalle {range}.",
    "{value!r} is not a valid UUID.": "{value!r} n'est pas un UUID valide.",
    "{name} {filename!r} does not exist.": "{name} {filename!r} n'existe pas.",
    "{name} {filename!r} is a file.": "{name} {filename!r} est un fichier.",
    "{name} {filename!r} is a directory.": "{name} {filename!r} est un dossier.",
    "{name} {filename!r} is not readable.": "{name} {filename!r} n'est pas lisible.",
    "{name} {filename!r} is not writable.": "{name} {filename!r} n'est pas modifiable.",
    "directory": "dossier",
    "file": "fichier",
    "path": "chemin",
    "Do you want to continue?": "Continuer ?",
    "Confirm the action without prompting.": "Confirmer sans poser la question.",
    "Got unexpected extra argument ({args})": "Argument en trop : ({args})",
    "Got unexpected extra arguments ({args})": "Arguments en trop : ({args})",
    "Option {name!r} requires an argument.": "L'option {name!r} attend une valeur.",
    "Option {name!r} requires {nargs} arguments.": "L'option {name!r} attend {nargs} valeurs.",
    "{value!r} is not {choice}.": "{value!r} n'est pas {choice}.",
    "{value!r} is not one of {choices}.": "{value!r} n'est pas l'une des valeurs {choices}.",
    "Did you mean {possibility}?": "Vouliez-vous dire {possibility} ?",
    "(Did you mean one of: {possibilities}?)": "(Vouliez-vous dire l'une de : {possibilities} ?)",
}
# Placeholders of the usage line and metavars that are English words.
COMMAND_METAVAR = "COMMANDE [ARGS]..."


def _french(message: str) -> str:
    return CLICK_FRENCH.get(message, message)


def _french_plural(singular: str, plural: str, n: int) -> str:
    return _french(singular if n == 1 else plural)


def _speak_french() -> None:
    import importlib

    for name in ("core", "decorators", "exceptions", "formatting", "parser", "termui", "types", "utils"):
        module = importlib.import_module(f"click.{name}")
        if hasattr(module, "_"):
            module._ = _french
        if hasattr(module, "ngettext"):
            module.ngettext = _french_plural
    # Type names: the default metavar (TEXT, INTEGER) and « 'x' is not a valid integer ».
    from click import types

    for cls, name in ((types.StringParamType, "texte"), (types.IntParamType, "entier"),
                      (types.IntRange, "entier"), (types.FloatParamType, "nombre"),
                      (types.FloatRange, "nombre"), (types.BoolParamType, "booléen")):
        cls.name = name


_speak_french()

# Flask's options of the group, with French help (copies: Flask's own objects stay untouched).
_FLASK_OPTION_HELP = {
    "env_file": "Charger les variables d'environnement de ce fichier (python-dotenv requis).",
    "app": "Application à charger (module:nom) ; par défaut celle de Mutualis.",
    "debug": "Mode débogage.",
}


class SaasGroup(FlaskGroup):
    """FlaskGroup limited to the platform's own commands, with French help.

    Extensions' commands (Flask-Migrate's `db`, Flask-Limiter's `limiter`) are not offered:
    their help is English and `saas init` is how the schema changes."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("subcommand_metavar", COMMAND_METAVAR)
        super().__init__(*args, **kwargs)
        params = []
        for param in self.params:
            if param.name in _FLASK_OPTION_HELP:
                param = copy.copy(param)
                param.help = _FLASK_OPTION_HELP[param.name]
                if param.metavar is None or param.metavar in ("IMPORT", "FILE"):
                    param.metavar = {"app": "MODULE", "env_file": "FICHIER"}.get(param.name)
            params.append(param)
        self.params = params

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return click.Group.get_command(self, ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return click.Group.list_commands(self, ctx)


def _create_app():
    return create_app()


@click.group(cls=SaasGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False,
             help="Mutualis : exploitation de la plateforme mutualisée de l'intercommunalité.")
def main() -> None:
    """Mutualis: operate the intercommunality's platform."""


@main.command("init", help="Créer ou mettre à jour le schéma de la base, puis donner au rôle de "
                           "l'application ses droits.")
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


@main.command("serve", help="Lancer le serveur web (gunicorn, processus à fils d'exécution) sur "
                            "l'instance configurée.")
@click.option("--bind", default=None, metavar="ADRESSE:PORT", help="adresse:port (par défaut 127.0.0.1:8000, 8001 pour les envois)")
@click.option("--workers", type=int, default=None, metavar="N", help="processus gunicorn")
@click.option("--threads", type=int, default=None, metavar="N", help="fils d'exécution par processus")
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
    for command in main.commands.values():
        if isinstance(command, click.Group):
            command.subcommand_metavar = COMMAND_METAVAR


_register_groups()
