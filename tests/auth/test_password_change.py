"""Changing one's password from the account page: current password required, other sessions
closed, this one kept (second factor included)."""

from __future__ import annotations

import html

from tests.auth.helpers import (
    audit_entries,
    code_for,
    enrol_totp,
    is_logged_in,
    location_path,
    login,
    post_form,
    stored_password_hash,
    submit_code,
)
from tests.conftest import PASSWORD

NEW = "Une-phrase-de-passe-toute-neuve"


def _change(client, current=PASSWORD, new=NEW, confirm=None):
    return post_form(client, "/auth/account/password",
                     {"current": current, "password": new, "confirm": confirm or new},
                     page="/auth/account")


def test_change_keeps_this_session_and_closes_the_others(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    here, elsewhere = client_for(tenant_a), client_for(tenant_a)
    login(here, user.email)
    login(elsewhere, user.email)
    response = _change(here)
    assert location_path(response) == "/auth/account"
    assert "Mot de passe changé" in here.get("/auth/account").get_data(as_text=True)
    assert is_logged_in(here) and not is_logged_in(elsewhere)
    assert login(client_for(tenant_a), user.email).status_code == 200  # old one refused
    assert login(client_for(tenant_a), user.email, NEW).status_code == 302
    assert ("auth.password_change", user.email, {"result": "success"}) in audit_entries(tenant_a)


def test_a_second_factor_session_stays_open(tenant_a, make_user, client_for):
    admin = make_user(tenant_a, "admin")
    secret = enrol_totp(admin.id)
    client = client_for(tenant_a)
    login(client, admin.email)
    submit_code(client, "/auth/totp", code_for(secret))
    assert location_path(_change(client)) == "/auth/account"
    assert is_logged_in(client)


def test_refusals_say_why_and_change_nothing(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    login(client, user.email)
    before = stored_password_hash(user.id)
    cases = [
        ({"current": "pas-le-bon-mot-de-passe"}, "Mot de passe actuel incorrect."),
        ({"new": "court"}, "au moins 12 caractères"),
        ({"confirm": "Autre-chose-encore-42"}, "ne sont pas identiques"),
        ({"new": PASSWORD}, "doit être différent de l'actuel"),
        ({"current": ""}, "Saisissez votre mot de passe actuel."),
    ]
    for args, message in cases:
        response = _change(client, **args)
        page = html.unescape(response.get_data(as_text=True))
        assert response.status_code == 422 and message in page, (args, page[:200])
        assert "<title>Erreur" in page and PASSWORD not in page and NEW not in page
    assert stored_password_hash(user.id) == before and is_logged_in(client)
    failures = [d for a, _who, d in audit_entries(tenant_a) if a == "auth.password_change"]
    assert failures == [{"result": "failure", "reason": "bad_password"}]


def test_anonymous_and_forged_requests_are_refused(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    visitor = client_for(tenant_a)
    anonymous = post_form(visitor, "/auth/account/password",
                          {"current": PASSWORD, "password": NEW, "confirm": NEW}, page="/auth/login")
    assert anonymous.status_code == 302 and "/auth/login" in anonymous.headers["Location"]
    client = client_for(tenant_a)
    login(client, user.email)
    forged = client.post("/auth/account/password",
                         data={"current": PASSWORD, "password": NEW, "confirm": NEW})
    assert forged.status_code in (400, 422)
    assert login(client_for(tenant_a), user.email).status_code == 302  # unchanged
