"""`Actor`: who acts in a commune (a person through a session or an API token, or the system)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flask import g, request
from flask_babel import gettext as _
from flask_login import current_user

from saas.errors import AppError

ROLES = ("admin", "agent", "elu")
SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """A user id and their role in the current commune (admin, agent, elu), or the system."""

    user_id: uuid.UUID | None
    role: str | None
    user: object | None = None

    @classmethod
    def system(cls) -> Actor:
        """Platform work (jobs, sweeps): sees every row of the current commune."""
        return cls(None, SYSTEM)

    @property
    def is_system(self) -> bool:
        return self.role == SYSTEM

    @property
    def can_write(self) -> bool:
        return self.role in ("admin", "agent")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_writer(self, message: str | None = None) -> None:
        if not (self.can_write or self.is_system):
            raise AppError(403, "forbidden",
                           message or _("Votre rôle ne permet pas de modifier ces données."))

    def require_admin(self, message: str | None = None) -> None:
        if not (self.is_admin or self.is_system):
            raise AppError(403, "forbidden", message or _(
                "Cette action est réservée aux administrateurs de la commune."))


def current_actor() -> Actor:
    """The person behind this request in its commune (token or session); 401 if nobody."""
    membership = g.get("membership")
    if membership is None:
        raise AppError(401, "unauthorized", _("Authentification requise."))
    user = getattr(request, "api_user", None)
    if user is None and current_user.is_authenticated:
        user = current_user._get_current_object()
    return Actor(membership.user_id, membership.role, user)
