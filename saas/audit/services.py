"""Write and verify the audit chains."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from flask import has_request_context, request
from flask_login import current_user

from saas.audit.models import AuditEvent, PlatformAuditEvent
from saas.extensions import db
from saas.modelbase import utcnow
from saas.tenancy.context import current_tenant_id

GENESIS = "0" * 64


def _digest(entry, tenant_id: uuid.UUID | None) -> str:
    payload = {
        "tenant": str(tenant_id) if tenant_id else None,
        "seq": entry.seq,
        "at": entry.created_at.isoformat(timespec="microseconds"),
        "actor_id": str(entry.actor_id) if entry.actor_id else None,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "ip": entry.ip,
        "data": entry.data,
        "prev": entry.prev_hash,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _lock_chain(key: str) -> None:
    bind = db.session.get_bind()
    if bind.dialect.name == "postgresql":
        db.session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})


def _request_actor() -> tuple[uuid.UUID | None, str, str | None]:
    if not has_request_context():
        return None, "system", None
    ip = request.remote_addr
    user = getattr(request, "api_user", None) or (
        current_user if getattr(current_user, "is_authenticated", False) else None
    )
    if user is not None:
        return user.id, user.email, ip
    return None, "anonymous", ip


def record(action: str, target: str | None = None, data: dict | None = None, *,
           actor=None, platform: bool = False, ip: str | None = None) -> None:
    """Append an entry to the current tenant's chain (or the platform's) in the open transaction.

    `actor` is a User or a label ("cli:root"); by default, the request's user. `ip`: the client
    address, when a job records what a request asked for (by default, the request's).
    """
    tenant_id = None if platform else current_tenant_id()
    model = AuditEvent if tenant_id else PlatformAuditEvent
    actor_id, actor_label, request_ip = _request_actor()
    ip = ip or request_ip
    if actor is not None:
        if isinstance(actor, str):
            actor_id, actor_label = None, actor
        else:
            actor_id, actor_label = actor.id, actor.email
    _lock_chain(f"audit:{tenant_id or 'platform'}")
    last = db.session.execute(
        sa.select(model.seq, model.hash).order_by(model.seq.desc()).limit(1)
    ).first()
    entry = model(
        id=uuid.uuid4(),
        seq=(last.seq + 1) if last else 1,
        created_at=utcnow(),
        actor_id=actor_id,
        actor=actor_label[:254],
        action=action,
        target=target,
        ip=ip,
        data=data or {},
        prev_hash=last.hash if last else GENESIS,
    )
    if tenant_id:
        entry.tenant_id = tenant_id
    entry.hash = _digest(entry, tenant_id)
    db.session.add(entry)
    db.session.flush()


@dataclass
class ChainReport:
    chain: str
    entries: int
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors


def verify_chain(tenant_id: uuid.UUID | None, label: str) -> ChainReport:
    """Walk one chain (the current tenant's, or the platform's when tenant_id is None)."""
    model = AuditEvent if tenant_id else PlatformAuditEvent
    errors: list[str] = []
    prev, expected_seq, count = GENESIS, 1, 0
    rows = db.session.execute(sa.select(model).order_by(model.seq)).scalars()
    for entry in rows:
        count += 1
        if entry.seq != expected_seq:
            errors.append(f"{label}: entrée manquante avant le n°{entry.seq} (attendu {expected_seq})")
        if entry.prev_hash != prev:
            errors.append(f"{label}: n°{entry.seq} ne suit pas l'entrée précédente")
        if _digest(entry, tenant_id) != entry.hash:
            errors.append(f"{label}: n°{entry.seq} a été modifiée (empreinte invalide)")
        prev, expected_seq = entry.hash, entry.seq + 1
    return ChainReport(label, count, errors)
