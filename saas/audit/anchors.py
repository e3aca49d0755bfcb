"""Chain heads written outside the database, so that removing the last entries shows.

A MAC chain proves that what is there was not edited, but not that nothing was cut off its end:
deleting the newest entries leaves a valid, shorter chain. So an hourly job writes every
chain's head (sequence number, MAC, time) to a structured log line and to object storage, an
object per distinct head under `audit-anchors/` in the commune's bucket (the platform's chain:
the platform bucket, named after the reserved slug "admin"). Objects are never overwritten nor
deleted by the application; buckets are versioned. `saas audit verify` then checks that every
anchored head is still in its chain with the same MAC.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime

import structlog

from saas.audit.services import PLATFORM_CHAIN, AnchoredHead, ChainHead, chain_head
from saas.modelbase import utcnow
from saas.storage import BucketMissing, ObjectNotFound, StorageError, get_store

PREFIX = "audit-anchors/"
# A reserved slug (no commune can take it): the platform's own bucket.
PLATFORM_BUCKET = "admin"
FORMAT = 1
# An anchor is a few hundred bytes; anything much larger in the prefix is not one.
MAX_ANCHOR_BYTES = 4096

log = structlog.get_logger("saas.audit")
_stdlog = logging.getLogger("saas.audit")


class AnchorError(RuntimeError):
    """The anchors of a chain could not be read (storage down, unreadable object)."""


def _owner(tenant):
    return tenant if tenant is not None else PLATFORM_BUCKET


def object_key(head: ChainHead) -> str:
    """One object per distinct head: the same head anchored twice is the same object."""
    return f"{PREFIX}{head.seq:012d}-{head.mac[:16]}.json"


def _document(tenant, label: str, head: ChainHead, anchored_at: datetime) -> bytes:
    return json.dumps({
        "format": FORMAT,
        "chain": label,
        "tenant_id": str(tenant.id) if tenant is not None else None,
        "seq": head.seq,
        "mac": head.mac,
        "key_id": head.key_id,
        "entry_at": head.at.isoformat(timespec="microseconds"),
        "keyed_from": head.keyed_from,
        "anchored_at": anchored_at.isoformat(timespec="microseconds"),
    }, sort_keys=True, ensure_ascii=False).encode()


def anchor_chain(tenant, label: str) -> str:
    """Anchor the current chain's head (call inside the tenant's context, or none for the platform).

    Returns "anchored", "unchanged" (this head already has its object) or "empty".
    """
    head = chain_head(tenant.id if tenant is not None else None)
    # The log line is written every time, whatever the store says: a second, independent copy.
    log.info("audit.anchor", chain=label, tenant_id=str(tenant.id) if tenant is not None else None,
             seq=head.seq if head else 0, mac=head.mac if head else None,
             key_id=head.key_id if head else None,
             entry_at=head.at.isoformat() if head else None)
    if head is None:
        return "empty"
    store = get_store()
    owner = _owner(tenant)
    if tenant is None:
        store.ensure_bucket(PLATFORM_BUCKET)
    key = object_key(head)
    try:
        store.stat(owner, key)
        return "unchanged"
    except ObjectNotFound:
        pass
    body = _document(tenant, label, head, utcnow())
    store.put(owner, key, io.BytesIO(body), length=len(body), content_type="application/json")
    return "anchored"


def _parse(tenant, key: str, raw: bytes) -> AnchoredHead:
    try:
        doc = json.loads(raw)
        expected = str(tenant.id) if tenant is not None else None
        if doc.get("format") != FORMAT or doc.get("tenant_id") != expected:
            raise ValueError("not an anchor of this chain")
        keyed_from = doc.get("keyed_from")
        return AnchoredHead(seq=int(doc["seq"]), mac=str(doc["mac"]),
                            anchored_at=datetime.fromisoformat(doc["anchored_at"]),
                            keyed_from=int(keyed_from) if keyed_from is not None else None)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AnchorError(f"ancrage {key} illisible ({exc})") from None


def read_anchors(tenant) -> list[AnchoredHead]:
    """Every anchor of the commune's chain (or the platform's); [] before the first one."""
    store = get_store()
    owner = _owner(tenant)
    anchors = []
    try:
        for info in store.list(owner, PREFIX):
            if info.size > MAX_ANCHOR_BYTES:
                raise AnchorError(f"ancrage {info.key} illisible (trop gros : {info.size} octets)")
            anchors.append(_parse(tenant, info.key, store.get(owner, info.key).read_all()))
    except BucketMissing:
        return []
    except StorageError as exc:
        raise AnchorError(f"stockage des ancrages injoignable ({exc})") from None
    return anchors


def anchor_all() -> dict:
    """Anchor every commune's chain and the platform's; a failing one does not stop the others."""
    from saas.tenancy import services
    from saas.tenancy.context import tenant_context

    result: dict = {"anchored": 0, "unchanged": 0, "empty": 0, "failed": []}
    chains = [(tenant, tenant.slug) for tenant in services.list_tenants()]
    chains.append((None, PLATFORM_CHAIN))
    for tenant, label in chains:
        try:
            with tenant_context(tenant):
                outcome = anchor_chain(tenant, label)
            result[outcome] += 1
        except (StorageError, ValueError) as exc:
            _stdlog.error("audit anchor of %s failed: %s", label, exc)
            result["failed"].append(label)
    return result

