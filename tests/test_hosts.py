"""Host → tenant resolution, trusted hosts, and tenant status pages."""

from __future__ import annotations

from saas.extensions import db
from saas.tenancy.models import TenantDomain


def test_portal_lists_active_communes(client_for, tenant_a, tenant_b, make_tenant):
    make_tenant("ferme", name="Commune Fermée", status="suspended")
    resp = client_for(None).get("/")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "Commune A" in page and "Commune B" in page
    assert "Commune Fermée" not in page


def test_unknown_subdomain_is_404(client_for, tenant_a):
    resp = client_for("inconnue").get("/")
    assert resp.status_code == 404
    assert "Aucune commune" in resp.get_data(as_text=True)


def test_untrusted_host_is_404_in_french_and_json(app, tenant_a):
    client = app.test_client()
    resp = client.get("/", headers={"Host": "evil.example.net"})
    assert resp.status_code == 404
    assert "Aucune commune" in resp.get_data(as_text=True)
    resp = client.get("/api/v1/me", headers={"Host": "evil.example.net"})
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "unknown_host"


def test_nested_or_reserved_labels_are_not_tenants(client_for, tenant_a):
    assert client_for("x.commune-a").get("/").status_code == 404
    assert client_for("www").get("/").status_code == 404


def test_custom_domain_serves_its_tenant(app, tenant_a):
    db.session.add(TenantDomain(domain="demarches.commune-a.fr", tenant_id=tenant_a.id))
    db.session.commit()
    app.extensions["saas_domain_cache"].refresh()
    resp = app.test_client().get("/theme.css", headers={"Host": "demarches.commune-a.fr"})
    assert resp.status_code == 200
    assert resp.mimetype == "text/css"


def test_suspended_commune_gets_a_clear_page_and_json(client_for, make_tenant):
    make_tenant("suspendue", status="suspended")
    client = client_for("suspendue")
    resp = client.get("/")
    assert resp.status_code == 403
    assert "suspendue" in resp.get_data(as_text=True)
    assert "Retour au portail" in resp.get_data(as_text=True)  # not a link back to itself
    resp = client.get("/api/v1/me")
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"] == "tenant_suspended"


def test_archived_commune_is_gone(client_for, make_tenant):
    make_tenant("archivee", status="archived")
    assert client_for("archivee").get("/").status_code == 410


def test_probes_answer_on_any_local_host(app):
    client = app.test_client()
    assert client.get("/healthz", headers={"Host": "127.0.0.1:8000"}).get_json() == {"status": "ok"}
    ready = client.get("/readyz", headers={"Host": "localhost"})
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"] == {"database": "ok", "redis": "ok", "storage": "ok"}


def test_security_headers_forbid_third_party_content(client_for, tenant_a):
    resp = client_for(None).get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_branding_colour_is_sanitised(client_for, make_tenant):
    make_tenant("coloree", branding={"primary_color": "red;}body{display:none"})
    css = client_for("coloree").get("/theme.css").get_data(as_text=True)
    assert "display:none" not in css and "#000091" in css
