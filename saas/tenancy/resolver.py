"""Host → tenant: `<slug>.<base domain>`, declared custom domains, the console and the portal."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask, abort, g, request
from werkzeug.local import LocalProxy

from saas.extensions import db
from saas.logs import bind_context
from saas.tenancy.context import set_tenant, set_user
from saas.tenancy.models import RESERVED_SLUGS, Tenant, TenantDomain, TenantStatus

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


def _hostname() -> str:
    return request.host.rsplit(":", 1)[0].lower() if request.host else ""


def resolve_host(hostname: str, base_domain: str) -> tuple[str, Tenant | None]:
    """Return (host kind, tenant) for a host name, or (None, None) when it is unknown."""
    if hostname == base_domain:
        return HostKind.PORTAL, None
    suffix = "." + base_domain
    if hostname.endswith(suffix):
        label = hostname[: -len(suffix)]
        if label == CONSOLE_LABEL:
            return HostKind.CONSOLE, None
        if "." in label or label in RESERVED_SLUGS:
            return None, None
        tenant = db.session.execute(db.select(Tenant).where(Tenant.slug == label)).scalar_one_or_none()
        return (HostKind.TENANT, tenant) if tenant else (None, None)
    tenant = db.session.execute(
        db.select(Tenant).join(TenantDomain).where(TenantDomain.domain == hostname)
    ).scalar_one_or_none()
    return (HostKind.TENANT, tenant) if tenant else (None, None)


def _resolve_request() -> None:
    set_tenant(None)
    set_user(None)
    g.tenant = None
    g.host_kind = None
    if request.endpoint in _HOST_FREE_ENDPOINTS:
        return
    kind, tenant = resolve_host(_hostname(), g.settings.base_domain)
    if kind is None:
        abort(404, description="unknown_host")
    g.host_kind = kind
    g.tenant = tenant
    if tenant is not None:
        set_tenant(tenant)
        bind_context(tenant=tenant.slug)
        if tenant.status != TenantStatus.ACTIVE:
            abort(403 if tenant.status == TenantStatus.SUSPENDED else 410,
                  description=f"tenant_{tenant.status}")


def init_app(app: Flask, base_domain: str) -> None:
    cache = _CustomDomainCache(app)
    app.extensions["saas_domain_cache"] = cache
    app.config["TRUSTED_HOSTS"] = TrustedHosts(base_domain, cache)
    app.before_request(_resolve_request)


def _get_current_tenant() -> Tenant | None:
    return g.get("tenant")


current_tenant: Tenant | None = LocalProxy(_get_current_tenant)  # type: ignore[assignment]
