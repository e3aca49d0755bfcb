"""The console's menu on every console page, per-commune usage, and suspend / reactivate with
a mandatory reason (the same provisioning code as `saas tenants suspend`)."""

from __future__ import annotations

import html
import re

from saas.extensions import db
from saas.tenancy.models import Tenant
from tests.auth.helpers import audit_entries, code_for, csrf_token, enrol_totp, login, submit_code


def _console(make_user, client_for):
    admin = make_user(None, platform_admin=True, name="Paul Info")
    secret = enrol_totp(admin.id)
    client = client_for("admin")
    login(client, admin.email)
    submit_code(client, "/auth/totp", code_for(secret))
    return admin, client


def _status_of(slug):
    db.session.expire_all()
    status = db.session.execute(db.select(Tenant.status).where(Tenant.slug == slug)).scalar_one()
    db.session.rollback()
    return status


def _change(client, slug, status, reason):
    page = client.get("/console/").get_data(as_text=True)
    return client.post(f"/console/communes/{slug}/statut",
                       data={"csrf_token": csrf_token(page), "status": status,
                             f"{slug}-reason": reason})


def test_every_console_page_has_the_menu(make_user, client_for, tenant_a):
    _admin, client = _console(make_user, client_for)
    for path in ("/console/", "/console/jobs/", "/console/integrite"):
        page = client.get(path).get_data(as_text=True)
        nav = re.search(r'<nav class="main-nav console-nav".*?</nav>', page, re.S).group(0)
        assert 'href="/console/jobs/"' in nav and 'href="/console/integrite"' in nav
        assert 'href="/console/"' in nav and 'aria-current="page"' in nav


def test_home_shows_usage_per_commune(make_user, client_for, tenant_a, tenant_b):
    make_user(tenant_a, "agent")
    make_user(tenant_a, "elu")
    _admin, client = _console(make_user, client_for)
    page = html.unescape(client.get("/console/").get_data(as_text=True))
    row = re.search(r'<td id="commune-commune-a".*?</tr>', page, re.S).group(0)
    cells = re.findall(r'<td class="num">(.*?)</td>', row, re.S)
    assert cells[1].strip() == "0" and cells[2].strip() == "2"  # documents, users
    assert re.fullmatch(r"0\xa0octet / 1,07\xa0Go", cells[0].strip()), cells[0]  # 1 GiB quota


def test_suspend_and_reactivate_with_a_reason(make_user, client_for, tenant_a):
    admin, client = _console(make_user, client_for)
    response = _change(client, tenant_a.slug, "suspended", "Impayés 2026")
    assert response.status_code == 302
    assert _status_of(tenant_a.slug) == "suspended"
    assert client_for(tenant_a).get("/auth/login").status_code == 403
    page = html.unescape(client.get("/console/").get_data(as_text=True))
    assert "Motif : Impayés 2026" in page
    platform = audit_entries(None)
    assert ("tenant.suspended", admin.email, {"previous_status": "active", "reason": "Impayés 2026"}) \
        in platform
    assert any(a == "tenant.suspended" and d.get("reason") == "Impayés 2026"
               for a, _u, d in audit_entries(tenant_a))

    assert _change(client, tenant_a.slug, "active", "Régularisé").status_code == 302
    assert _status_of(tenant_a.slug) == "active"
    assert "Motif : Impayés" not in html.unescape(client.get("/console/").get_data(as_text=True))


def test_a_reason_is_required_and_bad_input_does_not_500(make_user, client_for, tenant_a):
    _admin, client = _console(make_user, client_for)
    for reason in ("", "   ", "x" * 501):
        response = _change(client, tenant_a.slug, "suspended", reason)
        assert response.status_code == 422, reason
    assert _status_of(tenant_a.slug) == "active"
    assert _change(client, tenant_a.slug, "archived", "non").status_code == 400
    assert _change(client, "nowhere", "suspended", "non").status_code == 404


def test_only_platform_admins_change_a_status(make_user, client_for, tenant_a):
    commune_admin = make_user(tenant_a, "admin")
    secret = enrol_totp(commune_admin.id)
    client = client_for(tenant_a)
    login(client, commune_admin.email)
    submit_code(client, "/auth/totp", code_for(secret))
    token = csrf_token(client.get("/auth/account").get_data(as_text=True))
    assert client.post(f"/console/communes/{tenant_a.slug}/statut",
                       data={"csrf_token": token, "status": "suspended",
                             f"{tenant_a.slug}-reason": "x"}).status_code == 404
    anonymous = client_for("admin")
    token = csrf_token(anonymous.get("/auth/login").get_data(as_text=True))
    assert anonymous.post(f"/console/communes/{tenant_a.slug}/statut",
                          data={"csrf_token": token, "status": "suspended",
                                f"{tenant_a.slug}-reason": "x"}).status_code in (302, 401)
    assert _status_of(tenant_a.slug) == "active"


def test_cli_suspend_takes_the_same_reason(cli, tenant_a):
    result = cli("tenants", "suspend", tenant_a.slug, "--reason", "Maintenance")
    assert result.exit_code == 0, result.output
    assert ("tenant.suspended", "cli", {"previous_status": "active", "reason": "Maintenance"}) \
        in audit_entries(None)
