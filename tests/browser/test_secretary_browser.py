"""The secretary's day in a real browser, with JavaScript on and off, at 360 and 1280 px: deposit
a restricted note for one élu (double click included), see who is designated, rename and retype
it, cancel a deposit made by mistake; and a deposit over the quota says so clearly."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from saas.extensions import db
from tests.browser.a11y import VIEWPORTS, check_page
from tests.browser.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.conftest import PASSWORD
from tests.ged.conftest import make_pdf

pytestmark = pytest.mark.browser

DOC_URL = re.compile(r".*/ged/documents/[0-9a-f-]+$")


def _documents(tenant) -> list:
    from saas.ged.models import Document, DocumentAccess
    from saas.tenancy.context import tenant_context

    with tenant_context(tenant):
        rows = db.session.execute(sa.select(Document)).scalars().all()
        found = [(d.id, d.title, d.doc_type, set(db.session.execute(
            sa.select(DocumentAccess.user_id).where(DocumentAccess.document_id == d.id)).scalars()))
            for d in rows]
        db.session.rollback()
    return found


class _Checker:
    """check_page() for a page seen with JavaScript off: axe-core needs scripts, so the same
    address is checked in a JavaScript-enabled twin sharing the session (same HTML)."""

    def __init__(self, browser, context, viewport, js):
        self.twin = None
        if js == "nojs":
            self.twin = browser.new_context(viewport=VIEWPORTS[viewport], locale="fr-FR",
                                            bypass_csp=True, storage_state=context.storage_state())
            self.page = self.twin.new_page()

    def __call__(self, page, name):
        if self.twin is None:
            check_page(page, name)
            return
        page.screenshot(path=str(ARTIFACTS / f"{name}-nojs-view.png"), full_page=True)
        self.page.goto(page.url)
        check_page(self.page, name)


def _login(page, base, user) -> None:
    page.goto(base + "/auth/login")
    page.fill("#email", user.email)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("#login-submit")


@pytest.mark.parametrize("js", ["js", "nojs"])
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_secretary_deposits_edits_and_cancels(live_port, tenant_a, make_user, viewport, js):
    require_chromium()
    from playwright.sync_api import sync_playwright

    secretary = make_user(tenant_a, "agent", name="Sophie Secrétaire")
    elu = make_user(tenant_a, "elu", name="Élie Élu")
    base = f"http://commune-a.mutualis.test:{live_port}"
    name = f"ged-secretary-{viewport}-{js}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORTS[viewport], locale="fr-FR",
                                          java_script_enabled=(js == "js"), bypass_csp=True)
            page = context.new_page()
            _login(page, base, secretary)
            check = _Checker(browser, context, viewport, js)

            page.goto(base + "/ged/deposer")
            check(page, f"{name}-upload")
            page.fill("#f-title", "Note pour l'élu")
            page.select_option("#f-type", "deliberation")
            page.check("#f-conf-restricted")
            page.fill("#f-access", elu.email)
            page.set_input_files("#f-file", files=[{
                "name": "note.pdf", "mimeType": "application/pdf", "buffer": make_pdf()}])
            # The double click of the issue: one document, whatever the browser sends. Without
            # JavaScript the second submission aborts the first navigation (the server still
            # handles both), so wait for where the page ends up, not for one navigation.
            page.dblclick("form[enctype] button[type=submit]")
            page.wait_for_url(DOC_URL, timeout=30_000)
            page.wait_for_load_state()
            docs = _documents(tenant_a)
            assert len(docs) == 1, docs
            assert docs[0][3] == {elu.id}  # the élu is designated (JS upload included)
            assert page.locator("h1").inner_text() == "Note pour l'élu"
            assert elu.email in page.locator("#ged-people").inner_text()
            assert page.locator("#f-access").input_value() == elu.email
            check(page, f"{name}-document")

            # Rename and retype, the designated field untouched: saved, élu kept.
            page.fill("#f-title", "Note pour l'élu (corrigée)")
            page.select_option("#f-type", "courrier")
            with page.expect_navigation():
                page.click("form[action*='/modifier'] button[type=submit]")
            assert page.locator("h1").inner_text() == "Note pour l'élu (corrigée)"
            assert page.locator('[role="alert"]').count() == 0
            docs = _documents(tenant_a)
            assert (docs[0][1], docs[0][2], docs[0][3]) == ("Note pour l'élu (corrigée)", "courrier", {elu.id})

            # Deposited by mistake: cancelled, gone.
            with page.expect_navigation():
                page.click("form[action*='/annuler-depot'] button[type=submit]")
            assert "annulé" in page.content()
            assert _documents(tenant_a) == []
            check(page, f"{name}-cancelled")
        finally:
            browser.close()


@pytest.mark.parametrize("js", ["js", "nojs"])
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_a_deposit_over_the_quota_is_refused_before_it_starts(live_port, tenant_a, make_user,
                                                              viewport, js):
    require_chromium()
    from playwright.sync_api import sync_playwright

    from saas.tenancy.models import Tenant

    secretary = make_user(tenant_a, "agent")
    row = db.session.get(Tenant, tenant_a.id)
    row.quota_bytes = 2000  # less than the file below
    db.session.commit()
    base = f"http://commune-a.mutualis.test:{live_port}"
    name = f"ged-quota-{viewport}-{js}"
    uploads = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORTS[viewport], locale="fr-FR",
                                          java_script_enabled=(js == "js"), bypass_csp=True)
            page = context.new_page()
            page.on("request", lambda r: uploads.append(r.url) if r.method in ("POST", "PATCH")
                    and "/uploads" in r.url else None)
            _login(page, base, secretary)
            check = _Checker(browser, context, viewport, js)
            page.goto(base + "/ged/deposer")
            page.set_input_files("#f-file", files=[{
                "name": "gros.pdf", "mimeType": "application/pdf",
                "buffer": make_pdf() + b"%" * 5000}])
            if js == "js":
                page.click("form[enctype] button[type=submit]")
                alert = page.locator('[role="alert"]')
                alert.wait_for()
                assert "Espace de stockage insuffisant" in alert.inner_text()
                assert page.locator("button", has_text="Réessayer").is_visible()
                assert page.locator(".upload-progress").is_hidden()  # no "Envoi en cours"
                assert uploads == []  # nothing was sent
            else:
                with page.expect_navigation():
                    page.click("form[enctype] button[type=submit]")
                alert = page.locator('[role="alert"]')
                assert "quota" in alert.inner_text().lower() or "espace" in alert.inner_text().lower()
            if js == "js":
                check(page, name)
            else:  # the refusal page is a POST's answer: check it as it came
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                check.page.goto(base + "/ged/deposer")
                check_page(check.page, f"{name}-form")
            assert _documents(tenant_a) == []
        finally:
            browser.close()
