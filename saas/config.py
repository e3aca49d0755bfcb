"""Settings from SAAS_* environment variables, an instance file, or the embedded defaults."""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

# Keys read from the environment (prefixed SAAS_) or from <instance>/saas.toml (unprefixed, lower-case).
SETTING_KEYS = (
    "DATABASE_URL",
    "DATABASE_OWNER_URL",
    "REDIS_URL",
    "S3_ENDPOINT",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "S3_SECURE",
    "S3_REGION",
    "S3_BUCKET_PREFIX",
    "BASE_DOMAIN",
    "SECRET_KEY",
    "SECRET_KEY_FALLBACKS",
    "INSTANCE_PATH",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USER",
    "SMTP_PASSWORD",
    "SMTP_STARTTLS",
    "MAIL_FROM",
    "PUBLIC_SCHEME",
    "PUBLIC_PORT",
    "COOKIE_SECURE",
    "ENV",
    "PROXY_HOPS",
    "PROXY_FORWARDS_HOST",
    # Sections: GED_* → Settings.ged, JOBS_* (and the two worker names below) → Settings.jobs.
    "GED_MAX_UPLOAD",
    "GED_UPLOAD_CHUNK",
    "GED_MAX_PENDING_UPLOADS",
    "GED_VERIFY_WHOLE_BELOW",
    "GED_SCRUB_BATCH_BYTES",
    "JOBS_LEASE_SECONDS",
    "JOBS_RECONCILE_SECONDS",
    "JOBS_DISPATCH_GRACE_SECONDS",
    "JOBS_DISPATCH_SECONDS",
    "JOBS_TICK_SECONDS",
    "JOBS_EMBEDDED_RUNNER",
    "WORKER_LOG_LEVEL",
    "EXTRA_JOB_MODULES",
)


class ConfigError(RuntimeError):
    """Raised when the configuration cannot produce a working instance."""


@dataclass(frozen=True)
class GedSettings:
    """The GED's knobs (SAAS_GED_*)."""

    # Largest file accepted, in bytes.
    max_upload: int = 2 * 1024 ** 3
    # Largest piece of a resumable (tus) upload the server asks for, in bytes.
    upload_chunk: int = 8 * 1024 * 1024
    # Resumable uploads one person may have in progress at once (each reserves its length).
    max_pending_uploads: int = 4
    # Files up to this size are hashed whole before the first byte is served (a mismatch is a
    # clean error, and any Range of them is checked); larger ones are checked on the fly.
    verify_whole_below: int = 4 * 1024 * 1024
    # Bytes one integrity-scrub job reads before handing over to the next (see ged.scrub).
    scrub_batch_bytes: int = 2 * 1024 ** 3


