"""Idempotent writes: an API POST with an `Idempotency-Key`, a page's form with a one-time token.

A double click on "Déposer", a client that retries after a timeout: the repetition must not
create a second document. The first request with a key claims it (a row of `idempotency_keys`,
committed before the request's work starts, so every node sees it); its answer is stored with
the key when it succeeds (status below 400), and every repetition within 24 hours gets that
first answer back, without running the operation again:

- API (`Idempotency-Key: <1 to 255 visible ASCII characters>` on any POST): per commune, person
  and key. The same request again → the stored status, headers and body, with
  `Idempotent-Replayed: true`; another request with the key (other path, query or body) → 422
  `idempotency_key_reused`; while the first still runs → 409 `idempotency_in_progress`.
- Pages: a form's action carries `?once=<token>` (`once_token()` in templates, so the token is
  read before the body: an upload is refused or replayed before a byte is streamed). The
  repetition is sent to the first answer's page (its redirect); while the first still runs, it
  waits for it a few seconds, then answers 409 with a French message.

A failed first attempt (status 400 or more, or an exception) releases the key: the person may
correct and retry. The fingerprint of a JSON request covers its method, path, query and body;
of a streamed one (multipart, tus), its method, path, query and tus headers (Upload-Length,
Upload-Metadata): its body cannot be read before it is streamed, so a multipart upload is
identified by its key and target alone.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, redirect, request
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from saas.api.models import IdempotencyKey
from saas.bodies import cap_body
from saas.config import current_settings
from saas.errors import AppError
from saas.extensions import db
from saas.modelbase import utcnow
from saas.tenancy.context import current_tenant_id

HEADER = "Idempotency-Key"
FORM_ARG = "once"
LIFETIME = timedelta(hours=24)
# How long a repeated form post waits for the first one to finish before answering 409.
FORM_WAIT_SECONDS = 10.0
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_PENDING = "saas_idempotency_pending"
# Headers a replay gives back (the rest describe the transport, not the outcome).
_KEPT_HEADERS = ("Location", "Content-Type", "Document-Id", "Document-Version", "Upload-Offset",
                 "Upload-Length", "Tus-Resumable")

PARAMETER_DOC = {
    "name": HEADER, "in": "header", "required": False,
    "description": "Clé d'idempotence (1 à 255 caractères ASCII visibles), valable 24 h pour "
                   "cette personne dans cette commune : la même requête répétée avec la même clé "
                   "reçoit la première réponse réussie (en-tête `Idempotent-Replayed: true`) "
                   "sans refaire l'opération ; une autre requête avec cette clé → 422 "
                   "`idempotency_key_reused` ; pendant que la première s'exécute → 409 "
                   "`idempotency_in_progress`. Un échec (statut ≥ 400) libère la clé.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def once_token() -> str:
    """A fresh one-time token for a page's form (`?once=` of its action)."""
    return secrets.token_urlsafe(18)


def _actor() -> str | None:
    membership = g.get("membership")
    if membership is not None:
        return str(membership.user_id)
    return None


def fingerprint(*, streamed: bool) -> str:
    """What makes two requests 'the same' for one key (see the module's docstring)."""
    h = hashlib.sha256()
    for part in (request.method, request.path, request.query_string.decode("latin-1"),
                 request.mimetype or ""):
        h.update(part.encode() + b"\0")
    if streamed:
        # Not Content-Length: a multipart body's framing (its random boundary) differs between
        # two sendings of the same file; the tus headers describe the file itself.
        for name in ("Upload-Length", "Upload-Metadata"):
            h.update((request.headers.get(name) or "").encode("latin-1") + b"\0")
    else:
        cap_body(request, current_settings().http.max_json)
        h.update(request.get_data(cache=True))
    return h.hexdigest()


def _find(actor: str, key: str) -> IdempotencyKey | None:
    return db.session.execute(sa.select(IdempotencyKey).where(
        IdempotencyKey.actor == actor, IdempotencyKey.key == key)
        .execution_options(populate_existing=True)).scalar_one_or_none()


def _claim(kind: str, actor: str, key: str, fp: str) -> IdempotencyKey | None:
    """Claim `key` for this request (None) or return the row of the request that has it."""
    db.session.commit()  # the claim must not ride on (nor end) other pending work
    # This person's expired keys go first: the table holds at most a day of each one's writes.
    db.session.execute(sa.delete(IdempotencyKey).where(
        IdempotencyKey.actor == actor, IdempotencyKey.expires_at <= utcnow()))
    for _attempt in range(3):
        db.session.commit()
        now = utcnow()
        row = IdempotencyKey(actor=actor, key=key, kind=kind, fingerprint=fp, status=None,
                             headers={}, created_at=now, expires_at=now + LIFETIME)
        db.session.add(row)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
        else:
            g.setdefault(_PENDING, row.id)
            return None
        existing = _find(actor, key)
        if existing is None:
            continue  # released meanwhile: claim again
        if existing.expires_at <= utcnow():
            db.session.delete(existing)
            db.session.commit()
            continue
        return existing
    raise AppError(409, "idempotency_in_progress", _in_progress_message())


