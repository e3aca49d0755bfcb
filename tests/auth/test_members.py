"""The commune admins' « Utilisateurs » page: invitations, roles, deactivation, 2FA reset,
and every refusal (not an admin, another commune, last admin, expired or used invitation)."""

from __future__ import annotations

import html
import re
import time
from urllib.parse import urlsplit

import pytest

from saas.auth.models import ApiToken, Membership, User
from saas.extensions import db
from saas.jobs import run_pending
from saas.tenancy.context import tenant_context
from tests.auth.helpers import (
    audit_entries,
    code_for,
    csrf_token,
    enrol_totp,
    fresh_user,
    is_logged_in,
    location_path,
    login,
    post_form,
    submit_code,
)
from tests.support.smtp import body_of

NEW_PASSWORD = "Une-phrase-de-passe-solide-42"


def _admin_client(make_user, client_for, tenant, **kw):
    admin = make_user(tenant, "admin", **kw)
    secret = enrol_totp(admin.id)
    client = client_for(tenant)
    login(client, admin.email)
    submit_code(client, "/auth/totp", code_for(secret))
    assert is_logged_in(client)
    return admin, client


def _post(client, path, data):
    return post_form(client, path, data, page="/utilisateurs/")


def _invite(client, email, name="Nina Nouvelle", role="agent"):
    response = _post(client, "/utilisateurs/inviter", {"email": email, "name": name, "role": role})
    run_pending()
    return response


def _link(smtp_server, email, path="/auth/invitation/") -> str:
    body = body_of(smtp_server.last_to(email))
    match = re.search(r"(https?://\S+" + re.escape(path) + r"\S+)", body)
    assert match, body
    return match.group(1)


def _membership(tenant, user_id):
    db.session.expire_all()
    with tenant_context(tenant):
        row = db.session.execute(
            db.select(Membership).where(Membership.user_id == user_id)).scalar_one_or_none()
        role = row.role if row else None
        db.session.rollback()
    return role


def test_only_the_communes_admins_reach_the_page(tenant_a, make_user, client_for):
    agent = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    login(client, agent.email)
    assert client.get("/utilisateurs/").status_code == 403
    token = csrf_token(client.get("/auth/account").get_data(as_text=True))
    assert client.post("/utilisateurs/inviter", data={
        "csrf_token": token, "email": "x@example.org", "name": "X", "role": "admin"}).status_code == 403
    assert db.session.execute(db.select(User).where(User.email == "x@example.org")).first() is None
    assert location_path(client_for(tenant_a).get("/utilisateurs/")).startswith("/auth/login")
    assert client_for("admin").get("/utilisateurs/").status_code == 404


def test_invitation_lets_the_invitee_choose_her_password_once(
        tenant_a, make_user, client_for, smtp_server):
    admin, client = _admin_client(make_user, client_for, tenant_a)
    response = _invite(client, "Nina@Example.org")
    assert location_path(response) == "/utilisateurs/"
    page = html.unescape(client.get("/utilisateurs/").get_data(as_text=True))
    assert "nina@example.org" in page and "invitation en attente" in page
    user = db.session.execute(db.select(User).where(User.email == "nina@example.org")).scalar_one()
    assert not user.password_set and _membership(tenant_a, user.id) == "agent"

    link = _link(smtp_server, "nina@example.org")
    parts = urlsplit(link)
    assert parts.hostname == "commune-a.mutualis.test"
    invitee = client_for(tenant_a)
    assert invitee.get(parts.path).status_code == 200
    done = post_form(invitee, parts.path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert location_path(done) == "/auth/login"
    login(invitee, "nina@example.org", NEW_PASSWORD)
    assert is_logged_in(invitee)

    # Single use: the same link, again, is refused.
    again = client_for(tenant_a).get(parts.path)
    assert again.status_code == 400 and "déjà servi" in html.unescape(again.get_data(as_text=True))
    actions = [a for a, _actor, _d in audit_entries(tenant_a)]
    assert "membership.invited" in actions and "membership.invitation_accepted" in actions


def test_invitation_link_expires_after_seven_days(tenant_a, make_user, client_for, smtp_server,
                                                  monkeypatch):
    _admin, client = _admin_client(make_user, client_for, tenant_a)
    _invite(client, "late@example.org")
    path = urlsplit(_link(smtp_server, "late@example.org")).path
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 7 * 86400 + 60)
    response = client_for(tenant_a).get(path)
    assert response.status_code == 400
    assert "expiré" in html.unescape(response.get_data(as_text=True))


