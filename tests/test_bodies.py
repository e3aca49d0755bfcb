"""Request bodies have a size limit, checked before a byte is read (saas/bodies.py).

The platform-wide limit is small; the upload endpoints raise it only once the caller is
authenticated and allowed to upload; JSON bodies have their own cap and a nesting limit.
The time limit (slow bodies) is tested against a real gunicorn in tests/test_slow_bodies.py.
"""

from __future__ import annotations

import io
import json
import uuid

import pytest

from tests.ged import conftest as ged_fixtures

# The GED's fixtures (bearer clients, emptied buckets), for the upload endpoints used here.
api = ged_fixtures.api
_empty_buckets = ged_fixtures._empty_buckets

GiB = 1024 ** 3
MiB = 1024 ** 2


class Untouchable(io.RawIOBase):
    """A huge body that counts what is read of it and fails a test that reads much."""

    def __init__(self, size: int, allowed: int = 0):
        self.size = size
        self.allowed = allowed
        self.read_bytes = 0

    def readable(self):
        return True

    def seekable(self):  # the test client measures the body by seeking to its end
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        self._pos = (self.size if whence == io.SEEK_END else 0) + offset
        return self._pos

    def tell(self):
        return getattr(self, "_pos", 0)

    def readinto(self, buffer):
        n = min(len(buffer), self.size - self.read_bytes)
        self.read_bytes += n
        if self.read_bytes > self.allowed:
            raise AssertionError(f"{self.read_bytes} bytes of the body were read")
        buffer[:n] = b"x" * n
        return n


def _post_huge(client, path, size, content_type, method="POST", **kwargs):
    body = Untouchable(size)
    response = client.open(path, method=method, input_stream=body,
                           headers={"Content-Length": str(size), "Content-Type": content_type,
                                    **kwargs.pop("headers", {})}, **kwargs)
    return response, body


def test_an_oversized_login_post_is_refused_before_its_body_is_read(app, tenant_a, client_for):
    client = client_for(tenant_a)
    response, body = _post_huge(client, "/auth/login", GiB,
                                "multipart/form-data; boundary=xyz")
    assert response.status_code == 413
    assert body.read_bytes == 0
    page = response.get_data(as_text=True)
    assert "Requête trop volumineuse : 1,05\u00a0Mo au plus" in page  # 1 MiB
    assert response.mimetype == "text/html"


def test_an_oversized_json_patch_is_refused_before_its_body_is_read(app, tenant_a, api):
    client = api(tenant_a, "agent")
    response, body = _post_huge(client, f"/api/v1/documents/{uuid.uuid4()}", 512 * MiB,
                                "application/json", method="PATCH")
    assert response.status_code == 413
    assert body.read_bytes == 0
    error = response.get_json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["details"]["max_bytes"] == app.config["SAAS_SETTINGS"].http.max_json


