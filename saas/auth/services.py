"""Identity rules: password login, lockout, second factor, password reset, commune switch.

Every function here works on the request's host (a commune, or the console) and records what
it does in that host's audit chain. Failed-login counters live in the database
(login_throttles), per (address, client network) and per address over every network, never in
process memory.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

import sqlalchemy as sa
from flask import g, has_request_context, request, session
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError

from saas import keys
from saas.audit.services import record
from saas.auth import credentials, passwords, recovery, totp
from saas.auth.models import LoginThrottle, Membership, Role, UsedNonce, User
from saas.auth.sessions import ABSOLUTE_LIFETIME, session_scope_key
from saas.extensions import db
from saas.hosts import console_url, tenant_url
from saas.mail import send_mail
from saas.modelbase import utcnow
from saas.netutil import client_ip
from saas.tenancy.context import current_user_id, set_user, tenant_context
from saas.tenancy.models import Tenant

log = logging.getLogger("saas.auth")

LOCK_THRESHOLD = 5
LOCK_BASE = timedelta(minutes=15)
LOCK_MAX = timedelta(hours=24)
# The account's ceiling over every client network: a distributed guess stops there too, while
# one distant client alone cannot lock the owner out of her own address.
GLOBAL_THRESHOLD = 100
GLOBAL_WINDOW = timedelta(hours=1)
GLOBAL_LOCK = timedelta(hours=1)
PENDING_MAX_AGE = 600  # seconds between the password and the one-time code
RESET_MAX_AGE = 3600
SWITCH_MAX_AGE = 60

_RESET_SALT = "saas.auth.password-reset"
_SWITCH_SALT = "saas.auth.switch"


class Status:
    OK = "ok"
    INVALID = "invalid"
    LOCKED = "locked"
    SECOND_FACTOR = "second_factor"
    ENROL = "enrol"


@dataclass
class Outcome:
    status: str
    user: User | None = None
    locked_until: datetime | None = None
    next_url: str | None = None
    # Shown once, right after an enrolment.
    recovery_codes: list[str] | None = None
    # After a login with a recovery code: how many the user has left.
    recovery_codes_left: int | None = None


# --- hosts, accounts, roles -------------------------------------------------------------


def on_console() -> bool:
    return g.get("host_kind") == "console"


def audit(action: str, *, actor, data: dict | None = None, target: str | None = None) -> None:
    """Record in the chain of the request's host: the commune's, or the platform's."""
    record(action, target, data or {}, actor=actor, platform=on_console())


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def find_user(email: str) -> User | None:
    email = normalise_email(email)
    if not email:
        return None
    return db.session.execute(
        db.select(User).where(db.func.lower(User.email) == email)
    ).scalar_one_or_none()


def access_role(user: User) -> str | None:
    """The user's role on this host ("platform" on the console), or None without access."""
    tenant = g.get("tenant")
    if tenant is None and not on_console():
        return None
    return role_in(user, tenant)


def totp_required(user: User, role: str | None) -> bool:
    """Whether this login needs a second factor even if the user never enrolled one."""
    return user.is_platform_admin or role == Role.ADMIN


def memberships_of(user: User) -> list[tuple[Tenant, str]]:
    """Every active commune where the user has a role, with that role."""
    # RLS lets a person read their own memberships in every tenant through the `own_rows`
    # policy, keyed on app.current_user; the ORM filter is bypassed on purpose.
    if current_user_id() != user.id:
        set_user(user)
    rows = db.session.execute(
        db.select(Tenant, Membership.role)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .where(Membership.user_id == user.id, Tenant.status == "active")
        .order_by(Tenant.name)
        .execution_options(all_tenants=True)
    ).all()
    return [(tenant, role) for tenant, role in rows]


def totp_required_anywhere(user: User) -> bool:
    return user.is_platform_admin or any(role == Role.ADMIN for _t, role in memberships_of(user))


def safe_next(target: str | None) -> str | None:
    """Return `target` if it is a path on this host, None otherwise (no open redirect)."""
    if not target or len(target) > 2000:
        return None
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


# --- lockout ----------------------------------------------------------------------------


