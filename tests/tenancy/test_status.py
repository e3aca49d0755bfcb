"""`saas tenants suspend / reactivate` and what a suspended commune's host answers."""

from __future__ import annotations

import sqlalchemy as sa

from saas.audit.models import AuditEvent, PlatformAuditEvent
from saas.extensions import db
from saas.tenancy.context import tenant_context


def test_suspended_commune_answers_403_page_and_json_error(cli, tenant_a, tenant_b, client_for):
    result = cli("tenants", "suspend", "commune-a")

    assert result.exit_code == 0, result.output
    assert "« commune-a » est maintenant suspendue." in result.stdout
    page = client_for(tenant_a).get("/")
    assert page.status_code == 403
    assert "suspendue" in page.get_data(as_text=True)
    api = client_for(tenant_a).get("/api/v1/me")
    assert api.status_code == 403
    assert api.get_json()["error"]["code"] == "tenant_suspended"
    assert "suspendue" in api.get_json()["error"]["message"]
    assert client_for(tenant_b).get("/theme.css").status_code == 200


def test_reactivated_commune_is_served_again(cli, tenant_a, client_for):
    assert cli("tenants", "suspend", "commune-a").exit_code == 0

    result = cli("tenants", "reactivate", "commune-a")

    assert result.exit_code == 0
    assert "« commune-a » est maintenant active." in result.stdout
    assert client_for(tenant_a).get("/theme.css").status_code == 200


def test_status_changes_are_audited_in_both_chains(cli, tenant_a):
    cli("tenants", "suspend", "commune-a")
    cli("tenants", "reactivate", "commune-a")

    platform = db.session.execute(sa.select(PlatformAuditEvent.action).order_by(PlatformAuditEvent.seq)).scalars().all()
    with tenant_context(tenant_a):
        own = db.session.execute(sa.select(AuditEvent.action).order_by(AuditEvent.seq)).scalars().all()
    assert platform == own == ["tenant.suspended", "tenant.reactivated"]


def test_suspending_twice_is_harmless(cli, tenant_a):
    cli("tenants", "suspend", "commune-a")

    result = cli("tenants", "suspend", "commune-a")

    assert result.exit_code == 0
    assert "déjà suspendue" in result.stdout


def test_unknown_slug_exits_1_with_a_french_message(cli, tenant_a):
    for command in ("suspend", "reactivate"):
        result = cli("tenants", command, "nulle-part")
        assert result.exit_code == 1
        assert "Collectivité inconnue : « nulle-part »" in result.stderr


def test_archived_commune_answers_410_and_cannot_be_reactivated_by_hand(cli, make_tenant, client_for):
    tenant = make_tenant("vieille", status="archived")

    result = cli("tenants", "reactivate", "vieille")

    assert result.exit_code == 1
    assert "archivée" in result.stderr
    assert client_for(tenant).get("/").status_code == 410