def test_invitation_link_is_bound_to_its_commune_and_its_address(
        tenant_a, tenant_b, make_user, client_for, smtp_server):
    _admin, client = _admin_client(make_user, client_for, tenant_a)
    _invite(client, "bound@example.org")
    path = urlsplit(_link(smtp_server, "bound@example.org")).path
    assert client_for(tenant_b).get(path).status_code == 400
    # A tampered token (another address) does not verify.
    assert client_for(tenant_a).get(path[:-3] + "abc").status_code == 400


def test_existing_account_elsewhere_gets_a_membership_and_a_mail_not_a_second_account(
        tenant_a, tenant_b, make_user, client_for, smtp_server):
    shared = make_user(tenant_b, "agent", name="Sophie Partagée")
    _admin, client = _admin_client(make_user, client_for, tenant_a)
    response = _invite(client, shared.email.upper(), name="Autre nom", role="elu")
    assert location_path(response) == "/utilisateurs/"
    assert db.session.execute(db.select(db.func.count()).select_from(User)
                              .where(db.func.lower(User.email) == shared.email)).scalar() == 1
    assert _membership(tenant_a, shared.id) == "elu" and _membership(tenant_b, shared.id) == "agent"
    body = body_of(smtp_server.last_to(shared.email))
    assert "Commune A" in body and "/auth/invitation/" not in body
    assert fresh_user(shared.id).name == "Sophie Partagée"


def test_inviting_a_member_twice_is_refused(tenant_a, make_user, client_for):
    member = make_user(tenant_a, "agent")
    _admin, client = _admin_client(make_user, client_for, tenant_a)
    response = _invite(client, member.email)
    assert response.status_code == 409
    assert "déjà membre" in html.unescape(response.get_data(as_text=True))


def test_invitation_refuses_bad_input_without_a_500(tenant_a, make_user, client_for):
    _admin, client = _admin_client(make_user, client_for, tenant_a)
    for data in ({"email": "pas-une-adresse", "name": "X", "role": "agent"},
                 {"email": "ok@example.org", "name": "X", "role": "maire"},
                 {"email": "ok@example.org", "name": "", "role": "agent"},
                 {"email": "nul\x00@example.org", "name": "X", "role": "agent"}):
        response = _post(client, "/utilisateurs/inviter", data)
        assert response.status_code == 422, data
    assert db.session.execute(db.select(User).where(User.email == "ok@example.org")).first() is None


def test_admin_changes_a_role(tenant_a, make_user, client_for):
    agent = make_user(tenant_a, "agent")
    _admin, client = _admin_client(make_user, client_for, tenant_a)
    prefix = f"r{agent.id.hex[:8]}"
    response = _post(client, f"/utilisateurs/{agent.id}/role", {f"{prefix}-role": "elu"})
    assert location_path(response) == "/utilisateurs/"
    assert _membership(tenant_a, agent.id) == "elu"
    assert ("membership.role_changed", _admin.email, {"from": "agent", "to": "elu"}) in \
        audit_entries(tenant_a)


def test_the_last_admin_can_be_neither_demoted_nor_deactivated(tenant_a, make_user, client_for):
    admin, client = _admin_client(make_user, client_for, tenant_a)
    prefix = f"r{admin.id.hex[:8]}"
    response = _post(client, f"/utilisateurs/{admin.id}/role", {f"{prefix}-role": "agent"})
    assert response.status_code == 409
    assert "dernier administrateur" in html.unescape(response.get_data(as_text=True))
    assert _membership(tenant_a, admin.id) == "admin"


def test_last_admin_rule_counts_only_admins_who_can_log_in(tenant_a, make_user, client_for):
    admin, client = _admin_client(make_user, client_for, tenant_a)
    # A second admin still invited (no password yet) does not keep the commune administered.
    _invite(client, "pending-admin@example.org", role="admin")
    prefix = f"r{admin.id.hex[:8]}"
    response = _post(client, f"/utilisateurs/{admin.id}/role", {f"{prefix}-role": "agent"})
    assert response.status_code == 409
    assert _membership(tenant_a, admin.id) == "admin"


def test_an_admin_cannot_deactivate_herself_but_another_admin(tenant_a, make_user, client_for):
    other = make_user(tenant_a, "admin")
    admin, client = _admin_client(make_user, client_for, tenant_a)
    assert _post(client, f"/utilisateurs/{admin.id}/desactiver", {}).status_code == 409
    assert location_path(_post(client, f"/utilisateurs/{other.id}/desactiver", {})) == "/utilisateurs/"
    assert _membership(tenant_a, other.id) is None and _membership(tenant_a, admin.id) == "admin"


