"""Write commune manifests for tests: valid by default, one field changed at a time."""

from __future__ import annotations

import json
from pathlib import Path

from saas.tenancy.codes import luhn_ok


def siren_for(n: int, prefix: str = "21") -> str:
    """Return a Luhn-valid SIREN starting with `prefix`, distinct for each n."""
    base = f"{prefix}{n:0{8 - len(prefix)}d}"
    return next(base + str(c) for c in range(10) if luhn_ok(base + str(c)))


def manifest_data(slug: str, n: int, **overrides) -> dict:
    """Return a valid commune manifest (as data) for département 44."""
    data = {
        "slug": slug,
        "name": f"Commune {slug.title()}",
        "kind": "commune",
        "insee": f"44{800 + n:03d}",
        "siren": siren_for(800 + n),
        "population": 500 * n,
        "departement": "44",
        "arrondissement": 1,
        "origins": [f"https://www.{slug}.example"],
        "modules": ["ged", "actes"],
        "quota": "5 GiB",
        "branding": {"primary_color": "#1F5C99"},
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def to_toml(data: dict) -> str:
    """Serialise the flat manifests used here (strings, integers, lists, one level of tables)."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append(f"\n[{key}]")
            tables += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in value.items()]
        else:
            lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines + tables) + "\n"


def write_manifest(directory: Path, slug: str, n: int = 1, *, filename: str | None = None,
                   **overrides) -> Path:
    """Write `<slug>.toml` (or `filename`) into `directory` and return its path."""
    path = directory / (filename or f"{slug}.toml")
    path.write_text(to_toml(manifest_data(slug, n, **overrides)), encoding="utf-8")
    return path
