"""Test fixtures: real PostgreSQL (app role under RLS), a private Redis, an S3 endpoint, SMTP.

Every fixture set has two tenants, because most bugs that matter here are leaks between them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from flask.testing import FlaskClient

from saas import create_app
from saas.extensions import db
from tests.support.postgres import create_test_database, drop_test_database, truncate_all
from tests.support.redis import RedisServer
from tests.support.smtp import SmtpServer

BASE_DOMAIN = "mutualis.test"
PASSWORD = "Correct-horse-battery-9"
# Cheap Argon2 parameters in tests only: the production defaults cost ~50 ms per hash.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session")
def worker_label(request) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


@pytest.fixture(scope="session")
def pg_database(worker_label):
    tdb = create_test_database(worker_label)
    yield tdb
    drop_test_database(tdb)


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_settings():
    from tests.support.s3 import test_s3_settings

    settings = test_s3_settings()
    yield settings
    stop = getattr(settings, "stop", None)
    if stop:
        stop()


@pytest.fixture(scope="session")
def s3_bucket_prefix(worker_label, s3_settings):
    from tests.support.s3 import purge_buckets

    prefix = f"mt{os.getpid()}{worker_label.replace('gw', 'w')}-".lower()
    yield prefix
    purge_buckets(s3_settings, prefix)


@pytest.fixture(scope="session")
def app_overrides(pg_database, redis_server, smtp_server, s3_settings, s3_bucket_prefix,
                  tmp_path_factory) -> dict:
    endpoint, access_key, secret_key, secure = s3_settings[:4]
    return {
        "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance")),
        "DATABASE_URL": pg_database.app_url,
        "DATABASE_OWNER_URL": pg_database.owner_url,
        "REDIS_URL": redis_server.url,
        "S3_ENDPOINT": endpoint,
        "S3_ACCESS_KEY": access_key,
        "S3_SECRET_KEY": secret_key,
        "S3_SECURE": "1" if secure else "0",
        "S3_BUCKET_PREFIX": s3_bucket_prefix,
        "BASE_DOMAIN": BASE_DOMAIN,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server.port),
        "MAIL_FROM": "Mutualis <no-reply@mutualis.test>",
        "PUBLIC_PORT": "",
        "TESTING": True,
        "SAAS_PASSWORD_HASHER": FAST_HASHER,
        "RATELIMIT_ENABLED": True,
    }


@pytest.fixture(scope="session")
def _migrated_app(app_overrides):
    app = create_app(app_overrides)
    result = CliRunner().invoke(_init_cmd(), obj=_script_info(app))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return app


def _init_cmd():
    from saas.cli import init_command

    return init_command


def _script_info(app):
    from flask.cli import ScriptInfo

    return ScriptInfo(create_app=lambda: app)


@pytest.fixture
def app(_migrated_app, pg_database, smtp_server):
    """The application on PostgreSQL; every table is emptied after each test."""
    from saas.extensions import limiter

    smtp_server.clear()
    limiter.reset()
    from saas.tenancy.context import set_tenant, set_user

    with _migrated_app.app_context():
        yield _migrated_app
        db.session.remove()
        set_tenant(None)
        set_user(None)
    truncate_all(pg_database.owner_url)


@pytest.fixture
def cli(app):
    """Invoke a `saas` command against the test app: cli("tenants", "list", "--json")."""
    from saas.cli import main

    runner = CliRunner()

    def invoke(*args, input: str | None = None):
        return runner.invoke(main, list(args), obj=_script_info(app), input=input,
                             catch_exceptions=False)

    return invoke


@pytest.fixture
def make_tenant(app) -> Callable:
    from saas.storage import get_store
    from saas.tenancy.models import Tenant

    counter = iter(range(1, 10_000))

    def make(slug: str | None = None, **fields):
        n = next(counter)
        slug = slug or f"commune-{n}"
        defaults = {
            "name": f"Commune {n}",
            "kind": "commune",
            "insee": f"44{n:03d}",
            "siren": _valid_siren(n),
            "population": 800,
            "departement": "44",
            "arrondissement": 1,
            "origins": [],
            "modules": ["ged"],
            "quota_bytes": 1 << 30,
            "branding": {},
        }
        defaults.update(fields)
        tenant = Tenant(slug=slug, **defaults)
        db.session.add(tenant)
        db.session.commit()
        get_store().ensure_bucket(tenant)
        return tenant

    return make


def _valid_siren(n: int) -> str:
    from saas.tenancy.codes import luhn_ok

    base = f"21{n:06d}"
    for check in range(10):
        if luhn_ok(base + str(check)):
            return base + str(check)
    raise AssertionError


@pytest.fixture
def make_user(app) -> Callable:
    from saas.auth.models import Membership, User
    from saas.auth.passwords import hash_password
    from saas.tenancy.context import tenant_context

    counter = iter(range(1, 10_000))

    def make(tenant=None, role: str = "agent", email: str | None = None, *,
             password: str = PASSWORD, platform_admin: bool = False, name: str | None = None):
        n = next(counter)
        email = email or f"user{n}@example.org"
        user = db.session.execute(db.select(User).where(User.email == email)).scalar_one_or_none()
        if user is None:
            user = User(email=email, name=name or f"Personne {n}", password_hash=hash_password(password),
                        is_platform_admin=platform_admin)
            db.session.add(user)
            db.session.commit()
        if tenant is not None:
            with tenant_context(tenant):
                db.session.add(Membership(user_id=user.id, role=role, tenant_id=tenant.id))
                db.session.commit()
        return user

    return make


@pytest.fixture
def tenant_a(make_tenant):
    return make_tenant("commune-a", name="Commune A")


@pytest.fixture
def tenant_b(make_tenant):
    return make_tenant("commune-b", name="Commune B")


class HostClient(FlaskClient):
    """A test client bound to one host, each request in a fresh context as on a real server.

    environ_base cannot override HTTP_HOST (werkzeug sets it last), hence base_url. The `app`
    fixture keeps an application context pushed and Flask would reuse it for requests, sharing
    `g` and Flask-Login's cached user between them; a new contextvars.Context per request gives
    each one its own app context, `g`, tenant context and database session.
    """

    base_host = "localhost"
    base_scheme = "http"

    def open(self, *args, **kwargs):
        import contextvars

        if not args or isinstance(args[0], str):
            kwargs.setdefault("base_url", f"{self.base_scheme}://{self.base_host}")
        return contextvars.Context().run(super().open, *args, **kwargs)

    def session_transaction(self, *args, **kwargs):
        kwargs.setdefault("base_url", f"{self.base_scheme}://{self.base_host}")
        return super().session_transaction(*args, **kwargs)


@pytest.fixture
def client_for(app) -> Callable:
    """A test client whose requests go to a tenant's host (or 'admin', or None for the portal)."""

    return lambda tenant=None: host_client(app, tenant)