def lock_duration(failures: int) -> timedelta:
    """15 minutes for the first lock, doubled at each further one, capped at a day."""
    nth = min(max(failures // LOCK_THRESHOLD, 1), 16)  # 2**15 quarters of an hour is past the cap
    return min(LOCK_BASE * (2 ** (nth - 1)), LOCK_MAX)


def client_network(address: str | None = None) -> str:
    """The client's address as throttles count it: an IPv4 address, an IPv6 /64."""
    raw = address if address is not None else client_ip()
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:45]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _throttle_key(email: str, network: str) -> str:
    # Keyed by the normalised address whether or not an account has it, and on every host
    # alike: an unknown address locks exactly like a real account, the lock message says
    # nothing of which addresses exist.
    return keys.hmac_hex(keys.current_key(), f"login|{email}|{network}".encode(), 64)


def _account_key(email: str) -> str:
    return _throttle_key(email, "account")


def _throttle_keys(email: str) -> tuple[str, str]:
    """(this client network's key, the account's ceiling key) for `email`."""
    email = normalise_email(email)
    return _throttle_key(email, client_network()), _throttle_key(email, "*")


def login_locked_until(email: str) -> datetime | None:
    """When the login of `email` from this client unlocks, or None if it is not locked."""
    now = utcnow()
    until = db.session.execute(
        db.select(db.func.max(LoginThrottle.locked_until))
        .where(LoginThrottle.key.in_(_throttle_keys(email)), LoginThrottle.locked_until > now)
    ).scalar()
    return until


def locked_until(user: User) -> datetime | None:
    return login_locked_until(user.email)


def describe_lock(until: datetime) -> str:
    """The French sentence shown to a locked-out person, with the time it unlocks."""
    local_now = format_datetime(utcnow(), "yyyy-MM-dd")
    if format_datetime(until, "yyyy-MM-dd") == local_now:
        when = format_datetime(until, "HH:mm")
    else:
        when = format_datetime(until, "d MMMM 'à' HH:mm")
    return _(
        "Compte temporairement verrouillé après plusieurs tentatives infructueuses. "
        "Vous pourrez réessayer à partir de %(when)s (heure de Paris), ou réinitialiser "
        "votre mot de passe.",
        when=when,
    )


def _upsert(values: dict):
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(LoginThrottle).values(**values)


def _count_failure(key: str, account: str, window: timedelta) -> int:
    """One more failure on `key` (a fresh count once its window is over); the new count.

    A single INSERT ... ON CONFLICT DO UPDATE: concurrent failures on several web processes
    each get their own count, so exactly one of them reaches each threshold.
    """
    now = utcnow()
    stmt = _upsert({"key": key, "account": account, "failures": 1, "window_ends": now + window,
                    "locked_until": None})
    over = LoginThrottle.window_ends <= now
    stmt = stmt.on_conflict_do_update(
        index_elements=[LoginThrottle.key],
        set_={
            "failures": sa.case((over, 1), else_=LoginThrottle.failures + 1),
            "window_ends": sa.case((over, now + window), else_=LoginThrottle.window_ends),
            "locked_until": sa.case((over, sa.null()), else_=LoginThrottle.locked_until),
        },
    ).returning(LoginThrottle.failures)
    return db.session.execute(stmt).scalar_one()


def _lock(key: str, until: datetime) -> None:
    db.session.execute(
        db.update(LoginThrottle).where(LoginThrottle.key == key)
        .values(locked_until=until)
        .execution_options(synchronize_session=False)
    )


def _register_failure(email: str, user: User | None, reason: str) -> Outcome:
    """Count one more failure of `email` from this client and over every client; lock at the
    thresholds, queue the owner's mail for each new lock, audit, commit."""
    email = normalise_email(email)
    here, everywhere = _throttle_keys(email)
    now = utcnow()
    locks: list[tuple[str, datetime]] = []
    account = _account_key(email)
    count = _count_failure(here, account, LOCK_MAX)
    if count % LOCK_THRESHOLD == 0:
        until = now + lock_duration(count)
        _lock(here, until)
        locks.append(("address", until))
    total = _count_failure(everywhere, account, GLOBAL_WINDOW)
    if total % GLOBAL_THRESHOLD == 0:
        until = now + GLOBAL_LOCK
        _lock(everywhere, until)
        locks.append(("everywhere", until))
    data: dict = {"result": "failure", "reason": reason}
    if user is None:
        data["email"] = email[:254]
    for scope, until in locks:
        data["locked_until" if scope == "address" else "locked_everywhere_until"] = \
            until.isoformat(timespec="seconds")
        _queue_lock_mail(email, scope, until)
    audit("auth.login", actor=user if user is not None else "anonymous", data=data)
    # The failure must stick even though the login is refused.
    db.session.commit()
    until = max((u for _s, u in locks), default=None)
    return Outcome(Status.LOCKED if until else Status.INVALID, user, until)


# The job kind that tells an account's owner it was locked (declared in saas.auth.tasks).
LOCK_MAIL = "auth.lock_mail"


def _queue_lock_mail(email: str, scope: str, until: datetime) -> None:
    """Queue the owner's notice of a new lock, whether or not the address has an account:
    the job finds out, so the request does the same work for every address."""
    from saas.jobs import enqueue

    tenant = g.get("tenant")
    enqueue(LOCK_MAIL, email=email[:254], scope=scope, until=until.isoformat(),
            network=client_network(), tenant_id=str(tenant.id) if tenant is not None else None)


def send_lock_mail(email: str, scope: str, until: datetime, network: str,
                   tenant: Tenant | None) -> bool:
    """Tell the owner of `email`, if there is one, that its login was locked. Runs in a job."""
    user = find_user(email)
    if user is None or not user.active:
        return False
    place = tenant.name if tenant is not None else _("la console intercommunale")
    when = format_datetime(until, "d MMMM yyyy 'à' HH:mm")
    if scope == "address":
        what = _("les connexions à votre compte depuis l'adresse réseau %(network)s sont "
                 "bloquées jusqu'au %(when)s (heure de Paris)", network=network, when=when)
    else:
        what = _("les connexions à votre compte sont bloquées depuis toutes les adresses "
                 "jusqu'au %(when)s (heure de Paris), car un très grand nombre de tentatives "
                 "est venu de plusieurs adresses", when=when)
    subject = _("Connexions à votre compte bloquées – Mutualis")
    body = _(
        "Bonjour %(name)s,\n\n"
        "Plusieurs tentatives de connexion avec un mot de passe ou un code incorrect ont eu "
        "lieu sur %(place)s : %(what)s.\n\n"
        "Si c'était vous, patientez ou réinitialisez votre mot de passe depuis la page de "
        "connexion. Sinon, quelqu'un essaie peut-être d'entrer dans votre compte : choisissez "
        "un mot de passe que vous n'utilisez nulle part ailleurs et activez la double "
        "authentification dans « Mon compte ».\n",
        name=user.name, place=place, what=what,
    )
    send_mail(user.email, subject, body)
    return True


def clear_failures(email: str, *, everywhere: bool = False) -> None:
    """Forget this client's failures for `email`, or every failure of the account (every
    client network and its ceiling) if `everywhere`."""
    email = normalise_email(email)
    if everywhere:
        condition = LoginThrottle.account == _account_key(email)
    elif has_request_context():
        condition = LoginThrottle.key == _throttle_keys(email)[0]
    else:
        return
    db.session.execute(db.delete(LoginThrottle).where(condition)
                       .execution_options(synchronize_session=False))


def purge_expired_throttles() -> int:
    """Delete the counters whose window and lock are over (in the open transaction)."""
    now = utcnow()
    return db.session.execute(
        db.delete(LoginThrottle).where(
            LoginThrottle.window_ends < now,
            sa.or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now))
        .execution_options(synchronize_session=False)
    ).rowcount


