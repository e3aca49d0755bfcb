"""`saas demo load`: the shipped communes and one demo account per kind of person."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from saas.auth.models import Membership, User
from saas.auth.passwords import verify_password
from saas.demo import load_demo
from saas.extensions import db
from saas.tenancy.context import tenant_context
from saas.tenancy.models import Tenant

DEMO_DIR = Path(__file__).resolve().parents[2] / "tenants"


def _memberships(email: str) -> dict[str, str]:
    user = db.session.execute(db.select(User).where(User.email == email)).scalar_one()
    found = {}
    for tenant in db.session.execute(db.select(Tenant)).scalars():
        with tenant_context(tenant):
            role = db.session.execute(
                sa.select(Membership.role).where(Membership.user_id == user.id)).scalar_one_or_none()
        if role:
            found[tenant.slug] = role
    return found


def test_demo_creates_the_accounts_with_working_passwords(app):
    result = load_demo(DEMO_DIR)

    assert result.report.ok
    accounts = {a.email: a for a in result.accounts}
    tenants = db.session.execute(db.select(Tenant).order_by(Tenant.population)).scalars().all()
    communes = [t for t in tenants if t.kind == "commune"]
    assert db.session.execute(sa.select(User).where(User.email == "dsi@example.org")).scalar_one().is_platform_admin
    for tenant in tenants:
        assert _memberships(f"admin.{tenant.slug}@example.org") == {tenant.slug: "admin"}
    assert _memberships("secretaire@example.org") == {communes[0].slug: "agent", communes[1].slug: "agent"}
    assert _memberships("elu@example.org") == {communes[-1].slug: "elu"}
    for email, account in accounts.items():
        user = db.session.execute(db.select(User).where(User.email == email)).scalar_one()
        assert verify_password(_hash(user), account.password)
        assert account.places and all(url.startswith("http://") for _label, url in account.places)
    assert accounts["dsi@example.org"].needs_totp and accounts["admin.montclair@example.org"].needs_totp
    assert not accounts["secretaire@example.org"].needs_totp


def _hash(user) -> str | None:
    """One account's hash, in a transaction of its own (the app role reads few per transaction)."""
    from saas.auth import credentials

    value = credentials.password_hash(user)
    db.session.commit()
    return value


def _all_hashes() -> list[tuple[str, str | None]]:
    users = db.session.execute(sa.select(User).order_by(User.email)).scalars().all()
    return [(email, _hash(user)) for email, user in [(u.email, u) for u in users]]


def test_second_load_keeps_accounts_and_passwords(app):
    load_demo(DEMO_DIR)
    users_before = _all_hashes()

    again = load_demo(DEMO_DIR)

    assert again.report.summary().startswith("0 created, 0 updated")
    assert all(a.password is None for a in again.accounts)
    assert _all_hashes() == users_before


def test_reset_passwords_gives_new_working_passwords(app):
    load_demo(DEMO_DIR)

    again = load_demo(DEMO_DIR, reset_passwords=True)

    elu = next(a for a in again.accounts if a.email == "elu@example.org")
    user = db.session.execute(db.select(User).where(User.email == elu.email)).scalar_one()
    assert verify_password(_hash(user), elu.password)


def test_demo_command_prints_logins_urls_and_totp_notice(cli):
    result = cli("demo", "load", str(DEMO_DIR))

    assert result.exit_code == 0, result.output
    assert "5 created, 0 updated, 0 unchanged" in result.stdout
    assert "secretaire@example.org" in result.stdout
    assert "http://plessis.mutualis.test" in result.stdout
    assert "http://admin.mutualis.test" in result.stdout
    assert "second facteur (TOTP)" in result.stdout


def test_demo_command_fails_on_invalid_manifests(cli, tmp_path):
    (tmp_path / "x.toml").write_text('slug = "y"\n')

    result = cli("demo", "load", str(tmp_path))

    assert result.exit_code == 1
    assert "x.toml: slug: le fichier doit s'appeler" in result.stderr
