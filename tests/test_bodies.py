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

from tests.ged.conftest import _empty_buckets, api  # noqa: F401 (fixtures)

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
    assert "Requête trop volumineuse : 1 Mio au plus" in page
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