@dataclass(frozen=True)
class JobsSettings:
    """The job system's timings and worker options (SAAS_JOBS_*, SAAS_WORKER_LOG_LEVEL, …)."""

    # A running job's lease; the worker renews it every lease/4 seconds. A worker that dies
    # stops renewing, and its job is taken back at most `lease + reconcile` seconds later.
    lease_seconds: float = 60.0
    # How often the reconciler compares the database with Redis and takes back lost jobs.
    reconcile_seconds: float = 15.0
    # A job pushed to Redis this long ago that Redis no longer has (flush, restart) is re-pushed.
    dispatch_grace_seconds: float = 20.0
    # The scheduler's safety-net dispatch pass (enqueue and claims dispatch at once anyway).
    dispatch_seconds: float = 1.0
    # Scheduler ticks: periodic tasks are checked this often.
    tick_seconds: float = 0.5
    # Embedded default: "thread" runs jobs in the web process, "off" leaves them queued.
    embedded_runner: str = "thread"
    worker_log_level: str = "WARNING"
    # Extra modules declaring job kinds (tests, site plug-ins), imported with the features'.
    extra_modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    database_owner_url: str
    redis_url: str | None
    s3_endpoint: str | None
    s3_access_key: str | None
    s3_secret_key: str | None
    s3_secure: bool
    s3_region: str
    s3_bucket_prefix: str
    base_domain: str
    secret_key: str
    smtp_host: str | None
    smtp_port: int
    smtp_user: str | None
    smtp_password: str | None
    smtp_starttls: bool
    mail_from: str
    public_scheme: str
    public_port: int | None
    cookie_secure: bool
    production: bool
    proxy_hops: int = 0
    # Take the host (hence the commune) from X-Forwarded-Host: only when the proxy sets it.
    proxy_forwards_host: bool = False
    # Former secret keys, still accepted while they are rotated out (newest first).
    secret_key_fallbacks: tuple[str, ...] = ()
    ged: GedSettings = field(default_factory=GedSettings)
    jobs: JobsSettings = field(default_factory=JobsSettings)

    @property
    def embedded(self) -> bool:
        """True when running on SQLite without Redis: jobs run in-process."""
        return self.redis_url is None

    def flask_config(self) -> dict:
        return {
            "SECRET_KEY": self.secret_key,
            # Flask 3.1 reads these for session cookies; saas.keys for everything else.
            "SECRET_KEY_FALLBACKS": list(self.secret_key_fallbacks),
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(self.database_url),
            # Over HTTPS, the __Host- prefix makes browsers refuse the cookie unless it is
            # Secure, host-only and for path /: a sibling sub-domain cannot plant or widen it.
            "SESSION_COOKIE_NAME": "__Host-session" if self.cookie_secure else "session",
            "REMEMBER_COOKIE_NAME": "__Host-remember" if self.cookie_secure else "remember_token",
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.cookie_secure,
            # Host-only cookies: one login per commune host, switching is explicit.
            "SESSION_COOKIE_DOMAIN": False,
            "REMEMBER_COOKIE_HTTPONLY": True,
            "REMEMBER_COOKIE_SECURE": self.cookie_secure,
            "REMEMBER_COOKIE_SAMESITE": "Lax",
            "PERMANENT_SESSION_LIFETIME": 8 * 3600,
            "WTF_CSRF_TIME_LIMIT": 8 * 3600,
            "MAX_CONTENT_LENGTH": None,
            "BABEL_DEFAULT_LOCALE": "fr",
            "BABEL_DEFAULT_TIMEZONE": "Europe/Paris",
            "PREFERRED_URL_SCHEME": self.public_scheme,
            "RATELIMIT_STORAGE_URI": self.redis_url or "memory://",
            "RATELIMIT_HEADERS_ENABLED": True,
        }


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"check_same_thread": False, "timeout": 30}}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}


def _truthy(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on", "oui"}


def load_settings(overrides: dict | None = None) -> Settings:
    """Build the settings: overrides, then SAAS_* env vars, then <instance>/saas.toml, then defaults."""
    overrides = {k.upper(): v for k, v in (overrides or {}).items()}
    instance = Path(
        overrides.get("INSTANCE_PATH") or os.environ.get("SAAS_INSTANCE_PATH") or "instance"
    ).resolve()

    file_values: dict[str, str] = {}
    config_file = instance / "saas.toml"
    if config_file.exists():
        try:
            raw = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: {exc}") from exc
        file_values = {k.upper(): str(v) for k, v in raw.items()}

    def get(key: str) -> str | None:
        for source in (overrides, os.environ):
            name = key if source is overrides else f"SAAS_{key}"
            if source.get(name) not in (None, ""):
                return str(source[name])
        return file_values.get(key)

    production = (get("ENV") or "").lower() == "production"
    database_url = get("DATABASE_URL") or f"sqlite:///{instance / 'saas.db'}"
    database_url = _normalise_db_url(database_url)
    secret_key = get("SECRET_KEY")
    if not secret_key:
        if production:
            raise ConfigError("SAAS_SECRET_KEY est obligatoire en production.")
        secret_key = _embedded_secret(instance)

    scheme = get("PUBLIC_SCHEME") or ("https" if production else "http")
    port = get("PUBLIC_PORT")
    return Settings(
        instance_path=instance,
        database_url=database_url,
        database_owner_url=_normalise_db_url(get("DATABASE_OWNER_URL") or database_url),
        redis_url=get("REDIS_URL"),
        s3_endpoint=get("S3_ENDPOINT"),
        s3_access_key=get("S3_ACCESS_KEY"),
        s3_secret_key=get("S3_SECRET_KEY"),
        s3_secure=_truthy(get("S3_SECURE"), default=False),
        s3_region=get("S3_REGION") or "fr-east-1",
        s3_bucket_prefix=get("S3_BUCKET_PREFIX") or "mutualis-",
        base_domain=(get("BASE_DOMAIN") or "localhost").lower(),
        secret_key=secret_key,
        smtp_host=get("SMTP_HOST"),
        smtp_port=int(get("SMTP_PORT") or 25),
        smtp_user=get("SMTP_USER"),
        smtp_password=get("SMTP_PASSWORD"),
        smtp_starttls=_truthy(get("SMTP_STARTTLS")),
        mail_from=get("MAIL_FROM") or "Mutualis <no-reply@localhost>",
        public_scheme=scheme,
        public_port=int(port) if port else (None if production else 8000),
        cookie_secure=_truthy(get("COOKIE_SECURE"), default=production),
        production=production,
        proxy_hops=int(get("PROXY_HOPS") or 0),
        proxy_forwards_host=_truthy(get("PROXY_FORWARDS_HOST")),
        secret_key_fallbacks=tuple(
            key for key in (part.strip() for part in (get("SECRET_KEY_FALLBACKS") or "").split(","))
            if key and key != secret_key
        ),
        ged=_ged_settings(get),
        jobs=_jobs_settings(get),
    )


def _number(get, key: str, default, kind=float):
    raw = get(key)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"SAAS_{key} : nombre attendu, reçu « {raw} ».") from None
    if value <= 0:
        raise ConfigError(f"SAAS_{key} doit être positif (reçu {raw}).")
    return value