# --- password login ---------------------------------------------------------------------


def login_with_password(email: str, password: str, next_url: str | None) -> Outcome:
    """Check the password on this host; log in, or hand over to the second factor."""
    email = normalise_email(email)
    user = find_user(email)
    role = access_role(user) if user is not None else None
    # Locks are per (address, client network) whether or not an account has the address, so
    # the lock says nothing of which addresses exist.
    until = login_locked_until(email)
    if until is not None:
        data = {"result": "failure", "reason": "locked"}
        if user is None or role is None:
            data["email"] = email[:254]
        audit("auth.login", actor=user if role is not None else "anonymous", data=data)
        db.session.commit()
        return Outcome(Status.LOCKED, user if role is not None else None, until)
    if user is None or role is None:
        # Same Argon2 work as a real account, so timing does not tell them apart.
        passwords.verify_password(credentials.password_hash(user) if user else None, password)
        return _register_failure(email, None, "no_access" if user else "unknown_account")
    if not passwords.verify_password(credentials.password_hash(user), password):
        return _register_failure(email, user, "bad_password")
    if passwords.needs_rehash(credentials.password_hash(user)):
        user.password_hash = passwords.hash_password(password)

    if user.totp_enabled or totp_required(user, role):
        enrol = not user.totp_enabled
        begin_second_factor(user, enrol=enrol, next_url=next_url)
        db.session.commit()
        return Outcome(Status.ENROL if enrol else Status.SECOND_FACTOR, user)
    complete_login(user, totp_ok=False, method="password")
    return Outcome(Status.OK, user, next_url=next_url)


