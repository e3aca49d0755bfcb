"""`saas users create`."""

from __future__ import annotations

import re

import sqlalchemy as sa

from saas.audit.models import AuditEvent, PlatformAuditEvent
from saas.auth.models import Membership, User
from saas.auth.passwords import verify_password
from saas.extensions import db
from saas.tenancy.context import tenant_context

STRONG = "Une-phrase-de-passe-solide-42"


def _hash(user) -> str | None:
    from saas.auth import credentials

    return credentials.password_hash(user)


def _user(email: str) -> User | None:
    db.session.expire_all()
    return db.session.execute(db.select(User).where(User.email == email)).scalar_one_or_none()


def _roles(user: User, *tenants) -> dict[str, str | None]:
    roles = {}
    for tenant in tenants:
        with tenant_context(tenant):
            roles[tenant.slug] = db.session.execute(
                sa.select(Membership.role).where(Membership.user_id == user.id)).scalar_one_or_none()
    return roles


def test_new_user_gets_a_generated_password_shown_once(cli, tenant_a, tenant_b):
    result = cli("users", "create", "--tenant", "commune-a", "--email", "Marie.Durand@Example.org",
                 "--name", "Marie Durand", "--role", "agent")

    assert result.exit_code == 0, result.output
    password = re.search(r"affiché une seule fois.*: (\S+)$", result.stdout, re.M).group(1)
    user = _user("marie.durand@example.org")
    assert user.name == "Marie Durand"
    assert verify_password(_hash(user), password)
    assert _roles(user, tenant_a, tenant_b) == {"commune-a": "agent", "commune-b": None}
    assert "http://commune-a.mutualis.test" in result.stdout


def test_password_from_stdin_is_used(cli, tenant_a):
    result = cli("users", "create", "--tenant", "commune-a", "--email", "elu@example.org",
                 "--name", "Jean Élu", "--role", "elu", "--password-stdin", input=STRONG + "\n")

    assert result.exit_code == 0, result.output
    assert "affiché une seule fois" not in result.stdout
    assert verify_password(_hash(_user("elu@example.org")), STRONG)


def test_existing_user_joins_a_second_commune_with_the_same_account(cli, tenant_a, tenant_b):
    cli("users", "create", "--tenant", "commune-a", "--email", "secretaire@example.org",
        "--name", "Sam Secrétaire", "--role", "agent", "--password-stdin", input=STRONG)
    first_hash = _hash(_user("secretaire@example.org"))

    result = cli("users", "create", "--tenant", "commune-b", "--email", "SECRETAIRE@example.org",
                 "--name", "Sam Secrétaire", "--role", "agent")

    assert result.exit_code == 0, result.output
    assert "Compte existant" in result.stdout and "affiché une seule fois" not in result.stdout
    assert db.session.execute(sa.select(sa.func.count(User.id))).scalar() == 1
    user = _user("secretaire@example.org")
    assert _hash(user) == first_hash
    assert _roles(user, tenant_a, tenant_b) == {"commune-a": "agent", "commune-b": "agent"}


def test_same_membership_twice_is_harmless_but_another_role_is_refused(cli, tenant_a):
    args = ["users", "create", "--tenant", "commune-a", "--email", "a@example.org", "--name", "Alex Martin"]
    assert cli(*args, "--role", "agent").exit_code == 0

    same = cli(*args, "--role", "agent")
    other = cli(*args, "--role", "admin")

    assert same.exit_code == 0 and "rien à faire" in same.stdout
    assert other.exit_code == 1
    assert "déjà membre de « commune-a » avec le rôle « agent »" in other.stderr
    assert _roles(_user("a@example.org"), tenant_a) == {"commune-a": "agent"}


def test_bad_role_is_refused(cli, tenant_a):
    result = cli("users", "create", "--tenant", "commune-a", "--email", "b@example.org",
                 "--name", "Bea", "--role", "maire")

    assert result.exit_code == 1
    assert "Rôle inconnu : « maire »" in result.stderr
    assert _user("b@example.org") is None


def test_unknown_tenant_is_refused(cli):
    result = cli("users", "create", "--tenant", "atlantide", "--email", "c@example.org",
                 "--name", "Chris", "--role", "agent")

    assert result.exit_code == 1
    assert "Collectivité inconnue : « atlantide »" in result.stderr
    assert _user("c@example.org") is None


def test_weak_password_from_stdin_is_refused_and_nothing_is_created(cli, tenant_a):
    result = cli("users", "create", "--tenant", "commune-a", "--email", "d@example.org",
                 "--name", "Dominique", "--role", "agent", "--password-stdin", input="court\n")

    assert result.exit_code == 1
    assert "au moins 12 caractères" in result.stderr
    assert _user("d@example.org") is None
    assert db.session.execute(sa.select(sa.func.count(PlatformAuditEvent.id))).scalar() == 0


def test_platform_admin_is_created_without_tenant_and_told_about_totp(cli):
    result = cli("users", "create", "--platform-admin", "--email", "dsi@example.org", "--name", "Service informatique")

    assert result.exit_code == 0, result.output
    assert _user("dsi@example.org").is_platform_admin
    assert "http://admin.mutualis.test" in result.stdout
    assert "TOTP" in result.stdout


def test_tenant_and_platform_admin_are_mutually_exclusive(cli, tenant_a):
    both = cli("users", "create", "--platform-admin", "--tenant", "commune-a", "--email", "e@example.org",
               "--name", "E", "--role", "admin")
    neither = cli("users", "create", "--email", "e@example.org", "--name", "E")

    assert both.exit_code == neither.exit_code == 1
    assert _user("e@example.org") is None


def test_creation_is_audited_on_the_platform_and_in_the_commune(cli, tenant_a):
    cli("users", "create", "--tenant", "commune-a", "--email", "f@example.org", "--name", "Fanny",
        "--role", "admin")

    platform = db.session.execute(
        sa.select(PlatformAuditEvent.action, PlatformAuditEvent.target, PlatformAuditEvent.actor)
        .order_by(PlatformAuditEvent.seq)).all()
    with tenant_context(tenant_a):
        own = db.session.execute(sa.select(AuditEvent.action, AuditEvent.target, AuditEvent.data)).all()
    assert platform == [("user.created", "f@example.org", "cli"), ("membership.created", "f@example.org", "cli")]
    assert own == [("membership.created", "f@example.org", {"role": "admin"})]
