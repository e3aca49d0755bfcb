"""Tenant isolation, swept over every route that takes an object reference.

For each rule of `app.url_map` with a variable part (`<uuid:token_id>`, `<token>`, …) and each
of its methods, an authenticated account of commune B — a session cookie on B's host for pages,
a bearer token of B for /api/ — asks for commune A's object. The answer must be exactly the
answer for an object that does not exist: 404 (or, for the few routes listed in
UNKNOWN_IS_NOT_404, the same non-404 answer), with the same JSON error code. A positive control
asks for B's own object and must get a different answer, so a route that always says 404 proves
nothing and fails the sweep.

Routes are discovered, not listed: a new route with an id is covered without editing this file,
and fails with a clear message until OBJECT_FACTORIES knows how to create its object. A feature
declares the factories for its objects in tests/<feature>/isolation_factories.py (same dict
names as below; they are merged in).
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Blueprint, Flask
from werkzeug.routing import Rule

from saas.extensions import db
from saas.tenancy.context import tenant_context
from saas.tenancy.models import Tenant
from tests.conftest import BASE_DOMAIN, HostClient

# -- registries: extend these when a feature adds a route with an object reference --------------

Factory = Callable[["SweepEnv", Tenant, object], dict[str, str]]


def _api_token(env: SweepEnv, tenant: Tenant, user) -> dict[str, str]:
    """An API token of `user` in `tenant` (the token routes only show the caller's own)."""
    from saas.auth.tokens import create_token

    _secret, token = create_token(user, tenant, "balayage")
    token_id = str(token.id)
    db.session.commit()
    return {"token_id": token_id}


def _reset_link(env: SweepEnv, tenant: Tenant, user) -> dict[str, str]:
    """A password-reset link minted on `tenant`'s host for `user`."""
    from saas.auth.models import User
    from saas.auth.services import make_reset_token

    host, user_id = _host(tenant), user.id

    def mint() -> str:
        with env.app.test_request_context("/", base_url=f"http://{host}"):
            env.app.preprocess_request()
            return make_reset_token(db.session.get(User, user_id))

    return {"token": contextvars.Context().run(mint)}


@functools.cache
def _probe_job_kind():
    from saas.jobs import job_kind

    @job_kind("tests.isolation_probe")
    def probe() -> dict:
        """Never run: the sweep only needs a commune's job record."""
        return {}

    return probe


def _job(env: SweepEnv, tenant: Tenant, user) -> dict[str, str]:
    """A background job of `tenant`, enqueued by `user`."""
    from saas.jobs import enqueue

    with tenant_context(tenant, user):
        job_id = str(enqueue(_probe_job_kind()).id)
        db.session.commit()
    return {"job_id": job_id}


# Keyed by argument name, or by "endpoint:argument" to override one route. A factory returns the
# values of every argument it knows (a nested object's factory may return its parent's id too).
OBJECT_FACTORIES: dict[str, Factory] = {
    "token_id": _api_token,
    "job_id": _job,
    "auth.reset_password:token": _reset_link,
}

# Routes that carry no tenant object, each with the reason.
EXEMPT: dict[str, str] = {
    "static": "packaged assets, identical for every commune",
}
# URL prefixes exempt as a whole (requests there are not made by a commune's account).
EXEMPT_PATHS: dict[str, str] = {
    "/console/": "the intercommunal console (its own host, platform administrators only) sees "
                 "every commune by design",
}

# Routes whose answer to an unknown reference is not a 404; A's reference must get that same answer.
UNKNOWN_IS_NOT_404: dict[str, str] = {
    "auth.reset_password": "an unknown, expired or foreign reset link shows the 'invalid link' page (400)",
}

# Bodies for write requests: {(endpoint, METHOD): callable(values) -> dict}. JSON for /api/,
# form fields for pages. Without one, an empty object / empty form is sent.
REQUEST_BODIES: dict[tuple[str, str], Callable[[dict[str, str]], dict | bytes]] = {
    ("api.update_token", "PATCH"): lambda values: {"name": "renommé par le balayage"},
}

# Headers for requests: {(endpoint, METHOD): callable(values) -> dict}, for a protocol that
# checks its own headers before any lookup (tus: Tus-Resumable). A body given as bytes is sent
# raw, with the Content-Type set here.
REQUEST_HEADERS: dict[tuple[str, str], Callable[[dict[str, str]], dict[str, str]]] = {}

_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _load_feature_registries() -> list[str]:
    """Merge the registries of every tests/<feature>/isolation_factories.py.

    Each feature keeps the factories for its own objects beside its tests, as dicts with the
    names above (OBJECT_FACTORIES, REQUEST_BODIES, REQUEST_HEADERS, UNKNOWN_IS_NOT_404, EXEMPT,
    EXEMPT_PATHS).
    A key declared twice is an error, so two features cannot silently shadow each other.
    """
    tests_dir = Path(__file__).resolve().parents[1]
    loaded = []
    for path in sorted(tests_dir.glob("*/isolation_factories.py")):
        module = importlib.import_module(f"tests.{path.parent.name}.isolation_factories")
        for name in ("OBJECT_FACTORIES", "REQUEST_BODIES", "REQUEST_HEADERS", "UNKNOWN_IS_NOT_404",
                     "EXEMPT", "EXEMPT_PATHS"):
            extra = getattr(module, name, {})
            target = globals()[name]
            clash = set(extra) & set(target)
            if clash:
                raise RuntimeError(f"{path}: {name} redefines {sorted(clash)}")
            target.update(extra)
        loaded.append(str(path.relative_to(tests_dir.parent)))
    return loaded


FEATURE_REGISTRIES = _load_feature_registries()


# -- the sweep --------------------------------------------------------------------------------


def _host(tenant: Tenant) -> str:
    return f"{tenant.slug}.{BASE_DOMAIN}"


@dataclass
class SweepEnv:
    app: Flask
    tenant_a: Tenant
    tenant_b: Tenant
    owner_a: object  # a commune admin of A, owner of A's objects
    requester_b: object  # a commune admin of B, the one asking
    token_b: str = ""
    page_client: HostClient | None = None
    api_client: HostClient | None = None
    csrf_b: str = ""

    def setup(self) -> SweepEnv:
        from saas.auth.tokens import create_token

        self.token_b, _row = create_token(self.requester_b, self.tenant_b, "balayage B")
        db.session.commit()
        self.api_client = self._client()
        self.api_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {self.token_b}"
        self.page_client = self._client()
        cookie, self.csrf_b = _session_cookie(self.app, self.tenant_b, self.requester_b)
        name, _sep, value = cookie.partition("=")
        self.page_client.set_cookie(name, value, domain=_host(self.tenant_b))
        # The commune's home page needs a login: proves the page requests are authenticated.
        home = self.page_client.get("/")
        if home.status_code != 200:
            raise AssertionError(f"the sweep could not log commune B's account in: GET / "
                                 f"answered {home.status_code} {home.headers.get('Location', '')}")
        return self

    def _client(self) -> HostClient:
        client = HostClient(self.app, self.app.response_class, use_cookies=True)
        client.base_host = _host(self.tenant_b)
        return client


def _session_cookie(app: Flask, tenant: Tenant, user) -> tuple[str, str]:
    """Log `user` in on `tenant`'s host through the real login code; return (cookie, CSRF token)."""
    from flask import session
    from flask_wtf.csrf import generate_csrf

    from saas.auth.models import User
    from saas.auth.services import complete_login

    host, user_id = _host(tenant), user.id

    def run() -> tuple[str, str]:
        with app.test_request_context("/", base_url=f"http://{host}"):
            app.preprocess_request()
            complete_login(db.session.get(User, user_id), totp_ok=True, method="sweep")
            csrf = generate_csrf()
            response = app.response_class()
            app.session_interface.save_session(app, session._get_current_object(), response)
            cookie = response.headers["Set-Cookie"].split(";", 1)[0]
            return cookie, csrf

    return contextvars.Context().run(run)


def _factory(endpoint: str, arg: str) -> Factory | None:
    return OBJECT_FACTORIES.get(f"{endpoint}:{arg}") or OBJECT_FACTORIES.get(arg)


def _exempt(rule: Rule) -> bool:
    return rule.endpoint in EXEMPT or any(rule.rule.startswith(p) for p in EXEMPT_PATHS)


def _objects(env: SweepEnv, rule: Rule, tenant: Tenant, user) -> dict[str, str]:
    values: dict[str, str] = {}
    for arg in sorted(rule.arguments):
        if arg not in values:
            values.update(_factory(rule.endpoint, arg)(env, tenant, user))
    return values


def _unknown(rule: Rule) -> dict[str, str]:
    values = {}
    for arg in rule.arguments:
        converter = type(rule._converters[arg]).__name__.lower()
        if "uuid" in converter:
            values[arg] = str(uuid.uuid4())
        elif "integer" in converter or "number" in converter:
            values[arg] = "987654321"
        else:
            values[arg] = "inconnu-" + uuid.uuid4().hex
    return values


@dataclass(frozen=True)
class Answer:
    status: int
    code: str | None  # the JSON error code, when the answer is a JSON error

    def __str__(self) -> str:
        return f"{self.status}" + (f" {self.code}" if self.code else "")


def _ask(env: SweepEnv, rule: Rule, method: str, values: dict[str, str]) -> Answer:
    path = rule.rule
    for arg, value in values.items():
        path = path.replace(f"<{arg}>", value)
        for conv in ("uuid", "int", "string", "path", "float"):
            path = path.replace(f"<{conv}:{arg}>", value)
    if "<" in path:
        raise AssertionError(f"could not build a URL for {rule.rule} from {values}")
    body = REQUEST_BODIES.get((rule.endpoint, method), lambda v: {})(values)
    headers = REQUEST_HEADERS.get((rule.endpoint, method), lambda v: {})(values)
    if path.startswith("/api/"):
        kwargs = {"json": body} if method in _WRITE_METHODS - {"DELETE"} else {}
        if isinstance(body, bytes):
            kwargs = {"data": body}
        response = env.api_client.open(path, method=method, headers=headers, **kwargs)
    else:
        kwargs = {"headers": headers}
        if method in _WRITE_METHODS:
            kwargs = {"data": {"csrf_token": env.csrf_b, **body},
                      "headers": {"X-CSRFToken": env.csrf_b, **headers}}
        response = env.page_client.open(path, method=method, **kwargs)
    code = None
    if response.mimetype == "application/json" and response.status_code >= 400:
        code = (response.get_json(silent=True) or {}).get("error", {}).get("code")
    return Answer(response.status_code, code)


def sweep(env: SweepEnv, *, only: Callable[[Rule], bool] = lambda rule: True) -> tuple[list[str], int]:
    """Check every rule with arguments; return (problems, number of requests checked)."""
    problems: list[str] = []
    checked = 0
    for rule in sorted(env.app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if not rule.arguments or _exempt(rule) or not only(rule):
            continue
        label = f"{rule.rule} ({rule.endpoint})"
        missing = sorted(a for a in rule.arguments if _factory(rule.endpoint, a) is None)
        if missing:
            problems.append(
                f"{label}: no way to create commune A's object for {', '.join(missing)} — add a "
                f"factory to OBJECT_FACTORIES in tests/<feature>/isolation_factories.py (see "
                f"tests/tenancy/test_isolation.py), or, if the route carries no tenant object, "
                f"an entry with a reason to EXEMPT")
            continue
        expected_not_404 = rule.endpoint in UNKNOWN_IS_NOT_404
        for method in sorted(rule.methods - {"OPTIONS"}):
            values_a = _objects(env, rule, env.tenant_a, env.owner_a)
            values_b = _objects(env, rule, env.tenant_b, env.requester_b)
            unknown = _ask(env, rule, method, _unknown(rule))
            if unknown.status != 404 and not expected_not_404:
                problems.append(f"{method} {label}: an unknown reference answers {unknown}, not 404")
            # All of A's references, then each of A's references among B's own (nested routes).
            attempts = [values_a]
            if len(rule.arguments) > 1:
                attempts += [{**values_b, arg: values_a[arg]} for arg in sorted(rule.arguments)]
            for values in attempts:
                answer = _ask(env, rule, method, values)
                checked += 1
                if answer != unknown:
                    problems.append(f"{method} {label}: commune B asking for A's {values} got "
                                    f"{answer}, but an unknown reference gets {unknown}")
            # Positive control, last (it may delete B's object).
            own = _ask(env, rule, method, values_b)
            if own == unknown:
                problems.append(
                    f"{method} {label}: B's own object also answers {own}, so the sweep proves "
                    f"nothing here — fix its factory or add a body to REQUEST_BODIES")
    return problems, checked


# -- the tests --------------------------------------------------------------------------------


@pytest.fixture
def sweep_env(app, tenant_a, tenant_b, make_user):
    def build(target_app: Flask) -> SweepEnv:
        return SweepEnv(target_app, tenant_a, tenant_b, owner_a, requester_b).setup()

    owner_a = make_user(tenant_a, "admin")
    requester_b = make_user(tenant_b, "admin")
    return build


def test_commune_b_never_reaches_commune_a_objects(app, sweep_env):
    env = sweep_env(app)
    problems, checked = sweep(env)
    assert problems == [], "\n".join(problems)
    # The sweep really ran: today at least the API token routes (GET, HEAD, PATCH, DELETE).
    assert checked >= 4


def test_every_swept_route_is_reachable_in_the_test_environment(app):
    routes = [r for r in app.url_map.iter_rules() if r.arguments and not _exempt(r)]
    assert routes, "no route with an object reference: the sweep would prove nothing"
    for reason in (*EXEMPT.values(), *EXEMPT_PATHS.values(), *UNKNOWN_IS_NOT_404.values()):
        assert reason.strip()


# -- the sweep catches what it should: a second app with deliberately broken routes ------------


@pytest.fixture(scope="module")
def broken_app(app_overrides):
    from saas import create_app
    from saas.auth.models import ApiToken

    bp = Blueprint("leaktest", __name__, url_prefix="/leaktest")

    @bp.get("/tokens/<uuid:token_id>")
    def leaky(token_id):
        # The classic mistake: a lookup that walks every commune instead of the current one.
        for tenant in db.session.execute(db.select(Tenant)).scalars().all():
            with tenant_context(tenant):
                if db.session.get(ApiToken, token_id) is not None:
                    return {"found": True}
        return {"error": {"code": "not_found", "message": "introuvable"}}, 404

    @bp.get("/always-404/<uuid:token_id>")
    def vacuous(token_id):
        return {"error": {"code": "not_found", "message": "introuvable"}}, 404

    @bp.get("/mystery/<thing_ref>")
    def mystery(thing_ref):
        return {"ok": True}

    broken = create_app(app_overrides)
    broken.register_blueprint(bp)
    return broken


def test_the_sweep_reports_a_leak_a_vacuous_route_and_a_missing_factory(app, broken_app, sweep_env):
    env = sweep_env(broken_app)
    problems, _checked = sweep(env, only=lambda rule: rule.endpoint.startswith("leaktest."))
    report = "\n".join(problems)
    assert "GET /leaktest/tokens/<uuid:token_id> (leaktest.leaky): commune B asking for A's" in report
    assert "got 200" in report
    assert "(leaktest.vacuous): B's own object also answers 404" in report
    assert "(leaktest.mystery): no way to create commune A's object for thing_ref" in report
    assert "OBJECT_FACTORIES" in report


# -- the host → tenant cache (saas/tenancy/resolver.py) keeps the first wall -------------------


@pytest.fixture
def tenant_cache(app, monkeypatch):
    """Turn the per-process host → tenant cache on (tests run with it off by default)."""
    monkeypatch.setitem(app.config, "TENANT_CACHE_SECONDS", 30)
    return app.extensions["saas_tenant_cache"]


def _me(app, tenant, token: str):
    client = HostClient(app, app.response_class, use_cookies=True)
    client.base_host = _host(tenant) if isinstance(tenant, Tenant) else tenant
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def _tenant_lookups(app, fn) -> int:
    """How many host → tenant lookups (by slug) the database saw while running fn."""
    import sqlalchemy as sa

    seen: list[str] = []

    def spy(conn, cursor, statement, *args):
        if "FROM tenants" in statement and "tenants.slug =" in statement:
            seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", spy)
    try:
        fn()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", spy)
    return len(seen)


def test_cache_serves_each_host_its_own_tenant(app, tenant_cache, tenant_a, tenant_b, make_user):
    from saas.auth.tokens import create_token

    tokens = {}
    for tenant in (tenant_a, tenant_b):
        user = make_user(tenant, "agent")
        tokens[tenant.slug], _row = create_token(user, tenant, "cache")
        db.session.commit()
    assert _me(app, tenant_a, tokens["commune-a"]).get_json()["tenant"]["slug"] == "commune-a"
    # Served from the cache now: no tenant query, and still the right commune per host.
    answers = []
    queries = _tenant_lookups(app, lambda: answers.extend(
        _me(app, t, tokens[t.slug]) for t in (tenant_a, tenant_a, tenant_b, tenant_b)))
    assert queries == 1  # only B's first request
    assert [r.get_json()["tenant"]["slug"] for r in answers] == ["commune-a"] * 2 + ["commune-b"] * 2
    # A's token is still refused on B's host.
    assert _me(app, tenant_b, tokens["commune-a"]).status_code == 401


def test_suspension_through_the_orm_applies_at_once(app, tenant_cache, tenant_a, make_user):
    from saas.auth.tokens import create_token
    from saas.tenancy.models import TenantStatus

    token, _row = create_token(make_user(tenant_a, "agent"), tenant_a, "cache")
    db.session.commit()
    assert _me(app, tenant_a, token).status_code == 200
    tenant_a.status = TenantStatus.SUSPENDED
    db.session.commit()
    response = _me(app, tenant_a, token)
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "tenant_suspended"


def test_writes_behind_the_orm_apply_within_the_ttl(app, tenant_cache, tenant_a, make_user,
                                                   pg_database, monkeypatch):
    import time

    import sqlalchemy as sa

    from saas.auth.tokens import create_token

    monkeypatch.setitem(app.config, "TENANT_CACHE_SECONDS", 0.2)
    token, _row = create_token(make_user(tenant_a, "agent"), tenant_a, "cache")
    db.session.commit()
    assert _me(app, tenant_a, token).get_json()["tenant"]["name"] == "Commune A"
    engine = sa.create_engine(pg_database.owner_url)  # another process, as far as we know
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE tenants SET name = 'Commune A bis' WHERE slug = 'commune-a'"))
    finally:
        engine.dispose()
    assert _me(app, tenant_a, token).get_json()["tenant"]["name"] == "Commune A"  # cached
    time.sleep(0.3)
    assert _me(app, tenant_a, token).get_json()["tenant"]["name"] == "Commune A bis"


def test_unknown_hosts_are_not_cached(app, tenant_cache, make_tenant, make_user, pg_database):
    from saas.auth.tokens import create_token

    assert _me(app, "plus-tard.mutualis.test", "mut_" + "x" * 43).status_code == 404
    tenant = make_tenant("plus-tard")
    token, _row = create_token(make_user(tenant, "agent"), tenant, "cache")
    db.session.commit()
    assert _me(app, tenant, token).status_code == 200


def test_custom_domains_are_trusted_without_scanning_them_all(app, tenant_a):
    from saas.tenancy.models import TenantDomain

    db.session.add(TenantDomain(domain="demarches.commune-a.fr", tenant_id=tenant_a.id))
    db.session.commit()
    app.extensions["saas_domain_cache"].refresh()
    trusted = app.config["TRUSTED_HOSTS"]
    assert trusted.for_environ({"HTTP_HOST": "demarches.commune-a.fr:8443"})[-1] == "demarches.commune-a.fr"
    assert "evil.example" not in trusted.for_environ({"HTTP_HOST": "evil.example"})
    assert len(trusted.for_environ({"HTTP_HOST": "[::1]:8000"})) == 5
    client = HostClient(app, app.response_class, use_cookies=True)
    client.base_host = "demarches.commune-a.fr"
    assert client.get("/api/v1/openapi.json").status_code == 200
    client.base_host = "evil.example"
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "unknown_host"


def test_requests_share_one_immutable_snapshot_of_their_commune(app, tenant_cache, tenant_a,
                                                               make_user):
    """g.tenant is a read-only view outside any session: one per host and TTL, shared by
    requests, that no request can alter for the next ones."""
    import dataclasses

    from flask import g, request_finished

    from saas.auth.tokens import create_token
    from saas.tenancy.models import TenantSnapshot

    token, _row = create_token(make_user(tenant_a, "agent"), tenant_a, "cache")
    db.session.commit()
    seen = []

    def capture(sender, response, **extra):
        # Nothing was attached to the request's session to learn the commune.
        seen.append((g.tenant, any(isinstance(o, Tenant) for o in db.session)))

    with request_finished.connected_to(capture, app):
        assert _me(app, tenant_a, token).status_code == 200
        assert _me(app, tenant_a, token).status_code == 200
    (snapshot, attached), (again, attached_again) = seen
    assert isinstance(snapshot, TenantSnapshot) and again is snapshot
    assert not attached and not attached_again
    assert snapshot == tenant_a and snapshot.is_active and snapshot.modules == tuple(tenant_a.modules)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.status = "suspended"
    with pytest.raises(TypeError):
        snapshot.branding["primary_color"] = "#ff0000"
    with pytest.raises(AttributeError):
        snapshot.modules.append("paie")
