"""The embedded default (SQLite, no Redis): the whole login works there too."""

from __future__ import annotations

from saas.auth.models import Membership, User
from saas.auth.passwords import hash_password
from saas.extensions import db
from saas.tenancy.context import tenant_context
from saas.tenancy.models import Tenant
from tests.auth.helpers import audit_entries, csrf_token, location_path
from tests.conftest import PASSWORD, host_client


def test_full_login_and_logout_on_sqlite(sqlite_app):
    assert sqlite_app.config["SAAS_SETTINGS"].embedded
    tenant = Tenant(slug="bourg", name="Bourg-sur-Loire", insee="44999", siren="213500010",
                    population=1200, departement="44", modules=["ged", "actes"])
    db.session.add(tenant)
    user = User(email="agent@bourg.example", name="Agnès Durand", password_hash=hash_password(PASSWORD))
    db.session.add(user)
    db.session.commit()
    with tenant_context(tenant):
        db.session.add(Membership(user_id=user.id, role="agent", tenant_id=tenant.id))
        db.session.commit()

    client = host_client(sqlite_app, tenant)
    token = csrf_token(client.get("/auth/login").get_data(as_text=True))
    wrong = client.post("/auth/login", data={"csrf_token": token, "email": user.email,
                                             "password": "pas-le-bon-1234"})
    assert wrong.status_code == 200
    response = client.post("/auth/login", data={"csrf_token": token, "email": user.email,
                                                "password": PASSWORD})
    assert response.status_code == 302 and location_path(response) == "/"
    home = client.get("/").get_data(as_text=True)
    assert "Bonjour Agnès Durand" in home and 'id="module-actes"' in home
    client.post("/auth/logout", data={"csrf_token": csrf_token(home)})
    assert client.get("/").status_code == 302
    results = [d.get("result") for a, _actor, d in audit_entries(tenant) if a == "auth.login"]
    assert results == ["failure", "success"]
