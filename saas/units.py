"""The platform's one way of writing a size for people.

Convention (the manifests', tenants/README.md): « ko », « Mo », « Go », « To » are decimal SI units
(10^3, 10^6, 10^9, 10^12 bytes) and « Kio », « Mio », « Gio », « Tio » binary ones (2^10, …); a
manifest may use either, and every page, message and error shows decimal units, in French:
decimal comma, at most three significant digits, a non-breaking space before the unit. A quota
declared « 10 Mo » is shown « 10 Mo ».
"""

from __future__ import annotations

NBSP = "\u00a0"
_UNITS = (("Po", 10**15), ("To", 10**12), ("Go", 10**9), ("Mo", 10**6), ("ko", 10**3))


def format_size(n: int | None) -> str:
    """French rendering of a byte count: 999 octets, 1,5 ko, 9,5 Mo, 10 Mo, 262 ko, 1,05 Mo."""
    if n is None:
        return "—"
    n = int(n)
    for index, (unit, factor) in enumerate(_UNITS):
        if abs(n) >= factor:
            text = _three_digits(n / factor)
            if text == "1000" and index:  # 999 999 octets: « 1 Mo », not « 1000 ko »
                text, unit = "1", _UNITS[index - 1][0]
            return f"{text}{NBSP}{unit}"
    return f"{n}{NBSP}octet" + ("s" if abs(n) > 1 else "")


def _three_digits(value: float) -> str:
    # 1,05 · 10,5 · 105 — never more than three significant digits, trailing zeros dropped.
    decimals = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.replace(".", ",")
