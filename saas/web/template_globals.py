"""Values every template may use: the tenant, the user's communes, host-aware URLs."""

from __future__ import annotations

from flask import Flask, g, request
from markupsafe import Markup, escape

from saas.auth.models import ROLE_LABELS
from saas.hosts import console_url, portal_url, tenant_url


def init_app(app: Flask) -> None:
    @app.context_processor
    def _globals():
        return {
            "tenant": g.get("tenant"),
            "host_kind": g.get("host_kind"),
            "membership": g.get("membership"),
            "tenant_url": tenant_url,
            "console_url": console_url,
            "portal_url": portal_url,
            "current_path": request.path,
            "membership_role_label": lambda role: ROLE_LABELS.get(role, role),
            "site_name": site_name,
        }


def site_name(tenant) -> Markup:
    """The commune's name in the header, its logo text marked once: « Commune de [Montclair] »
    when the name already contains the logo text, « [TL] Trois-Landes » otherwise."""
    name, logo = tenant.name, (tenant.branding or {}).get("logo_text")
    if not logo:
        return escape(name)
    at = name.casefold().find(logo.casefold()) if len(name.casefold()) == len(name) else -1
    if at < 0:
        return Markup('<span class="logo-text" aria-hidden="true">%s</span> %s') % (logo, name)
    end = at + len(logo)
    return Markup('%s<span class="logo-text">%s</span>%s') % (name[:at], name[at:end], name[end:])
