"""Absolute URLs on other hosts of the platform (a commune, the console, the portal)."""

from __future__ import annotations

from flask import current_app


def _origin(label: str | None) -> str:
    s = current_app.config["SAAS_SETTINGS"]
    host = f"{label}.{s.base_domain}" if label else s.base_domain
    default_port = 443 if s.public_scheme == "https" else 80
    port = f":{s.public_port}" if s.public_port and s.public_port != default_port else ""
    return f"{s.public_scheme}://{host}{port}"


def tenant_url(tenant, path: str = "/") -> str:
    slug = tenant if isinstance(tenant, str) else tenant.slug
    return _origin(slug) + path


def console_url(path: str = "/") -> str:
    return _origin("admin") + path


def portal_url(path: str = "/") -> str:
    return _origin(None) + path
