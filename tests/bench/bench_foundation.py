"""Foundation benchmark: what tenancy costs per request, and whether 1,000 communes slow it down.

Run: `python tests/bench/bench_foundation.py` (or `make bench`). Needs the local PostgreSQL the
tests use (SAAS_TEST_PG_ADMIN_URL). A private database is created, migrated through `saas init`,
and dropped at the end. Prints figures and PASS/FAIL per target; exits 0 even when a target is
missed (the figures are the output), non-zero on errors.

(a) Tenancy overhead. `GET /api/v1/me` with a bearer token on a commune's host — host → tenant
    resolution, ORM scoping, `set_config` per transaction, RLS policies — against the same
    handler without tenancy: a route registered only in this process that skips host resolution,
    reads the token, its user, membership and commune in one query with `all_tenants=True`,
    through a role that bypasses RLS, with the scoping hooks detached. Both go through the same
    Flask app and WSGI test client, and both keep what is not tenancy: the rate-limit wrapper,
    the session life cycle and its read-only COMMIT (saas/transactions.py, which keeps
    psycopg's prepared statements alive in both arms). The two arms alternate in rounds so
    machine drift cancels out. The platform's token cache (a checked token is reused for 5 s)
    is off in (a) and (b): with it the tenancy arm would skip the token query the baseline runs,
    and the ratio would measure the cache, not tenancy. Target: median overhead ≤ 10 %.
(b) Scale. Latency of `GET /api/v1/me` with 3 communes, then with 1,000 (bulk-inserted with
    members, tokens, custom domains and audit rows, so every index the request uses is
    populated), on the commune sub-domain and on a custom domain. Target: p50 ratio ≤ 1.1.
(c) One authenticated read. `GET /api/v1/documents/{id}` with a bearer token, served by the
    platform under gunicorn (2 sync workers, as `saas serve`), against a bare Flask endpoint
    under the same gunicorn doing one raw psycopg SELECT of the same row as the same app role
    (tests/bench/read_apps.py), and a bare JSON ping for scale. `wrk` (installed by `make
    bench` when missing) keeps 16 connections busy for BENCH_READ_SECONDS per run; the arms
    alternate over BENCH_READ_ROUNDS runs and the median requests/s are compared. Neither arm
    has a rate limit (the platform's 600 per minute per token would stop wrk at once); the
    platform runs without Redis, as the embedded default does. Target: ratio ≥ 0.35.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from flask import jsonify, request  # noqa: E402
from flask.cli import ScriptInfo  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from tests.support.postgres import ADMIN_URL, create_test_database, drop_test_database  # noqa: E402

BASE_DOMAIN = "mutualis.test"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "60"))
PER_ROUND = int(os.environ.get("BENCH_PER_ROUND", "100"))
BLOCK = 50  # requests of one arm in a row, alternating arms within a round
LATENCY_SAMPLES = int(os.environ.get("BENCH_LATENCY_SAMPLES", "3000"))
# (b) alternates databases every few requests: the machine's drift (other processes, CPU
# steal on a shared host) then weighs on both sides alike; blocks of 50 let it tilt one side.
LATENCY_BLOCK = 5
TOTAL_TENANTS = 1000
OVERHEAD_TARGET = 10.0  # percent
SCALE_TARGET = 1.10  # p50 ratio
READ_SECONDS = int(os.environ.get("BENCH_READ_SECONDS", "8"))
READ_ROUNDS = int(os.environ.get("BENCH_READ_ROUNDS", "3"))
READ_CONNECTIONS = 16
READ_TARGET = 0.35  # platform read / one bare SELECT, requests per second


def main() -> int:
    started = time.perf_counter()
    small, large = create_test_database("bench"), create_test_database("bench1k")
    try:
        with tempfile.TemporaryDirectory(prefix="mutualis-bench-") as instance:
            run(small, large, Path(instance))
    finally:
        drop_test_database(small)
        drop_test_database(large)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


# -- setup --------------------------------------------------------------------------------------


def build_app(tdb, instance: str):
    from saas import create_app
    from saas.cli import main as saas_main

    app = create_app({
        "INSTANCE_PATH": instance,
        "DATABASE_URL": tdb.app_url,
        "DATABASE_OWNER_URL": tdb.owner_url,
        "BASE_DOMAIN": BASE_DOMAIN,
        "SECRET_KEY": "bench-secret-key",
        "PUBLIC_PORT": "",
        # The per-token limit (600/min) would stop the benchmark; both arms run without it.
        "RATELIMIT_ENABLED": False,
        "JOBS_EMBEDDED_RUNNER": "off",
    })
    result = CliRunner().invoke(saas_main, ["init"], obj=ScriptInfo(create_app=lambda: app))
    if result.exit_code != 0:
        raise RuntimeError(f"saas init failed: {result.output}\n{result.exception!r}")
    return app


def seed_three(app) -> dict:
    """Three communes with a member each and an API token; one custom domain."""
    from saas.auth.models import Membership, User
    from saas.auth.tokens import create_token
    from saas.extensions import db
    from saas.tenancy.context import tenant_context
    from saas.tenancy.models import Tenant, TenantDomain

    seeded = {}
    with app.app_context():
        for n in range(1, 4):
            tenant = Tenant(slug=f"commune-{n}", name=f"Commune {n}", kind="commune",
                            insee=f"44{n:03d}", siren=_siren(n), population=800, departement="44",
                            origins=[], modules=["ged"], quota_bytes=1 << 30, branding={})
            db.session.add(tenant)
            db.session.commit()
            user = User(email=f"agent{n}@commune-{n}.fr", name=f"Agent {n}", password_hash=None)
            db.session.add(user)
            db.session.commit()
            with tenant_context(tenant):
                db.session.add(Membership(user_id=user.id, role="agent", tenant_id=tenant.id))
                db.session.flush()
                token, _row = create_token(user, tenant, "bench", actor="bench")
                db.session.commit()
            seeded[n] = {"slug": tenant.slug, "token": token}
        db.session.add(TenantDomain(domain="demarches.commune-1.fr",
                                    tenant_id=db.session.execute(
                                        sa.select(Tenant.id).where(Tenant.slug == "commune-1")
                                    ).scalar_one()))
        db.session.commit()
        app.extensions["saas_domain_cache"].refresh()
    return seeded


def _siren(n: int) -> str:
    from saas.tenancy.codes import luhn_ok

    base = f"21{n:06d}"
    return next(base + str(c) for c in range(10) if luhn_ok(base + str(c)))


def bulk_insert(tdb, count: int) -> None:
    """Communes 4..count, each with 3 members, 1 token, 1 custom domain and 20 audit rows.

    Written as a superuser straight in SQL: fast, and RLS (forced even for the owner) would
    otherwise need one transaction per commune. The audit rows' hashes are placeholders: they
    are there for the indexes, not for `saas audit verify`.
    """
    url = sa.engine.make_url(ADMIN_URL).set(database=tdb.name)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO tenants (id, slug, name, kind, insee, siren, population, departement,
                                 arrondissement, origins, status, modules, quota_bytes, branding,
                                 created_at, updated_at)
            SELECT gen_random_uuid(), 'bulk-' || n, 'Commune ' || n, 'commune',
                   lpad((n % 100000)::text, 5, '0'), lpad((300000000 + n)::text, 9, '0'), 500,
                   '44', 1, '[]', 'active', '["ged"]', 1073741824, '{}', now(), now()
              FROM generate_series(4, :count) AS n
        """), {"count": count})
        conn.execute(sa.text("""
            INSERT INTO tenant_domains (domain, tenant_id)
            SELECT 'demarches.' || slug || '.fr', id FROM tenants WHERE slug LIKE 'bulk-%'
        """))
        conn.execute(sa.text("""
            INSERT INTO users (id, email, name, is_platform_admin, active, session_version,
                               failed_logins, created_at, updated_at)
            SELECT gen_random_uuid(), 'p' || k || '@' || t.slug || '.fr', 'Personne ' || k,
                   false, true, 1, 0, now(), now()
              FROM tenants t CROSS JOIN generate_series(1, 3) AS k WHERE t.slug LIKE 'bulk-%'
        """))
        conn.execute(sa.text("""
            INSERT INTO memberships (id, tenant_id, user_id, role, created_at, updated_at)
            SELECT gen_random_uuid(), t.id, u.id, 'agent', now(), now()
              FROM users u JOIN tenants t ON split_part(u.email, '@', 2) = t.slug || '.fr'
             WHERE t.slug LIKE 'bulk-%'
        """))
        conn.execute(sa.text("""
            INSERT INTO api_tokens (id, tenant_id, user_id, name, token_hash, prefix, created_at)
            SELECT gen_random_uuid(), m.tenant_id, m.user_id, 'bulk',
                   encode(sha256(m.id::text::bytea), 'hex'), 'mut_bulk', now()
              FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email LIKE 'p1@bulk-%'
        """))
        conn.execute(sa.text("""
            INSERT INTO audit_events (id, tenant_id, seq, created_at, actor, action, data,
                                      prev_hash, hash)
            SELECT gen_random_uuid(), t.id, s, now(), 'bench', 'bench.seed', '{}',
                   repeat('0', 64), repeat('0', 64)
              FROM tenants t CROSS JOIN generate_series(1, 20) AS s WHERE t.slug LIKE 'bulk-%'
        """))
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()