def test_json_bodies_have_their_own_cap_below_the_platform_limit(app, tenant_a, api):
    client = api(tenant_a, "agent")
    cap = app.config["SAAS_SETTINGS"].http.max_json
    assert cap < app.config["MAX_CONTENT_LENGTH"]
    payload = json.dumps({"title": "x" * (cap + 10)}).encode()
    response = client.patch(f"/api/v1/documents/{uuid.uuid4()}", data=payload,
                            content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    # Chunked (no Content-Length): the body is cut at the cap instead of being read whole.
    chunked = Untouchable(512 * MiB, allowed=cap + 64 * 1024)
    response = client.patch(f"/api/v1/documents/{uuid.uuid4()}", input_stream=chunked,
                            content_type="application/json",
                            environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
    assert chunked.read_bytes <= cap + 64 * 1024


@pytest.mark.parametrize("depth", [100_000, 40])
def test_deeply_nested_json_is_a_clear_400(app, tenant_a, api, depth):
    client = api(tenant_a, "agent")
    payload = '{"metadata": ' + "[" * depth + "]" * depth + "}"
    response = client.patch(f"/api/v1/documents/{uuid.uuid4()}", data=payload,
                            content_type="application/json")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "json_too_deep"
    assert "trop imbriqué" in error["message"]


def test_upload_endpoints_raise_the_limit_only_for_callers_who_may_upload(app, tenant_a, api,
                                                                         client_for):
    size = 100 * MiB
    multipart = "multipart/form-data; boundary=xyz"
    # No token, an élu's token: refused before the body is read.
    anonymous, body = _post_huge(client_for(tenant_a), "/api/v1/documents", size, multipart)
    assert anonymous.status_code == 401 and body.read_bytes == 0
    elu, body = _post_huge(api(tenant_a, "elu"), "/api/v1/documents", size, multipart)
    assert elu.status_code == 403 and body.read_bytes == 0
    # Not logged in on the pages: sent to the login page, body unread.
    page, body = _post_huge(client_for(tenant_a), "/ged/deposer", size, multipart)
    assert page.status_code in (302, 303) and body.read_bytes == 0
    # A tus PATCH on an unknown upload: 404 before the body is read.
    tus, body = _post_huge(api(tenant_a, "agent"), f"/api/v1/uploads/{uuid.uuid4()}", size,
                           "application/offset+octet-stream", method="PATCH",
                           headers={"Tus-Resumable": "1.0.0", "Upload-Offset": "0"})
    assert tus.status_code == 404 and body.read_bytes == 0


def test_an_upload_above_the_platform_limit_goes_through(app, tenant_a, api, monkeypatch):
    from tests.ged.conftest import make_pdf, upload

    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 64 * 1024)
    client = api(tenant_a, "agent")
    data = make_pdf("Rapport") + b"\n%" + b"0" * (300 * 1024)
    created = upload(client, data, "rapport.pdf", title="Rapport")
    assert created.status_code == 201
    # …while an ordinary body of a third of that size is refused.
    response = client.patch(f"/api/v1/documents/{created.get_json()['id']}",
                            data=b"{" + b" " * (100 * 1024) + b"}", content_type="application/json")
    assert response.status_code == 413


def test_form_fields_held_in_memory_are_limited(app, tenant_a, client_for):
    client = client_for(tenant_a)
    limit = app.config["SAAS_SETTINGS"].http.max_form_memory
    response = client.post("/auth/login", data={"email": "a@example.org",
                                                "password": "x" * (limit + 1)},
                           content_type="multipart/form-data")
    assert response.status_code == 413


# -- the documented deployment agrees with the application ----------------------------------

ROLE = __import__("pathlib").Path(__file__).resolve().parents[1] / "ansible" / "roles" / "mutualis"
UPLOAD_ENDPOINTS = {"api.create_document", "api.create_version", "api.patch_upload",
                    "ged.upload", "ged.new_version"}


def _nginx_site() -> tuple[dict, str]:
    import jinja2
    import yaml

    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    template = jinja2.Template((ROLE / "templates" / "mutualis-nginx.conf.j2").read_text())
    return defaults, template.render(ansible_managed="test", **defaults)


def _nginx_size(value: str) -> int:
    return int(value[:-1]) * {"k": 1024, "m": MiB, "g": GiB}[value[-1].lower()]


def _sample_path(rule) -> str:
    import re

    return re.sub(r"<[^>]+>", str(uuid.uuid4()), rule.rule)


def test_the_reverse_proxy_sends_uploads_to_their_pool_with_the_application_limits(app):
    import re

    from saas.config import GedSettings, HttpSettings

    defaults, site = _nginx_site()
    assert _nginx_size(defaults["mutualis_http_max_body"]) == HttpSettings().max_body
    assert _nginx_size(defaults["mutualis_max_upload"]) == GedSettings().max_upload
    assert defaults["mutualis_client_timeout"] == HttpSettings().body_timeout
    assert {pool["name"] for pool in defaults["mutualis_web_pools"]} == {"web", "uploads"}

    routes = re.findall(r'"~(\^[^"]+)"\s+mutualis_uploads;', site)
    upload_location = re.search(r"location ~ (\S+) \{\s*client_max_body_size "
                                + re.escape(defaults["mutualis_max_upload"]) + ";", site)
    assert routes and upload_location

    def pool(method: str, path: str) -> str:
        return "uploads" if any(re.match(r, f"{method}:{path}") for r in routes) else "web"

    rules = [r for r in app.url_map.iter_rules() if r.endpoint in UPLOAD_ENDPOINTS]
    assert {r.endpoint for r in rules} == UPLOAD_ENDPOINTS
    for rule in rules:
        path = _sample_path(rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert pool(method, path) == "uploads", (method, path)
            assert re.match(upload_location.group(1), path), path
    # Everything else stays on the web pool, under the small limit.
    for method, path in (("GET", "/api/v1/documents"), ("POST", "/auth/login"),
                         ("PATCH", f"/api/v1/documents/{uuid.uuid4()}"), ("GET", "/healthz"),
                         ("POST", "/api/v1/uploads"), ("GET", "/ged/deposer")):
        assert pool(method, path) == "web", (method, path)
    for path in ("/auth/login", f"/api/v1/documents/{uuid.uuid4()}", "/healthz"):
        assert not re.match(upload_location.group(1), path), path
