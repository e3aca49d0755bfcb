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
    # Settings.audit: the key of the audit chains' MACs, and former ones (id:secret).
    "AUDIT_KEY",
    "AUDIT_KEY_FALLBACKS",
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
    # Sections: HTTP_* → Settings.http, GED_* → Settings.ged, JOBS_* (and the two worker names
    # below) → Settings.jobs.
    "HTTP_MAX_BODY",
    "HTTP_MAX_JSON",
    "HTTP_MAX_FORM_MEMORY",
    "HTTP_MAX_FORM_PARTS",
    "HTTP_BODY_TIMEOUT",
    "HTTP_UPLOAD_MIN_RATE",
    "GED_MAX_UPLOAD",
    "GED_UPLOAD_CHUNK",
    "GED_EXTRACT_CPU_SECONDS",
    "GED_EXTRACT_MEMORY_BYTES",
    "GED_EXTRACT_WALL_SECONDS",
    "GED_EXTRACT_MAX_PAGES",
    "GED_EXTRACT_MAX_CHARS",
    "GED_MAX_PENDING_UPLOADS",
    "GED_VERIFY_WHOLE_BELOW",
    "GED_SCRUB_BATCH_BYTES",
    "GED_CANCEL_WINDOW_HOURS",
    "JOBS_LEASE_SECONDS",
    "JOBS_RECONCILE_SECONDS",
    "JOBS_DISPATCH_GRACE_SECONDS",
    "JOBS_DISPATCH_SECONDS",
    "JOBS_TICK_SECONDS",
    "JOBS_SCHEDULER_STOP_SECONDS",
    "JOBS_EMBEDDED_RUNNER",
    "WORKER_LOG_LEVEL",
    "EXTRA_JOB_MODULES",
)


class ConfigError(RuntimeError):
    """Raised when the configuration cannot produce a working instance."""


@dataclass(frozen=True)
class HttpSettings:
    """Request bodies (SAAS_HTTP_*): how large and how slow, see saas/bodies.py."""

    # Largest body of an ordinary request (forms, JSON), in bytes; a larger Content-Length is
    # refused with 413 before a byte is read. Upload endpoints raise it (to GED_MAX_UPLOAD)
    # once the caller is authenticated.
    max_body: int = 1024 * 1024
    # Largest JSON body of an API operation, in bytes (checked before reading).
    max_json: int = 256 * 1024
    # Form fields kept in memory (all fields together), and the number of parts of a form.
    max_form_memory: int = 256 * 1024
    max_form_parts: int = 1000
    # Seconds a client may take to send an ordinary body (in all), and the longest wait for
    # the next bytes of any body; then 408 and the connection is closed.
    body_timeout: float = 15.0
    # On upload endpoints, each byte received earns 1/upload_min_rate more second: an upload
    # slower on average than this (bytes/s) is cut.
    upload_min_rate: int = 8 * 1024


@dataclass(frozen=True)
class GedSettings:
    """The GED's knobs (SAAS_GED_*)."""

    # Largest file accepted, in bytes.
    max_upload: int = 2 * 1024 ** 3
    # Largest piece of a resumable (tus) upload the server asks for, in bytes.
    upload_chunk: int = 8 * 1024 * 1024
    # Text extraction runs in a child process with these budgets (saas/ged/services/extraction):
    # CPU seconds and address space (rlimits set in the child), wall-clock seconds (the parent
    # kills it), and how many PDF pages and characters of text are kept. A document beyond
    # them is left unindexed ("texte non extrait : document trop complexe"), never retried.
    extract_cpu_seconds: int = 60
    extract_memory_bytes: int = 1024 ** 3
    extract_wall_seconds: float = 120.0
    extract_max_pages: int = 2000
    extract_max_chars: int = 400_000
    # Resumable uploads one person may have in progress at once (each reserves its length).
    max_pending_uploads: int = 4
    # Files up to this size are hashed whole before the first byte is served (a mismatch is a
    # clean error, and any Range of them is checked); larger ones are checked on the fly.
    verify_whole_below: int = 4 * 1024 * 1024
    # Bytes one integrity-scrub job reads before handing over to the next (see ged.scrub).
    scrub_batch_bytes: int = 2 * 1024 ** 3
    # How long after a deposit its author may cancel it ("Annuler ce dépôt"), whatever its
    # retention: the deposit was a mistake, not a record (see documents.cancel_deposit).
    cancel_window_hours: int = 24


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
    # After SIGTERM, how long `saas worker` waits for its scheduler process (which holds no job
    # and whose work is idempotent) before killing it; workers always finish their job.
    scheduler_stop_seconds: float = 10.0
    # Embedded default: "thread" runs jobs in the web process, "off" leaves them queued.
    embedded_runner: str = "thread"
    worker_log_level: str = "WARNING"
    # Extra modules declaring job kinds (tests, site plug-ins), imported with the features'.
    extra_modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuditSettings:
    """The audit chains' MAC keys (SAAS_AUDIT_KEY, SAAS_AUDIT_KEY_FALLBACKS), each "id:secret".

    A key of its own, not derived from SAAS_SECRET_KEY: that key rotates and its fallbacks are
    dropped after 8 hours, while an audit entry must verify for as long as it is kept. Every
    entry records the id of the key that signed it; a former key stays in the fallbacks (it
    then only verifies) for as long as entries it signed are kept.
    """

    key_id: str
    key: str = field(repr=False)
    # Former keys by id, still used to verify the entries they signed.
    fallbacks: dict[str, str] = field(default_factory=dict, repr=False)

    def keys(self) -> dict[str, str]:
        """Every known key by id, the current one included."""
        return {**self.fallbacks, self.key_id: self.key}


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
    http: HttpSettings = field(default_factory=HttpSettings)
    ged: GedSettings = field(default_factory=GedSettings)
    jobs: JobsSettings = field(default_factory=JobsSettings)
    audit: AuditSettings | None = None

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
            # Platform-wide body limits (saas/bodies.py); upload endpoints raise the first.
            "MAX_CONTENT_LENGTH": self.http.max_body,
            "MAX_FORM_MEMORY_SIZE": self.http.max_form_memory,
            "MAX_FORM_PARTS": self.http.max_form_parts,
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
    audit = _audit_settings(get, instance, production, secret_key)

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
        http=_http_settings(get),
        ged=_ged_settings(get),
        jobs=_jobs_settings(get),
        audit=audit,
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