# S3 composes (and so the resumable uploads' pieces) need parts of at least 5 MiB
# (saas.storage.base.MIN_COMPOSE_PART, which this layer cannot import).
_MIN_UPLOAD_CHUNK = 5 * 1024 * 1024


def _ged_settings(get) -> GedSettings:
    defaults = GedSettings()
    chunk = _number(get, "GED_UPLOAD_CHUNK", defaults.upload_chunk, int)
    if chunk < _MIN_UPLOAD_CHUNK:
        raise ConfigError(f"SAAS_GED_UPLOAD_CHUNK doit valoir au moins {_MIN_UPLOAD_CHUNK} "
                          f"octets (5 Mio, la plus petite part qu'un assemblage S3 accepte) : "
                          f"reçu {chunk}.")
    return GedSettings(
        max_upload=_number(get, "GED_MAX_UPLOAD", defaults.max_upload, int),
        upload_chunk=chunk,
        max_pending_uploads=_number(get, "GED_MAX_PENDING_UPLOADS",
                                    defaults.max_pending_uploads, int),
        verify_whole_below=_number(get, "GED_VERIFY_WHOLE_BELOW", defaults.verify_whole_below,
                                   int),
        scrub_batch_bytes=_number(get, "GED_SCRUB_BATCH_BYTES", defaults.scrub_batch_bytes, int),
    )


def _jobs_settings(get) -> JobsSettings:
    defaults = JobsSettings()
    runner = (get("JOBS_EMBEDDED_RUNNER") or defaults.embedded_runner).lower()
    if runner not in ("thread", "off"):
        raise ConfigError(f"SAAS_JOBS_EMBEDDED_RUNNER : « thread » ou « off », reçu « {runner} ».")
    return JobsSettings(
        lease_seconds=_number(get, "JOBS_LEASE_SECONDS", defaults.lease_seconds),
        reconcile_seconds=_number(get, "JOBS_RECONCILE_SECONDS", defaults.reconcile_seconds),
        dispatch_grace_seconds=_number(get, "JOBS_DISPATCH_GRACE_SECONDS",
                                       defaults.dispatch_grace_seconds),
        dispatch_seconds=_number(get, "JOBS_DISPATCH_SECONDS", defaults.dispatch_seconds),
        tick_seconds=_number(get, "JOBS_TICK_SECONDS", defaults.tick_seconds),
        embedded_runner=runner,
        worker_log_level=(get("WORKER_LOG_LEVEL") or defaults.worker_log_level).upper(),
        extra_modules=tuple(
            name for name in (part.strip() for part in (get("EXTRA_JOB_MODULES") or "").split(","))
            if name
        ),
    )


def current_settings() -> Settings:
    """The settings of the application in context."""
    from flask import current_app

    return current_app.config["SAAS_SETTINGS"]


def _normalise_db_url(url: str) -> str:
    # psycopg 3 is the driver; accept the plain postgresql:// form operators write.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _embedded_secret(instance: Path) -> str:
    """Create once and reuse a random secret for the embedded (single-machine) mode."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
