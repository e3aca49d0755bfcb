"""Password reset by e-mail: no enumeration, single-use timed links, sessions closed after."""

from __future__ import annotations

import html
import re
import time
from urllib.parse import urlsplit

from saas.extensions import db
from saas.jobs import run_pending
from saas.modelbase import utcnow
from tests.auth.helpers import (
    audit_entries,
    csrf_token,
    fresh_user,
    is_logged_in,
    location_path,
    login,
    post_form,
    throttle_of,
)
from tests.support.smtp import body_of

NEW_PASSWORD = "Un-tout-nouveau-secret-42"
SENT = "Si un compte correspond à cette adresse"


def _ask_reset(client, email, *, run_jobs=True):
    """Ask for a reset link, then run the queued mail job as a worker would."""
    response = post_form(client, "/auth/forgot", {"email": email})
    if run_jobs:
        run_pending()
    return response


def _link_in_mail(smtp_server, email) -> str:
    body = body_of(smtp_server.last_to(email))
    match = re.search(r"(https?://\S+/auth/reset/\S+)", body)
    assert match, body
    return match.group(1)


def _set_password(client, path, password=NEW_PASSWORD, confirm=None):
    return post_form(client, path, {"password": password, "confirm": confirm or password})


def test_forgot_form_answers_the_same_whether_or_not_the_account_exists(
        tenant_a, tenant_b, make_user, client_for, smtp_server):
    member = make_user(tenant_a, "agent")
    outsider = make_user(tenant_b, "agent")
    pages = []
    for email in (member.email, "nobody@example.org", outsider.email):
        response = _ask_reset(client_for(tenant_a), email)
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        pages.append(page[page.index("<main"):page.index("</main>")])
    assert pages[0] == pages[1] == pages[2] and SENT in pages[0]
    assert [m["To"] for m in smtp_server.messages] == [member.email]


def test_reset_link_sets_a_new_password_and_closes_every_session(
        tenant_a, make_user, client_for, smtp_server):
    user = make_user(tenant_a, "agent", name="Bruno Petit")
    elsewhere = client_for(tenant_a)
    login(elsewhere, user.email)
    assert is_logged_in(elsewhere)

    _ask_reset(client_for(tenant_a), user.email)
    message = smtp_server.last_to(user.email)
    assert "Commune A" in message["Subject"]
    link = _link_in_mail(smtp_server, user.email)
    parts = urlsplit(link)
    assert parts.hostname == "commune-a.mutualis.test"

    client = client_for(tenant_a)
    page = client.get(parts.path)
    assert page.status_code == 200 and user.email in page.get_data(as_text=True)
    response = _set_password(client, parts.path)
    assert location_path(response) == "/auth/login"

    assert not is_logged_in(elsewhere)  # session_version bumped
    assert login(client_for(tenant_a), user.email).status_code == 200  # old password refused
    assert login(client_for(tenant_a), user.email, NEW_PASSWORD).status_code == 302
    actions = [a for a, *_ in audit_entries(tenant_a)]
    assert "auth.password_reset.request" in actions and "auth.password_reset" in actions


def test_reset_link_works_only_once(tenant_a, make_user, client_for, smtp_server):
    user = make_user(tenant_a, "agent")
    _ask_reset(client_for(tenant_a), user.email)
    path = urlsplit(_link_in_mail(smtp_server, user.email)).path
    client = client_for(tenant_a)
    assert _set_password(client, path).status_code == 302
    again = client_for(tenant_a).get(path)
    assert again.status_code == 400 and "Ce lien a déjà servi" in again.get_data(as_text=True)
    assert client_for(tenant_a).post(path, data={
        "csrf_token": csrf_token(client.get("/auth/login").get_data(as_text=True)),
        "password": "Encore-un-autre-mot-7", "confirm": "Encore-un-autre-mot-7"}).status_code == 400
    assert login(client_for(tenant_a), user.email, NEW_PASSWORD).status_code == 302


