"""API fixtures: a bearer token for a member of a commune, and a client that sends it."""

from __future__ import annotations

import contextvars
from collections.abc import Callable

import pytest

from saas.extensions import db
from tests.conftest import BASE_DOMAIN, HostClient


@pytest.fixture
def make_token(make_user) -> Callable:
    """make_token(tenant, role="agent", user=None, name="test") -> (token string, user)."""
    from saas.auth.tokens import create_token

    def make(tenant, role: str = "agent", user=None, name: str = "test"):
        user = user or make_user(tenant, role)
        token_str, _row = create_token(user, tenant, name)
        db.session.commit()
        return token_str, user

    return make


class IsolatedClient(HostClient):
    """Each request runs in a fresh context (its own app context, `g` and database session), as
    in production: the `app` fixture keeps an app context pushed, which Flask would otherwise
    reuse, sharing `g` and the identity map between the test and its requests."""

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture
def api_client(app) -> Callable:
    """api_client(tenant, token) -> a test client on the commune's host sending the token."""

    def make(tenant, token: str | None = None):
        label = tenant if isinstance(tenant, str) or tenant is None else tenant.slug
        client = IsolatedClient(app, app.response_class, use_cookies=True)
        client.base_host = f"{label}.{BASE_DOMAIN}" if label else BASE_DOMAIN
        if token is not None:
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client

    return make