def _in_progress_message() -> str:
    return _("Une requête identique est déjà en cours : attendez sa fin avant de réessayer.")


def _replay(row: IdempotencyKey) -> Response:
    response = Response(row.body or b"", status=row.status)
    response.headers.pop("Content-Type", None)
    for name, value in (row.headers or {}).items():
        response.headers[name] = value
    response.headers["Idempotent-Replayed"] = "true"
    return response


def begin_api(*, streamed: bool) -> Response | None:
    """Before an API POST: None to run it (key claimed, or no key), or the answer to give."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise AppError(400, "invalid_idempotency_key",
                       _("L'en-tête Idempotency-Key doit compter 1 à 255 caractères ASCII visibles."))
    actor = _actor()
    if actor is None or current_tenant_id() is None:
        return None
    fp = fingerprint(streamed=streamed)
    row = _claim("api", actor, key, fp)
    if row is None:
        return None
    if row.fingerprint != fp:
        raise AppError(422, "idempotency_key_reused",
                       _("Cette clé d'idempotence a déjà servi pour une autre requête : "
                         "utilisez une nouvelle clé."))
    if row.status is None:
        raise AppError(409, "idempotency_in_progress", _in_progress_message(),
                       headers={"Retry-After": "1"})
    return _replay(row)


def finish(response: Response) -> Response:
    """After the request that claimed a key: store its answer, or release the key if it failed."""
    row_id = g.pop(_PENDING, None)
    if row_id is None:
        return response
    if response.status_code >= 400:
        release(row_id)
        return response
    try:
        row = db.session.get(IdempotencyKey, row_id)
        if row is not None:
            row.status = response.status_code
            row.headers = {name: response.headers[name] for name in _KEPT_HEADERS
                           if name in response.headers}
            row.body = (b"" if response.direct_passthrough or response.is_streamed
                        else response.get_data())
            db.session.commit()
    except Exception:  # noqa: BLE001 - the work is done: answer it; the key stays in flight
        db.session.rollback()
        current_app.logger.warning("idempotency outcome not stored")
    return response


def release(row_id=None) -> None:
    """Forget a claimed key whose request failed (the next attempt runs)."""
    row_id = row_id if row_id is not None else g.pop(_PENDING, None)
    if row_id is None:
        return
    db.session.rollback()
    db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.id == row_id))
    db.session.commit()


# -- pages -------------------------------------------------------------------------------------


def _begin_form() -> Response | None:
    token = request.args.get(FORM_ARG)
    if request.method != "POST" or token is None or request.blueprint == "api":
        return None
    if not _KEY.fullmatch(token) or current_tenant_id() is None:
        return None
    from flask_login import current_user

    actor = _actor() if current_user.is_authenticated else None
    if actor is None:
        return None
    # One token is one rendered form: its repetition is the same post, whatever its bytes
    # (a browser draws a new multipart boundary each time).
    fp = hashlib.sha256(f"{request.method} {request.path}".encode()).hexdigest()
    deadline = time.monotonic() + FORM_WAIT_SECONDS
    while True:
        # Claimed: run. Held by a first post still running: wait for its outcome (a browser
        # that cancelled it may have cut its body: then it fails, releases, and this one runs).
        row = _claim("form", actor, token, fp)
        if row is None:
            return None
        if row.status is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if row.fingerprint != fp:
        raise AppError(422, "idempotency_key_reused",
                       _("Ce formulaire a déjà été envoyé : rechargez la page et recommencez."))
    if row.status is None:
        raise AppError(409, "idempotency_in_progress",
                       _("Ce formulaire est déjà en cours d'envoi : attendez la fin du premier "
                         "envoi, puis rechargez la page."))
    location = (row.headers or {}).get("Location")
    if location:
        return redirect(location, 303)
    return _replay(row)


def init_app(app: Flask) -> None:
    """One-time form tokens for every page of `app` (the API uses begin_api in the registry)."""
    app.before_request(_begin_form)

    @app.after_request
    def _finish(response: Response) -> Response:
        return finish(response)

    @app.teardown_request
    def _release(exc) -> None:
        if g.get(_PENDING) is not None:
            try:
                release()
            except Exception:  # noqa: BLE001 - the teardown must not fail; the key expires
                current_app.logger.warning("idempotency key not released")

    app.add_template_global(once_token, "once_token")
