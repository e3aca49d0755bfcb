"""A process reuses a checked token for a few seconds, and forgets it as soon as it may be wrong."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from saas.auth import tokens
from saas.auth.models import ApiToken, Membership, User
from saas.extensions import db
from saas.modelbase import utcnow
from saas.tenancy.context import tenant_context
from tests.support.postgres import ADMIN_URL


@pytest.fixture
def cached(app, monkeypatch):
    """The production setting: tenants and tokens reused for 5 s."""
    monkeypatch.setitem(app.config, "TENANT_CACHE_SECONDS", 5.0)
    tokens.invalidate_token_cache()
    yield
    tokens.invalidate_token_cache()


@pytest.fixture
def statements(app):
    """The SQL statements sent while the block runs (RLS settings included)."""
    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", listen)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", listen)


def _token_queries(seen: list[str]) -> int:
    return sum(1 for s in seen if "api_tokens" in s and s.lstrip().upper().startswith("SELECT"))


def _other_process():
    """A connection of its own, as another gunicorn worker or a `saas` command would write."""
    return sa.create_engine(ADMIN_URL.rsplit("/", 1)[0] + "/" + db.engine.url.database)


def test_a_checked_token_costs_no_query_on_the_next_requests(
        app, cached, tenant_a, make_token, api_client, statements):
    token, _user = make_token(tenant_a)
    client = api_client(tenant_a, token)
    assert client.get("/api/v1/me").status_code == 200
    assert _token_queries(statements) == 1
    for _ in range(3):
        assert client.get("/api/v1/me").status_code == 200
    assert _token_queries(statements) == 1


def test_revoking_in_this_process_applies_at_once(app, cached, tenant_a, make_token, api_client):
    token, user = make_token(tenant_a)
    client = api_client(tenant_a, token)
    assert client.get("/api/v1/me").status_code == 200
    with tenant_context(tenant_a):
        row = db.session.execute(sa.select(ApiToken).where(ApiToken.user_id == user.id)).scalar_one()
        tokens.revoke_token(row)
        db.session.commit()
    assert client.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("change", ["revoke", "deactivate", "remove_membership"])
def test_a_change_made_by_another_process_applies_within_the_cache_time(
        app, cached, tenant_a, make_token, api_client, monkeypatch, change):
    token, user = make_token(tenant_a)
    client = api_client(tenant_a, token)
    assert client.get("/api/v1/me").status_code == 200
    engine = _other_process()
    with engine.begin() as conn:  # a superuser, behind this process's back
        if change == "revoke":
            conn.execute(sa.update(ApiToken.__table__).where(ApiToken.__table__.c.user_id == user.id)
                         .values(revoked_at=utcnow()))
        elif change == "deactivate":
            conn.execute(sa.update(User.__table__).where(User.__table__.c.id == user.id)
                         .values(active=False))
        else:
            conn.execute(sa.delete(Membership.__table__)
                         .where(Membership.__table__.c.user_id == user.id))
    engine.dispose()
    assert client.get("/api/v1/me").status_code == 200  # still within the 5 s
    clock = tokens.time.monotonic() + 5.1
    monkeypatch.setattr(tokens.time, "monotonic", lambda: clock)
    assert client.get("/api/v1/me").status_code == 401


def test_a_token_of_another_commune_is_not_served_from_the_cache(
        app, cached, tenant_a, tenant_b, make_token, api_client):
    token, _user = make_token(tenant_a)
    assert api_client(tenant_a, token).get("/api/v1/me").status_code == 200
    assert api_client(tenant_b, token).get("/api/v1/me").status_code == 401
