"""Values every template may use: the tenant, the user's communes, host-aware URLs."""

from __future__ import annotations

from flask import Flask, g, request

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
        }
