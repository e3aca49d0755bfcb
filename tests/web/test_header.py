"""The header names the commune once, its logo text marked inside the name when it is part of it."""

from __future__ import annotations

import re

from saas.units import NBSP


def _site_name(page: str) -> str:
    block = re.search(r'<p class="site-name">(.*?)</p>', page, re.S).group(1)
    return block


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", fragment)).strip()


def test_a_logo_text_contained_in_the_name_is_not_repeated(make_tenant, client_for):
    make_tenant("montclair", name="Montclair-sur-Loire", branding={"logo_text": "Montclair"})
    header = _site_name(client_for("montclair").get("/auth/login").get_data(as_text=True))
    assert _text(header) == "Montclair-sur-Loire"
    assert '<span class="logo-text">Montclair</span>-sur-Loire' in header


def test_a_logo_text_distinct_from_the_name_is_shown_beside_it_for_the_eyes_only(make_tenant, client_for):
    make_tenant("landes", name="Communauté des Landes", branding={"logo_text": "CdL"})
    header = _site_name(client_for("landes").get("/auth/login").get_data(as_text=True))
    assert '<span class="logo-text" aria-hidden="true">CdL</span> Communauté des Landes' in header


def test_the_quota_declared_in_decimal_units_is_shown_as_declared(make_tenant, make_user, client_for):
    from tests.auth.helpers import login

    tenant = make_tenant("petite", quota_bytes=10 * 10**6)  # "10 Mo" in a manifest
    user = make_user(tenant, "agent")
    client = client_for(tenant)
    login(client, user.email)
    page = client.get("/ged/").get_data(as_text=True)
    assert f"sur 10{NBSP}Mo" in page and "9,5" not in page
