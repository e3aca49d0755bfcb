"""The accessibility check itself catches what it should (so a clean page means something)."""

from __future__ import annotations

import pytest

from tests.browser.a11y import axe_violations, horizontal_overflow
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.browser


def test_axe_and_overflow_checks_see_a_broken_page():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 640})
            page.set_content('<html><body><img src="x.png"><input type="text">'
                             '<div style="width:900px">large</div></body></html>')
            ids = {v["id"] for v in axe_violations(page)}
            assert {"image-alt", "html-has-lang"} <= ids
            assert horizontal_overflow(page) > 0
            page.set_content('<html lang="fr"><head><title>Essai</title></head><body><main>'
                             '<h1>Essai</h1><p>Texte.</p></main></body></html>')
            assert axe_violations(page) == []
            assert horizontal_overflow(page) <= 0
        finally:
            browser.close()
