"""The UI shell: portal, commune dashboard, console home, suspended commune, theme."""

from __future__ import annotations

import html
import re

from saas.tenancy.models import TenantStatus
from tests.auth.helpers import code_for, enrol_totp, location_path, login, submit_code


def _console_client(make_user, client_for):
    admin = make_user(None, platform_admin=True, name="Paul Info")
    secret = enrol_totp(admin.id)
    client = client_for("admin")
    login(client, admin.email)
    submit_code(client, "/auth/totp", code_for(secret))
    return client


def test_portal_lists_active_communes_with_their_login_page(make_tenant, client_for):
    make_tenant("bourg", name="Bourg-sur-Loire", insee="44100")
    make_tenant("ferme", name="Fermée-les-Bains", status=TenantStatus.SUSPENDED)
    make_tenant("cc-loire", name="CC Loire", kind="epci", insee=None)
    page = html.unescape(client_for(None).get("/").get_data(as_text=True))
    assert "Bourg-sur-Loire" in page and "code INSEE 44100" in page
    assert "http://bourg.mutualis.test:8000/auth/login" in page
    assert "CC Loire" in page and "Intercommunalité" in page
    assert "Fermée-les-Bains" not in page
    assert "http://admin.mutualis.test:8000/auth/login" in page


def test_commune_home_requires_a_login(tenant_a, client_for):
    response = client_for(tenant_a).get("/")
    assert response.status_code == 302 and location_path(response) == "/auth/login?next=%2F"


def test_commune_home_shows_the_enabled_modules_as_coming_soon(make_tenant, make_user, client_for):
    tenant = make_tenant("bourg", name="Bourg", modules=["actes", "seances"])
    user = make_user(tenant, "admin")
    secret = enrol_totp(user.id)
    client = client_for(tenant)
    login(client, user.email)
    submit_code(client, "/auth/totp", code_for(secret))
    page = html.unescape(client.get("/").get_data(as_text=True))
    cards = re.findall(r'id="module-([a-z]+)"', page)
    assert cards == ["actes", "seances"]
    assert page.count("à venir") == 2
    assert '<span class="role">Administrateur</span>' in page


def test_module_cards_link_to_the_modules_that_exist(app, make_tenant, make_user, client_for):
    tenant = make_tenant("bourg", modules=["ged", "paie"])
    user = make_user(tenant, "agent")
    client = client_for(tenant)
    login(client, user.email)
    page = html.unescape(client.get("/").get_data(as_text=True))
    for key in ("ged", "paie"):
        card = re.search(rf'id="module-{key}">(.*?)</li>', page, re.S).group(1)
        if f"{key}.index" in app.view_functions:
            assert f'href="/{key}/"' in card and "à venir" not in card
        else:
            assert "href=" not in card and "à venir" in card


def test_commune_without_modules_says_so(make_tenant, make_user, client_for):
    tenant = make_tenant("vide", modules=[])
    user = make_user(tenant, "agent")
    client = client_for(tenant)
    login(client, user.email)
    page = html.unescape(client.get("/").get_data(as_text=True))
    assert "Aucun service n'est encore activé" in page and "module-" not in page


def test_console_home_lists_every_tenant_with_its_facts(make_tenant, make_user, client_for):
    make_tenant("bourg", name="Bourg-sur-Loire", insee="44100", population=12345)
    make_tenant("ferme", name="Fermée", status=TenantStatus.SUSPENDED)
    client = _console_client(make_user, client_for)
    page = html.unescape(client.get("/").get_data(as_text=True))
    row = re.search(r"<tr>\s*<th scope=\"row\">Bourg-sur-Loire.*?</tr>", page, re.S).group(0)
    assert "44100" in row and "12 345" in row and "active" in row
    assert "http://bourg.mutualis.test:8000/" in row
    assert re.search(r"Fermée.*?badge-suspended\">suspendue", page, re.S)
    assert "Administration de la plateforme" in page
    assert client.get("/console/").status_code == 200


def test_console_refuses_commune_users_and_anonymous_visitors(tenant_a, make_user, client_for):
    assert location_path(client_for("admin").get("/")).startswith("/auth/login")
    agent = make_user(tenant_a, "admin")
    client = client_for("admin")
    login(client, agent.email)
    assert location_path(client.get("/")).startswith("/auth/login")
    assert client_for(tenant_a).get("/console/").status_code == 404


def test_suspended_commune_shows_a_french_page_with_its_branding(make_tenant, client_for):
    tenant = make_tenant("ferme", name="Fermée-les-Bains", status=TenantStatus.SUSPENDED,
                         branding={"primary_color": "#8a2be2"})
    for path in ("/", "/auth/login"):
        response = client_for(tenant).get(path)
        assert response.status_code == 403
        page = html.unescape(response.get_data(as_text=True))
        assert "Cette commune est suspendue" in page and "Fermée-les-Bains" in page
        assert 'href="/theme.css"' in page and 'lang="fr"' in page
    theme = client_for(tenant).get("/theme.css")
    assert theme.status_code == 200 and "#8a2be2" in theme.get_data(as_text=True)


def test_theme_uses_the_commune_colour_and_refuses_anything_else(make_tenant, client_for):
    good = make_tenant("bleu", branding={"primary_color": "#123abc"})
    bad = make_tenant("mal", branding={"primary_color": "red;}</style><script>"})
    assert client_for(good).get("/theme.css").get_data(as_text=True) == ":root { --brand: #123abc; }\n"
    assert "#000091" in client_for(bad).get("/theme.css").get_data(as_text=True)


def test_pages_load_nothing_from_elsewhere(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    pages = [client.get("/auth/login"), client.get("/auth/forgot")]
    login(client, user.email)
    pages += [client.get("/"), client.get("/auth/account"), client.get("/auth/account/totp")]
    for response in pages:
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert not re.search(r'<(?:link|script|img)[^>]+(?:href|src)="(?:https?:)?//', page)
        assert "<script" not in page and "style=" not in page  # CSP: style-src/script-src 'self'
        assert 'class="skip-link" href="#contenu"' in page and 'id="contenu"' in page
