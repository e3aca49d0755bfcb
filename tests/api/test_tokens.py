"""API tokens: format, hashing, tenant binding, revocation, membership, last use, audit, CLI."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.auth import tokens
from saas.auth.models import ApiToken, Membership
from saas.extensions import db
from saas.modelbase import utcnow
from saas.tenancy.context import tenant_context
from saas.tenancy.models import TenantStatus


def _token_row(token_str: str) -> ApiToken:
    return db.session.execute(
        sa.select(ApiToken).where(ApiToken.token_hash == tokens.hash_token(token_str))
        .execution_options(all_tenants=True)
    ).scalar_one()


def test_token_format_and_only_the_hash_is_stored(app, tenant_a, make_user):
    user = make_user(tenant_a, "agent")
    token_str, row = tokens.create_token(user, tenant_a, "Logiciel RH")
    # Checked before the commit expires the row (reading it back needs commune A's context).
    assert re.fullmatch(r"mut_[A-Za-z0-9_-]{43}", token_str)
    assert row.token_hash == hashlib.sha256(token_str.encode()).hexdigest()
    assert row.prefix == token_str[:12] and len(row.prefix) <= 16
    assert row.tenant_id == tenant_a.id and row.user_id == user.id and row.name == "Logiciel RH"
    db.session.commit()
    # The secret appears in no column of the table, whatever its name.
    with tenant_context(tenant_a):
        raw = db.session.execute(sa.text("SELECT * FROM api_tokens")).mappings().all()
    assert len(raw) == 1
    assert not any(token_str in str(value) for value in raw[0].values())
    # Two tokens never collide.
    other, _row = tokens.create_token(user, tenant_a, "second")
    assert other != token_str


def test_create_refuses_non_members_and_bad_names(app, tenant_a, tenant_b, make_user):
    user_b = make_user(tenant_b, "admin")
    with pytest.raises(tokens.TokenError, match="n'est pas membre"):
        tokens.create_token(user_b, tenant_a, "x")
    with pytest.raises(tokens.TokenError, match="obligatoire"):
        tokens.create_token(user_b, tenant_b, "  ")
    with pytest.raises(tokens.TokenError, match="100"):
        tokens.create_token(user_b, tenant_b, "x" * 101)
    db.session.rollback()
    user_b.active = False
    db.session.commit()
    with pytest.raises(tokens.TokenError, match="désactivé"):
        tokens.create_token(user_b, tenant_b, "x")


def test_authenticate_is_bound_to_the_current_tenant(app, tenant_a, tenant_b, make_token):
    token_a, user_a = make_token(tenant_a, "agent")
    with tenant_context(tenant_a):
        result = tokens.authenticate(token_a)
        assert isinstance(result, tokens.TokenAuth)
        assert result.user.id == user_a.id and result.membership.role == "agent"
    with tenant_context(tenant_b):
        assert tokens.authenticate(token_a) == tokens.TokenRejection("unknown")
    # Without a tenant nothing can be found, and garbage is refused before any query.
    assert isinstance(tokens.authenticate(token_a), tokens.TokenRejection)
    with tenant_context(tenant_a):
        assert tokens.authenticate("mut_" + "x" * 43) == tokens.TokenRejection("unknown")
        assert tokens.authenticate(token_a[:-1]) == tokens.TokenRejection("malformed")
        assert tokens.authenticate("Bearer " + token_a) == tokens.TokenRejection("malformed")


def test_http_token_of_a_used_on_b_is_401(app, tenant_a, tenant_b, make_token, api_client):
    token_a, _user = make_token(tenant_a)
    assert api_client(tenant_a, token_a).get("/api/v1/me").status_code == 200
    response = api_client(tenant_b, token_a).get("/api/v1/me")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_revoked_token_is_401(app, tenant_a, make_token, api_client):
    token_str, _user = make_token(tenant_a)
    client = api_client(tenant_a, token_str)
    assert client.get("/api/v1/me").status_code == 200
    with tenant_context(tenant_a):
        assert tokens.revoke_token(_token_row(token_str)) is True
        assert tokens.revoke_token(_token_row(token_str)) is False
    db.session.commit()
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert "révoqué" in response.get_json()["error"]["message"]


def test_lost_membership_or_inactive_user_is_401(app, tenant_a, make_token, api_client):
    token_str, user = make_token(tenant_a, "admin")
    client = api_client(tenant_a, token_str)
    user.active = False
    db.session.commit()
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert "désactivé" in response.get_json()["error"]["message"]

    user.active = True
    db.session.commit()
    assert client.get("/api/v1/me").status_code == 200
    with tenant_context(tenant_a):
        db.session.execute(sa.delete(Membership).where(Membership.user_id == user.id))
        db.session.commit()
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert "n'a plus accès" in response.get_json()["error"]["message"]


def test_suspended_tenant_is_403(app, tenant_a, make_token, api_client):
    token_str, _user = make_token(tenant_a)
    tenant_a.status = TenantStatus.SUSPENDED
    db.session.commit()
    response = api_client(tenant_a, token_str).get("/api/v1/me")
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "tenant_suspended"


def test_last_used_at_is_written_at_most_once_a_minute(app, tenant_a, make_token, api_client):
    token_str, _user = make_token(tenant_a)
    client = api_client(tenant_a, token_str)
    with tenant_context(tenant_a):
        assert _token_row(token_str).last_used_at is None

    updates: list[str] = []

    def count_updates(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE API_TOKENS"):
            updates.append(statement)

    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count_updates)
    try:
        for _ in range(5):
            assert client.get("/api/v1/me").status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", count_updates)
    assert len(updates) == 1

    db.session.expire_all()
    with tenant_context(tenant_a):
        row = _token_row(token_str)
        first_use = row.last_used_at
        assert first_use is not None and utcnow() - first_use < timedelta(seconds=30)
        # A minute later the next request refreshes it.
        row.last_used_at = first_use - timedelta(minutes=2)
        db.session.commit()
    assert client.get("/api/v1/me").status_code == 200
    db.session.expire_all()
    with tenant_context(tenant_a):
        assert _token_row(token_str).last_used_at > first_use - timedelta(seconds=1)


def test_creation_and_revocation_are_audited(app, tenant_a, tenant_b, make_user):
    user = make_user(tenant_a, "admin")
    token_str, row = tokens.create_token(user, tenant_a, "Parapheur", actor="cli")
    db.session.commit()
    with tenant_context(tenant_a):
        tokens.revoke_token(_token_row(token_str), actor="cli")
        db.session.commit()
        events = db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
        assert [e.action for e in events if e.action.startswith("api_token.")] == [
            "api_token.created", "api_token.revoked"]
        created = next(e for e in events if e.action == "api_token.created")
        assert created.target == f"api_token:{row.id}"
        assert created.data["prefix"] == row.prefix and created.actor == "cli"
        assert token_str not in str([e.data for e in events])
    with tenant_context(tenant_b):
        assert db.session.execute(sa.select(sa.func.count()).select_from(AuditEvent)).scalar() == 0


def test_cli_create_list_revoke(app, cli, tenant_a, tenant_b, make_user):
    user = make_user(tenant_a, "agent", email="agent@commune-a.fr")
    result = cli("tokens", "create", "--tenant", "commune-a", "--email", "agent@commune-a.fr",
                 "--name", "Export comptable")
    assert result.exit_code == 0, result.output
    token_str = result.stdout.strip()
    assert re.fullmatch(r"mut_[A-Za-z0-9_-]{43}", token_str)
    assert "ne sera plus jamais affiché" in result.stderr
    with tenant_context(tenant_a):
        row = _token_row(token_str)
        assert row.user_id == user.id and row.name == "Export comptable"
        row_id, prefix = row.id, row.prefix

    listing = cli("tokens", "list", "--tenant", "commune-a")
    assert listing.exit_code == 0, listing.output
    assert prefix in listing.output and "agent@commune-a.fr" in listing.output
    assert token_str not in listing.output and "actif" in listing.output
    as_json = cli("tokens", "list", "--tenant", "commune-a", "--json")
    assert [t["id"] for t in json.loads(as_json.output)] == [str(row_id)]
    assert "Aucun jeton" in cli("tokens", "list", "--tenant", "commune-b").output

    # Another commune cannot revoke it, even knowing the id.
    other = cli("tokens", "revoke", "--tenant", "commune-b", str(row_id))
    assert other.exit_code == 1 and "Aucun jeton" in other.output
    revoked = cli("tokens", "revoke", "--tenant", "commune-a", str(row_id))
    assert revoked.exit_code == 0 and "révoqué" in revoked.output
    again = cli("tokens", "revoke", "--tenant", "commune-a", str(row_id))
    assert again.exit_code == 0 and "déjà révoqué" in again.output
    assert "révoqué le" in cli("tokens", "list", "--tenant", "commune-a").output


def test_cli_errors_are_actionable(app, cli, tenant_a, tenant_b, make_user):
    make_user(tenant_b, "agent", email="b@commune-b.fr")
    unknown_tenant = cli("tokens", "create", "--tenant", "nulle-part", "--email", "b@commune-b.fr")
    assert unknown_tenant.exit_code == 1 and "nulle-part" in unknown_tenant.output
    unknown_user = cli("tokens", "create", "--tenant", "commune-a", "--email", "personne@x.fr")
    assert unknown_user.exit_code == 1 and "saas users create" in unknown_user.output
    not_member = cli("tokens", "create", "--tenant", "commune-a", "--email", "b@commune-b.fr")
    assert not_member.exit_code == 1 and "n'est pas membre" in not_member.output
    bad_id = cli("tokens", "revoke", "--tenant", "commune-a", "pas-un-uuid")
    assert bad_id.exit_code == 1 and "invalide" in bad_id.output
    missing = cli("tokens", "revoke", "--tenant", "commune-a", str(uuid.uuid4()))
    assert missing.exit_code == 1
    with tenant_context(tenant_a):
        assert db.session.execute(sa.select(sa.func.count()).select_from(ApiToken)).scalar() == 0
