"""Static assets and compression: a slow link downloads the CSS and scripts once, pages and JSON
travel gzipped, and downloads, partial responses and compressed types pass untouched."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import saas
from tests.auth.helpers import login
from tests.ged.conftest import make_pdf, upload

STATIC = Path(saas.__file__).parent / "static"
GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def _asset_urls(page: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', page)


def test_pages_link_fingerprinted_assets_served_once_for_a_year_gzipped(tenant_a, make_user, client_for):
    client = client_for(tenant_a)
    page = client.get("/auth/login").get_data(as_text=True)
    urls = _asset_urls(page)
    css = next(u for u in urls if u.endswith(".css"))
    assert re.fullmatch(r"/static/css/app\.[0-9a-f]{12}\.css", css), urls
    assert any(re.fullmatch(r"/static/favicon\.[0-9a-f]{12}\.svg", u) for u in urls)

    response = client.get(css, headers=GZIP)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    original = (STATIC / "css" / "app.css").read_bytes()
    assert gzip.decompress(response.data) == original and len(response.data) < len(original) / 2

    # Without gzip in Accept-Encoding (or refused with q=0): the plain file, same URL.
    for accept in ({}, {"Accept-Encoding": "gzip;q=0, identity"}):
        plain = client.get(css, headers=accept)
        assert "Content-Encoding" not in plain.headers and plain.data == original

    # A revalidation (after the year, or a forced one) costs a 304, not the file.
    again = client.get(css, headers={**GZIP, "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_the_fingerprint_changes_with_the_content(app):
    assets = app.extensions["saas_assets"]
    script = assets.by_path["js/upload.js"]
    import hashlib

    assert script.digest == hashlib.sha256((STATIC / "js" / "upload.js").read_bytes()).hexdigest()[:12]
    assert script.url_name == f"js/upload.{script.digest}.js"


def test_an_unfingerprinted_or_outdated_asset_url_is_served_but_cached_briefly(tenant_a, client_for):
    client = client_for(tenant_a)
    for url in ("/static/css/app.css", "/static/css/app.0123456789ab.css"):
        response = client.get(url)
        assert response.status_code == 200 and response.headers["Cache-Control"] == "public, max-age=300"
    assert client.get("/static/css/nothing.css").status_code == 404


def test_every_host_answers_favicon_ico(tenant_a, client_for):
    for host in (tenant_a, None, "admin"):
        response = client_for(host).get("/favicon.ico")
        assert response.status_code == 200, host
        assert response.data == (STATIC / "favicon.ico").read_bytes()
        assert response.mimetype in ("image/vnd.microsoft.icon", "image/x-icon")


def test_pages_and_json_are_gzipped_when_the_client_accepts_it(tenant_a, make_user, client_for):
    user = make_user(tenant_a, "agent")
    client = client_for(tenant_a)
    login(client, user.email)
    plain = client.get("/ged/")
    packed = client.get("/ged/", headers=GZIP)
    assert plain.status_code == packed.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed.headers["Vary"]
    assert b"Documents de la commune" in gzip.decompress(packed.data)
    assert len(packed.data) < len(plain.data) / 2

    spec = client.get("/api/v1/openapi.json", headers=GZIP)
    assert spec.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(spec.data).startswith(b"{")


def test_small_responses_are_not_compressed(tenant_a, client_for):
    response = client_for(tenant_a).get("/theme.css", headers=GZIP)
    assert response.status_code == 200 and len(response.data) < 1024
    assert "Content-Encoding" not in response.headers


def test_downloads_partial_responses_and_compressed_types_are_never_recompressed(
        tenant_a, make_token, api_client):
    token, _user = make_token(tenant_a, "agent")
    client = api_client(tenant_a, token)
    text = b"Registre des deliberations, seance ordinaire du conseil municipal.\n" * 400
    created = upload(client, text, "registre.txt")
    assert created.status_code == 201, created.get_json()
    doc_id = created.get_json()["id"]
    content = f"/api/v1/documents/{doc_id}/content"
    whole = client.get(content, headers=GZIP)
    assert whole.status_code == 200 and "Content-Encoding" not in whole.headers
    assert whole.data == text
    part = client.get(content, headers={**GZIP, "Range": "bytes=0-99"})
    assert part.status_code == 206 and "Content-Encoding" not in part.headers
    assert part.data == text[:100]

    pdf = upload(client, make_pdf() + b"%" + b" " * 4000 + b"\n", "deliberation.pdf")
    assert pdf.status_code == 201
    got = client.get(f"/api/v1/documents/{pdf.get_json()['id']}/content", headers=GZIP)
    assert got.status_code == 200 and "Content-Encoding" not in got.headers


def test_compressed_pages_vary_in_length_against_breach():
    # The same page compressed twice: a random-length gzip header, so the length of a response
    # does not tell an attacker whether a guessed secret matched text reflected in the page.
    from saas.web.compression import compress

    body = b"<p>csrf_token=abc123 search=abc</p>" * 100
    packed = [compress(body) for _ in range(20)]
    assert all(gzip.decompress(p) == body for p in packed)
    assert len({len(p) for p in packed}) > 1


def test_templates_link_assets_only_through_static_url():
    templates = Path(saas.__file__).parent / "templates"
    offenders = [str(p.relative_to(templates)) for p in templates.rglob("*.html")
                 if re.search(r"url_for\(\s*['\"]static['\"]", p.read_text(encoding="utf-8"))]
    assert not offenders, f"url_for('static') bypasses the fingerprints: {offenders}"