def host_client(app, tenant=None) -> HostClient:
    """A client on a tenant's host (a Tenant, a slug, 'admin'), or the portal for None."""
    label = tenant if isinstance(tenant, str) or tenant is None else tenant.slug
    client = HostClient(app, app.response_class, use_cookies=True)
    client.base_host = f"{label}.{BASE_DOMAIN}" if label else BASE_DOMAIN
    return client


@pytest.fixture
def make_token(make_user) -> Callable:
    """make_token(tenant, role="agent", user=None, name="test") -> (token string, user)."""
    from saas.auth.tokens import create_token

    def make(tenant, role: str = "agent", user=None, name: str = "test"):
        user = user or make_user(tenant, role)
        token_str, _row = create_token(user, tenant, name)
        db.session.commit()
        return token_str, user

    return make


@pytest.fixture
def api_client(app) -> Callable:
    """api_client(tenant, token) -> a test client on the commune's host sending the token."""

    def make(tenant, token: str | None = None):
        client = host_client(app, tenant)
        if token is not None:
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client

    return make


@pytest.fixture
def sqlite_app(tmp_path):
    """The embedded default: SQLite and local storage, no Redis, no S3."""
    overrides = {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "BASE_DOMAIN": BASE_DOMAIN,
        "TESTING": True,
        "SAAS_PASSWORD_HASHER": FAST_HASHER,
    }
    for var in ("SAAS_DATABASE_URL", "SAAS_REDIS_URL", "SAAS_S3_ENDPOINT"):
        assert not os.environ.get(var), f"{var} must not leak into the embedded-mode test"
    app = create_app(overrides)
    result = CliRunner().invoke(_init_cmd(), obj=_script_info(app))
    assert result.exit_code == 0, result.output
    with app.app_context():
        yield app
        db.session.remove()
