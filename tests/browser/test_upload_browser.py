"""The GED's resumable upload in a real browser: progress shown, and a connection cut near the
end resumes where it stopped instead of sending the file again."""

from __future__ import annotations

import hashlib
import re

import pytest
import sqlalchemy as sa

from saas.extensions import db
from tests.browser.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

MIB = 1024 * 1024
PIECE = 8 * MIB  # upload.js sends 8 MiB per PATCH
SIZE = 20 * MIB  # three pieces: the cut hits the last one, past 80 %

# Every status line the page shows, sent to the test as it changes (the retry notice lasts
# one second, and the page leaves for the document once done).
RECORD_STATUS = """
document.addEventListener("DOMContentLoaded", () => {
  const status = document.querySelector("[data-status]");
  if (!status) return;
  new MutationObserver(() => window.recordStatus(status.textContent))
    .observe(status, {childList: true, characterData: true, subtree: true});
});
"""


def _text_file(size: int) -> bytes:
    line = b"Registre des deliberations du conseil municipal, seance ordinaire.\n"
    return (line * (size // len(line) + 1))[:size]


def test_an_upload_cut_near_the_end_resumes_where_it_stopped(live_port, tenant_a, make_user):
    require_chromium()
    from playwright.sync_api import sync_playwright

    from saas.ged.models import Document, DocumentVersion
    from saas.tenancy.context import tenant_context

    user = make_user(tenant_a, "agent")
    content = _text_file(SIZE)
    base = f"http://commune-a.mutualis.test:{live_port}"
    patches: list[int] = []  # Upload-Offset of every PATCH the page sent
    cut = []

    def on_patch(route, request):
        if request.method != "PATCH":
            route.continue_()
            return
        offset = int(request.headers["upload-offset"])
        patches.append(offset)
        if offset == 2 * PIECE and not cut:
            cut.append(offset)
            route.abort("connectionreset")  # the rural line drops during the last piece
            return
        route.continue_()

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 640}, locale="fr-FR")
            statuses: list[str] = []
            page.expose_function("recordStatus", lambda text: statuses.append(text))
            page.add_init_script(RECORD_STATUS)
            page.goto(base + "/auth/login")
            page.fill("#email", user.email)
            page.fill("#password", PASSWORD)
            with page.expect_navigation():
                page.click("#login-submit")
            page.route(re.compile(r".*/api/v1/uploads/[^/]+$"), on_patch)

            page.goto(base + "/ged/deposer")
            page.fill("#f-title", "Registre 2026")
            page.set_input_files("#f-file", files=[{
                "name": "registre.txt", "mimeType": "text/plain", "buffer": content}])
            with page.expect_navigation(url=re.compile(r".*/ged/documents/[0-9a-f-]+$"),
                                        timeout=60_000):
                page.click("form[data-resumable] button[type=submit]")
            assert page.locator("h1").inner_text() == "Registre 2026"
            page.screenshot(path=str(ARTIFACTS / "ged-upload-done-360.png"), full_page=True)
        finally:
            browser.close()

    # The third piece was cut, then sent again from its start: nothing before it went twice.
    assert cut == [2 * PIECE]
    assert patches == [0, PIECE, 2 * PIECE, 2 * PIECE]
    assert any(s.startswith("Connexion interrompue") for s in statuses), statuses
    percents = [int(m.group(1)) for s in statuses if (m := re.match(r"(\d+) % envoyés", s))]
    assert percents and max(percents) == 100 and any(0 < p < 100 for p in percents)
    assert statuses[-1] == "Envoi terminé."

    with tenant_context(tenant_a):
        doc = db.session.execute(sa.select(Document).where(Document.title == "Registre 2026")).scalar_one()
        version = db.session.execute(
            sa.select(DocumentVersion).where(DocumentVersion.document_id == doc.id)).scalar_one()
        assert (version.size, version.sha256) == (SIZE, hashlib.sha256(content).hexdigest())
        db.session.rollback()
