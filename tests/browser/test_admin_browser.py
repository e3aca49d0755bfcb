"""Administration without the command line, in a real browser at 360 and 1280 px:
a commune admin invites, the invitee sets her password from the mailed link, the admin changes
her role and deactivates her; an admin who lost her phone logs in with a recovery code; the IT
staff reach the jobs console from the menu and suspend then reactivate a commune."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from saas.auth import recovery
from saas.extensions import db
from saas.jobs import run_pending
from tests.auth.helpers import code_for, enrol_totp, fresh_user
from tests.browser.a11y import VIEWPORTS, check_page
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.conftest import PASSWORD
from tests.support.smtp import body_of

pytestmark = pytest.mark.browser

NEW_PASSWORD = "Une-phrase-de-passe-solide-42"


def _browser(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def _login(page, base, email, secret=None, password=PASSWORD):
    page.goto(base + "/auth/login")
    page.fill("#email", email)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("#login-submit")
    if secret is not None:
        page.fill("#code", code_for(secret))
        with page.expect_navigation():
            page.click("button[type=submit]")


def _check(page, name, javascript=True):
    """axe-core needs scripts: with JavaScript off the same pages were checked with it on."""
    if javascript:
        check_page(page, name)


def _submit(page, selector):
    with page.expect_navigation():
        page.click(selector)


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
def test_commune_admin_invites_changes_role_and_deactivates(
        live_port, tenant_a, make_user, smtp_server, viewport, javascript):
    require_chromium()
    from playwright.sync_api import sync_playwright

    admin = make_user(tenant_a, "admin", name="Hélène Admin")
    secret = enrol_totp(admin.id)
    base = f"http://commune-a.mutualis.test:{live_port}"
    email = f"nina-{viewport}-{int(javascript)}@example.org"
    tag = f"{viewport}-{'js' if javascript else 'nojs'}"
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            context = browser.new_context(viewport=VIEWPORTS[viewport], locale="fr-FR", bypass_csp=True,
                                          java_script_enabled=javascript)
            page = context.new_page()
            _login(page, base, admin.email, secret)
            page.goto(base + "/auth/account")
            _submit(page, "text=Gérer les utilisateurs de la commune")
            assert page.locator("h1").inner_text() == "Utilisateurs de la commune"
            _check(page, f"admin-users-{tag}", javascript)

            page.fill("#email", email)
            page.fill("#name", "Nina Nouvelle")
            page.select_option("#role", "agent")
            _submit(page, "text=Envoyer l'invitation")
            assert "Invitation envoyée" in page.locator(".flashes").inner_text()
            _check(page, f"admin-users-invited-{tag}", javascript)

            # The invitee opens the link from her mailbox in another browser.
            run_pending()
            link = re.search(r"(https?://\S+/auth/invitation/\S+)",
                             body_of(smtp_server.last_to(email))).group(1)
            invitee = browser.new_context(viewport=VIEWPORTS[viewport], locale="fr-FR", bypass_csp=True,
                                          java_script_enabled=javascript).new_page()
            invitee.goto(base + urlsplit(link).path)
            _check(invitee, f"invitation-{tag}", javascript)
            invitee.fill("#password", NEW_PASSWORD)
            invitee.fill("#confirm", NEW_PASSWORD)
            _submit(invitee, "text=Activer mon compte")
            assert invitee.url == base + "/auth/login"
            _login(invitee, base, email, password=NEW_PASSWORD)
            assert invitee.url == base + "/"

            # The admin makes her an élue, then deactivates her.
            page.goto(base + "/utilisateurs/")
            person = page.locator("li.member", has_text=email)
            person.locator("select").select_option("elu")
            with page.expect_navigation():
                person.locator("text=Changer le rôle").click()
            assert "Rôle de Nina Nouvelle : Élu." in page.locator(".flashes").inner_text()
            _check(page, f"admin-users-role-{tag}", javascript)
            person = page.locator("li.member", has_text=email)
            with page.expect_navigation():
                person.locator("button", has_text="Désactiver l'accès").click()
            assert "est désactivé" in page.locator(".flashes").inner_text()
            assert page.locator("li.member", has_text=email).count() == 0
            _check(page, f"admin-users-deactivated-{tag}", javascript)

            # Her open session ends at once.
            invitee.goto(base + "/auth/account")
            assert invitee.url.startswith(base + "/auth/login")
        finally:
            browser.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_admin_who_lost_her_phone_logs_in_with_a_recovery_code(
        live_port, tenant_a, make_user, smtp_server, viewport):
    require_chromium()
    from playwright.sync_api import sync_playwright

    admin = make_user(tenant_a, "admin", name="Alice Perdue")
    base = f"http://commune-a.mutualis.test:{live_port}"
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            page = browser.new_page(viewport=VIEWPORTS[viewport], locale="fr-FR", bypass_csp=True)
            # Forced enrolment: the codes are shown once.
            page.goto(base + "/auth/login")
            page.fill("#email", admin.email)
            page.fill("#password", PASSWORD)
            _submit(page, "#login-submit")
            secret = page.locator("#totp-secret").inner_text().replace(" ", "")
            page.fill("#code", code_for(secret))
            _submit(page, "button[type=submit]")
            codes = page.locator("#recovery-codes code").all_inner_texts()
            assert len(codes) == 10
            check_page(page, f"recovery-codes-{viewport}")
            _submit(page, "text=J'ai noté mes codes, continuer")
            page.context.clear_cookies()

            # The phone is lost: a recovery code instead.
            page.goto(base + "/auth/login")
            page.fill("#email", admin.email)
            page.fill("#password", PASSWORD)
            _submit(page, "#login-submit")
            _submit(page, "text=Téléphone perdu ? Utiliser un code de secours")
            check_page(page, f"recovery-login-{viewport}")
            page.fill("#code", codes[0])
            _submit(page, "button[type=submit]")
            assert page.url == base + "/"
            assert "Il vous en reste 9" in page.locator(".flashes").inner_text()
            assert recovery.codes_left(fresh_user(admin.id)) == 9
            db.session.rollback()
            run_pending()
            assert "codes de secours" in body_of(smtp_server.last_to(admin.email)).lower()
            page.goto(base + "/auth/account")
            check_page(page, f"account-recovery-{viewport}")
        finally:
            browser.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
def test_it_staff_reach_jobs_then_suspend_and_reactivate_a_commune(
        live_port, tenant_a, tenant_b, make_user, viewport, javascript):
    require_chromium()
    from playwright.sync_api import sync_playwright

    it = make_user(None, platform_admin=True, name="Paul Info")
    secret = enrol_totp(it.id)
    base = f"http://admin.mutualis.test:{live_port}"
    tag = f"{viewport}-{'js' if javascript else 'nojs'}"
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            context = browser.new_context(viewport=VIEWPORTS[viewport], locale="fr-FR", bypass_csp=True,
                                          java_script_enabled=javascript)
            page = context.new_page()
            _login(page, base, it.email, secret)
            page.goto(base + "/console/")
            _check(page, f"console-home-{tag}", javascript)
            _submit(page, "nav.console-nav >> text=Tâches")
            assert page.url == base + "/console/jobs/"
            _check(page, f"console-jobs-{tag}", javascript)
            _submit(page, "nav.console-nav >> text=Collectivités")

            row = page.locator("tr", has=page.locator("#commune-commune-a"))
            row.locator("summary").click()
            # A reason is required: an empty one is refused with a message.
            with page.expect_navigation():
                row.locator("button", has_text="Suspendre Commune A").click()
            assert "Indiquez le motif" in page.locator('[role="alert"]').first.inner_text()
            row = page.locator("tr", has=page.locator("#commune-commune-a"))
            row.locator("textarea").fill("Impayés 2026")
            with page.expect_navigation():
                row.locator("button", has_text="Suspendre Commune A").click()
            assert "Commune A est suspendue" in page.locator(".flashes").inner_text()
            assert "Motif : Impayés 2026" in page.locator("tr", has=page.locator(
                "#commune-commune-a")).inner_text()
            _check(page, f"console-suspended-{tag}", javascript)

            row = page.locator("tr", has=page.locator("#commune-commune-a"))
            row.locator("summary").click()
            row.locator("textarea").fill("Régularisé")
            with page.expect_navigation():
                row.locator("button", has_text="Réactiver Commune A").click()
            assert "Commune A est réactivée" in page.locator(".flashes").inner_text()
            _check(page, f"console-reactivated-{tag}", javascript)
        finally:
            browser.close()
