"""Validation of French administrative identifiers (SIREN, INSEE, département)."""

from __future__ import annotations

import re

_INSEE = re.compile(r"^(?:[0-9]{2}|2A|2B)[0-9]{3}$")
_DEPARTEMENT = re.compile(r"^(?:0[1-9]|[1-8][0-9]|9[0-5]|2A|2B|97[1-6])$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def siren_error(value: str) -> str | None:
    """Return why `value` is not a valid SIREN, or None."""
    if not re.fullmatch(r"[0-9]{9}", value or ""):
        return "un SIREN comporte exactement 9 chiffres"
    if not luhn_ok(value):
        return "clé de contrôle (Luhn) invalide"
    return None


def insee_error(value: str) -> str | None:
    if not _INSEE.fullmatch(value or ""):
        return "un code INSEE comporte 5 caractères (2A/2B pour la Corse)"
    return None


def departement_error(value: str) -> str | None:
    if not _DEPARTEMENT.fullmatch(value or ""):
        return "département inconnu (01 à 95, 2A, 2B, 971 à 976)"
    return None


def departement_of_insee(insee: str) -> str:
    return insee[:3] if insee.startswith("97") else insee[:2]
