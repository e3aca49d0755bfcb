"""Declaring kinds of jobs, in a feature's `tasks` module:

    @job_kind("ged.extract_text", queue=QueueNames.DOCUMENTS, timeout=600)
    def extract_text(document_id: str) -> dict:
        progress(10, _("Lecture du fichier"))
        ...
        return {"pages": 12}

    job = extract_text.enqueue(document_id=str(doc.id), key=f"extract:{doc.id}")

A commune's job runs with that commune's tenant context (ORM scoping and RLS) for its whole
run; a `platform=True` kind runs outside any commune. The job's own database writes commit
together with its "succeeded" state, so a retried job never half-applies them.
"""

from __future__ import annotations

from collections.abc import Callable

from saas.jobs.queueing import enqueue
from saas.jobs.records import JobView
from saas.jobs.registry import JobKind, QueueNames, register


class DeclaredKind(JobKind):
    """What `job_kind` returns: the kind, callable as plain Python and enqueued by `.enqueue()`."""

    def enqueue(self, *, key: str | None = None, delay: float = 0, **args) -> JobView:
        """Enqueue a job of this kind in the open transaction (see saas.jobs.enqueue)."""
        return enqueue(self, key=key, delay=delay, **args)


def job_kind(name: str, *, queue: str = QueueNames.DEFAULT, timeout: int = 300,
             max_attempts: int = 5, backoff: float = 10.0, max_backoff: float = 3600.0,
             platform: bool = False) -> Callable[[Callable], DeclaredKind]:
    """Declare a kind of job: its queue, the time one attempt may take, its retry policy.

    Failed attempts are retried after `backoff`, 2×, 4×… seconds (at most `max_backoff`) until
    `max_attempts` attempts were made; the job is then `dead` until an administrator re-runs it.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")

    def decorator(func: Callable) -> DeclaredKind:
        return register(DeclaredKind(name=name, func=func, queue=queue, timeout=int(timeout),
                                     max_attempts=int(max_attempts), backoff=float(backoff),
                                     max_backoff=float(max_backoff), platform=platform))

    return decorator
