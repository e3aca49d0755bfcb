"""A real browser on a phone-sized screen: login by keyboard only, no horizontal scroll."""

from __future__ import annotations

import pytest

from tests.browser.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def _focused(page) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.className")


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.scrollingElement.scrollWidth") <= 360


def test_login_on_a_phone_with_the_keyboard_only(live_port, tenant_a, make_user):
    require_chromium()
    from playwright.sync_api import sync_playwright

    user = make_user(tenant_a, "agent", name="Alice Martin")
    base = f"http://commune-a.mutualis.test:{live_port}"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 640}, locale="fr-FR")
            page.goto(base + "/auth/login")
            assert page.title() == "Connexion – Commune A"
            assert _no_horizontal_scroll(page)

            # The skip link comes first and moves the focus to the content.
            page.keyboard.press("Tab")
            assert _focused(page) == "skip-link"
            assert page.locator(".skip-link").is_visible()
            page.keyboard.press("Enter")
            assert page.evaluate("location.hash") == "#contenu"
            assert _focused(page) == "contenu"

            # Fields in order, then the button: a wrong password first.
            page.keyboard.press("Tab")
            assert _focused(page) == "email"
            page.keyboard.type(user.email)
            page.keyboard.press("Tab")
            assert _focused(page) == "password"
            page.keyboard.type("pas-le-bon-mot-de-passe")
            page.keyboard.press("Tab")
            assert _focused(page) == "login-submit"
            page.keyboard.press("Enter")
            page.wait_for_load_state()
            alert = page.locator('[role="alert"]')
            assert alert.inner_text().strip() == "Adresse électronique ou mot de passe incorrect."
            assert page.title().startswith("Erreur\u00a0: Connexion")
            assert _no_horizontal_scroll(page)
            page.screenshot(path=str(ARTIFACTS / "login-error-360.png"), full_page=True)

            # The address is kept; only the password needs typing again.
            assert page.input_value("#email") == user.email
            page.focus("#password")
            page.keyboard.type(PASSWORD)
            page.keyboard.press("Tab")
            assert _focused(page) == "login-submit"
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.url == base + "/"
            assert page.locator("h1").inner_text() == "Bonjour Alice Martin"
            assert page.locator(".who .role").inner_text() == "Agent"
            assert _no_horizontal_scroll(page)
            page.screenshot(path=str(ARTIFACTS / "dashboard-360.png"), full_page=True)
        finally:
            browser.close()
