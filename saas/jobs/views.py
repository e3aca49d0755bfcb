"""The job pages: a commune's progress page, and the intercommunal console's job pages.

Feature pages that start long work can either redirect to `url_for("jobs.status", job_id=…)`
or include the fragment themselves:

    {% from "jobs/_progress.html" import job_progress %}
    {{ job_progress(job, _("Extraction du texte")) }}

with `job = saas.jobs.get_job(job_id)`. The page refreshes itself while the job is active
(HTTP `Refresh`, no JavaScript), and people can turn that off (WCAG 2.2.1).

The console (`jobs_console`) shows queues, per-commune backlog and failures; it retries and
cancels jobs.
"""

from __future__ import annotations

import uuid

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import login_required

from saas.hostguards import console_admin_required, tenant_host
from saas.jobs import services
from saas.jobs.models import JobState
from saas.jobs.records import STATE_LABELS, get_job, get_job_any_tenant
from saas.jobs.registry import QUEUES

bp = Blueprint("jobs", __name__, url_prefix="/taches")

REFRESH_SECONDS = 3


@bp.get("/<uuid:job_id>")
@tenant_host
@login_required
def status(job_id: uuid.UUID):
    job = get_job(job_id)
    if job is None or job.tenant_id is None:
        abort(404)
    auto = request.args.get("auto", "1") != "0" and not job.is_final
    response = make_response(render_template("jobs/status.html", job=job, auto=auto,
                                             refresh_seconds=REFRESH_SECONDS))
    if auto:
        response.headers["Refresh"] = str(REFRESH_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response


# -- the console -------------------------------------------------------------------------------

console = Blueprint("jobs_console", __name__, url_prefix="/console/jobs")

DEFAULT_STATES = [JobState.RUNNING.value, JobState.FAILED.value, JobState.DEAD.value]


def _filters() -> dict:
    states = [s for s in request.args.getlist("state") if s in {x.value for x in JobState}]
    queue = request.args.get("queue") or None
    if queue not in QUEUES:
        queue = None
    tenant_arg = request.args.get("tenant") or ""
    tenant: uuid.UUID | None | str = "any"
    if tenant_arg == "platform":
        tenant = None
    elif tenant_arg:
        try:
            tenant = uuid.UUID(tenant_arg)
        except ValueError:
            tenant = "any"
    return {"states": states or DEFAULT_STATES, "queue": queue, "tenant": tenant,
            "tenant_arg": tenant_arg, "explicit_states": bool(states)}


@console.get("/")
@console_admin_required
def overview():
    filters = _filters()
    jobs = services.list_jobs(states=filters["states"], queue=filters["queue"],
                              tenant_id=filters["tenant"], limit=100)
    settings = current_app.config["SAAS_SETTINGS"]
    return render_template(
        "jobs/console.html",
        summaries=services.queue_summaries(),
        backlog=services.tenant_backlog(),
        jobs=jobs,
        tenants=services.tenant_names(),
        filters=filters,
        state_labels=STATE_LABELS,
        queues=QUEUES,
        redis=services.redis_overview(settings.redis_url),
        embedded=settings.embedded,
    )


@console.get("/<uuid:job_id>")
@console_admin_required
def detail(job_id: uuid.UUID):
    job = get_job_any_tenant(job_id)
    if job is None:
        abort(404)
    return render_template("jobs/console_job.html", job=job, tenants=services.tenant_names(),
                           state_labels=STATE_LABELS)


def _back(job_id: uuid.UUID):
    target = request.form.get("next") or ""
    # Only back to a page of this section: never an open redirect.
    if not target.startswith("/console/jobs"):
        target = url_for(".detail", job_id=job_id)
    return redirect(target, code=303)


@console.post("/<uuid:job_id>/retry")
@console_admin_required
def retry(job_id: uuid.UUID):
    try:
        services.retry_job(job_id)
    except LookupError:
        abort(404)
    except services.JobActionError as exc:
        flash(str(exc), "error")
    else:
        flash(_("La tâche a été remise en file d'attente."), "success")
    return _back(job_id)


@console.post("/<uuid:job_id>/cancel")
@console_admin_required
def cancel(job_id: uuid.UUID):
    try:
        job = services.cancel_job(job_id)
    except LookupError:
        abort(404)
    except services.JobActionError as exc:
        flash(str(exc), "error")
    else:
        if job.state == JobState.RUNNING:
            flash(_("Annulation demandée : la tâche s'arrêtera à sa prochaine étape."), "success")
        else:
            flash(_("La tâche a été annulée."), "success")
    return _back(job_id)