def test_forged_link_is_refused(tenant_a, make_user, client_for, smtp_server):
    user = make_user(tenant_a, "agent")
    _ask_reset(client_for(tenant_a), user.email)
    path = urlsplit(_link_in_mail(smtp_server, user.email)).path
    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    for candidate in (forged, "/auth/reset/not-a-token"):
        response = client_for(tenant_a).get(candidate)
        assert response.status_code == 400
        assert "Ce lien n'est pas valide" in html.unescape(response.get_data(as_text=True))


def test_expired_link_is_refused(app, tenant_a, make_user, client_for, monkeypatch):
    from saas.auth import services

    user = make_user(tenant_a, "agent")
    two_hours_ago = time.time() - 7200
    with app.test_request_context(base_url="http://commune-a.mutualis.test"):
        from flask import g

        g.tenant, g.host_kind = tenant_a, "tenant"
        with monkeypatch.context() as patch:
            patch.setattr("itsdangerous.timed.time.time", lambda: two_hours_ago)
            token = services.make_reset_token(fresh_user(user.id))
    response = client_for(tenant_a).get(f"/auth/reset/{token}")
    assert response.status_code == 400 and "Ce lien a expiré" in response.get_data(as_text=True)


def test_link_of_one_commune_does_not_work_on_another(tenant_a, tenant_b, make_user, client_for,
                                                      smtp_server):
    user = make_user(tenant_a, "agent")
    make_user(tenant_b, "agent", email=user.email)
    _ask_reset(client_for(tenant_a), user.email)
    path = urlsplit(_link_in_mail(smtp_server, user.email)).path
    assert client_for(tenant_b).get(path).status_code == 400


def test_weak_or_mismatched_new_password_is_refused_with_the_reason(
        tenant_a, make_user, client_for, smtp_server):
    user = make_user(tenant_a, "agent")
    _ask_reset(client_for(tenant_a), user.email)
    path = urlsplit(_link_in_mail(smtp_server, user.email)).path
    client = client_for(tenant_a)
    short = _set_password(client, path, "court")
    assert short.status_code == 200
    assert "au moins 12 caractères" in short.get_data(as_text=True)
    mismatch = _set_password(client, path, NEW_PASSWORD, "Autre-chose-encore-1")
    assert "ne sont pas identiques" in mismatch.get_data(as_text=True)
    assert login(client_for(tenant_a), user.email).status_code == 302  # unchanged


def test_reset_clears_the_lockout(tenant_a, make_user, client_for, smtp_server):
    user = make_user(tenant_a, "agent")
    for _ in range(5):
        login(client_for(tenant_a), user.email, "not-the-password-1")
    assert throttle_of(user.email).locked_until is not None
    _ask_reset(client_for(tenant_a), user.email)
    path = urlsplit(_link_in_mail(smtp_server, user.email)).path
    _set_password(client_for(tenant_a), path)
    assert throttle_of(user.email) is None and throttle_of(user.email, "*") is None
    assert login(client_for(tenant_a), user.email, NEW_PASSWORD).status_code == 302


def test_forgot_form_is_throttled_per_address(tenant_a, client_for, smtp_server):
    client = client_for(tenant_a)
    token = csrf_token(client.get("/auth/forgot").get_data(as_text=True))
    statuses = [client.post("/auth/forgot", data={"csrf_token": token,
                                                  "email": f"p{i}@example.org"}).status_code
                for i in range(6)]
    assert statuses == [200] * 5 + [429]


def _reset_jobs():
    import sqlalchemy as sa

    from saas.jobs.models import QueueEntry

    db.session.expire_all()
    return db.session.execute(
        sa.select(QueueEntry).where(QueueEntry.kind == "auth.reset_mail").order_by(QueueEntry.created_at)
    ).scalars().all()


def test_the_request_only_queues_one_job_whoever_asks(tenant_a, tenant_b, make_user, client_for,
                                                      smtp_server):
    """The same work in the request for an account, an unknown address or another commune's
    member: one job, no mail yet, nothing that could be timed."""
    member, outsider = make_user(tenant_a, "agent"), make_user(tenant_b, "agent")
    for email in (member.email, "personne@example.org", outsider.email):
        assert _ask_reset(client_for(tenant_a), email, run_jobs=False).status_code == 200
    assert smtp_server.messages == []
    jobs = _reset_jobs()
    assert [job.state for job in jobs] == ["queued"] * 3 and {job.tenant_id for job in jobs} == {None}
    run_pending()
    assert [m["To"] for m in smtp_server.messages] == [member.email]
    assert [job.state for job in _reset_jobs()] == ["succeeded"] * 3