# -- the baseline: the same answer, no tenancy ---------------------------------------------------


def install_baseline(app, tdb) -> None:
    """Register GET /bench/me: /api/v1/me's answer with host resolution, scoping and RLS removed."""
    from saas.api import registry
    from saas.auth.models import ApiToken, Membership, User
    from saas.auth.tokens import hash_token, looks_like_token
    from saas.extensions import db, limiter
    from saas.tenancy import resolver
    from saas.tenancy.models import Tenant, TenantStatus

    # A superuser bypasses RLS: the baseline pays for no policy and needs no set_config.
    options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    engine = sa.create_engine(sa.engine.make_url(ADMIN_URL).set(database=tdb.name), **options)
    # The same columns as the platform's one-round-trip token check (saas.auth.tokens), with the
    # commune joined on explicitly instead of resolved from the host and scoped.
    stmt = (
        sa.select(ApiToken.revoked_at, User.id, User.email, User.name, User.active,
                  Membership.role, Tenant.slug, Tenant.name.label("tenant_name"), Tenant.insee,
                  Tenant.status)
        .join(User, User.id == ApiToken.user_id)
        .join(Tenant, Tenant.id == ApiToken.tenant_id)
        .outerjoin(Membership, sa.and_(Membership.user_id == ApiToken.user_id,
                                       Membership.tenant_id == ApiToken.tenant_id))
        .where(ApiToken.token_hash == sa.bindparam("digest"))
        .execution_options(all_tenants=True)
    )

    def bare_me():
        scheme, _sep, value = request.headers.get("Authorization", "").partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not looks_like_token(value):
            return jsonify({"error": {"code": "unauthorized", "message": "jeton"}}), 401
        # The request's own session (same life cycle as the API's), bound to the bypass engine.
        row = db.session.execute(stmt, {"digest": hash_token(value)},
                                 bind_arguments={"bind": engine}).first()
        if row is None:
            return jsonify({"error": {"code": "unauthorized", "message": "jeton"}}), 401
        if (row.revoked_at or not row.active or row.role is None
                or row.status != TenantStatus.ACTIVE):
            return jsonify({"error": {"code": "unauthorized", "message": "jeton"}}), 401
        return {
            "user": {"id": str(row.id), "email": row.email, "name": row.name},
            "tenant": {"slug": row.slug, "name": row.tenant_name, "insee": row.insee},
            "roles": [row.role],
        }

    # The API's per-token rate limit wraps every API view: the baseline carries it too, so the
    # difference measured is tenancy alone.
    limited = limiter.shared_limit(registry._rate_limit_value, scope="api",
                                   key_func=registry.rate_limit_key)(bare_me)
    app.add_url_rule("/bench/me", "bench_bare_me", limited)
    # Skip host → tenant resolution for this endpoint, as for the health probes.
    resolver._HOST_FREE_ENDPOINTS.add("bench_bare_me")


