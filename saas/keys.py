"""The platform's secret keys: the current one signs and encrypts, former ones still verify.

Rotating SAAS_SECRET_KEY: set the new key and move the old one to SAAS_SECRET_KEY_FALLBACKS
(comma-separated, newest first), restart, run `saas keys reencrypt` (stored TOTP secrets are
re-encrypted under the new key), and drop the fallback once sessions and links signed with it
have expired (8 hours for sessions). Without a fallback, a new key logs everyone out and makes
every stored TOTP secret unreadable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from itsdangerous import URLSafeTimedSerializer


def current_key() -> str:
    return current_app.config["SECRET_KEY"]


def all_keys() -> list[str]:
    """The current key first, then the fallbacks, newest first."""
    return [current_key(), *current_app.config.get("SECRET_KEY_FALLBACKS", ())]


def serializer(salt: str) -> URLSafeTimedSerializer:
    """Signs with the current key; verifies with any (itsdangerous wants the newest last)."""
    return URLSafeTimedSerializer(list(reversed(all_keys())), salt=salt)


def hmac_hex(key: str, data: bytes, length: int = 32) -> str:
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()[:length]


def hmac_matches(value: str, data: bytes, length: int = 32) -> bool:
    """Whether `value` is the HMAC of `data` under any of the keys (constant time per key)."""
    found = False
    for key in all_keys():
        found |= hmac.compare_digest(value, hmac_hex(key, data, length))
    return found


def _fernet_for(key: str, salt: bytes, info: bytes) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def fernet(salt: bytes, info: bytes, *, current_only: bool = False) -> MultiFernet:
    """Encrypts under the current key; decrypts what any key encrypted (or only the current)."""
    chosen = [current_key()] if current_only else all_keys()
    return MultiFernet([_fernet_for(key, salt, info) for key in chosen])
