"""API tokens: bearer secrets bound to one user in one tenant; only their SHA-256 is stored.

A token string is `mut_` followed by 43 URL-safe random characters (256 bits). The prefix
makes leaked tokens recognisable by secret scanners; the `prefix` column keeps the first
characters so people can tell their tokens apart without the database holding the secret.

Every lookup runs under the current tenant (ORM scoping and row-level security), so a token of
commune A presented on commune B's host is simply not found there.

A process reuses what it read of a token (its user and membership) for as long as it reuses a
tenant (`resolver.cache_ttl()`, 5 s in production): an authenticated read then costs no query
to learn who asks. Any ORM write to a token, a user or a membership in this process forgets
every cached token at once; a revocation, a deactivated account or a removed membership written
by another process (gunicorn worker, `saas` command) applies there within those 5 s, exactly
like a suspended commune.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy import event, orm
from sqlalchemy.orm import Session

from saas.audit.services import record
from saas.auth.models import ApiToken, Membership, User
from saas.extensions import db
from saas.modelbase import utcnow
from saas.tenancy.context import current_tenant_id, tenant_context
from saas.tenancy.resolver import cache_ttl
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
class TokenRef:
    """What a request needs of its token: which one, whose, when last used."""

    id: uuid.UUID
    user_id: uuid.UUID
    last_used_at: datetime | None


@dataclass(frozen=True)
class UserRef:
    """What a request needs of the person behind a token (read-only, shared between threads)."""

    id: uuid.UUID
    email: str
    name: str
    is_platform_admin: bool


@dataclass(frozen=True)
class MembershipRef:
    """The person's role in the token's commune."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str


@dataclass(frozen=True)
class TokenAuth:
    """The outcome of a successful authentication: immutable values, no ORM instance."""

    token: TokenRef
    user: UserRef
    membership: MembershipRef


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
    sa.select(ApiToken.id, ApiToken.user_id, ApiToken.last_used_at, ApiToken.revoked_at,
              User.email, User.name, User.is_platform_admin, User.active,
              Membership.tenant_id, Membership.role)
    .join(User, User.id == ApiToken.user_id)
    .outerjoin(Membership, Membership.user_id == ApiToken.user_id)
    .where(ApiToken.token_hash == sa.bindparam("digest"))
)


class _TokenCache:
    """(tenant, token digest) → its last successful check, for `cache_ttl()` seconds.

    Refusals are not kept: they are rare, and presented garbage must not fill the cache.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[uuid.UUID, str], tuple[float, int, TokenAuth]] = {}
        self.generation = 0

    def lookup(self, key: tuple[uuid.UUID, str]) -> TokenAuth | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, generation, outcome = entry
        if generation != self.generation or time.monotonic() > expires:
            self._entries.pop(key, None)
            return None
        return outcome

    def store(self, key: tuple[uuid.UUID, str], outcome: TokenAuth, ttl: float) -> None:
        if len(self._entries) >= _CACHE_MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + ttl, self.generation, outcome)

    def invalidate(self) -> None:
        self.generation += 1


_CACHE_MAX_ENTRIES = 10_000
_cache = _TokenCache()


def invalidate_token_cache() -> None:
    """Forget every checked token in this process (called on token, user and membership writes)."""
    _cache.invalidate()


def _check(digest: str) -> TokenAuth | TokenRejection:
    row = db.session.execute(_AUTH_QUERY, {"digest": digest}).first()
    if row is None:
        return TokenRejection("unknown")
    if row.revoked_at is not None:
        return TokenRejection("revoked")
    if not row.active:
        return TokenRejection("inactive_user")
    if row.role is None:
        return TokenRejection("no_membership")
    return TokenAuth(TokenRef(row.id, row.user_id, row.last_used_at),
                     UserRef(row.user_id, row.email, row.name, row.is_platform_admin),
                     MembershipRef(row.user_id, row.tenant_id, row.role))


def authenticate(token_str: str) -> TokenAuth | TokenRejection:
    """Check a presented token in the current tenant; touch last_used_at at most once a minute."""
    tenant_id = current_tenant_id()
    if tenant_id is None or not looks_like_token(token_str):
        return TokenRejection("malformed" if tenant_id else "unknown")
    # Looked up by the SHA-256 of the secret: timing the lookup teaches nothing about the secret.
    key = (tenant_id, hash_token(token_str))
    outcome = _cache.lookup(key)
    if outcome is None:
        generation = _cache.generation
        outcome = _check(key[1])
        if isinstance(outcome, TokenRejection):
            return outcome
    else:
        generation = _cache.generation
    touched = _touch(outcome.token)
    if touched is not outcome.token:
        outcome = TokenAuth(touched, outcome.user, outcome.membership)
    ttl = cache_ttl()
    # Not kept if a write in this process forgot the cache meanwhile: the row read may be stale.
    if ttl > 0 and generation == _cache.generation:
        _cache.store(key, outcome, ttl)
    return outcome


def _touch(token: TokenRef) -> TokenRef:
    """Record the use at most once a minute; returns the token as it now stands."""
    now = utcnow()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return token
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
    return replace(token, last_used_at=now)


def _row_written(mapper, connection, target) -> None:
    invalidate_token_cache()


def _rows_bulk_written(state: orm.ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    table = getattr(state.statement, "table", None)
    if table is None or table.name not in _WATCHED:
        return
    if table.name == ApiToken.__tablename__ and _only_last_used(state.statement):
        return  # the once-a-minute touch changes nothing the check depends on
    invalidate_token_cache()


def _only_last_used(statement) -> bool:
    values = getattr(statement, "_values", None) or {}
    return bool(values) and {getattr(c, "key", c) for c in values} == {"last_used_at"}


_WATCHED = {ApiToken.__tablename__, User.__tablename__, Membership.__tablename__}


def install_cache_invalidation() -> None:
    """Forget cached tokens on any ORM write to what a token check reads (idempotent)."""
    if event.contains(Session, "do_orm_execute", _rows_bulk_written):
        return
    for model in (ApiToken, User, Membership):
        for name in ("after_insert", "after_update", "after_delete"):
            event.listen(model, name, _row_written)
    event.listen(Session, "do_orm_execute", _rows_bulk_written)
