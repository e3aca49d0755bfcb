"""A commune's view of its own jobs: the progress page later features link to.

Feature pages that start long work can either redirect to `url_for("jobs.status", job_id=…)`
or include the fragment themselves:

    {% from "jobs/_progress.html" import job_progress %}
    {{ job_progress(job, _("Extraction du texte")) }}

with `job = saas.jobs.get_job(job_id)`. The page refreshes itself while the job is active
(HTTP `Refresh`, no JavaScript), and people can turn that off (WCAG 2.2.1).
"""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, make_response, render_template, request
from flask_login import login_required

from saas.hostguards import tenant_host
from saas.jobs.api import get_job

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
