"""Timing knobs of the job system: app config `JOBS_*`, else env `SAAS_JOBS_*`, else defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass

from flask import current_app, has_app_context

_DEFAULTS = {
    # A running job's lease; the worker renews it every lease/4 seconds. A worker that dies
    # stops renewing, and its job is taken back at most `lease + reconcile` seconds later.
    "LEASE_SECONDS": 60.0,
    # How often the reconciler compares the database with Redis and takes back lost jobs.
    "RECONCILE_SECONDS": 15.0,
    # A job pushed to Redis this long ago that Redis no longer has (flush, restart) is re-pushed.
    "DISPATCH_GRACE_SECONDS": 20.0,
    # The scheduler's safety-net dispatch pass (enqueue and claims dispatch at once anyway).
    "DISPATCH_SECONDS": 1.0,
    # Scheduler ticks: periodic tasks are checked this often.
    "TICK_SECONDS": 0.5,
}


@dataclass(frozen=True)
class Tuning:
    lease: float
    reconcile: float
    dispatch_grace: float
    dispatch: float
    tick: float

    @property
    def heartbeat(self) -> float:
        return max(0.2, self.lease / 4)


def _value(name: str) -> float:
    if has_app_context():
        configured = current_app.config.get(f"JOBS_{name}")
        if configured not in (None, ""):
            return float(configured)
    raw = os.environ.get(f"SAAS_JOBS_{name}")
    if raw not in (None, ""):
        return float(raw)
    return float(_DEFAULTS[name])


def tuning() -> Tuning:
    """The knobs in force for the current application (or process)."""
    return Tuning(
        lease=_value("LEASE_SECONDS"),
        reconcile=_value("RECONCILE_SECONDS"),
        dispatch_grace=_value("DISPATCH_GRACE_SECONDS"),
        dispatch=_value("DISPATCH_SECONDS"),
        tick=_value("TICK_SECONDS"),
    )
