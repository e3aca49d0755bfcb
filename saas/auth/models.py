"""Users are people (global); memberships give them a role in one tenant."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.extensions import db
from saas.modelbase import Timestamps, UTCDateTime, UUIDPk
from saas.tenancy.scoping import TenantScoped


class Role(enum.StrEnum):
    ADMIN = "admin"
    AGENT = "agent"
    ELU = "elu"


ROLE_LABELS = {Role.ADMIN: "Administrateur", Role.AGENT: "Agent", Role.ELU: "Élu"}


class User(UUIDPk, Timestamps, db.Model):
    """A person. Platform-wide: the shared secrétaire de mairie is one user in several communes."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(sa.String(254), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    # The two secrets are never loaded with the row: on PostgreSQL the application role may not
    # read them (column privileges, see saas.tenancy.rls), only ask for one account's at a
    # time through a SECURITY DEFINER function (migration 0005). Read them with
    # saas.auth.credentials; assigning them here writes them as usual.
    password_hash: Mapped[str | None] = mapped_column(sa.String(255), deferred=True,
                                                      deferred_raiseload=True)
    # Whether a password was chosen (an invited person has none yet), computed by the database.
    password_set: Mapped[bool] = mapped_column(sa.Boolean, sa.Computed("password_hash IS NOT NULL"))
    is_platform_admin: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    # Bumped on password change and "log out everywhere": invalidates every session cookie.
    session_version: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    totp_secret_enc: Mapped[str | None] = mapped_column(sa.String(255), deferred=True,
                                                        deferred_raiseload=True)
    # Whether a second factor is enrolled, computed by the database from the secret.
    totp_enabled: Mapped[bool] = mapped_column(sa.Boolean, sa.Computed("totp_secret_enc IS NOT NULL"))
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    failed_logins: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Flask-Login protocol
    is_anonymous = False

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class Membership(UUIDPk, Timestamps, TenantScoped, db.Model):
    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "user_id", name="uq_memberships_tenant_user"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(sa.String(16), nullable=False)

    user: Mapped[User] = relationship()
    tenant = relationship("Tenant")


class ApiToken(UUIDPk, TenantScoped, db.Model):
    """A bearer token bound to one user in one tenant; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    prefix: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class UsedNonce(db.Model):
    """One-time tokens already consumed (commune switch hand-offs, password resets)."""

    __tablename__ = "used_nonces"

    nonce: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class LoginThrottle(db.Model):
    """Failed logins of one account from one client address, or from everywhere.

    `key` is an HMAC of the normalised address and the client's network (or "*" for the
    account's ceiling over every address), so the table names neither people nor clients.
    Shared by every web process through the database, on PostgreSQL as on SQLite.
    """

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    # HMAC of the address alone: every counter of one account, whatever the client.
    account: Mapped[str] = mapped_column(sa.String(64), nullable=False, index=True)
    failures: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    # The counter starts again from zero after this; a lock can only end before it.
    window_ends: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecoveryCode(db.Model):
    """PostgreSQL: owner only. The SHA-256 of one unused second-factor recovery code (salted
    with the account id). The application goes through saas.auth.recovery, which on PostgreSQL
    calls the SECURITY DEFINER functions of migration 0010."""

    __tablename__ = "auth_recovery_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


class SecretReads(db.Model):
    """PostgreSQL only, owner only: how many account secrets this connection's current
    transaction has read through auth_password_hash() / auth_totp_secret() (migration 0005).
    The application role has no right on it; the application never uses this model."""

    __tablename__ = "auth_secret_reads"

    backend: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    xact: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    reads: Mapped[int] = mapped_column(sa.Integer, nullable=False)
