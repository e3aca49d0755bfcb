"""Host → tenant: `<slug>.<base domain>`, declared custom domains, the console and the portal."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask, Request, abort, current_app, g, request
from sqlalchemy import event, orm
from sqlalchemy.orm import Session

from saas.extensions import db
from saas.logs import bind_context
from saas.tenancy.context import set_tenant, set_user
from saas.tenancy.models import (
    RESERVED_SLUGS,
    Tenant,
    TenantDomain,
    TenantSnapshot,
    TenantStatus,
)

CONSOLE_LABEL = "admin"
# Endpoints served whatever the host's tenant state (assets, probes).
_HOST_FREE_ENDPOINTS = {"static", "health.healthz", "health.readyz", "health.metrics"}


@dataclass(frozen=True)
class HostKind:
    PORTAL = "portal"
    CONSOLE = "console"
    TENANT = "tenant"


class _CustomDomainCache:
    """Custom domains, re-read from the database at most every `ttl` seconds."""

    def __init__(self, app: Flask, ttl: float = 15.0):
        self.app = app
        self.ttl = ttl
        self._loaded_at = 0.0
        self._domains: frozenset[str] = frozenset()

    def get(self) -> frozenset[str]:
        if time.monotonic() - self._loaded_at > self.ttl:
            self.refresh()
        return self._domains

    def refresh(self) -> None:
        # Called while Flask builds the URL adapter, before the request's app context exists.
        with self.app.app_context():
            rows = db.session.execute(db.select(TenantDomain.domain)).scalars().all()
        self._domains = frozenset(rows)
        self._loaded_at = time.monotonic()


class TrustedHosts:
    """Flask's TRUSTED_HOSTS, live: the base domain, its sub-domains and the custom domains."""

    def __init__(self, base_domain: str, cache: _CustomDomainCache):
        self.base = base_domain
        self.cache = cache

    def __iter__(self):
        yield self.base
        yield "." + self.base
        # Probes hit the node directly; these hosts resolve to no tenant and get 404 elsewhere.
        yield from ("localhost", "127.0.0.1", "[::1]")
        try:
            yield from self.cache.get()
        except Exception:  # database down: only the base domain is trusted meanwhile
            return

    def __len__(self) -> int:
        return 5 + len(self.cache.get())

    def __contains__(self, item) -> bool:
        return item in list(self)

    def for_environ(self, environ: dict) -> list[str]:
        """The entries that matter for this request: werkzeug checks a list entry by entry
        (IDNA-encoding each), which costs ~1 ms per request with 1,000 custom domains."""
        hosts = [self.base, "." + self.base, "localhost", "127.0.0.1", "[::1]"]
        raw = (environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "").lower()
        hostname = raw if raw.endswith("]") else raw.rsplit(":", 1)[0]
        try:
            if hostname in self.cache.get():
                hosts.append(hostname)
        except Exception:  # database down: only the base domain is trusted meanwhile
            pass
        return hosts


class TenantAwareRequest(Request):
    """Flask's request, checking the Host header against TrustedHosts in constant time."""

    @property
    def trusted_hosts(self):  # type: ignore[override]
        hosts = self.__dict__.get("_saas_trusted_hosts")
        if isinstance(hosts, TrustedHosts):
            return hosts.for_environ(self.environ)
        return hosts

    @trusted_hosts.setter
    def trusted_hosts(self, value) -> None:
        self.__dict__["_saas_trusted_hosts"] = value


# Seconds a host's tenant is reused without a query (per process); 0 turns the cache off.
DEFAULT_TENANT_CACHE_SECONDS = 5.0
_generation = 0  # bumped by any ORM write to a tenant or a custom domain in this process


class _TenantCache:
    """Host name → the tenant's snapshot, reused for a few seconds so a request does not pay a
    query to learn its commune.

    Any ORM write to a tenant or a custom domain in this process empties it at once; other
    processes (gunicorn workers) see such a change within the TTL, so a suspension or a moved
    domain takes at most TENANT_CACHE_SECONDS to apply everywhere. Only found tenants are kept:
    unknown hosts cannot grow it, and a new commune answers at once. Snapshots are immutable,
    so requests of all threads share them.
    """

    def __init__(self):
        self._entries: dict[str, tuple[float, int, TenantSnapshot]] = {}

    def lookup(self, hostname: str) -> TenantSnapshot | None:
        entry = self._entries.get(hostname)
        if entry is None:
            return None
        expires, generation, snapshot = entry
        if generation != _generation or time.monotonic() > expires:
            self._entries.pop(hostname, None)
            return None
        return snapshot

    def store(self, hostname: str, snapshot: TenantSnapshot, ttl: float) -> None:
        self._entries[hostname] = (time.monotonic() + ttl, _generation, snapshot)


