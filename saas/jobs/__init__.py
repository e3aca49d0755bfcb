"""Shared job queues: durable (the database is the truth), fair between communes, observable.

Feature code uses only this module's names:

    from saas.jobs import QueueNames, job_kind, progress, PermanentError, TransientError, once

See api.py for declaring and enqueueing, effects.py for exactly-once external calls,
scheduler.py for periodic work, dispatcher.py for fairness and crash recovery.
"""

from saas.jobs.api import (  # noqa: F401  (public API)
    JobCancelled,
    JobError,
    JobView,
    PermanentError,
    TransientError,
    current_job,
    enqueue,
    find_job,
    get_job,
    job_kind,
    progress,
    run_pending,
)
from saas.jobs.effects import once  # noqa: F401
from saas.jobs.registry import QueueNames  # noqa: F401
from saas.jobs.scheduler import periodic  # noqa: F401


def init_app(app) -> None:
    """Wire the job system into `app`: runtime, console pages, GET /api/v1/jobs/<id>."""
    from saas.api import add_operations
    from saas.jobs import api_routes, setup

    setup.init_app(app, app.config["SAAS_SETTINGS"])
    add_operations(app, api_routes.operations)
