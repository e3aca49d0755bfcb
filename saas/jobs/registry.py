"""The queue names and the job kinds: what may run, where, for how long, how often retried.

Queues are a closed list (GOV.UK Notify's `QueueNames`): the deployment starts workers for
exactly these (tests/jobs/test_registry.py compares them with the Ansible worker units).
Job kinds are declared by feature code with `saas.jobs.job_kind` in its `tasks` module, which
the feature's `init_app` imports (saas/features.py); the web process and the workers build the
same application, so they know the same kinds.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar


@dataclass(frozen=True)
class QueueSpec:
    name: str
    description: str
    # How many jobs may wait in Redis for a worker of this queue; the rest stays in the database
    # until a worker frees up, so a commune's backlog never stands in front of another's job.
    # Workers refill Redis once half of it was taken (see execution.run_claimed).
    prefetch: int = 4
    # At most this many jobs of one tenant in flight (waiting in Redis or running) at once;
    # None: limited only by the workers (the fair dispatch still serves every tenant in turn).
    per_tenant_limit: int | None = None


class QueueNames:
    """Every queue the platform uses; workers listen to these names only."""

    DEFAULT = "default"
    DOCUMENTS = "documents"
    SIGNATURES = "signatures"
    TRANSMISSIONS = "transmissions"
    MAIL = "mail"
    MAINTENANCE = "maintenance"


QUEUES: dict[str, QueueSpec] = {
    spec.name: spec
    for spec in (
        QueueSpec(QueueNames.DEFAULT, "Travaux courts sans file dédiée"),
        # One commune's documents never hold every worker of this queue: with two workers or
        # more, another commune's extraction always finds one free (each job is bounded by
        # the GED's extraction budget, and a hostile document is not retried).
        QueueSpec(QueueNames.DOCUMENTS, "Extraction de texte, conversions, empreintes",
                  per_tenant_limit=1),
        QueueSpec(QueueNames.SIGNATURES, "Signatures électroniques et cachets"),
        # The préfecture and the Treasury accept few parallel connections per collectivity.
        QueueSpec(QueueNames.TRANSMISSIONS, "Télétransmissions @ctes et Hélios, accusés de réception",
                  per_tenant_limit=2),
        QueueSpec(QueueNames.MAIL, "Envoi de courriels et convocations"),
        QueueSpec(QueueNames.MAINTENANCE, "Sauvegardes, purges, rétention (plateforme)", prefetch=1),
    )
}


def queue_names() -> list[str]:
    """The registry's queue names, in declaration order."""
    return list(QUEUES)


@dataclass(frozen=True)
class JobKind:
    """A declared kind of job: its function and how the platform runs it."""

    name: str
    func: Callable
    queue: str
    timeout: int  # seconds a single attempt may take
    max_attempts: int
    backoff: float  # seconds before the 2nd attempt; doubled after each failure
    max_backoff: float
    platform: bool  # True: runs outside any commune (backups, purges); False: within one

    def __call__(self, *args, **kwargs):
        """Call the function directly, as plain Python (tests, benchmarks)."""
        return self.func(*args, **kwargs)

    def backoff_for(self, attempt: int) -> float:
        """Seconds to wait after the failed `attempt` (1-based) before the next one."""
        return min(self.max_backoff, self.backoff * (2 ** max(0, attempt - 1)))


KINDS: dict[str, JobKind] = {}
K = TypeVar("K", bound=JobKind)


def register(kind: K) -> K:
    """Add a kind; declaring the same name twice for another function is a programming error."""
    if kind.queue not in QUEUES:
        raise ValueError(f"job kind {kind.name}: unknown queue {kind.queue!r} (see QueueNames)")
    existing = KINDS.get(kind.name)
    if existing is not None and existing.func is not kind.func:
        same = (existing.func.__module__, existing.func.__qualname__) == (
            kind.func.__module__, kind.func.__qualname__)
        if not same:
            raise ValueError(f"job kind {kind.name} declared twice")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> JobKind | None:
    return KINDS.get(name)


def resolve_kind(kind: JobKind | str) -> JobKind:
    """Return `kind` itself, or the declared kind of that name (LookupError if there is none)."""
    if isinstance(kind, JobKind):
        return kind
    found = get_kind(kind)
    if found is None:
        raise LookupError(f"unknown job kind {kind!r}")
    return found


def import_extra_modules(names: Iterable[str]) -> None:
    """Import modules declaring kinds outside the features (settings.jobs.extra_modules)."""
    for name in names:
        importlib.import_module(name)
