import pytest

from tests.conftest import FAST_HASHER


@pytest.fixture(autouse=True)
def _fast_password_hashing(app, monkeypatch):
    # create_app() drops SAAS_* override keys, so the conftest's fast hasher never reaches the app.
    monkeypatch.setitem(app.config, "SAAS_PASSWORD_HASHER", FAST_HASHER)
