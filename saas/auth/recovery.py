"""Second-factor recovery codes: ten single-use codes shown once, stored as salted SHA-256.

On PostgreSQL the application role has no right on auth_recovery_codes: it replaces, uses and
counts one account's codes through the SECURITY DEFINER functions of migration 0010, so an SQL
injection can neither read the digests nor list whose codes exist. SQLite (the embedded
default) has no roles: the table is written directly, with the same single DELETE.
"""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa

from saas.auth.models import RecoveryCode, User
from saas.extensions import db

COUNT = 10
# No 0/o, 1/l/i: read off paper and typed by hand. 16 characters of 31: about 79 bits.
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_LENGTH = 16


def normalise(code: str) -> str:
    return "".join(ch for ch in (code or "").lower() if ch.isalnum())


def looks_like_code(code: str) -> bool:
    raw = normalise(code)
    return len(raw) == _LENGTH and all(ch in _ALPHABET for ch in raw)


def _digest(user: User, code: str) -> str:
    return hashlib.sha256(f"{user.id}:{normalise(code)}".encode()).hexdigest()


def _postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, _LENGTH, 4))


def replace_codes(user: User) -> list[str]:
    """Give `user` ten fresh codes (the former ones stop working); return them, to show once.
    In the open transaction."""
    codes = [_new_code() for _ in range(COUNT)]
    digests = [_digest(user, c) for c in codes]
    if _postgres():
        db.session.execute(sa.select(sa.func.auth_set_recovery_codes(
            user.id, sa.cast(sa.literal(digests, sa.ARRAY(sa.Text)), sa.ARRAY(sa.Text)))))
    else:
        clear_codes(user)
        db.session.execute(sa.insert(RecoveryCode),
                           [{"user_id": user.id, "digest": d} for d in digests])
    return codes


def clear_codes(user: User) -> None:
    """Remove every code of `user` (second factor turned off or reset). In the open transaction."""
    if _postgres():
        db.session.execute(sa.select(sa.func.auth_set_recovery_codes(user.id, sa.null())))
    else:
        db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id)
                           .execution_options(synchronize_session=False))


def use_code(user: User, code: str) -> int | None:
    """Consume `code` if it is one of the user's unused codes: how many are left, or None.

    One DELETE of the matching row: of two requests presenting the same code at the same time,
    the second waits for the first's row lock and then deletes nothing (PostgreSQL re-checks
    the row once the first commits). The caller commits.
    """
    if not looks_like_code(code):
        return None
    digest = _digest(user, code)
    if _postgres():
        left = db.session.execute(sa.select(sa.func.auth_use_recovery_code(user.id, digest))).scalar()
        return None if left is None or left < 0 else int(left)
    deleted = db.session.execute(
        sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.digest == digest)
        .execution_options(synchronize_session=False)).rowcount
    return codes_left(user) if deleted == 1 else None


def codes_left(user: User) -> int:
    if _postgres():
        return int(db.session.execute(sa.select(sa.func.auth_recovery_codes_left(user.id))).scalar() or 0)
    return int(db.session.execute(
        sa.select(sa.func.count()).select_from(RecoveryCode).where(RecoveryCode.user_id == user.id)
    ).scalar() or 0)
