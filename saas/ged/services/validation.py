"""Checks shared by the GED's inputs: cleaned text, and one 422 naming every bad field."""

from __future__ import annotations

import unicodedata

from flask_babel import gettext as _

from saas.errors import AppError


def clean_text(value: str | None, limit: int) -> str:
    """Strip control and bidi-override characters and outer spaces; cut at `limit`."""
    value = unicodedata.normalize("NFC", value or "")
    value = "".join(ch for ch in value
                    if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return value.strip()[:limit]


def raise_problems(problems: dict[str, str]) -> None:
    """422 naming each invalid field ({field: French problem}), if any."""
    if problems:
        raise AppError(422, "validation_error", _("Les données envoyées sont invalides."),
                       {"fields": problems})