class TokenCacheOff:
    """Every API request checks its token in the database (saas.auth.tokens keeps nothing)."""

    def __enter__(self):
        from saas.auth import tokens

        self.saved = tokens.cache_ttl
        tokens.cache_ttl = lambda: 0.0
        tokens.invalidate_token_cache()

    def __exit__(self, *exc):
        from saas.auth import tokens

        tokens.cache_ttl = self.saved


class ScopingHooksDetached:
    """Detach the scoping hooks (ORM filter, RLS settings before statements) for the baseline."""

    def __enter__(self):
        from saas.tenancy import scoping

        self.hooks = [(Session, "do_orm_execute", scoping._on_execute),
                      (sa.engine.Engine, "before_cursor_execute", scoping._before_cursor_execute)]
        for target, name, fn in self.hooks:
            event.remove(target, name, fn)

    def __exit__(self, *exc):
        for target, name, fn in self.hooks:
            event.listen(target, name, fn)


# -- measuring ----------------------------------------------------------------------------------


def batch(client, path: str, host: str, token: str, n: int) -> list[float]:
    """Send n GETs; return each one's duration in seconds (and fail loudly on a non-200)."""
    headers = {"Authorization": f"Bearer {token}"}
    base_url = f"http://{host}"
    durations = []
    for _ in range(n):
        t0 = time.perf_counter()
        response = client.get(path, base_url=base_url, headers=headers)
        durations.append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise RuntimeError(f"{path} on {host}: {response.status_code} {response.data[:300]!r}")
    return durations


