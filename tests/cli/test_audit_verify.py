"""`saas audit verify`: intact chains pass; an edited or removed entry is found and named."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import ProgrammingError

from saas.audit.anchors import PLATFORM_BUCKET, PREFIX, anchor_all
from saas.audit.models import AuditEvent
from saas.audit.services import record
from saas.extensions import db
from saas.storage import get_store
from saas.tenancy.context import tenant_context


@pytest.fixture(autouse=True)
def _no_stale_anchors(app):
    """Buckets outlive a test (the database does not): drop anchors of earlier tests' chains."""
    store = get_store()
    for owner in ("commune-a", "commune-b", PLATFORM_BUCKET):
        if store.bucket_exists(owner):
            for info in list(store.list(owner, PREFIX)):
                store.delete(owner, info.key)


@pytest.fixture
def chains(tenant_a, tenant_b):
    """Three entries in each commune's chain and two in the platform's."""
    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant):
            for n in range(1, 4):
                record("document.created", f"doc-{n}", {"n": n}, actor="test")
    record("console.login", "dsi@example.org", actor="test", platform=True)
    record("tenant.created", "commune-a", actor="test", platform=True)
    db.session.commit()
    return tenant_a, tenant_b


def _as_owner(pg_database, sql: str, tenant=None) -> int:
    """Run `sql` as the schema owner (RLS still applies to it: FORCE), return the row count."""
    engine = sa.create_engine(pg_database.owner_url)
    try:
        with engine.begin() as conn:
            if tenant is not None:
                conn.execute(sa.text("SELECT set_config('app.current_tenant', :t, true)"), {"t": str(tenant.id)})
            return conn.execute(sa.text(sql)).rowcount
    finally:
        engine.dispose()


def test_intact_chains_pass(cli, chains):
    result = cli("audit", "verify")

    assert result.exit_code == 0, result.output
    assert "commune-a : ok (3 entrées)" in result.stdout
    assert "commune-b : ok (3 entrées)" in result.stdout
    assert "[plateforme] : ok (2 entrées)" in result.stdout


def test_app_role_cannot_update_or_delete_audit_rows(app, chains):
    tenant_a, _ = chains
    for sql in ("UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events",
                "UPDATE platform_audit_events SET action = 'x'"):
        with tenant_context(tenant_a):
            with pytest.raises(ProgrammingError, match="permission denied"):
                db.session.execute(sa.text(sql))
            db.session.rollback()


def test_edited_entry_is_named_and_exit_is_non_zero(cli, chains, pg_database):
    tenant_a, _ = chains
    changed = _as_owner(pg_database, "UPDATE audit_events SET target = 'doc-falsifié' WHERE seq = 2", tenant_a)
    assert changed == 1

    result = cli("audit", "verify")

    assert result.exit_code == 1
    assert "commune-a : ALTÉRÉE" in result.stdout
    assert "commune-a: n°2 a été modifiée (empreinte invalide)" in result.stdout
    assert "commune-b : ok (3 entrées)" in result.stdout
    assert "1 chaîne(s) altérée(s) sur 3 : commune-a" in result.stderr


def test_deleted_middle_entry_is_detected(cli, chains, pg_database):
    _, tenant_b = chains
    assert _as_owner(pg_database, "DELETE FROM audit_events WHERE seq = 2", tenant_b) == 1

    result = cli("audit", "verify", "--tenant", "commune-b")

    assert result.exit_code == 1
    assert "commune-b: entrée manquante avant le n°3 (attendu 2)" in result.stdout
    assert "commune-a" not in result.stdout


def test_tampered_platform_chain_is_detected(cli, chains, pg_database):
    assert _as_owner(pg_database, "UPDATE platform_audit_events SET actor = 'quelqu''un' WHERE seq = 1") == 1

    result = cli("audit", "verify")

    assert result.exit_code == 1
    assert "[plateforme]: n°1 a été modifiée" in result.stdout


def test_verify_one_tenant_and_unknown_tenant(cli, chains):
    ok = cli("audit", "verify", "--tenant", "commune-a")
    unknown = cli("audit", "verify", "--tenant", "atlantide")

    assert ok.exit_code == 0 and ok.stdout.startswith("commune-a : ok (3 entrées)")
    assert "[plateforme]" not in ok.stdout
    assert unknown.exit_code == 1 and "Collectivité inconnue" in unknown.stderr


# -- keyed chains --------------------------------------------------------------------------------

