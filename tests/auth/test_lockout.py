"""Per-account lockout in the database and per-address throttling in the limiter's storage."""

from __future__ import annotations

from datetime import timedelta

from saas.auth.services import LOCK_MAX, lock_duration
from saas.extensions import db
from saas.modelbase import utcnow
from tests.auth.helpers import audit_entries, csrf_token, fresh_user, is_logged_in, login
from tests.conftest import PASSWORD

LOCKED = "Compte temporairement verrouillé"


def _fail(client, email, times):
    return [login(client, email, "not-the-password-1") for _ in range(times)]


def test_lock_durations_double_and_are_capped():
    assert lock_duration(5) == timedelta(minutes=15)
    assert lock_duration(10) == timedelta(minutes=30)
    assert lock_duration(15) == timedelta(minutes=60)
    assert lock_duration(500) == LOCK_MAX


def test_five_failures_lock_the_account_and_say_until_when(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    answers = _fail(client, user.email, 5)
    assert all(r.status_code == 200 for r in answers)
    assert LOCKED not in answers[3].get_data(as_text=True)
    assert LOCKED in answers[4].get_data(as_text=True)

    row = fresh_user(user.id)
    assert row.failed_logins == 5
    remaining = row.locked_until - utcnow()
    assert timedelta(minutes=14) < remaining <= timedelta(minutes=15)

    # Even the right password is refused while locked, and the page says when it ends.
    html = login(client, user.email, PASSWORD).get_data(as_text=True)
    assert LOCKED in html and "heure de Paris" in html
    assert not is_logged_in(client)
    reasons = [d.get("reason") for a, _actor, d in audit_entries(tenant_a) if a == "auth.login"]
    assert reasons == ["bad_password"] * 5 + ["locked"]


def test_expired_lock_lets_the_right_password_in_and_resets_the_counter(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    _fail(client, user.email, 5)
    row = fresh_user(user.id)
    row.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert login(client, user.email).status_code == 302
    row = fresh_user(user.id)
    assert row.failed_logins == 0 and row.locked_until is None


def test_next_lock_after_an_expired_one_lasts_twice_as_long(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    _fail(client, user.email, 5)
    row = fresh_user(user.id)
    row.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    answers = _fail(client, user.email, 5)
    assert LOCKED in answers[-1].get_data(as_text=True)
    remaining = fresh_user(user.id).locked_until - utcnow()
    assert timedelta(minutes=29) < remaining <= timedelta(minutes=30)


def test_unknown_address_locks_like_a_real_account(tenant_a, client_for):
    # Otherwise the lock message would tell which addresses have an account.
    client = client_for(tenant_a)
    answers = _fail(client, "ghost@example.org", 5)
    assert LOCKED not in answers[3].get_data(as_text=True)
    assert LOCKED in answers[4].get_data(as_text=True)
    assert LOCKED in login(client, "ghost@example.org").get_data(as_text=True)
    assert LOCKED not in login(client, "other-ghost@example.org").get_data(as_text=True)


def test_lock_counts_failures_on_every_commune_of_the_account(tenant_a, tenant_b, make_user, client_for):
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "agent", email=user.email)
    _fail(client_for(tenant_a), user.email, 3)
    answers = _fail(client_for(tenant_b), user.email, 2)
    assert LOCKED in answers[-1].get_data(as_text=True)


def test_login_posts_are_throttled_per_address_with_a_french_page(tenant_a, client_for):
    client = client_for(tenant_a)
    token = csrf_token(client.get("/auth/login").get_data(as_text=True))
    statuses = [
        client.post("/auth/login", data={"csrf_token": token, "email": f"x{i}@example.org",
                                         "password": "whatever-123"}).status_code
        for i in range(21)
    ]
    assert statuses == [200] * 20 + [429]
    page = client.post("/auth/login", data={"csrf_token": token, "email": "y@example.org",
                                            "password": "whatever-123"})
    assert page.status_code == 429
    html = page.get_data(as_text=True)
    assert "Trop de tentatives depuis votre adresse" in html and 'lang="fr"' in html
    assert page.headers.get("Retry-After")
    # The page itself stays readable, and another address is not affected.
    assert client.get("/auth/login").status_code == 200
    other = client_for(tenant_a)
    other.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    token = csrf_token(other.get("/auth/login").get_data(as_text=True))
    assert other.post("/auth/login", data={"csrf_token": token, "email": "z@example.org",
                                           "password": "whatever-123"}).status_code == 200
