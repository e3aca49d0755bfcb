"""Receive one file from a multipart/form-data request, streamed to the store as it arrives."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Request
from flask_babel import gettext as _

from saas.bodies import allow_large_body
from saas.config import current_settings
from saas.errors import AppError
from saas.files.store import StoredFile, delete_quietly
from saas.files.streams import FormError, StreamingForm

T = TypeVar("T")

# Multipart framing around the file: a request this much larger than the room left may still fit.
MULTIPART_SLACK = 64 * 1024


def form_messages() -> dict[str, str]:
    return {
        "not_multipart": _("Envoyez le fichier en multipart/form-data, dans le champ « file »."),
        "malformed_multipart": _("Le corps multipart/form-data est mal formé."),
        "truncated_body": _("Le corps de la requête est incomplet (connexion interrompue ?)."),
        "too_many_parts": _("Trop de champs dans le formulaire."),
        "field_too_large": _("Un champ du formulaire est trop long."),
        "unexpected_file": _("Un seul fichier est attendu, dans le champ « file »."),
    }


def form_error(exc: FormError) -> AppError:
    return AppError(400 if exc.code != "field_too_large" else 413, exc.code, exc.message)


class FieldView:
    """A StreamingForm's fields, read like a form (first value, or the list)."""

    def __init__(self, form: StreamingForm):
        self._form = form

    def get(self, name, default=None):
        return self._form.get(name, default)

    def getlist(self, name):
        return self._form.getlist(name)


def receive_file(tenant, request: Request, *, store_file: Callable[[StreamingForm, str | None], StoredFile],
                 read_fields: Callable[[FieldView], T], max_size: int,
                 csrf_check: Callable[[str | None], None] | None = None) -> tuple[StoredFile, T]:
    """Store the request's `file` part with `store_file(stream, filename)`; return it and its fields.

    Call it once the caller may upload (authenticated, allowed to write): the request's body
    limit is raised from the platform's small default to a file of `max_size` bytes (and its
    multipart framing) here, before the body is read.

    `read_fields` checks the fields sent before the file (before any byte is stored), then all
    of them once the body is read; when it raises, the stored file is deleted. `csrf_check(token)`
    (web pages) runs before the file is stored.
    """
    allow_large_body(request, max_size + MULTIPART_SLACK,
                     min_rate=current_settings().http.upload_min_rate)
    try:
        form = StreamingForm(request.stream, request.content_type or "", messages=form_messages())
        has_file = form.read_until_file()
    except FormError as exc:
        raise form_error(exc) from None
    if csrf_check is not None:
        csrf_check(form.get("csrf_token") or request.headers.get("X-CSRFToken"))
    if not has_file:
        raise AppError(422, "file_missing", _("Aucun fichier reçu : joignez-le dans le champ « file »."),
                       {"fields": {"file": _("champ obligatoire")}})
    read_fields(FieldView(form))
    # The store reads the file part straight from the form: it receives and parses the next
    # parts from the client while its threads send the previous ones to S3.
    try:
        stored = store_file(form, form.filename)
    except FormError as exc:
        raise form_error(exc) from None
    try:
        form.finish()
        fields = read_fields(FieldView(form))
    except BaseException as exc:
        delete_quietly(tenant, stored.key)
        if isinstance(exc, FormError):
            raise form_error(exc) from None
        raise
    return stored, fields