def _legacy_hash(row: dict, tenant_id) -> str:
    """The unkeyed SHA-256 the chains used before they were keyed: what an owner can recompute."""
    payload = {
        "tenant": str(tenant_id) if tenant_id else None, "seq": row["seq"],
        "at": row["created_at"].isoformat(timespec="microseconds"),
        "actor_id": str(row["actor_id"]) if row["actor_id"] else None, "actor": row["actor"],
        "action": row["action"], "target": row["target"], "ip": row["ip"], "data": row["data"],
        "prev": row["prev_hash"],
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _rows(pg_database, tenant) -> list[dict]:
    engine = sa.create_engine(pg_database.owner_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT set_config('app.current_tenant', :t, true)"), {"t": str(tenant.id)})
            return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM audit_events ORDER BY seq"))]
    finally:
        engine.dispose()


def _rewrite_unkeyed(pg_database, tenant, seqs, target: str) -> None:
    """As the owner: change `target` of entries `seqs`, drop their key id, recompute the SHA-256
    chain from the first rewritten entry on (what a forger without the key can do)."""
    rows = _rows(pg_database, tenant)
    prev = None
    for row in rows:
        if prev is not None:
            row["prev_hash"] = prev
        if row["seq"] in seqs:
            row["target"] = target
        if row["seq"] >= min(seqs):
            row["key_id"] = None
            row["hash"] = _legacy_hash(row, tenant.id)
            _as_owner(pg_database, f"UPDATE audit_events SET target = '{row['target']}', key_id = NULL, "
                                   f"prev_hash = '{row['prev_hash']}', hash = '{row['hash']}' "
                                   f"WHERE seq = {row['seq']}", tenant)
        prev = row["hash"]


def test_entries_carry_a_keyed_mac_not_a_plain_hash(app, chains, pg_database):
    tenant_a, _ = chains
    rows = _rows(pg_database, tenant_a)

    assert [r["key_id"] for r in rows] == [app.config["SAAS_SETTINGS"].audit.key_id] * 3
    assert all(r["hash"] != _legacy_hash(r, tenant_a.id) for r in rows)


def test_rewritten_entry_with_a_recomputed_unkeyed_hash_is_detected(cli, chains, pg_database):
    tenant_a, _ = chains
    _rewrite_unkeyed(pg_database, tenant_a, {3}, "doc-falsifié")

    result = cli("audit", "verify", "--tenant", "commune-a")

    assert result.exit_code == 1
    assert ("commune-a: n°3 n'est pas signée alors que la chaîne l'est depuis le n°1 "
            "(empreinte sans clé recalculée)") in result.stdout


def test_whole_chain_rewritten_unkeyed_is_detected_by_its_anchor(cli, chains, pg_database):
    tenant_a, _ = chains
    anchor_all()
    _rewrite_unkeyed(pg_database, tenant_a, {1, 2, 3}, "doc-falsifié")

    result = cli("audit", "verify", "--tenant", "commune-a")

    assert result.exit_code == 1
    assert "commune-a: n°1 n'est pas signée alors que la chaîne l'est depuis le n°1" in result.stdout
    assert "commune-a: n°3 ne correspond plus à l'ancrage du " in result.stdout


def _legacy_entry(tenant, seq: int, prev: str) -> AuditEvent:
    """An entry as the code before keyed chains wrote it (key_id NULL, plain SHA-256)."""
    from saas.modelbase import utcnow

    entry = AuditEvent(seq=seq, created_at=utcnow(), actor="cli", action="tenant.created",
                       target=tenant.slug, data={"n": seq}, prev_hash=prev, key_id=None)
    entry.tenant_id = tenant.id
    entry.hash = _legacy_hash({c: getattr(entry, c) for c in (
        "seq", "created_at", "actor_id", "actor", "action", "target", "ip", "data", "prev_hash")},
        tenant.id)
    return entry


def test_legacy_entries_still_verify_and_the_transition_is_reported(cli, tenant_a):
    with tenant_context(tenant_a):
        first = _legacy_entry(tenant_a, 1, "0" * 64)
        db.session.add(first)
        db.session.add(_legacy_entry(tenant_a, 2, first.hash))
        db.session.flush()
        record("document.created", "doc-3", actor="test")
        db.session.commit()

    result = cli("audit", "verify", "--tenant", "commune-a")

    assert result.exit_code == 0, result.output
    assert "commune-a : ok (3 entrées)" in result.stdout
    assert "n°1 à 2 : empreintes sans clé (écrites avant les chaînes signées) ; signées à partir du n°3" in result.stdout


def test_a_legacy_entry_after_a_keyed_one_is_refused(cli, tenant_a):
    with tenant_context(tenant_a):
        record("document.created", "doc-1", actor="test")
        db.session.flush()
        last = db.session.execute(sa.select(AuditEvent)).scalar_one()
        db.session.add(_legacy_entry(tenant_a, 2, last.hash))
        db.session.commit()

    result = cli("audit", "verify", "--tenant", "commune-a")

    assert result.exit_code == 1
    assert "commune-a: n°2 n'est pas signée alors que la chaîne l'est depuis le n°1" in result.stdout


def _use_audit_keys(monkeypatch, app, key_id: str, key: str, fallbacks: dict) -> None:
    settings = app.config["SAAS_SETTINGS"]
    audit = dataclasses.replace(settings.audit, key_id=key_id, key=key, fallbacks=fallbacks)
    monkeypatch.setitem(app.config, "SAAS_SETTINGS", dataclasses.replace(settings, audit=audit))


def test_rotating_the_audit_key_keeps_old_entries_verifiable(cli, app, tenant_a, monkeypatch):
    old, new = "k2026:" + "o" * 40, "k2027:" + "n" * 40
    _use_audit_keys(monkeypatch, app, "k2026", old[6:], {})
    with tenant_context(tenant_a):
        record("document.created", "doc-1", actor="test")
        record("document.created", "doc-2", actor="test")
        db.session.commit()
    _use_audit_keys(monkeypatch, app, "k2027", new[6:], {"k2026": old[6:]})
    with tenant_context(tenant_a):
        record("document.created", "doc-3", actor="test")
        db.session.commit()

    rotated = cli("audit", "verify", "--tenant", "commune-a")
    _use_audit_keys(monkeypatch, app, "k2027", new[6:], {})
    forgotten = cli("audit", "verify", "--tenant", "commune-a")
    _use_audit_keys(monkeypatch, app, "k2027", new[6:], {"k2026": "x" * 40})
    wrong = cli("audit", "verify", "--tenant", "commune-a")

    assert rotated.exit_code == 0, rotated.output
    assert "commune-a : ok (3 entrées)" in rotated.stdout
    assert "toutes signées (clés : k2026, k2027)" in rotated.stdout
    assert forgotten.exit_code == 1
    assert ("commune-a: n°1 est signée par la clé « k2026 », inconnue ici "
            "(ajoutez-la à SAAS_AUDIT_KEY_FALLBACKS)") in forgotten.stdout
    assert "n°2" not in forgotten.stdout  # one line per unknown key, not per entry
    assert wrong.exit_code == 1
    assert "commune-a: n°1 a été modifiée (empreinte invalide)" in wrong.stdout
    assert "commune-a: n°3" not in wrong.stdout


# -- anchors -------------------------------------------------------------------------------------

def test_without_anchor_a_truncation_passes_and_verify_says_so(cli, chains, pg_database):
    _, tenant_b = chains
    assert _as_owner(pg_database, "DELETE FROM audit_events WHERE seq = 3", tenant_b) == 1

    result = cli("audit", "verify", "--tenant", "commune-b")

    assert result.exit_code == 0
    assert "aucun ancrage : la suppression des dernières entrées ne serait pas détectée" in result.stdout


def test_deleting_the_last_entries_after_an_anchor_is_detected(cli, chains, pg_database):
    tenant_a, tenant_b = chains
    assert anchor_all() == {"anchored": 3, "unchanged": 0, "empty": 0, "failed": []}
    assert _as_owner(pg_database, "DELETE FROM audit_events WHERE seq >= 2", tenant_b) == 2
    assert _as_owner(pg_database, "DELETE FROM platform_audit_events WHERE seq = 2") == 1

    result = cli("audit", "verify")

    assert result.exit_code == 1
    assert "commune-a : ok (3 entrées)" in result.stdout
    assert "1 ancrage(s) vérifié(s) ; le dernier, du " in result.stdout
    assert "commune-b : ALTÉRÉE (1 entrées lues)" in result.stdout
    assert ("commune-b: entrées supprimées en fin de chaîne : l'ancrage du ") in result.stdout
    assert "atteste le n°3, la chaîne s'arrête au n°1 (troncature)" in result.stdout
    assert "atteste le n°2, la chaîne s'arrête au n°1 (troncature)" in result.stdout  # platform
    assert "2 chaîne(s) altérée(s) sur 3 : commune-b, [plateforme]" in result.stderr


def test_truncating_then_appending_again_is_detected(cli, chains, pg_database):
    _, tenant_b = chains
    anchor_all()
    assert _as_owner(pg_database, "DELETE FROM audit_events WHERE seq = 3", tenant_b) == 1
    with tenant_context(tenant_b):
        record("document.created", "doc-autre", actor="test")
        db.session.commit()

    result = cli("audit", "verify", "--tenant", "commune-b")

    assert result.exit_code == 1
    assert "commune-b: n°3 ne correspond plus à l'ancrage du " in result.stdout
    assert "(chaîne réécrite)" in result.stdout


def test_every_anchor_is_checked_not_only_the_last(cli, chains, pg_database):
    tenant_a, _ = chains
    anchor_all()
    with tenant_context(tenant_a):
        record("document.created", "doc-4", actor="test")
        db.session.commit()
    assert anchor_all()["anchored"] == 1  # only commune-a's head moved
    _rewrite_unkeyed(pg_database, tenant_a, {3, 4}, "doc-falsifié")

    result = cli("audit", "verify", "--tenant", "commune-a")

    assert result.exit_code == 1
    assert "2 ancrage(s) vérifié(s)" in result.stdout
    assert "commune-a: n°3 ne correspond plus à l'ancrage du " in result.stdout
    assert "commune-a: n°4 ne correspond plus à l'ancrage du " in result.stdout


def test_an_unreadable_anchor_fails_the_verification(cli, chains):
    import io

    tenant_a, _ = chains
    get_store().put(tenant_a, PREFIX + "000000000009-x.json", io.BytesIO(b"{pas du json"))

    result = cli("audit", "verify", "--tenant", "commune-a")

    assert result.exit_code == 1
    assert "commune-a: ancrage audit-anchors/000000000009-x.json illisible" in result.stdout
