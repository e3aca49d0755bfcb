"""The identity feature's objects for the tenant-isolation sweep (tests/tenancy/test_isolation.py):
a commune's member (the « Utilisateurs » page acts on one) and an invitation link."""

from __future__ import annotations

import contextvars
import uuid

from saas.extensions import db
from saas.tenancy.context import tenant_context


def _member(env, tenant, user) -> dict[str, str]:
    """A fresh agent of `tenant` (with a second factor, so the 2FA reset has work to do)."""
    from saas.auth import totp
    from saas.auth.models import Membership, User
    from saas.auth.passwords import hash_password

    person = User(email=f"membre-{uuid.uuid4().hex[:10]}@example.org", name="Membre balayé",
                  password_hash=hash_password("Balayage-isolement-42"),
                  totp_secret_enc=totp.encrypt_secret(totp.new_secret()))
    db.session.add(person)
    db.session.flush()
    with tenant_context(tenant):
        db.session.add(Membership(user_id=person.id, role="agent", tenant_id=tenant.id))
        db.session.commit()
    return {"user_id": str(person.id)}


def _invitation(env, tenant, user) -> dict[str, str]:
    """An invitation link of `tenant` for a person invited there (no password yet)."""
    from saas.auth.members import make_invitation_token
    from saas.auth.models import Membership, User
    from saas.tenancy.models import Tenant

    person = User(email=f"invite-{uuid.uuid4().hex[:10]}@example.org", name="Invitée balayée",
                  password_hash=None)
    db.session.add(person)
    db.session.flush()
    with tenant_context(tenant):
        db.session.add(Membership(user_id=person.id, role="agent", tenant_id=tenant.id))
        db.session.commit()
    person_id, tenant_id = person.id, tenant.id

    def mint() -> str:
        with env.app.app_context():
            return make_invitation_token(db.session.get(User, person_id),
                                         db.session.get(Tenant, tenant_id))

    return {"token": contextvars.Context().run(mint)}


OBJECT_FACTORIES = {
    "members.change_role:user_id": _member,
    "members.deactivate:user_id": _member,
    "members.reset_2fa:user_id": _member,
    "auth.invitation:token": _invitation,
}

UNKNOWN_IS_NOT_404 = {
    "auth.invitation": "an unknown, expired or foreign invitation link shows the 'invalid link' "
                       "page (400)",
}
