"""Small pieces every API endpoint reuses: pagination, timestamps, 404s."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import request
from flask_babel import gettext as _

from saas.api.validation import validation_error
from saas.errors import AppError
from saas.extensions import db

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
# Pages past this one are refused: their offset would leave PostgreSQL's integers.
MAX_PAGE = 1_000_000
# Digits read at most from a query parameter (int() of a huge string costs, then fails).
_MAX_DIGITS = 18


def positive_int(raw: str | None) -> int | None:
    """The integer >= 1 that `raw` spells in ASCII digits, else None.

    `str.isdigit()` alone is not enough: "²" is a digit to Python but not to int().
    """
    if not raw or len(raw) > _MAX_DIGITS or not raw.isascii() or not raw.isdigit():
        return None
    number = int(raw)
    return number if number >= 1 else None


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with an explicit offset (UTC), or None."""
    if value is None:
        return None
    if value.tzinfo is None:  # the UTCDateTime column type never yields naive values
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def not_found(message: str | None = None) -> AppError:
    """The one answer for a missing object, another commune's, or one the user may not see."""
    return AppError(404, "not_found", message or _("Ressource introuvable."))


def page_args(default_per_page: int = DEFAULT_PER_PAGE,
              max_per_page: int = MAX_PER_PAGE) -> tuple[int, int]:
    """Read and check ?page= and ?per_page= (422 naming the bad parameter)."""
    problems: dict[str, str] = {}
    values: dict[str, int] = {}
    for name, default, upper in (("page", 1, MAX_PAGE),
                                 ("per_page", default_per_page, max_per_page)):
        raw = request.args.get(name)
        if raw is None or raw == "":
            values[name] = default
            continue
        if not raw.isascii() or not raw.isdigit():
            problems[name] = _("doit être un entier positif")
            continue
        number = int(raw) if len(raw) <= _MAX_DIGITS else upper + 1
        if number < 1:
            problems[name] = _("doit être supérieur ou égal à 1")
        elif upper is not None and number > upper:
            problems[name] = _("doit être inférieur ou égal à %(n)d", n=upper)
        else:
            values[name] = number
    if problems:
        raise validation_error(problems)
    return values["page"], values["per_page"]


def paginate(stmt: sa.Select, serialize: Callable[[Any], dict], *,
             default_per_page: int = DEFAULT_PER_PAGE,
             max_per_page: int = MAX_PER_PAGE) -> dict:
    """Run an ORM select one page at a time: {"items", "total", "page", "per_page"}.

    `stmt` must be ordered deterministically (ties broken on the id) or pages may overlap.
    """
    page, per_page = page_args(default_per_page, max_per_page)
    # Counting keeps the entity in the FROM clause so tenant scoping applies to the count too.
    total = db.session.execute(
        stmt.order_by(None).with_only_columns(sa.func.count(), maintain_column_froms=True)
    ).scalar_one()
    items = db.session.execute(stmt.limit(per_page).offset((page - 1) * per_page)).scalars().all()
    return {"items": [serialize(item) for item in items], "total": total, "page": page,
            "per_page": per_page}