def test_another_communes_user_is_not_found(tenant_a, tenant_b, make_user, client_for):
    outsider = make_user(tenant_b, "agent")
    _admin, client = _admin_client(make_user, client_for, tenant_a)
    prefix = f"r{outsider.id.hex[:8]}"
    assert _post(client, f"/utilisateurs/{outsider.id}/role", {f"{prefix}-role": "elu"}).status_code == 404
    assert _post(client, f"/utilisateurs/{outsider.id}/desactiver", {}).status_code == 404
    assert _post(client, f"/utilisateurs/{outsider.id}/reinitialiser-2fa", {}).status_code == 404
    assert _post(client, "/utilisateurs/not-a-uuid/desactiver", {}).status_code == 404
    assert _membership(tenant_b, outsider.id) == "agent" and fresh_user(outsider.id).active


def test_deactivation_ends_sessions_and_api_tokens_at_once(
        tenant_a, make_user, make_token, client_for, api_client):
    token, agent = make_token(tenant_a, "agent")
    session = client_for(tenant_a)
    login(session, agent.email)
    assert is_logged_in(session)
    api = api_client(tenant_a, token)
    assert api.get("/api/v1/me").status_code == 200
    _admin, client = _admin_client(make_user, client_for, tenant_a)
    assert location_path(_post(client, f"/utilisateurs/{agent.id}/desactiver", {})) == "/utilisateurs/"
    assert not is_logged_in(session)
    assert api.get("/api/v1/me").status_code == 401
    assert not fresh_user(agent.id).active
    with tenant_context(tenant_a):
        assert db.session.execute(db.select(ApiToken).where(ApiToken.user_id == agent.id)
                                  ).scalar_one().revoked_at is not None
        db.session.rollback()
    actions = [(a, d) for a, _actor, d in audit_entries(tenant_a) if a == "membership.deactivated"]
    assert actions and actions[0][1]["tokens_revoked"] == 1


def test_deactivation_in_one_commune_leaves_the_others(tenant_a, tenant_b, make_user, client_for):
    shared = make_user(tenant_a, "agent")
    make_user(tenant_b, "agent", email=shared.email)
    elsewhere = client_for(tenant_b)
    login(elsewhere, shared.email)
    _admin, client = _admin_client(make_user, client_for, tenant_a)
    _post(client, f"/utilisateurs/{shared.id}/desactiver", {})
    assert _membership(tenant_a, shared.id) is None and fresh_user(shared.id).active
    assert is_logged_in(elsewhere)


def test_admin_resets_a_members_second_factor(tenant_a, make_user, client_for):
    agent = make_user(tenant_a, "agent")
    enrol_totp(agent.id)
    _admin, client = _admin_client(make_user, client_for, tenant_a)
    response = _post(client, f"/utilisateurs/{agent.id}/reinitialiser-2fa", {})
    assert location_path(response) == "/utilisateurs/"
    assert not fresh_user(agent.id).totp_enabled
    assert "auth.totp.reset" in [a for a, _actor, _d in audit_entries(tenant_a)]
    assert "auth.totp.reset" in [a for a, _actor, _d in audit_entries(None)]


@pytest.mark.parametrize("action", ["demote", "deactivate"])
def test_two_admins_acting_on_each_other_at_once_leave_one_admin(app, tenant_a, make_user, action):
    """Two admins demoting (or deactivating) each other at the same time: one stays admin."""
    import contextvars
    import threading
    from types import SimpleNamespace

    from flask import g

    from saas.auth import members

    one, two = make_user(tenant_a, "admin"), make_user(tenant_a, "admin")
    place = SimpleNamespace(id=tenant_a.id, slug=tenant_a.slug, name=tenant_a.name)
    people = {u.id: SimpleNamespace(id=u.id, email=u.email, name=u.name) for u in (one, two)}
    barrier = threading.Barrier(2)
    results: list = []

    def act(target_id, actor_id):
        def run():
            with app.test_request_context(base_url="http://commune-a.mutualis.test"):
                g.tenant = place
                with tenant_context(place.id, user=actor_id):
                    barrier.wait()
                    try:
                        if action == "demote":
                            members.change_role(target_id, "agent", actor=people[actor_id])
                        else:
                            members.deactivate(target_id, actor=people[actor_id])
                        results.append("ok")
                    except members.MemberError as exc:
                        results.append(exc.status)
                    finally:
                        db.session.remove()
        contextvars.Context().run(run)

    threads = [threading.Thread(target=act, args=(one.id, two.id)),
               threading.Thread(target=act, args=(two.id, one.id))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(map(str, results)) == ["409", "ok"]
    roles = [_membership(tenant_a, one.id), _membership(tenant_a, two.id)]
    assert roles.count("admin") == 1