def _http_settings(get) -> HttpSettings:
    defaults = HttpSettings()
    http = HttpSettings(
        max_body=_number(get, "HTTP_MAX_BODY", defaults.max_body, int),
        max_json=_number(get, "HTTP_MAX_JSON", defaults.max_json, int),
        max_form_memory=_number(get, "HTTP_MAX_FORM_MEMORY", defaults.max_form_memory, int),
        max_form_parts=_number(get, "HTTP_MAX_FORM_PARTS", defaults.max_form_parts, int),
        body_timeout=_number(get, "HTTP_BODY_TIMEOUT", defaults.body_timeout),
        upload_min_rate=_number(get, "HTTP_UPLOAD_MIN_RATE", defaults.upload_min_rate, int),
    )
    if http.max_json > http.max_body:
        raise ConfigError("SAAS_HTTP_MAX_JSON ne peut dépasser SAAS_HTTP_MAX_BODY.")
    return http


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
        extract_cpu_seconds=_number(get, "GED_EXTRACT_CPU_SECONDS", defaults.extract_cpu_seconds,
                                    int),
        extract_memory_bytes=_number(get, "GED_EXTRACT_MEMORY_BYTES",
                                     defaults.extract_memory_bytes, int),
        extract_wall_seconds=_number(get, "GED_EXTRACT_WALL_SECONDS",
                                     defaults.extract_wall_seconds),
        extract_max_pages=_number(get, "GED_EXTRACT_MAX_PAGES", defaults.extract_max_pages, int),
        extract_max_chars=_number(get, "GED_EXTRACT_MAX_CHARS", defaults.extract_max_chars, int),
        upload_chunk=chunk,
        max_pending_uploads=_number(get, "GED_MAX_PENDING_UPLOADS",
                                    defaults.max_pending_uploads, int),
        verify_whole_below=_number(get, "GED_VERIFY_WHOLE_BELOW", defaults.verify_whole_below,
                                   int),
        scrub_batch_bytes=_number(get, "GED_SCRUB_BATCH_BYTES", defaults.scrub_batch_bytes, int),
        cancel_window_hours=_number(get, "GED_CANCEL_WINDOW_HOURS", defaults.cancel_window_hours,
                                    int),
    )


_KEY_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def _audit_key(raw: str, name: str) -> tuple[str, str]:
    key_id, sep, secret = raw.strip().partition(":")
    if not sep or not key_id or not set(key_id) <= _KEY_ID_CHARS or len(key_id) > 32:
        raise ConfigError(f"SAAS_{name} : « identifiant:secret » attendu, l'identifiant en "
                          "minuscules, chiffres, « - », « _ » ou « . » (32 caractères au plus).")
    if len(secret) < 32:
        raise ConfigError(f"SAAS_{name} : le secret de la clé « {key_id} » doit faire au moins "
                          "32 caractères.")
    return key_id, secret


def _audit_settings(get, instance: Path, production: bool, secret_key: str) -> AuditSettings:
    raw = get("AUDIT_KEY")
    if not raw:
        if production:
            raise ConfigError("SAAS_AUDIT_KEY est obligatoire en production (clé des empreintes "
                              "du journal d'audit, « identifiant:secret »).")
        raw = _embedded_secret(instance, "audit_key", lambda: f"local-{secrets.token_hex(4)}:"
                               f"{secrets.token_urlsafe(48)}")
    key_id, key = _audit_key(raw, "AUDIT_KEY")
    if key == secret_key:
        raise ConfigError("SAAS_AUDIT_KEY doit être distincte de SAAS_SECRET_KEY.")
    fallbacks: dict[str, str] = {}
    for part in (get("AUDIT_KEY_FALLBACKS") or "").split(","):
        if part.strip():
            old_id, old_key = _audit_key(part, "AUDIT_KEY_FALLBACKS")
            if old_id == key_id and old_key != key:
                raise ConfigError(f"SAAS_AUDIT_KEY_FALLBACKS : l'identifiant « {old_id} » est déjà "
                                  "celui de la clé courante ; une nouvelle clé prend un nouvel "
                                  "identifiant.")
            if old_id in fallbacks and fallbacks[old_id] != old_key:
                raise ConfigError(f"SAAS_AUDIT_KEY_FALLBACKS : l'identifiant « {old_id} » figure "
                                  "deux fois avec des secrets différents.")
            if old_id != key_id:
                fallbacks[old_id] = old_key
    return AuditSettings(key_id=key_id, key=key, fallbacks=fallbacks)


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
        scheduler_stop_seconds=_number(get, "JOBS_SCHEDULER_STOP_SECONDS",
                                       defaults.scheduler_stop_seconds),
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


def _embedded_secret(instance: Path, name: str = "secret_key", make=None) -> str:
    """Create once and reuse a random secret for the embedded (single-machine) mode."""
    path = instance / name
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = make() if make else secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
