"""Behind a reverse proxy: what the client may and may not choose through X-Forwarded-* headers."""

from __future__ import annotations

import pytest

from saas import create_app
from tests.conftest import HostClient


@pytest.fixture
def proxied(app, app_overrides):
    def make(**settings):
        other = create_app({**app_overrides, "PROXY_HOPS": "1", **settings})
        client = HostClient(other, other.response_class)
        client.base_host = "commune-a.mutualis.test"
        return client
    return make


def _commune(response) -> str:
    return response.get_data(as_text=True)


def test_a_forwarded_host_does_not_choose_the_commune_by_default(proxied, tenant_a, tenant_b):
    client = proxied()
    page = client.get("/auth/login", headers={"X-Forwarded-Host": "commune-b.mutualis.test"})
    assert page.status_code == 200
    assert tenant_a.name in _commune(page) and tenant_b.name not in _commune(page)


def test_the_proxy_may_be_declared_to_set_the_host(proxied, tenant_a, tenant_b):
    client = proxied(PROXY_FORWARDS_HOST="1")
    page = client.get("/auth/login", headers={"X-Forwarded-Host": "commune-b.mutualis.test"})
    assert tenant_b.name in _commune(page)


def test_the_client_address_is_the_one_the_proxy_appended(proxied, tenant_a):
    from flask import request

    client = proxied()
    seen = []
    client.application.before_request(lambda: seen.append(request.remote_addr))
    client.get("/auth/login", headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.9"},
               environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert seen == ["198.51.100.9"]  # the proxy's own entry; the client's claim is ignored