def complete_login(user: User, *, totp_ok: bool, method: str, action: str = "auth.login",
                   data: dict | None = None) -> None:
    """Open a fresh session for `user` on this host, reset the lockout, audit, commit."""
    session.clear()  # no state carried over from before authentication (fixation)
    login_user(user)
    session["scope"] = session_scope_key()
    session["sid"] = secrets.token_urlsafe(16)
    session["login_at"] = int(time.time())
    session["totp_ok"] = totp_ok
    db.session.execute(
        db.update(User).where(User.id == user.id)
        .values(last_login_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    clear_failures(user.email)  # this client's failures; the account's ceiling runs its course
    audit(action, actor=user, data={"result": "success", "method": method, **(data or {})})
    db.session.commit()


def logout() -> None:
    """End this session and make its cookie worthless even if someone kept a copy."""
    sid, login_at = session.get("sid"), session.get("login_at")
    if current_user.is_authenticated:
        audit("auth.logout", actor=current_user._get_current_object())
    if sid:
        started = datetime.fromtimestamp(login_at or time.time(), UTC)
        db.session.add(UsedNonce(nonce=f"logout:{sid}",
                                 expires_at=started + ABSOLUTE_LIFETIME + timedelta(minutes=5)))
    purge_expired_nonces()
    db.session.commit()
    logout_user()
    session.clear()


def purge_expired_nonces() -> int:
    """Delete the nonces whose tokens have expired (in the open transaction); return how many."""
    return db.session.execute(db.delete(UsedNonce).where(UsedNonce.expires_at < utcnow())).rowcount


# --- second factor ----------------------------------------------------------------------


def begin_second_factor(user: User, *, enrol: bool, next_url: str | None,
                        via: str = "password", source: str | None = None) -> None:
    """Remember who passed the first factor; the session is not logged in yet."""
    session.clear()
    session["needs_2fa"] = True
    session["pending"] = {
        "uid": str(user.id),
        "v": user.session_version,
        "scope": session_scope_key(),
        "at": int(time.time()),
        "enrol": enrol,
        "next": next_url,
        "via": via,
        "src": source,
    }


def pending_login() -> tuple[User, str, dict] | None:
    """The (user, role, pending state) waiting for a second factor on this host, if any."""
    pending = session.get("pending") if session.get("needs_2fa") else None
    if not isinstance(pending, dict) or pending.get("scope") != session_scope_key():
        return None
    if time.time() - float(pending.get("at", 0)) > PENDING_MAX_AGE:
        return None
    try:
        user = db.session.get(User, uuid.UUID(pending["uid"]))
    except (KeyError, ValueError, TypeError):
        return None
    if user is None or user.session_version != pending.get("v"):
        return None
    role = access_role(user)
    if role is None:
        return None
    return user, role, pending


def _finish_pending(user: User, pending: dict, method: str) -> Outcome:
    if pending.get("via") == "switch":
        complete_login(user, totp_ok=True, method=f"switch+{method}", action="auth.switch",
                       data={"direction": "in", "from": pending.get("src")})
    else:
        complete_login(user, totp_ok=True, method=f"password+{method}")
    return Outcome(Status.OK, user, next_url=pending.get("next"))


def verify_second_factor(user: User, pending: dict, code: str) -> Outcome:
    """Check the one-time code of an enrolled user and finish the login."""
    until = locked_until(user)
    if until is not None:
        session.clear()
        audit("auth.login", actor=user, data={"result": "failure", "reason": "locked"})
        db.session.commit()
        return Outcome(Status.LOCKED, user, until)
    try:
        ok = totp.verify_user_code(user, code)
    except totp.SecretUnreadable:
        log.error("TOTP secret of user %s cannot be decrypted (SECRET_KEY changed?)", user.id)
        ok = False
    if not ok:
        outcome = _register_failure(user.email, user, "bad_totp")
        if outcome.status == Status.LOCKED:
            session.clear()
        return outcome
    return _finish_pending(user, pending, "totp")


def enrolment_secret() -> str:
    """The secret being enrolled in this session (kept encrypted in the cookie)."""
    stored = session.get("enrol_secret")
    if stored:
        try:
            return totp.decrypt_secret(stored)
        except totp.SecretUnreadable:
            pass
    secret = totp.new_secret()
    session["enrol_secret"] = totp.encrypt_secret(secret)
    return secret


def _enable_totp(user: User, secret: str, step: int) -> list[str]:
    """Store the secret and give the user fresh recovery codes; return them (shown once)."""
    user.totp_secret_enc = totp.encrypt_secret(secret)
    user.totp_last_step = step
    session.pop("enrol_secret", None)
    codes = recovery.replace_codes(user)
    audit("auth.totp.enable", actor=user, data={"recovery_codes": len(codes)})
    return codes


def confirm_forced_enrolment(user: User, pending: dict, code: str) -> Outcome:
    """Enable the second factor of a user who must have one, then finish the login."""
    until = locked_until(user)
    if until is not None:
        session.clear()
        return Outcome(Status.LOCKED, user, until)
    secret = enrolment_secret()
    step = totp.matching_step(secret, code)
    if step is None:
        outcome = _register_failure(user.email, user, "bad_totp_enrolment")
        if outcome.status == Status.LOCKED:
            session.clear()
        return outcome
    codes = _enable_totp(user, secret, step)
    outcome = _finish_pending(user, pending, "totp_enrolment")
    outcome.recovery_codes = codes
    return outcome


def confirm_optional_enrolment(user: User, code: str) -> list[str] | None:
    """Enable the second factor from the account page; its recovery codes, or None if the
    code is wrong."""
    secret = enrolment_secret()
    step = totp.matching_step(secret, code)
    if step is None:
        return None
    codes = _enable_totp(user, secret, step)
    session["totp_ok"] = True
    db.session.commit()
    return codes


# The job kind that tells an account's owner a recovery code was used (saas.auth.tasks).
RECOVERY_MAIL = "auth.recovery_mail"


def verify_recovery_code(user: User, pending: dict, code: str) -> Outcome:
    """Finish the login with one of the user's recovery codes instead of a one-time code.

    The code is consumed by the same statement that checks it (saas.auth.recovery.use_code);
    the use is audited and mailed to the owner. Wrong codes count as failed logins.
    """
    from saas.jobs import enqueue

    until = locked_until(user)
    if until is not None:
        session.clear()
        audit("auth.login", actor=user, data={"result": "failure", "reason": "locked"})
        db.session.commit()
        return Outcome(Status.LOCKED, user, until)
    left = recovery.use_code(user, code) if user.totp_enabled else None
    if left is None:
        outcome = _register_failure(user.email, user, "bad_recovery_code")
        if outcome.status == Status.LOCKED:
            session.clear()
        return outcome
    audit("auth.recovery_code.used", actor=user, data={"left": left})
    tenant = g.get("tenant")
    enqueue(RECOVERY_MAIL, user_id=str(user.id), left=left,
            tenant_id=str(tenant.id) if tenant is not None else None,
            network=client_network())
    outcome = _finish_pending(user, pending, "recovery_code")
    outcome.recovery_codes_left = left
    return outcome


def send_recovery_mail(user: User, left: int, tenant: Tenant | None, network: str) -> bool:
    """Tell the owner that one of her recovery codes was just used. Runs in a job."""
    if not user.active:
        return False
    place = tenant.name if tenant is not None else _("la console intercommunale")
    subject = _("Code de secours utilisé – Mutualis")
    body = _(
        "Bonjour %(name)s,\n\n"
        "Un de vos codes de secours vient de servir à vous connecter sur %(place)s, depuis "
        "l'adresse réseau %(network)s, à la place du code de votre application "
        "d'authentification. Il vous reste %(left)d code(s) de secours.\n\n"
        "Si c'était vous, pensez à générer de nouveaux codes depuis « Mon compte » quand il "
        "vous en reste peu. Sinon, changez votre mot de passe immédiatement et prévenez "
        "l'administrateur de votre commune.\n",
        name=user.name, place=place, network=network, left=left,
    )
    send_mail(user.email, subject, body)
    return True


def regenerate_recovery_codes(user: User) -> list[str] | None:
    """Fresh recovery codes for the logged-in user (the former ones stop working); None
    without a second factor."""
    if not user.totp_enabled:
        return None
    codes = recovery.replace_codes(user)
    audit("auth.recovery_codes.regenerated", actor=user, data={"count": len(codes)})
    db.session.commit()
    return codes


def recovery_codes_left(user: User) -> int:
    return recovery.codes_left(user)


def reset_second_factor(user: User, *, actor, tenant: Tenant | None = None) -> bool:
    """Remove the user's second factor and recovery codes, end her sessions; False if she had
    none. Audited in the platform's chain and, with `tenant`, in the commune's. The caller
    commits. At her next login she enrols again (an administrator must)."""
    if not user.totp_enabled:
        return False
    user.totp_secret_enc = None
    user.totp_last_step = None
    user.session_version += 1
    recovery.clear_codes(user)
    db.session.flush()
    data = {"tenant": tenant.slug} if tenant is not None else {}
    record("auth.totp.reset", user.email, data, actor=actor, platform=True)
    if tenant is not None:
        with tenant_context(tenant):
            record("auth.totp.reset", user.email, {}, actor=actor)
    return True


def disable_totp(user: User, code: str) -> str | None:
    """Turn the second factor off; return why it was refused, in French, or None."""
    if totp_required_anywhere(user):
        return _("La double authentification est obligatoire pour votre compte : "
                 "elle ne peut pas être désactivée.")
    try:
        ok = totp.verify_user_code(user, code)
    except totp.SecretUnreadable:
        ok = False
    if not ok:
        db.session.rollback()
        return _("Code incorrect ou déjà utilisé : saisissez le code actuellement affiché.")
    user.totp_secret_enc = None
    user.totp_last_step = None
    recovery.clear_codes(user)
    audit("auth.totp.disable", actor=user)
    db.session.commit()
    return None


# --- password reset ---------------------------------------------------------------------


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return keys.serializer(salt)


def _fingerprint_data(user: User) -> bytes:
    # Changes with the password and with the session version: a used link dies with them.
    return f"{credentials.password_hash(user) or ''}|{user.session_version}".encode()


def _password_fingerprint(user: User) -> str:
    return keys.hmac_hex(keys.current_key(), _fingerprint_data(user))


# The job kind that mails a reset link (declared in saas.auth.tasks, which imports this module).
RESET_MAIL = "auth.reset_mail"


def make_reset_token(user: User, scope: str | None = None) -> str:
    """A reset link's token, valid on the host whose session scope is `scope` (default: this one)."""
    return _serializer(_RESET_SALT).dumps(
        {"u": str(user.id), "s": scope or session_scope_key(), "f": _password_fingerprint(user)}
    )


def request_password_reset(email: str) -> None:
    """Queue the reset mail for this host; say nothing of whether the address has an account.

    The job finds out, and mails only a person with access here. The request does the same work
    whatever the address (one job queued), so neither the page nor its timing tells.
    """
    from saas.jobs import enqueue

    if g.get("host_kind") not in ("tenant", "console"):
        return
    tenant = g.get("tenant")
    enqueue(RESET_MAIL, email=normalise_email(email)[:254],
            tenant_id=str(tenant.id) if tenant is not None else None,
            ip=request.remote_addr if has_request_context() else None)
    db.session.commit()


def role_in(user: User, tenant: Tenant | None) -> str | None:
    """The user's role in `tenant` ("platform" for a platform admin when None), or None."""
    if not user.active:
        return None
    if tenant is None:
        return "platform" if user.is_platform_admin else None
    with tenant_context(tenant):
        membership = db.session.execute(
            db.select(Membership).where(Membership.user_id == user.id)
        ).scalar_one_or_none()
    return membership.role if membership else None


def send_reset_mail(email: str, tenant: Tenant | None, ip: str | None = None) -> bool:
    """Mail a reset link to the account `email` for `tenant` (the console when None), if it has
    access there. Returns whether a mail went out. Runs in a job (saas.auth.tasks), whose
    success commits the audit entry; a retried job may send the mail again, never none."""
    user = find_user(email)
    if user is None or role_in(user, tenant) is None:
        return False
    scope = str(tenant.id) if tenant is not None else "console"
    path = "/auth/reset/" + make_reset_token(user, scope)
    link = tenant_url(tenant, path) if tenant is not None else console_url(path)
    place = tenant.name if tenant is not None else _("la console intercommunale")
    subject = _("Réinitialisation de votre mot de passe – %(place)s", place=place)
    body = _(
        "Bonjour %(name)s,\n\n"
        "Quelqu'un (vous, sans doute) a demandé à réinitialiser le mot de passe de votre compte "
        "sur %(place)s.\n\n"
        "Pour choisir un nouveau mot de passe, ouvrez ce lien dans l'heure qui vient :\n\n"
        "%(link)s\n\n"
        "Le lien ne sert qu'une fois. Si vous n'êtes pas à l'origine de cette demande, ignorez "
        "ce message : votre mot de passe actuel reste valable.\n",
        name=user.name, place=place, link=link,
    )
    # A failure raises: the job is retried later (the link stays valid an hour from sending).
    send_mail(user.email, subject, body)
    with tenant_context(tenant) if tenant is not None else nullcontext():
        record("auth.password_reset.request", None, {}, actor=user, platform=tenant is None,
               ip=ip)
    return True


def check_reset_token(token: str) -> tuple[User | None, str | None]:
    """Return (user, None) for a valid link, or (None, "expired" | "invalid" | "used")."""
    try:
        data = _serializer(_RESET_SALT).loads(token, max_age=RESET_MAX_AGE)
    except SignatureExpired:
        return None, "expired"
    except BadSignature:
        return None, "invalid"
    if not isinstance(data, dict) or data.get("s") != session_scope_key():
        return None, "invalid"
    try:
        user = db.session.get(User, uuid.UUID(str(data.get("u"))))
    except ValueError:
        return None, "invalid"
    if user is None or access_role(user) is None:
        return None, "invalid"
    if not keys.hmac_matches(str(data.get("f", "")), _fingerprint_data(user)):
        return None, "used"
    return user, None


def reset_password(user: User, new_password: str) -> bool:
    """Set the new password, log out every session of the user, clear the lockout.

    The link is consumed by the same statement that sets the password: it writes only while the
    session version is the one the link was checked against, and bumps it. Of two requests
    holding the same link, the second finds the version moved (PostgreSQL re-reads the row once
    the first commits) and writes nothing. Returns False then: the link has already served.
    """
    new_hash = passwords.hash_password(new_password)
    version = user.session_version
    done = db.session.execute(
        db.update(User)
        .where(User.id == user.id, User.session_version == version)
        .values(password_hash=new_hash, session_version=version + 1)
        .returning(User.id)
        .execution_options(synchronize_session=False)
    ).first()
    if done is None:
        db.session.rollback()
        return False
    db.session.expire(user)
    clear_failures(user.email, everywhere=True)  # the link proved the mailbox: every lock ends
    audit("auth.password_reset", actor=user)
    db.session.commit()
    return True


def change_password(user: User, current: str, new: str) -> tuple[str, str] | None:
    """Change the password of the logged-in `user`; return (field, why) if refused, or None.

    Every other session of the account ends (the session version changes); this one carries
    on under the new version, second factor included.
    """
    if not passwords.verify_password(credentials.password_hash(user), current):
        audit("auth.password_change", actor=user, data={"result": "failure", "reason": "bad_password"})
        db.session.commit()
        return "current", _("Mot de passe actuel incorrect.")
    problem = passwords.password_problem(new, email=user.email, name=user.name)
    if problem is not None:
        return "password", problem
    if passwords.verify_password(credentials.password_hash(user), new):
        return "password", _("Le nouveau mot de passe doit être différent de l'actuel.")
    user.password_hash = passwords.hash_password(new)
    user.session_version += 1
    audit("auth.password_change", actor=user, data={"result": "success"})
    db.session.commit()
    login_user(user)  # this session's key follows the new version; scope, sid, 2FA are kept
    return None


# --- commune switch ---------------------------------------------------------------------
#
# A hand-off link must log in only the browser that asked for it (otherwise anyone could mail
# their own link to someone and log them into the sender's account: login CSRF). The target
# host cannot read the source host's cookies, so the browser first visits the target, which
# sets a random nonce in its own host-only cookie and sends the browser back to the source with
# the nonce's SHA-256; the source signs that digest into the link. The target accepts the link
# only from a browser holding the nonce. As OAuth's `state`: the source never sees the nonce,
# the link alone is worthless, and the digest travels only through the asking browser.
#
#   source  POST /auth/switch (CSRF form)    -> remembers the target in its session
#   target  GET  /auth/handoff/begin?src=…   -> sets the nonce cookie
#   source  GET  /auth/switch/issue?c=…      -> signs {user, target, digest}, once per request
#   target  GET  /auth/handoff?token=…       -> nonce cookie must match the digest


def browser_digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def begin_switch(user: User, slug: str) -> str | None:
    """Start a switch to the commune `slug` of the user: the URL of the target's first step,
    or None if not allowed."""
    current = g.get("tenant")
    target = next((t for t, _r in memberships_of(user) if t.slug == slug), None)
    if target is None or (current is not None and target.id == current.id):
        return None
    session["switch"] = {"t": str(target.id), "at": int(time.time())}
    source = current.slug if current is not None else "console"
    return tenant_url(target, "/auth/handoff/begin?" + urlencode({"src": source}))


def handoff_begin(source: str) -> tuple[str, str] | None:
    """On the target host: (URL of the source's issuing step, nonce for this browser's cookie),
    or None if `source` is no host a switch can come from."""
    if source == "console":
        origin = console_url
    else:
        tenant = db.session.execute(
            db.select(Tenant).where(Tenant.slug == source[:40])
        ).scalar_one_or_none()
        if tenant is None or not tenant.is_active:
            return None
        origin = lambda path: tenant_url(tenant, path)  # noqa: E731
    nonce = secrets.token_urlsafe(32)
    return origin("/auth/switch/issue?" + urlencode({"c": browser_digest(nonce)})), nonce


def switch_url(user: User, digest: str) -> str | None:
    """Issue the one-time hand-off asked for in this session, bound to the browser whose nonce
    has the SHA-256 `digest`; None if no switch was asked for here (or too long ago)."""
    asked = session.pop("switch", None)
    if not isinstance(asked, dict) or time.time() - float(asked.get("at", 0)) > SWITCH_MAX_AGE:
        return None
    if not isinstance(digest, str) or len(digest) != 64 or not all(
            c in "0123456789abcdef" for c in digest):
        return None
    current = g.get("tenant")
    target = next((t for t, _r in memberships_of(user) if str(t.id) == asked.get("t")), None)
    if target is None:
        return None
    token = make_switch_token(user, target, totp_ok=bool(session.get("totp_ok")),
                              source=current.slug if current is not None else "console",
                              browser=digest)
    audit("auth.switch", actor=user, target=target.slug,
          data={"direction": "out", "to": target.slug})
    db.session.commit()
    return tenant_url(target, "/auth/handoff?" + urlencode({"token": token}))


def make_switch_token(user: User, target: Tenant, *, browser: str, totp_ok: bool = False,
                      source: str = "console") -> str:
    """Sign a hand-off token for the browser whose nonce has the SHA-256 `browser`."""
    return _serializer(_SWITCH_SALT).dumps({
        "u": str(user.id), "t": str(target.id), "n": secrets.token_urlsafe(16),
        "v": user.session_version, "tf": totp_ok, "src": source, "b": browser,
    })


def read_tenant_link(serializer, token: str, max_age: int) -> tuple[dict, User, None] | tuple[None, None, str]:
    """Open a signed link meant for this commune's host, naming a user ("u") and the commune
    ("t"): (data, user, None), or (None, None, "expired" | "invalid")."""
    try:
        data = serializer.loads(token, max_age=max_age)
    except SignatureExpired:
        return None, None, "expired"
    except BadSignature:
        return None, None, "invalid"
    tenant = g.get("tenant")
    if not isinstance(data, dict) or tenant is None or data.get("t") != str(tenant.id):
        return None, None, "invalid"
    try:
        user = db.session.get(User, uuid.UUID(str(data.get("u"))))
    except ValueError:
        return None, None, "invalid"
    if user is None:
        return None, None, "invalid"
    return data, user, None


def accept_handoff(token: str, browser_nonce: str | None) -> tuple[Outcome | None, str | None]:
    """Log in from another commune's hand-off, if this browser is the one that asked for it
    (it holds the nonce whose digest was signed); return (outcome, None) or (None, error)."""
    data, user, error = read_tenant_link(_serializer(_SWITCH_SALT), token, SWITCH_MAX_AGE)
    if error:
        return None, error
    if user.session_version != data.get("v"):
        return None, "invalid"
    if not browser_nonce or not hmac.compare_digest(browser_digest(browser_nonce),
                                                    str(data.get("b", ""))):
        # Not consumed: the browser that asked can still use it within the minute.
        audit("auth.switch", actor=user,
              data={"direction": "in", "result": "failure", "reason": "other_browser"})
        db.session.commit()
        return None, "other_browser"

    purge_expired_nonces()
    try:
        with db.session.begin_nested():
            db.session.add(UsedNonce(nonce=f"switch:{data.get('n')}"[:64],
                                     expires_at=utcnow() + timedelta(seconds=SWITCH_MAX_AGE * 2)))
            # Flush inside the savepoint so a replay's violation rolls back only the savepoint.
            db.session.flush()
    except IntegrityError:
        audit("auth.switch", actor=user,
              data={"direction": "in", "result": "failure", "reason": "replayed"})
        db.session.commit()
        return None, "used"
    db.session.commit()

    role = access_role(user)
    if role is None:
        audit("auth.switch", actor=user,
              data={"direction": "in", "result": "failure", "reason": "no_access"})
        db.session.commit()
        return None, "no_access"
    until = locked_until(user)
    if until is not None:
        return Outcome(Status.LOCKED, user, until), None
    source = str(data.get("src") or "")[:40]
    totp_ok = bool(data.get("tf"))
    if (user.totp_enabled or totp_required(user, role)) and not totp_ok:
        enrol = not user.totp_enabled
        begin_second_factor(user, enrol=enrol, next_url=None, via="switch", source=source)
        return Outcome(Status.ENROL if enrol else Status.SECOND_FACTOR, user), None
    complete_login(user, totp_ok=totp_ok, method="switch", action="auth.switch",
                   data={"direction": "in", "from": source})
    return Outcome(Status.OK, user), None
