"""Write and verify the audit chains."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from flask import has_request_context, request
from flask_login import current_user

from saas.audit.models import AuditEvent, PlatformAuditEvent
from saas.config import current_settings
from saas.extensions import db
from saas.modelbase import utcnow
from saas.tenancy.context import current_tenant_id

GENESIS = "0" * 64
# Brackets: no tenant slug can take this label.
PLATFORM_CHAIN = "[plateforme]"


def _payload(entry, tenant_id: uuid.UUID | None) -> bytes:
    """The entry's canonical content: every column but the MAC itself, as sorted JSON."""
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
    if entry.key_id is not None:
        payload["key"] = entry.key_id
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _legacy_digest(entry, tenant_id: uuid.UUID | None) -> str:
    """The unkeyed SHA-256 of the entries written before the chains were keyed (migration 0006)."""
    return hashlib.sha256(_payload(entry, tenant_id)).hexdigest()


def _mac(entry, tenant_id: uuid.UUID | None, key: str) -> str:
    """HMAC-SHA256 under the audit key over the previous entry's MAC and the entry's content."""
    message = entry.prev_hash.encode() + b"\n" + _payload(entry, tenant_id)
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _audit_settings():
    audit = current_settings().audit
    if audit is None:
        raise RuntimeError("Settings.audit is missing: build settings with load_settings()")
    return audit


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
    audit = _audit_settings()
    # The lock serialises appends to one chain: seq and prev_hash are read under it.
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
        key_id=audit.key_id,
    )
    if tenant_id:
        entry.tenant_id = tenant_id
    entry.hash = _mac(entry, tenant_id, audit.key)
    db.session.add(entry)
    db.session.flush()


@dataclass(frozen=True)
class ChainHead:
    """The last entry of a chain, as an anchor records it."""

    seq: int
    mac: str
    key_id: str | None
    at: datetime
    # The first entry signed with a key (None: the chain has no keyed entry yet).
    keyed_from: int | None


def chain_head(tenant_id: uuid.UUID | None) -> ChainHead | None:
    """The current tenant's (or the platform's) chain head, or None for an empty chain."""
    model = AuditEvent if tenant_id else PlatformAuditEvent
    last = db.session.execute(
        sa.select(model.seq, model.hash, model.key_id, model.created_at).order_by(model.seq.desc()).limit(1)
    ).first()
    if last is None:
        return None
    keyed_from = db.session.execute(
        sa.select(sa.func.min(model.seq)).where(model.key_id.is_not(None))
    ).scalar()
    return ChainHead(seq=last.seq, mac=last.hash, key_id=last.key_id, at=last.created_at,
                     keyed_from=keyed_from)


@dataclass(frozen=True)
class AnchoredHead:
    """A head written outside the database at some time: it must still be in the chain."""

    seq: int
    mac: str
    anchored_at: datetime
    keyed_from: int | None = None


@dataclass
class ChainReport:
    chain: str
    entries: int
    errors: list[str]
    # Entries 1..legacy_until carry unkeyed SHA-256 hashes (written before keyed chains).
    legacy_until: int | None = None
    keyed_from: int | None = None
    key_ids: list[str] = field(default_factory=list)
    anchors: int = 0
    last_anchor: AnchoredHead | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def verify_chain(tenant_id: uuid.UUID | None, label: str,
                 anchors: list[AnchoredHead] | None = None) -> ChainReport:
    """Walk one chain (the current tenant's, or the platform's when tenant_id is None).

    Each entry must follow its predecessor and carry a valid MAC under the key it names (or,
    before the first keyed entry, a valid legacy hash). Each anchored head must still be in
    the chain with the same MAC: a missing one means entries were removed (truncation), a
    different one that the chain was rewritten. Reads stream; memory is the anchors'.
    """
    model = AuditEvent if tenant_id else PlatformAuditEvent
    keys = _audit_settings().keys()
    report = ChainReport(label, 0, [])
    errors = report.errors
    anchors = sorted(anchors or [], key=lambda a: (a.seq, a.anchored_at))
    report.anchors = len(anchors)
    report.last_anchor = max(anchors, key=lambda a: a.anchored_at, default=None)
    # The transition an anchor saw: from then on, every entry of the chain was keyed.
    anchored_keyed_from = min((a.keyed_from for a in anchors if a.keyed_from is not None), default=None)
    pending = iter(anchors)
    anchor = next(pending, None)
    prev, expected_seq, last_seq = GENESIS, 1, 0
    unknown_keys: set[str] = set()
    rows = db.session.execute(sa.select(model).order_by(model.seq)).scalars()
    for entry in rows:
        report.entries += 1
        if entry.seq != expected_seq:
            errors.append(f"{label}: entrée manquante avant le n°{entry.seq} (attendu {expected_seq})")
        if entry.prev_hash != prev:
            errors.append(f"{label}: n°{entry.seq} ne suit pas l'entrée précédente")
        if entry.key_id is None:
            keyed_since = report.keyed_from or (
                anchored_keyed_from if anchored_keyed_from and entry.seq >= anchored_keyed_from else None)
            if keyed_since:
                errors.append(f"{label}: n°{entry.seq} n'est pas signée alors que la chaîne l'est "
                              f"depuis le n°{keyed_since} (empreinte sans clé recalculée)")
            elif _legacy_digest(entry, tenant_id) != entry.hash:
                errors.append(f"{label}: n°{entry.seq} a été modifiée (empreinte invalide)")
            else:
                report.legacy_until = entry.seq
        else:
            if report.keyed_from is None:
                report.keyed_from = entry.seq
            if entry.key_id not in report.key_ids:
                report.key_ids.append(entry.key_id)
            key = keys.get(entry.key_id)
            if key is None:
                if entry.key_id not in unknown_keys:
                    unknown_keys.add(entry.key_id)
                    errors.append(f"{label}: n°{entry.seq} est signée par la clé « {entry.key_id} », "
                                  "inconnue ici (ajoutez-la à SAAS_AUDIT_KEY_FALLBACKS)")
            elif not hmac.compare_digest(_mac(entry, tenant_id, key), entry.hash):
                errors.append(f"{label}: n°{entry.seq} a été modifiée (empreinte invalide)")
        while anchor is not None and anchor.seq <= entry.seq:
            if anchor.seq == entry.seq and not hmac.compare_digest(anchor.mac, entry.hash):
                errors.append(f"{label}: n°{entry.seq} ne correspond plus à l'ancrage du "
                              f"{_when(anchor.anchored_at)} (chaîne réécrite)")
            anchor = next(pending, None)
        prev, expected_seq, last_seq = entry.hash, entry.seq + 1, entry.seq
    if anchor is not None:
        furthest = anchors[-1]
        errors.append(f"{label}: entrées supprimées en fin de chaîne : l'ancrage du "
                      f"{_when(furthest.anchored_at)} atteste le n°{furthest.seq}, la chaîne "
                      f"s'arrête au n°{last_seq} (troncature)")
    return report
