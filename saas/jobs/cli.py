"""`saas worker`, `saas scheduler` and `saas jobs …` (list, show, retry, cancel, reconcile)."""

from __future__ import annotations

import getpass
import json
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from saas.jobs.registry import KINDS, QUEUES, queue_names
from saas.jobs.shutdown import StopSignal


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


@click.command("worker", help="Exécuter les tâches de fond jusqu'à SIGTERM, en terminant celles en cours.")
@click.option("--jobs", "jobs", type=click.IntRange(1, 64), default=1, show_default=True, metavar="N",
              help="nombre de tâches menées en parallèle (processus, ou fils en mode embarqué)")
@click.option("--queue", "queues", multiple=True, type=click.Choice(queue_names()),
              help="file à servir (répétable) ; toutes par défaut")
@click.option("--burst", is_flag=True, help="traiter ce qui est dû puis s'arrêter")
@click.option("--no-scheduler", is_flag=True,
              help="ne pas participer à l'ordonnancement (tâches périodiques, réconciliation)")
@click.option("--fork", is_flag=True,
              help="un processus neuf par tâche (isolation mémoire ; plus lent)")
@click.option("--max-jobs", type=click.IntRange(1), default=500, show_default=True, metavar="N",
              help="sans --fork : tâches après lesquelles un processus de travail est remplacé")
@click.option("--list-kinds", is_flag=True,
              help="afficher les types de tâches que ce processus sait exécuter, puis s'arrêter")
@with_appcontext
def worker_command(jobs: int, queues: tuple[str, ...], burst: bool, no_scheduler: bool,
                   fork: bool, max_jobs: int, list_kinds: bool) -> None:
    """Run job workers until SIGTERM, finishing the jobs in hand."""
    if list_kinds:
        # A deployment check: a kind missing here fails with `unknown_kind` in this worker.
        for kind in sorted(KINDS.values(), key=lambda k: k.name):
            click.echo(f"{kind.name}\t{kind.queue}")
        return
    app = current_app._get_current_object()
    settings = app.config["SAAS_SETTINGS"]
    names = list(queues) or queue_names()
    if settings.embedded:
        sys.exit(_embedded_worker(app, jobs, names, burst, not no_scheduler))
    from saas.jobs.worker import Supervisor

    sys.exit(Supervisor(app, jobs, names, burst=burst, scheduler=not no_scheduler, fork=fork,
                        max_jobs=max_jobs).run())


def _embedded_worker(app, jobs: int, queues: list[str], burst: bool, scheduler: bool) -> int:
    from saas.jobs.execution import run_next
    from saas.jobs.worker import EmbeddedRunner

    if burst:
        count = 0
        while run_next(app, queues=queues, worker_label="cli"):
            count += 1
        click.echo(f"{count} tâche(s) exécutée(s)")
        return 0
    stop = StopSignal().install()
    runner = EmbeddedRunner(app, threads=jobs, scheduler=scheduler).start()
    click.echo(f"mode embarqué : {jobs} fil(s) d'exécution, Ctrl+C pour arrêter", err=True)
    stop.wait()
    runner.stop()
    return 0


@click.command("scheduler", help="N'exécuter que l'ordonnanceur (tâches périodiques, répartition, réconciliation) jusqu'à SIGTERM.")
@with_appcontext
def scheduler_command() -> None:
    """Run only the scheduler (periodic jobs, dispatch, reconciliation) until SIGTERM."""
    from saas.jobs.scheduler import run_scheduler

    app = current_app._get_current_object()
    run_scheduler(app, StopSignal().install())


jobs_group = click.Group("jobs", help="Tâches de fond : consulter, relancer, annuler.")


