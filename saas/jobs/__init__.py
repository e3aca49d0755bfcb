"""Shared job queues: durable (the database is the truth), fair between communes, observable.

Feature code uses only this module's names:

    from saas.jobs import QueueNames, job_kind, enqueue, progress, PermanentError, TransientError, once

kinds.py declares kinds, queueing.py enqueues, records.py reads jobs back, effects.py makes
external calls exactly once, scheduler.py runs periodic work, dispatcher.py keeps fairness and
recovers from crashes, execution.py runs one job, worker.py the processes that run them.
api.py (the /api/v1 operations) and views.py (pages) are the only HTTP modules.
"""

from saas.jobs.effects import once  # noqa: F401  (public API)
from saas.jobs.errors import JobCancelled, JobError, PermanentError, TransientError  # noqa: F401
from saas.jobs.execution import current_job, progress, run_pending  # noqa: F401
from saas.jobs.kinds import job_kind  # noqa: F401
from saas.jobs.queueing import enqueue  # noqa: F401
from saas.jobs.records import JobView, find_job, get_job  # noqa: F401
from saas.jobs.registry import QueueNames  # noqa: F401
from saas.jobs.scheduler import periodic  # noqa: F401


def init_app(app) -> None:
    """Wire the job system into `app`: kinds, runtime, pages, GET /api/v1/jobs/<id>."""
    from saas.api import add_operations
    from saas.jobs import api, models, runtime, tasks, views  # noqa: F401  (models: tables; tasks: job kinds)
    from saas.jobs.registry import import_extra_modules

    settings = app.config["SAAS_SETTINGS"]
    import_extra_modules(settings.jobs.extra_modules)
    runtime.init_app(app, settings)
    app.register_blueprint(views.bp)
    app.register_blueprint(views.console)
    add_operations(app, api.operations)