def _trimmed_mean(samples: list[float], trim: float = 0.1) -> float:
    """Mean without the slowest `trim` share: drops requests preempted by other processes."""
    kept = sorted(samples)[: max(1, int(len(samples) * (1 - trim)))]
    return sum(kept) / len(kept)


def overhead(app, seeded) -> dict:
    """Alternate the two arms request by request, in rounds; compare per round."""
    client = app.test_client()
    host, token = f"{seeded[1]['slug']}.{BASE_DOMAIN}", seeded[1]["token"]
    headers, base_url = {"Authorization": f"Bearer {token}"}, f"http://{host}"
    tenancy = client.get("/api/v1/me", base_url=base_url, headers=headers)
    with ScopingHooksDetached():
        bare = client.get("/bench/me", base_url=base_url, headers=headers)
    if tenancy.status_code != 200 or tenancy.get_json() != bare.get_json():
        raise RuntimeError(f"the two arms disagree: {tenancy.get_json()} vs {bare.get_json()}")
    # Warm-up: pools, statement caches, Jinja/Babel lazies.
    batch(client, "/api/v1/me", host, token, 300)
    with ScopingHooksDetached():
        batch(client, "/bench/me", host, token, 300)

    def block(detached: bool, walls: list[float], cpus: list[float]) -> None:
        """BLOCK requests of one arm (detaching the hooks per request would disturb both arms)."""
        path = "/bench/me" if detached else "/api/v1/me"
        hooks = ScopingHooksDetached() if detached else None
        if hooks:
            hooks.__enter__()
        try:
            # Untimed first requests: re-attaching event hooks makes SQLAlchemy rebuild its
            # dispatch on next use, a one-off cost that belongs to neither arm.
            for _ in range(3):
                client.get(path, base_url=base_url, headers=headers)
            for _ in range(BLOCK):
                c0, w0 = time.process_time(), time.perf_counter()
                response = client.get(path, base_url=base_url, headers=headers)
                walls.append(time.perf_counter() - w0)
                cpus.append(time.process_time() - c0)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.data[:200]!r}")
        finally:
            if hooks:
                hooks.__exit__(None, None, None)

    ratios, cpu_ratios, all_t, all_b = [], [], [], []
    for r in range(ROUNDS):
        wall_t, wall_b, cpu_t, cpu_b = [], [], [], []
        for i in range(max(1, PER_ROUND // BLOCK)):
            arms = [(False, wall_t, cpu_t), (True, wall_b, cpu_b)]
            for detached, walls, cpus in (arms if (r + i) % 2 == 0 else arms[::-1]):
                block(detached, walls, cpus)
        ratios.append(_trimmed_mean(wall_t) / _trimmed_mean(wall_b))
        cpu_ratios.append(_trimmed_mean(cpu_t) / _trimmed_mean(cpu_b))
        all_t += wall_t
        all_b += wall_b
    med = statistics.median(ratios)
    return {
        "rps_tenancy": 1 / _trimmed_mean(all_t),
        "rps_bare": 1 / _trimmed_mean(all_b),
        "p50_tenancy": statistics.median(all_t),
        "p50_bare": statistics.median(all_b),
        "ratio": med,
        "overhead_pct": (med - 1) * 100,
        "ratio_q1": statistics.quantiles(ratios, n=4)[0],
        "ratio_q3": statistics.quantiles(ratios, n=4)[2],
        "cpu_overhead_pct": (statistics.median(cpu_ratios) - 1) * 100,
    }


def latency(pair: dict) -> dict:
    """p50/p95 of GET /api/v1/me on each database, alternating every LATENCY_BLOCK requests."""
    out: dict = {}
    for label, host in (("sous-domaine", f"commune-1.{BASE_DOMAIN}"),
                        ("domaine propre", "demarches.commune-1.fr")):
        samples: dict[str, list[float]] = {name: [] for name in pair}
        for app, seeded in pair.values():  # warm-up
            batch(app.test_client(), "/api/v1/me", host, seeded[1]["token"], 100)
        clients = {name: app.test_client() for name, (app, _seeded) in pair.items()}
        for r in range(LATENCY_SAMPLES // LATENCY_BLOCK):
            names = list(pair) if r % 2 == 0 else list(pair)[::-1]
            for name in names:
                _app, seeded = pair[name]
                samples[name] += batch(clients[name], "/api/v1/me", host, seeded[1]["token"],
                                       LATENCY_BLOCK)
        out[label] = {name: {"p50": _pct(sorted(v), 50), "p95": _pct(sorted(v), 95)}
                      for name, v in samples.items()}
    return out


# -- (c) one authenticated read under gunicorn --------------------------------------------------


def seed_document(app, seeded) -> tuple[str, str]:
    """A PDF in commune-1's GED, deposited through the API; returns (document id, tenant id)."""
    from tests.ged.conftest import make_pdf

    with app.app_context():
        from saas.extensions import db
        from saas.storage import get_store
        from saas.tenancy.models import Tenant

        tenant = db.session.execute(
            sa.select(Tenant).where(Tenant.slug == seeded[1]["slug"])).scalar_one()
        tenant_id = tenant.id
        get_store().ensure_bucket(tenant)
        db.session.remove()
    client = app.test_client()
    host = f"{seeded[1]['slug']}.{BASE_DOMAIN}"
    response = client.post("/api/v1/documents", base_url=f"http://{host}",
                           headers={"Authorization": f"Bearer {seeded[1]['token']}"},
                           data={"file": (io.BytesIO(make_pdf()), "budget.pdf"),
                                 "title": "Budget primitif", "type": "deliberation"},
                           content_type="multipart/form-data")
    if response.status_code != 201:
        raise RuntimeError(f"deposit failed: {response.status_code} {response.data[:300]!r}")
    return response.get_json()["id"], str(tenant_id)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gunicorn(target: str, env: dict) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "--workers", "2", "--worker-class", "sync",
         "--bind", f"127.0.0.1:{port}", "--config", "python:saas.gunicorn_conf",
         "--log-level", "warning", target],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"gunicorn {target} died: {proc.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"gunicorn {target} did not listen")


# Prints the first non-200 answers, so that a failing arm says why.
_WRK_SCRIPT = """
local shown = 0
response = function(status, headers, body)
  if status ~= 200 and shown < 2 then
    shown = shown + 1
    io.write("answer " .. status .. ": " .. body:sub(1, 300) .. "\\n")
  end
end
"""


def _wrk(port: int, path: str, headers: dict[str, str]) -> float:
    """Requests per second wrk measured; fails on any non-2xx answer or socket error."""
    script = Path(tempfile.gettempdir()) / "mutualis-bench-wrk.lua"
    script.write_text(_WRK_SCRIPT)
    args = [shutil.which("wrk") or "wrk", "-t2", f"-c{READ_CONNECTIONS}", f"-d{READ_SECONDS}s",
            "-s", str(script)]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run(args + [f"http://127.0.0.1:{port}{path}"], capture_output=True,
                         text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk {path}: errors\n{out}")
    return float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))


def read_pair(tdb, instance: Path, document_id: str, tenant_id: str, token: str) -> dict:
    """Median requests/s of the platform's read, the bare SELECT and a ping, alternating runs."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is missing: `make bench` installs it (apt-get install wrk)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAAS_")}
    env.update({"PYTHONPATH": str(ROOT), "SAAS_DATABASE_URL": tdb.app_url,
                "SAAS_INSTANCE_PATH": str(instance), "SAAS_BASE_DOMAIN": BASE_DOMAIN,
                "SAAS_SECRET_KEY": "bench-secret-key", "SAAS_PUBLIC_PORT": "",
                "SAAS_LOG_LEVEL": "WARNING", "SAAS_JOBS_EMBEDDED_RUNNER": "off",
                "BENCH_TENANT_ID": tenant_id,
                "BENCH_DSN": tdb.app_url.replace("postgresql+psycopg://", "postgresql://")})
    path = f"/api/v1/documents/{document_id}"
    host = f"commune-1.{BASE_DOMAIN}"
    platform, platform_port = _gunicorn("tests.bench.read_apps:platform_app()", env)
    bare, bare_port = _gunicorn("tests.bench.read_apps:bare_app()", env)
    try:
        arms = {
            "platform": (platform_port, path, {"Host": host, "Authorization": f"Bearer {token}"}),
            "bare": (bare_port, path, {}),
            "ping": (bare_port, "/ping", {}),
        }
        for port, arm_path, headers in arms.values():  # warm-up: pools, prepared statements
            _wrk(port, arm_path, headers)
        runs: dict[str, list[float]] = {name: [] for name in arms}
        for r in range(READ_ROUNDS):
            for name in (list(arms) if r % 2 == 0 else list(arms)[::-1]):
                runs[name].append(_wrk(*arms[name]))
    finally:
        for proc in (platform, bare):
            proc.terminate()
            proc.wait(30)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    return {"runs": runs, **medians, "ratio": medians["platform"] / medians["bare"]}


def _pct(sorted_samples: list[float], p: float) -> float:
    k = (len(sorted_samples) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(sorted_samples) - 1)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (k - lo)


# -- the run ------------------------------------------------------------------------------------


def run(small_db, large_db, instance: Path) -> None:
    t0 = time.perf_counter()
    app = build_app(small_db, str(instance / "small"))
    seeded = seed_three(app)
    install_baseline(app, small_db)
    print(f"setup: database {small_db.name} migrated by `saas init`, 3 communes "
          f"({time.perf_counter() - t0:.1f} s)")

    print(f"\n(a) tenancy overhead — GET /api/v1/me (token cache off), {ROUNDS} rounds × {PER_ROUND} requests per "
          f"arm, alternating every {BLOCK} (WSGI test client, one process)")
    with TokenCacheOff():
        a = overhead(app, seeded)
    print(f"    {'arm':<40} {'req/s':>9} {'p50':>9}")
    print(f"    {'with tenancy (host, scoping, RLS)':<40} {a['rps_tenancy']:>9.0f} "
          f"{a['p50_tenancy'] * 1e3:>7.2f}ms")
    print(f"    {'same handler, no tenancy':<40} {a['rps_bare']:>9.0f} {a['p50_bare'] * 1e3:>7.2f}ms")
    print(f"    median per-round time ratio {a['ratio']:.3f} (quartiles {a['ratio_q1']:.3f}–"
          f"{a['ratio_q3']:.3f}) → overhead {a['overhead_pct']:+.1f} %")
    print(f"    (this process's CPU time only: {a['cpu_overhead_pct']:+.1f} %)")
    ok_a = a["overhead_pct"] <= OVERHEAD_TARGET
    print(f"    target ≤ {OVERHEAD_TARGET:.0f} %: {'PASS' if ok_a else 'FAIL'}")

    # (b): a second database, seeded the same way, then bulk-filled to 1,000 communes; the two
    # are measured alternately so that load from other processes hits both alike.
    t1 = time.perf_counter()
    big = build_app(large_db, str(instance / "large"))
    big_seeded = seed_three(big)
    bulk_insert(large_db, TOTAL_TENANTS)
    with big.app_context():
        from saas.extensions import db
        from saas.tenancy.models import Tenant

        total = db.session.execute(sa.select(sa.func.count(Tenant.id))).scalar()
        big.extensions["saas_domain_cache"].refresh()
        db.session.remove()
    print(f"\n(b) scale — GET /api/v1/me latency, {LATENCY_SAMPLES} requests per host and database,"
          f" alternating databases every {LATENCY_BLOCK}"
          f"\n    second database {large_db.name}: 3 communes, then bulk insert to {total} "
          f"({time.perf_counter() - t1:.1f} s)")
    with TokenCacheOff():
        b = latency({"small": (app, seeded), "large": (big, big_seeded)})
    print(f"    {'host':<16} {'p50 @3':>9} {'p50 @' + str(total):>10} {'ratio':>6}   "
          f"{'p95 @3':>9} {'p95 @' + str(total):>10} {'ratio':>6}")
    ok_b, worst = True, 0.0
    for label, m in b.items():
        s, g = m["small"], m["large"]
        r50, r95 = g["p50"] / s["p50"], g["p95"] / s["p95"]
        worst = max(worst, r50)
        ok_b &= r50 <= SCALE_TARGET
        print(f"    {label:<16} {s['p50'] * 1e3:>7.2f}ms {g['p50'] * 1e3:>8.2f}ms {r50:>6.2f}   "
              f"{s['p95'] * 1e3:>7.2f}ms {g['p95'] * 1e3:>8.2f}ms {r95:>6.2f}")
    print(f"    target p50 ratio ≤ {SCALE_TARGET:.2f}: {'PASS' if ok_b else 'FAIL'}")

    with app.app_context():
        from saas.extensions import db

        db.session.remove()
        db.engine.dispose()
    document_id, tenant_id = seed_document(app, seeded)
    print(f"\n(c) one authenticated read — GET /api/v1/documents/{{id}}, gunicorn 2 sync workers,"
          f" wrk -c{READ_CONNECTIONS} {READ_SECONDS} s × {READ_ROUNDS} runs per arm, alternating")
    c = read_pair(small_db, instance / "small", document_id, tenant_id, seeded[1]["token"])
    for name, label in (("platform", "platform read (token, document, JSON)"),
                        ("bare", "bare Flask + one psycopg SELECT"), ("ping", "bare Flask JSON ping")):
        runs = ", ".join(f"{v:.0f}" for v in c["runs"][name])
        print(f"    {label:<40} {c[name]:>7.0f} req/s   (runs: {runs})")
    ok_c = c["ratio"] >= READ_TARGET
    print(f"    ratio platform / bare SELECT {c['ratio']:.2f}; target ≥ {READ_TARGET:.2f}: "
          f"{'PASS' if ok_c else 'FAIL'}")

    print("\nsummary")
    print(f"    tenancy overhead  {a['overhead_pct']:+6.1f} %   (≤ {OVERHEAD_TARGET:.0f} %)   "
          f"{'PASS' if ok_a else 'FAIL'}")
    print(f"    {total} vs 3 p50     {worst:6.2f} ×   (≤ {SCALE_TARGET:.2f})   "
          f"{'PASS' if ok_b else 'FAIL'}")
    print(f"    read / bare SELECT {c['ratio']:6.2f}     (≥ {READ_TARGET:.2f})   "
          f"{'PASS' if ok_c else 'FAIL'}")


if __name__ == "__main__":
    # Quiet the app's own logging; the benchmark prints its table.
    os.environ.setdefault("SAAS_LOG_LEVEL", "WARNING")
    sys.exit(main())