def _tenant_filter(slug: str | None):
    from saas.extensions import db
    from saas.tenancy.models import Tenant

    if slug is None:
        return "any"
    if slug == "platform":
        return None
    tenant = db.session.execute(db.select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    if tenant is None:
        raise click.ClickException(f"commune inconnue : {slug}")
    return tenant.id


def _row(view, names) -> dict:
    return {
        "id": str(view.id), "kind": view.kind, "queue": view.queue,
        "tenant": names[view.tenant_id].slug if view.tenant_id in names else None,
        "state": view.state, "progress": view.progress, "attempts": view.attempts,
        "max_attempts": view.max_attempts, "error_code": view.error_code, "error": view.error,
        "created_at": view.created_at.isoformat(),
        "finished_at": view.finished_at.isoformat() if view.finished_at else None,
    }


@jobs_group.command("list", help="Lister les tâches de toutes les collectivités, les plus récentes d'abord.")
@click.option("--state", "states", multiple=True,
              type=click.Choice(["queued", "running", "succeeded", "failed", "dead"]),
              help="état des tâches à montrer (répétable) ; tous par défaut")
@click.option("--queue", type=click.Choice(list(QUEUES)), help="ne montrer que cette file")
@click.option("--tenant", "slug", metavar="SLUG", help="slug d'une commune, ou « platform »")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, metavar="N",
              help="nombre maximal de tâches affichées")
@click.option("--json", "as_json", is_flag=True, help="sortie JSON pour les scripts")
@with_appcontext
def list_command(states, queue, slug, limit, as_json) -> None:
    """List jobs across communes, newest first."""
    from saas.jobs import services

    views = services.list_jobs(states=list(states) or None, queue=queue,
                               tenant_id=_tenant_filter(slug), limit=limit)
    names = services.tenant_names()
    rows = [_row(v, names) for v in views]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        error = f"  {r['error_code']}: {(r['error'] or '')[:80]}" if r["error_code"] else ""
        click.echo(f"{r['id']}  {r['state']:<9} {r['queue']:<13} {r['tenant'] or 'plateforme':<20} "
                   f"{r['kind']}  {r['attempts']}/{r['max_attempts']}{error}")
    if not rows:
        click.echo("aucune tâche")


@jobs_group.command("show", help="Afficher une tâche, paramètres compris (JSON).")
@click.argument("job_id", metavar="TÂCHE")
@with_appcontext
def show_command(job_id: str) -> None:
    """Show one job, payload included (JSON)."""
    from saas.jobs import services
    from saas.jobs.records import get_job_any_tenant

    view = get_job_any_tenant(job_id)
    if view is None:
        raise click.ClickException(f"tâche introuvable : {job_id}")
    row = _row(view, services.tenant_names())
    row.update(args=view.args, result=view.result, progress_message=view.progress_message,
               idempotency_key=view.idempotency_key, effects=view.effects)
    click.echo(json.dumps(row, ensure_ascii=False, indent=2, default=str))


@jobs_group.command("retry", help="Relancer une tâche en échec ou abandonnée (journalisé).")
@click.argument("job_id", metavar="TÂCHE")
@with_appcontext
def retry_command(job_id: str) -> None:
    """Re-run a failed or dead job (audited)."""
    from saas.jobs import services

    try:
        view = services.retry_job(job_id, actor=_cli_actor())
    except LookupError:
        raise click.ClickException(f"tâche introuvable : {job_id}") from None
    except services.JobActionError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{view.id} remise en file ({view.queue})")


@jobs_group.command("cancel", help="Annuler une tâche en file, ou demander l'arrêt d'une tâche en cours (journalisé).")
@click.argument("job_id", metavar="TÂCHE")
@with_appcontext
def cancel_command(job_id: str) -> None:
    """Cancel a queued job, or ask a running one to stop (audited)."""
    from saas.jobs import services

    try:
        view = services.cancel_job(job_id, actor=_cli_actor())
    except LookupError:
        raise click.ClickException(f"tâche introuvable : {job_id}") from None
    except services.JobActionError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{view.id} : {'annulation demandée' if view.state == 'running' else 'annulée'}")


@jobs_group.command("reconcile", help="Lancer une passe de réconciliation maintenant (processus perdus, Redis vidé) et afficher ce qu'elle a fait.")
@with_appcontext
def reconcile_command() -> None:
    """Run one reconciliation pass now (lost workers, Redis flushed) and print what it did."""
    from saas.jobs.dispatcher import reconcile

    report = reconcile()
    click.echo(json.dumps(report.as_dict()))


@jobs_group.command("queues", help="Afficher le registre des files (le déploiement lance des processus pour exactement celles-ci).")
def queues_command() -> None:
    """Print the queue registry (the deployment starts workers for exactly these)."""
    for spec in QUEUES.values():
        click.echo(f"{spec.name}\t{spec.description}")
