"""How a request's transaction ends: COMMIT when PostgreSQL says it wrote nothing (prepared
statements survive), ROLLBACK whenever it wrote."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from flask import Blueprint

from saas import create_app, transactions
from saas.auth.models import ApiToken
from saas.errors import AppError
from saas.extensions import csrf, db
from tests.conftest import HostClient

AUTH_QUERY = "%api_tokens.token_hash = %"


@pytest.fixture
def fresh_app(app, app_overrides):
    """Another app on the same (migrated) database, with test routes added before any request."""
    bp = Blueprint("txtest", __name__)

    @bp.post("/_tx/rename/<token_id>")
    def rename_then_fail(token_id):
        token = db.session.get(ApiToken, token_id)
        token.name = "renommé"
        db.session.flush()  # the UPDATE reaches PostgreSQL...
        raise AppError(409, "conflict", "refusé")  # ...and a handled error ends the request

    @bp.post("/_tx/select-then-write/<token_id>")
    def select_then_write(token_id):
        # Starts with SELECT, writes all the same (one query string, two statements).
        db.session.connection().exec_driver_sql(
            f"SELECT 1; UPDATE api_tokens SET name = 'écrit' WHERE id = '{uuid.UUID(token_id)}'")
        raise AppError(409, "conflict", "refusé")

    @bp.post("/_tx/rename-unflushed/<token_id>")
    def rename_unflushed(token_id):
        db.session.get(ApiToken, token_id).name = "jamais écrit"
        return {"ok": True}  # never committed nor flushed: must not be written

    @bp.get("/_tx/read-then-fail/<int:status>")
    def read_then_fail(status):
        db.session.execute(sa.select(ApiToken)).all()
        raise AppError(status, "failed", "échec")

    @bp.get("/_tx/read-then-raise")
    def read_then_raise():
        db.session.execute(sa.select(ApiToken)).all()
        raise RuntimeError("unhandled")

    other = create_app(app_overrides)
    csrf.exempt(bp)  # bearer-authenticated calls, as on the API
    other.register_blueprint(bp)
    return other


def _client(app, tenant, token):
    client = HostClient(app, app.response_class)
    client.base_host = f"{tenant.slug}.mutualis.test"
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def _token_id(tenant):
    from saas.tenancy.context import tenant_context

    with tenant_context(tenant):
        return str(db.session.execute(sa.select(ApiToken.id)).scalar_one())


def _token_name(tenant):
    from saas.tenancy.context import tenant_context

    db.session.expire_all()
    with tenant_context(tenant):
        return db.session.execute(sa.select(ApiToken.name)).scalar_one()


def _events(app):
    counts = {"commit": 0, "rollback": 0}
    with app.app_context():
        engine = db.engine

    def on(name):
        def listener(conn):
            counts[name] += 1
        return listener

    listeners = [(name, on(name)) for name in counts]
    for name, fn in listeners:
        sa.event.listen(engine, name, fn)
    return counts, lambda: [sa.event.remove(engine, name, fn) for name, fn in listeners]


def test_a_read_only_request_commits_and_its_queries_stay_prepared(fresh_app, tenant_a, make_token):
    token, _user = make_token(tenant_a)
    client = _client(fresh_app, tenant_a, token)
    # The first use writes (the token's last_used_at, once a minute) and loads host caches.
    assert client.get("/api/v1/me").status_code == 200
    counts, stop = _events(fresh_app)
    try:
        assert client.get("/api/v1/me").status_code == 200
    finally:
        stop()
    assert counts == {"commit": 1, "rollback": 0}
    for _ in range(8):  # psycopg prepares a query on its 6th run on a connection
        assert client.get("/api/v1/me").status_code == 200
    with fresh_app.app_context(), db.engine.connect() as conn:  # the pool's one connection
        prepared = conn.execute(sa.text(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :q"
        ), {"q": AUTH_QUERY}).scalar()
    assert prepared == 1


def test_a_flushed_write_ended_by_a_handled_error_is_rolled_back(fresh_app, tenant_a, make_token):
    token, _user = make_token(tenant_a)
    token_id = _token_id(tenant_a)
    client = _client(fresh_app, tenant_a, token)
    assert client.get("/api/v1/me").status_code == 200  # the token's last_used_at is written
    counts, stop = _events(fresh_app)
    try:
        response = client.post(f"/_tx/rename/{token_id}")
    finally:
        stop()
    assert response.status_code == 409
    assert counts["commit"] == 0 and counts["rollback"] >= 1
    assert _token_name(tenant_a) == "test"


def test_pending_orm_changes_are_never_committed_by_the_teardown(fresh_app, tenant_a, make_token):
    token, _user = make_token(tenant_a)
    token_id = _token_id(tenant_a)
    response = _client(fresh_app, tenant_a, token).post(f"/_tx/rename-unflushed/{token_id}")
    assert response.status_code == 200
    assert _token_name(tenant_a) == "test"


def test_a_write_hidden_behind_a_select_ended_by_an_error_is_rolled_back(
        fresh_app, tenant_a, make_token):
    token, _user = make_token(tenant_a)
    token_id = _token_id(tenant_a)
    client = _client(fresh_app, tenant_a, token)
    assert client.get("/api/v1/me").status_code == 200
    assert client.post(f"/_tx/select-then-write/{token_id}").status_code == 409
    assert _token_name(tenant_a) == "test"


@pytest.mark.parametrize("statement", [
    "UPDATE api_tokens SET name = 'x'",
    "WITH t AS (UPDATE api_tokens SET name = 'x' RETURNING id) SELECT * FROM t",
    "SELECT 1; UPDATE api_tokens SET name = 'x'",
    "SELECT count(*) FROM (SELECT 1) s; INSERT INTO api_tokens SELECT * FROM api_tokens WHERE false; "
    "UPDATE api_tokens SET name = 'x'",
])
def test_a_transaction_that_wrote_is_never_committed(app, tenant_a, make_token, statement):
    from saas.tenancy.context import tenant_context

    make_token(tenant_a)
    with tenant_context(tenant_a):
        db.session.execute(sa.text("SELECT 1"))
        db.session.connection().exec_driver_sql(statement)
        assert transactions.end_read_only_transaction(db.session()) is False
        db.session.rollback()
    assert _token_name(tenant_a) == "test"


def test_a_savepoint_is_left_to_the_rollback(app, tenant_a):
    from saas.tenancy.context import tenant_context

    with tenant_context(tenant_a):
        db.session.execute(sa.text("SELECT 1"))
        with db.session.begin_nested():
            assert transactions.end_read_only_transaction(db.session()) is False
        db.session.rollback()


def test_only_selects_means_commit(app, tenant_a):
    from saas.tenancy.context import tenant_context

    with tenant_context(tenant_a):
        db.session.execute(sa.text("SELECT 1"))
        db.session.execute(sa.select(ApiToken)).all()
        assert transactions.end_read_only_transaction(db.session()) is True
        assert not db.session().in_transaction()
        # Nothing ran in a new transaction: nothing to end.
        assert transactions.end_read_only_transaction(db.session()) is False


def test_sqlite_keeps_rolling_back(sqlite_app):
    db.session.execute(sa.text("SELECT 1"))
    assert transactions.end_read_only_transaction(db.session()) is False


def test_objects_read_before_the_commit_stay_readable_after_it(app, tenant_a, make_token):
    """A streamed response may read its ORM objects after the teardown has ended the transaction."""
    from saas.tenancy.context import tenant_context

    make_token(tenant_a)
    with tenant_context(tenant_a):
        token = db.session.execute(sa.select(ApiToken)).scalar_one()
        assert transactions.end_read_only_transaction(db.session()) is True
    db.session.remove()
    assert token.name == "test"  # detached, and still loaded: no refresh attempted


@pytest.mark.parametrize("path", ["/_tx/read-then-fail/500", "/_tx/read-then-fail/503",
                                  "/_tx/read-then-raise"])
def test_a_request_that_fails_is_never_committed(fresh_app, tenant_a, make_token, path):
    token, _user = make_token(tenant_a)
    client = _client(fresh_app, tenant_a, token)
    assert client.get("/api/v1/me").status_code == 200
    fresh_app.config["PROPAGATE_EXCEPTIONS"] = False  # answer 500 as in production
    counts, stop = _events(fresh_app)
    try:
        response = client.get(path)
    finally:
        stop()
    assert response.status_code >= 500
    assert counts["commit"] == 0 and counts["rollback"] >= 1
    # A handled error below 500 still ends a read-only transaction with COMMIT.
    counts, stop = _events(fresh_app)
    try:
        assert client.get("/_tx/read-then-fail/404").status_code == 404
    finally:
        stop()
    assert counts == {"commit": 1, "rollback": 0}