def test_a_mail_relay_failure_is_retried_not_lost(tenant_a, make_user, client_for, smtp_server):
    import sqlalchemy as sa

    from saas.jobs.models import QueueEntry

    user = make_user(tenant_a, "agent")
    smtp_server.refuse_next(1)
    _ask_reset(client_for(tenant_a), user.email)
    assert smtp_server.messages == []
    (job,) = _reset_jobs()
    assert job.state == "queued" and job.attempts == 1 and job.next_try > utcnow()  # backing off
    db.session.execute(sa.update(QueueEntry).where(QueueEntry.id == job.id)
                       .values(next_try=utcnow()))  # its back-off has elapsed
    db.session.commit()
    run_pending()
    assert _reset_jobs()[0].state == "succeeded"
    link = _link_in_mail(smtp_server, user.email)
    assert urlsplit(link).hostname == "commune-a.mutualis.test"
    assert [a for a, *_ in audit_entries(tenant_a)].count("auth.password_reset.request") == 1


def test_console_reset_for_a_platform_admin(make_user, client_for, smtp_server):
    admin = make_user(None, platform_admin=True)
    agent = make_user(None)  # not a platform admin: no account on the console
    for email in (admin.email, agent.email):
        _ask_reset(client_for("admin"), email)
    assert [m["To"] for m in smtp_server.messages] == [admin.email]
    link = _link_in_mail(smtp_server, admin.email)
    assert urlsplit(link).hostname == "admin.mutualis.test"
    page = client_for("admin").get(urlsplit(link).path)
    assert page.status_code == 200 and admin.email in page.get_data(as_text=True)


def test_no_mail_for_a_commune_suspended_meanwhile(tenant_a, make_user, client_for, smtp_server):
    from saas.tenancy.models import TenantStatus

    user = make_user(tenant_a, "agent")
    _ask_reset(client_for(tenant_a), user.email, run_jobs=False)
    tenant_a.status = TenantStatus.SUSPENDED
    db.session.commit()
    run_pending()
    assert smtp_server.messages == []
    assert _reset_jobs()[0].state == "succeeded"


def test_two_concurrent_requests_cannot_both_use_one_link(app, tenant_a, make_user, client_for,
                                                          smtp_server, monkeypatch):
    """Both requests pass the link check before either writes: only one may set its password."""
    import threading

    from saas.auth import passwords

    user = make_user(tenant_a, "agent")
    _ask_reset(client_for(tenant_a), user.email)
    path = urlsplit(_link_in_mail(smtp_server, user.email)).path
    clients = [client_for(tenant_a) for _ in range(2)]
    tokens = [csrf_token(c.get(path).get_data(as_text=True)) for c in clients]

    both_checked = threading.Barrier(2, timeout=20)
    real_hash = passwords.hash_password

    def hash_after_both_checked(password):
        both_checked.wait()  # each request has validated the link and is about to write
        return real_hash(password)

    monkeypatch.setattr(passwords, "hash_password", hash_after_both_checked)
    chosen = ["Premier-choix-secret-41", "Second-choix-secret-42"]
    statuses: list = [None, None]

    def submit(i):
        statuses[i] = clients[i].post(path, data={"csrf_token": tokens[i], "password": chosen[i],
                                                  "confirm": chosen[i]}).status_code

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    monkeypatch.setattr(passwords, "hash_password", real_hash)

    assert sorted(statuses) == [302, 400]
    winner = chosen[statuses.index(302)]
    loser = chosen[statuses.index(400)]
    assert login(client_for(tenant_a), user.email, loser).status_code == 200
    assert login(client_for(tenant_a), user.email, winner).status_code == 302
    assert [a for a, *_ in audit_entries(tenant_a)].count("auth.password_reset") == 1
