"""Failed logins lock per (account, client network), with a ceiling per account over every
network; counters in the database; the owner is told by mail of each lock."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.header import decode_header, make_header

import sqlalchemy as sa

from saas.auth import services
from saas.auth.models import LoginThrottle
from saas.auth.services import LOCK_MAX, client_network, lock_duration
from saas.extensions import db
from saas.jobs import run_pending
from saas.modelbase import utcnow
from tests.auth.helpers import audit_entries, csrf_token, is_logged_in, login, throttle_of
from tests.conftest import PASSWORD
from tests.support.smtp import body_of

LOCKED = "Compte temporairement verrouillé"


def _fail(client, email, times):
    return [login(client, email, "not-the-password-1") for _ in range(times)]


def _from(client, address):
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _expire_locks():
    db.session.execute(sa.update(LoginThrottle).values(locked_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def _locked_until(tenant, n=-1) -> datetime:
    entries = [d for a, _actor, d in audit_entries(tenant) if a == "auth.login" and "locked_until" in d]
    return datetime.fromisoformat(entries[n]["locked_until"])


def test_lock_durations_double_and_are_capped():
    assert lock_duration(5) == timedelta(minutes=15)
    assert lock_duration(10) == timedelta(minutes=30)
    assert lock_duration(15) == timedelta(minutes=60)
    assert lock_duration(500) == LOCK_MAX


def test_client_networks_group_ipv6_by_64():
    assert client_network("192.0.2.7") == "192.0.2.7"
    assert client_network("2001:db8:1:2:aaaa::1") == client_network("2001:db8:1:2:bbbb::9") \
        == "2001:db8:1:2::/64"
    assert client_network("::ffff:192.0.2.7") == "192.0.2.7"


def test_five_failures_lock_the_account_and_say_until_when(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    answers = _fail(client, user.email, 5)
    assert all(r.status_code == 200 for r in answers)
    assert LOCKED not in answers[3].get_data(as_text=True)
    assert LOCKED in answers[4].get_data(as_text=True)

    row = throttle_of(user.email)
    assert row.failures == 5
    remaining = row.locked_until - utcnow()
    assert timedelta(minutes=14) < remaining <= timedelta(minutes=15)

    # Even the right password is refused while locked, and the page says when it ends.
    html = login(client, user.email, PASSWORD).get_data(as_text=True)
    assert LOCKED in html and "heure de Paris" in html
    assert not is_logged_in(client)
    reasons = [d.get("reason") for a, _actor, d in audit_entries(tenant_a) if a == "auth.login"]
    assert reasons == ["bad_password"] * 5 + ["locked"]


def test_a_distant_client_does_not_lock_the_owner_out_of_her_address(tenant_a, make_user,
                                                                      client_for):
    user = make_user(tenant_a, "agent")
    attacker = _from(client_for(tenant_a), "198.51.100.66")
    answers = _fail(attacker, user.email, 6)
    assert LOCKED in answers[4].get_data(as_text=True) and LOCKED in answers[5].get_data(as_text=True)
    # From her own address the owner logs in at once.
    owner = client_for(tenant_a)
    assert login(owner, user.email).status_code == 302 and is_logged_in(owner)
    # ... and the attacker's network stays locked.
    assert LOCKED in login(attacker, user.email).get_data(as_text=True)


def test_the_ceiling_over_every_address_stops_a_distributed_guess(tenant_a, make_user, client_for,
                                                                  monkeypatch):
    monkeypatch.setattr(services, "GLOBAL_THRESHOLD", 10)  # 100 in production
    user = make_user(tenant_a, "agent")
    for n in range(3):
        _fail(_from(client_for(tenant_a), f"203.0.113.{n + 1}"), user.email, 4)  # no address lock
    ceiling = throttle_of(user.email, "*")
    assert ceiling.failures == 10  # the last two were refused as locked, not counted
    remaining = ceiling.locked_until - utcnow()
    assert timedelta(minutes=59) < remaining <= timedelta(hours=1)
    # Locked from anywhere, the owner's address included, until the ceiling's lock ends.
    assert LOCKED in login(client_for(tenant_a), user.email).get_data(as_text=True)
    _expire_locks()
    assert login(client_for(tenant_a), user.email).status_code == 302


def test_expired_lock_lets_the_right_password_in_and_resets_the_counter(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    _fail(client, user.email, 5)
    _expire_locks()
    assert login(client, user.email).status_code == 302
    assert throttle_of(user.email) is None


def test_next_lock_after_an_expired_one_lasts_twice_as_long(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    _fail(client, user.email, 5)
    _expire_locks()
    answers = _fail(client, user.email, 5)
    assert LOCKED in answers[-1].get_data(as_text=True)
    remaining = throttle_of(user.email).locked_until - utcnow()
    assert timedelta(minutes=29) < remaining <= timedelta(minutes=30)


def test_unknown_address_locks_like_a_real_account(tenant_a, client_for):
    # Otherwise the lock message would tell which addresses have an account.
    client = client_for(tenant_a)
    answers = _fail(client, "ghost@example.org", 5)
    assert LOCKED not in answers[3].get_data(as_text=True)
    assert LOCKED in answers[4].get_data(as_text=True)
    assert LOCKED in login(client, "ghost@example.org").get_data(as_text=True)
    assert LOCKED not in login(client, "other-ghost@example.org").get_data(as_text=True)
    # ... and only from that network, as for a real account.
    assert LOCKED not in login(_from(client_for(tenant_a), "192.0.2.9"),
                               "ghost@example.org").get_data(as_text=True)


def test_lock_counts_failures_on_every_commune_of_the_account(tenant_a, tenant_b, make_user, client_for):
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "agent", email=user.email)
    _fail(client_for(tenant_a), user.email, 3)
    answers = _fail(client_for(tenant_b), user.email, 2)
    assert LOCKED in answers[-1].get_data(as_text=True)


def test_the_owner_is_told_once_per_lock_by_mail(tenant_a, make_user, client_for, smtp_server):
    user = make_user(tenant_a, "agent", name="Claire Martin")
    attacker = _from(client_for(tenant_a), "198.51.100.66")
    _fail(attacker, user.email, 7)  # locked at the fifth; the next two are refused as locked
    _fail(attacker, "ghost@example.org", 5)  # no account: a job runs, no mail goes out
    run_pending()
    mails = [m for m in smtp_server.messages]
    assert [m["To"] for m in mails] == [user.email]
    body = body_of(mails[0])
    assert "Claire Martin" in body and "198.51.100.66" in body and "Commune A" in body
    subject = str(make_header(decode_header(mails[0]["Subject"])))
    assert subject == "Connexions à votre compte bloquées – Mutualis"
    assert "not-the-password" not in body
    until = throttle_of(user.email, "198.51.100.66").locked_until
    assert until.replace(microsecond=0) == _locked_until(tenant_a, 0) and "heure de Paris" in body


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
