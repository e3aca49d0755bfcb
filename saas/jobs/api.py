"""`GET /api/v1/jobs/{id}`: a commune's job, as API.md describes it."""

from __future__ import annotations

import uuid

from flask_babel import gettext as _

from saas.api.helpers import iso, not_found
from saas.api.registry import Operations
from saas.jobs.records import JobView, get_job

operations = Operations()

JOB = operations.schema("Job", {
    "type": "object",
    "required": ["id", "kind", "state", "progress", "error", "result"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "kind": {"type": "string", "description": "Type de tâche, par exemple actes.transmit."},
        "state": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "dead"]},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "progress_message": {"type": ["string", "null"]},
        "error": {
            "type": ["object", "null"],
            "description": "Dernière erreur : code stable et message en français.",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
        "result": {"description": "Résultat de la tâche terminée (JSON), sinon null."},
        "attempts": {"type": "integer", "minimum": 0},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
    },
})


@operations.operation("GET", "/jobs/<uuid:job_id>", summary="État d'une tâche de fond", tags=("tâches",),
               response=JOB,
               description="Tâches longues lancées par l'API (télétransmission, extraction…). "
                           "`failed` : échec définitif ; `dead` : essais épuisés.")
def get_job_status(job_id: uuid.UUID):
    job = get_job(job_id)
    if job is None or job.tenant_id is None:
        raise not_found(_("Tâche introuvable."))
    return job_body(job)


def job_body(job: JobView) -> dict:
    """Serialize `job` as the `Job` schema above (API.md), with a few documented extras."""
    return {
        "id": str(job.id),
        "kind": job.kind,
        "state": job.state,
        "progress": job.progress,
        "progress_message": job.progress_message,
        "error": ({"code": job.error_code or "exception", "message": job.error or ""}
                  if job.error_code or job.error else None),
        "result": job.result,
        "attempts": job.attempts,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
    }
