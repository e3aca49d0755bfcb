"""Exactly-once side effects for jobs that call the outside world (préfecture, Treasury, mail).

    def transmit(acte_id):
        receipt = once(
            "tdt.send",
            call=lambda token: tdt.send(archive, idempotency_key=token),
            check=lambda token: tdt.find(idempotency_key=token),  # None: never received
        )

1. Before the call, the intent (effect name + a token) is committed on its own: whatever
   happens next, a later attempt knows a call may have gone out.
2. The call gets the token; use it as the remote's idempotency key, or as our own reference
   the remote stores (the acte's identifier), so the remote can be asked about it later.
3. After the call, its result is committed as done; later attempts return it without calling.
4. An attempt that finds an intent without a result (the worker died between the call and the
   record) first asks the remote with `check(token)`: a record found there is taken as the
   result; only "never received" (None) allows calling again. Without a `check`, the job fails
   with `effect_uncertain` for a person to decide: never send twice.

Intent and result are written as the job's commune (RLS), fenced on the job's lease: a worker
that lost its job never records anything, nor calls out after losing it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from saas.jobs.bookkeeping import side_transaction
from saas.jobs.errors import LeaseLost, PermanentError
from saas.jobs.execution import JobRun, current_job
from saas.jobs.models import ErrorCode, JobState, QueueEntry, payload_model
from saas.modelbase import utcnow

Q = QueueEntry.__table__
INTENT = "intent"
DONE = "done"


def _records(run: JobRun) -> dict:
    table = payload_model(run.tenant_id).__table__
    with side_transaction(run.engine, run.tenant_id) as conn:
        value = conn.execute(sa.select(table.c.effects).where(table.c.id == run.id)).scalar()
    return dict(value or {})


def _save(run: JobRun, name: str, record: dict) -> None:
    """Commit one effect record now, if this worker still owns the job."""
    table = payload_model(run.tenant_id).__table__
    with side_transaction(run.engine, run.tenant_id) as conn:
        owned = conn.execute(
            sa.update(Q).where(Q.c.id == run.id, Q.c.worker_id == run.worker_id,
                               Q.c.state == JobState.RUNNING.value)
            .values(updated_at=utcnow())
        )
        if owned.rowcount != 1:
            run.lost.set()
            raise LeaseLost()
        select = sa.select(table.c.effects).where(table.c.id == run.id)
        if conn.dialect.name == "postgresql":
            select = select.with_for_update()
        effects = dict(conn.execute(select).scalar() or {})
        effects[name] = record
        conn.execute(sa.update(table).where(table.c.id == run.id).values(effects=effects))


def _require_run() -> JobRun:
    run = current_job()
    if run is None:
        raise RuntimeError("once() records side effects of a running job; call it inside one")
    return run


def _uncertain_message(name: str) -> str:
    from flask_babel import gettext as _

    return _(
        "L'appel « %(name)s » a peut-être déjà été effectué, et son destinataire ne permet pas de "
        "le vérifier : la tâche est arrêtée pour qu'une personne vérifie avant de relancer.",
        name=name,
    )


def once(name: str, call: Callable[[str], Any], *,
         check: Callable[[str], Any] | None = None) -> Any:
    """Perform the external call `name` exactly once for this job; return its (JSON) result."""
    run = _require_run()
    record = _records(run).get(name)
    if record is not None and record.get("state") == DONE:
        return record.get("result")
    if record is not None and record.get("state") == INTENT:
        token = record["token"]
        if check is None:
            raise PermanentError(_uncertain_message(name), code=ErrorCode.EFFECT_UNCERTAIN.value)
        remote = check(token)
        if remote is not None:
            json.dumps(remote)
            _save(run, name, {"state": DONE, "token": token, "at": utcnow().isoformat(),
                              "result": remote, "recovered": True})
            return remote
    else:
        token = uuid.uuid4().hex
    if run.lost.is_set():
        raise LeaseLost()
    _save(run, name, {"state": INTENT, "token": token, "at": utcnow().isoformat(),
                      "attempt": run.attempt})
    result = call(token)
    json.dumps(result)
    _save(run, name, {"state": DONE, "token": token, "at": utcnow().isoformat(), "result": result})
    return result