def invalidate_tenant_cache() -> None:
    """Forget every cached host → tenant in this process (called on tenant writes)."""
    global _generation
    _generation += 1


def _tenant_row_written(mapper, connection, target) -> None:
    invalidate_tenant_cache()


def _tenant_rows_bulk_written(state: orm.ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    table = getattr(state.statement, "table", None)
    if table is not None and table.name in (Tenant.__tablename__, TenantDomain.__tablename__):
        invalidate_tenant_cache()


def cache_ttl() -> float:
    """Seconds a process may reuse what it read of a tenant (and of its API tokens)."""
    value = current_app.config.get("TENANT_CACHE_SECONDS")
    if value is None:
        # Off in tests by default: tables are truncated between tests behind the ORM's back.
        return 0.0 if current_app.testing else DEFAULT_TENANT_CACHE_SECONDS
    return float(value)


def _hostname() -> str:
    return request.host.rsplit(":", 1)[0].lower() if request.host else ""


def named_host_kind(hostname: str, base_domain: str) -> str | None:
    """Return the portal's or the console's kind for their host names, else None (no query)."""
    if hostname == base_domain:
        return HostKind.PORTAL
    if hostname == f"{CONSOLE_LABEL}.{base_domain}":
        return HostKind.CONSOLE
    return None


def resolve_host(hostname: str, base_domain: str) -> tuple[str, Tenant | None]:
    """Return (host kind, tenant) for a host name, or (None, None) when it is unknown."""
    named = named_host_kind(hostname, base_domain)
    if named is not None:
        return named, None
    suffix = "." + base_domain
    if hostname.endswith(suffix):
        label = hostname[: -len(suffix)]
        if "." in label or label in RESERVED_SLUGS:
            return None, None
        tenant = db.session.execute(db.select(Tenant).where(Tenant.slug == label)).scalar_one_or_none()
        return (HostKind.TENANT, tenant) if tenant else (None, None)
    tenant = db.session.execute(
        db.select(Tenant).join(TenantDomain).where(TenantDomain.domain == hostname)
    ).scalar_one_or_none()
    return (HostKind.TENANT, tenant) if tenant else (None, None)


def _resolve_cached(hostname: str, base_domain: str) -> tuple[str | None, TenantSnapshot | None]:
    ttl = cache_ttl()
    cache: _TenantCache = current_app.extensions["saas_tenant_cache"]
    if ttl > 0:
        snapshot = cache.lookup(hostname)
        if snapshot is not None:
            return HostKind.TENANT, snapshot
    kind, tenant = resolve_host(hostname, base_domain)
    if tenant is None:
        return kind, None
    snapshot = tenant.snapshot()
    if ttl > 0:
        cache.store(hostname, snapshot, ttl)
    return kind, snapshot


def _resolve_request() -> None:
    set_tenant(None)
    set_user(None)
    g.tenant = None
    g.host_kind = None
    if request.endpoint in _HOST_FREE_ENDPOINTS:
        # Answered even with the database down: only the portal and the console are told apart.
        g.host_kind = named_host_kind(_hostname(), g.settings.base_domain)
        return
    kind, tenant = _resolve_cached(_hostname(), g.settings.base_domain)
    if kind is None:
        abort(404, description="unknown_host")
    g.host_kind = kind
    g.tenant = tenant
    if tenant is not None:
        set_tenant(tenant)
        bind_context(tenant=tenant.slug)
        # The closed commune's page still wears its colours (its theme is not confidential).
        if tenant.status != TenantStatus.ACTIVE and request.endpoint != "web.theme_css":
            abort(403 if tenant.status == TenantStatus.SUSPENDED else 410,
                  description=f"tenant_{tenant.status}")


def init_app(app: Flask, base_domain: str) -> None:
    cache = _CustomDomainCache(app)
    app.extensions["saas_domain_cache"] = cache
    app.config["TRUSTED_HOSTS"] = TrustedHosts(base_domain, cache)
    app.request_class = TenantAwareRequest
    app.extensions["saas_tenant_cache"] = _TenantCache()
    if not event.contains(Session, "do_orm_execute", _tenant_rows_bulk_written):
        for model in (Tenant, TenantDomain):
            for name in ("after_insert", "after_update", "after_delete"):
                event.listen(model, name, _tenant_row_written)
        event.listen(Session, "do_orm_execute", _tenant_rows_bulk_written)
    app.before_request(_resolve_request)

    @app.teardown_request
    def _forget_tenant(exc) -> None:
        # The thread serves other requests (and tests) next: never let a tenant linger.
        set_tenant(None)
        set_user(None)
