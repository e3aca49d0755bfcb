"""API tokens: bearer secrets bound to one user in one tenant; only their SHA-256 is stored.

A token string is `mut_` followed by 43 URL-safe random characters (256 bits). The prefix
makes leaked tokens recognisable by secret scanners; the `prefix` column keeps the first
characters so people can tell their tokens apart without the database holding the secret.

Every lookup runs under the current tenant (ORM scoping and row-level security), so a token of
commune A presented on commune B's host is simply not found there.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.audit.services import record
from saas.auth.models import ApiToken, Membership, User
from saas.extensions import db
from saas.modelbase import utcnow
from saas.tenancy.context import current_tenant_id, tenant_context
from saas.tenancy.scoping import prescoped

TOKEN_PREFIX = "mut_"
# token_urlsafe(32) gives 43 characters: 256 bits of entropy.
_RANDOM_BYTES = 32
TOKEN_LENGTH = len(TOKEN_PREFIX) + 43
# Shown in listings: the scheme prefix plus 8 random characters.
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
NAME_MAX_LENGTH = 100
# last_used_at is refreshed at most this often, so reads do not turn into one write each.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(ValueError):
    """A token cannot be created as asked (French message, shown to the operator)."""


@dataclass(frozen=True)
class TokenAuth:
    """The outcome of a successful authentication."""

    token: ApiToken
    user: User
    membership: Membership


@dataclass(frozen=True)
class TokenRejection:
    """Why a presented token was refused; `reason` is a stable code for logs and messages."""

    reason: str  # "malformed", "unknown", "revoked", "inactive_user", "no_membership"


def hash_token(token_str: str) -> str:
    """Return the hex SHA-256 of a token string (what the database stores)."""
    return hashlib.sha256(token_str.encode("utf-8")).hexdigest()


def looks_like_token(token_str: str) -> bool:
    """Cheap shape check before any database work."""
    return (
        len(token_str) == TOKEN_LENGTH
        and token_str.startswith(TOKEN_PREFIX)
        and all(c.isalnum() or c in "-_" for c in token_str[len(TOKEN_PREFIX):])
    )


def generate_token() -> str:
    """Return a fresh random token string."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def _tenant_id_of(tenant) -> uuid.UUID:
    return tenant if isinstance(tenant, uuid.UUID) else tenant.id


def create_token(user: User, tenant, name: str, *, actor=None) -> tuple[str, ApiToken]:
    """Create a token for `user` in `tenant`; return the clear string (shown once) and the row.

    The row and its audit entry are added to the open transaction: the caller commits.
    """
    name = (name or "").strip()
    if not name:
        raise TokenError(_("Le nom du jeton est obligatoire."))
    if len(name) > NAME_MAX_LENGTH:
        raise TokenError(_("Le nom du jeton dépasse %(n)d caractères.", n=NAME_MAX_LENGTH))
    tenant_id = _tenant_id_of(tenant)
    with tenant_context(tenant_id):
        membership = _membership_of(user.id)
        if membership is None:
            raise TokenError(_("%(email)s n'est pas membre de cette collectivité.", email=user.email))
        if not user.active:
            raise TokenError(_("Le compte %(email)s est désactivé.", email=user.email))
        token_str = generate_token()
        token = ApiToken(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            user_id=user.id,
            name=name,
            token_hash=hash_token(token_str),
            prefix=token_str[:DISPLAY_PREFIX_LENGTH],
            created_at=utcnow(),
        )
        db.session.add(token)
        db.session.flush()
        record(
            "api_token.created",
            target=f"api_token:{token.id}",
            data={"name": name, "prefix": token.prefix, "user": user.email},
            actor=actor,
        )
    return token_str, token


def revoke_token(token: ApiToken, *, actor=None) -> bool:
    """Revoke a token; return False if it already was. The caller commits."""
    if token.revoked_at is not None:
        return False
    with tenant_context(token.tenant_id):
        token.revoked_at = utcnow()
        db.session.flush()
        record(
            "api_token.revoked",
            target=f"api_token:{token.id}",
            data={"name": token.name, "prefix": token.prefix},
            actor=actor,
        )
    return True


def rename_token(token: ApiToken, name: str, *, actor=None) -> None:
    """Change a token's label. The caller commits."""
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        raise TokenError(_("Le nom du jeton doit comporter de 1 à %(n)d caractères.", n=NAME_MAX_LENGTH))
    if name == token.name:
        return
    with tenant_context(token.tenant_id):
        old, token.name = token.name, name
        db.session.flush()
        record("api_token.renamed", target=f"api_token:{token.id}", data={"from": old, "to": name},
               actor=actor)


def get_token(token_id: uuid.UUID, *, user_id: uuid.UUID | None = None) -> ApiToken | None:
    """The current tenant's token `token_id` (optionally only if it belongs to `user_id`)."""
    stmt = db.select(ApiToken).where(ApiToken.id == token_id)
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return db.session.execute(stmt).scalar_one_or_none()


def tokens_query(*, user_id: uuid.UUID | None = None) -> sa.Select:
    """The current tenant's tokens, newest first (optionally one user's)."""
    stmt = db.select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id)
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return stmt


def _membership_of(user_id: uuid.UUID) -> Membership | None:
    return db.session.execute(
        db.select(Membership).where(Membership.user_id == user_id)
    ).scalar_one_or_none()


# One round trip: the token, its user and the user's membership here. Both tenant tables are
# filtered on the current tenant by the scoping hook and by RLS. Built once: composing it costs
# more Python time than running it.
_AUTH_QUERY = prescoped(
    sa.select(ApiToken, User, Membership)
    .join(User, User.id == ApiToken.user_id)
    .outerjoin(Membership, Membership.user_id == ApiToken.user_id)
    .where(ApiToken.token_hash == sa.bindparam("digest"))
)


def authenticate(token_str: str) -> TokenAuth | TokenRejection:
    """Check a presented token in the current tenant; touch last_used_at at most once a minute."""
    if current_tenant_id() is None or not looks_like_token(token_str):
        return TokenRejection("malformed" if current_tenant_id() else "unknown")
    digest = hash_token(token_str)
    row = db.session.execute(_AUTH_QUERY, {"digest": digest}).first()
    if row is None:
        return TokenRejection("unknown")
    # Looked up by the SHA-256 of the secret: timing the lookup teaches nothing about the secret.
    token, user, membership = row
    if token.revoked_at is not None:
        return TokenRejection("revoked")
    if not user.active:
        return TokenRejection("inactive_user")
    if membership is None:
        return TokenRejection("no_membership")
    _touch(token)
    return TokenAuth(token, user, membership)


def _touch(token: ApiToken) -> None:
    now = utcnow()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    cutoff: datetime = now - LAST_USED_RESOLUTION
    # Guarded update: of several workers racing on the same minute, the later ones write nothing.
    db.session.execute(
        sa.update(ApiToken)
        .where(ApiToken.id == token.id)
        .where(sa.or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < cutoff))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
