"""Time-based one-time passwords (RFC 6238): secrets encrypted at rest, replay-proof checks."""

from __future__ import annotations

import hmac
import time
import uuid
from urllib.parse import quote

import pyotp
import qrcode
import qrcode.image.svg
from cryptography.fernet import InvalidToken, MultiFernet

from saas import keys
from saas.extensions import db

ISSUER = "Mutualis"
STEP_SECONDS = 30
# Accept the previous and the next 30-second step: phones drift, people type slowly.
VALID_WINDOW = 1


class SecretUnreadable(RuntimeError):
    """The stored secret cannot be decrypted (the platform's SECRET_KEY changed)."""


def _fernet() -> MultiFernet:
    return keys.fernet(b"mutualis-totp", b"totp-secret-v1")


def new_secret() -> str:
    """Return a fresh base32 secret (160 bits, as authenticator apps expect)."""
    return pyotp.random_base32(32)


def encrypt_secret(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("TOTP secret cannot be decrypted with the current key "
                               "nor with SAAS_SECRET_KEY_FALLBACKS") from exc


def under_former_key(token: str) -> bool:
    """Whether the secret was encrypted under a fallback key, not the current one."""
    try:
        keys.fernet(b"mutualis-totp", b"totp-secret-v1", current_only=True).decrypt(token.encode())
    except InvalidToken:
        return True
    return False


def reencrypt_secret(token: str) -> str:
    """The same secret, encrypted under the current key (after a key rotation)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("TOTP secret cannot be decrypted with any known key") from exc


def normalise_code(code: str) -> str:
    return "".join(code.split())


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """Return the time step the 6-digit `code` belongs to (within the window), or None."""
    code = normalise_code(code)
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    found = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        # Compare every candidate so the time taken does not depend on which one matches.
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            found = step
    return found


def consume_step(user_id: uuid.UUID, step: int) -> bool:
    """Record `step` as used by this user; False if it (or a later one) was already used.

    One conditional UPDATE, so two nodes racing on the same code cannot both accept it.
    """
    from saas.auth.models import User

    result = db.session.execute(
        db.update(User)
        .where(User.id == user_id)
        .where(db.or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def verify_user_code(user, code: str) -> bool:
    """Check a code against the user's enrolled secret, refusing replays of a used step."""
    from saas.auth import credentials

    stored = credentials.totp_secret_enc(user)
    if not stored:
        return False
    step = matching_step(decrypt_secret(stored), code)
    if step is None or not consume_step(user.id, step):
        return False
    db.session.refresh(user, ["totp_last_step"])
    if under_former_key(stored):
        # After a key rotation, each secret moves to the new key at its next use.
        user.totp_secret_enc = reencrypt_secret(stored)
    return True


def provisioning_uri(secret: str, account: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg_data_uri(data: str) -> str:
    """Render `data` as a QR code in SVG, as a data: URI (no external service, CSP-friendly)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathFillImage, border=2)
    svg = image.to_string(encoding="unicode")
    return "data:image/svg+xml;charset=utf-8," + quote(svg)


def grouped(secret: str) -> str:
    """Return the secret in groups of four characters, easier to type by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
