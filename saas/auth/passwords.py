"""Argon2id password hashing and the platform's password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app, has_app_context
from flask_babel import gettext as _

MIN_LENGTH = 12

_default_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile


def _hasher() -> PasswordHasher:
    if has_app_context():
        return current_app.config.get("SAAS_PASSWORD_HASHER") or _default_hasher
    return _default_hasher


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash:
        # Same work as a real check, so a missing account cannot be told apart by timing.
        _burn(password)
        return False
    try:
        return _hasher().verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher().check_needs_rehash(stored_hash)


def _burn(password: str) -> None:
    try:
        _hasher().verify(_dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        pass


_DUMMY: dict[int, str] = {}


def _dummy_hash() -> str:
    key = id(_hasher())
    if key not in _DUMMY:
        _DUMMY[key] = _hasher().hash("dummy-password-never-matches")
    return _DUMMY[key]


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Return why a new password is refused (in French), or None."""
    if len(password) < MIN_LENGTH:
        return _("Le mot de passe doit comporter au moins %(n)d caractères.", n=MIN_LENGTH)
    if len(password) > 256:
        return _("Le mot de passe est trop long (256 caractères au plus).")
    lowered = password.lower()
    for part in filter(None, [email.split("@")[0].lower(), *name.lower().split()]):
        if len(part) >= 4 and part in lowered:
            return _("Le mot de passe ne doit pas contenir votre nom ou votre adresse.")
    if len(set(password)) < 5:
        return _("Le mot de passe est trop répétitif.")
    return None
