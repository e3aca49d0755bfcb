"""Commune manifests (`tenants/<slug>.toml`): parsing, validation, normalisation, digest.

Validation is pure (no database): every problem becomes a `ManifestError` that reads
`file: field: reason`, so an operator can fix all of them in one pass.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from flask_babel import gettext as _

from saas.tenancy.codes import departement_error, departement_of_insee, insee_error, siren_error
from saas.tenancy.models import KNOWN_MODULES, RESERVED_SLUGS, TenantKind, TenantStatus
from saas.units import format_size

FIELDS = (
    "slug", "name", "kind", "insee", "siren", "population", "departement", "arrondissement",
    "origins", "domains", "status", "modules", "quota", "branding",
)
BRANDING_FIELDS = ("primary_color", "logo_text")
MIN_CONTRAST = 4.5  # WCAG 2.1 AA, normal text

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SIZE = re.compile(r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*([a-zA-Z]*)\s*$")
_LINE_COL = re.compile(r"\(at line (\d+), column (\d+)\)")
# Decimal and binary units, English (B) and French (o) spellings.
_UNITS = {
    "": 1, "b": 1, "o": 1,
    "kb": 10**3, "ko": 10**3, "mb": 10**6, "mo": 10**6,
    "gb": 10**9, "go": 10**9, "tb": 10**12, "to": 10**12,
    "kib": 2**10, "kio": 2**10, "mib": 2**20, "mio": 2**20,
    "gib": 2**30, "gio": 2**30, "tib": 2**40, "tio": 2**40,
}
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# Bounds that keep every value storable (tenants.population is an INTEGER, quota_bytes a
# BIGINT) and plausible: the most populous French EPCI has about 7 million inhabitants.
MAX_POPULATION = 100_000_000
MAX_QUOTA = 2**50  # 1 Pio
# A manifest is a few hundred bytes; this bounds what `apply` reads and parses per file.
MAX_MANIFEST_BYTES = 256 * 1024
# Longest value quoted back in an error message.
_SHOWN = 60
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _shown(value) -> str:
    """A value as an error message quotes it: control characters escaped, long ones cut."""
    text = value if isinstance(value, str) else repr(value)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _control_error(value: str) -> str | None:
    """Why `value` cannot be stored as text (PostgreSQL refuses NUL; controls are invisible)."""
    found = _CONTROL.search(value)
    if found is None:
        return None
    return _("contient un caractère de contrôle (U+%(code)s), interdit", code=f"{ord(found.group()):04X}")


@dataclass(frozen=True)
class ManifestError:
    """One problem in one manifest: `file: field: reason` (reason in French)."""

    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


@dataclass(frozen=True)
class TenantManifest:
    """A validated, normalised manifest."""

    path: Path
    slug: str
    name: str
    kind: str
    insee: str | None
    siren: str
    population: int
    departement: str
    arrondissement: int | None
    origins: tuple[str, ...]
    domains: tuple[str, ...]
    # None when the manifest does not declare it: apply then leaves an existing tenant's
    # operational status (set by `saas tenants suspend`) alone.
    status: str | None
    modules: tuple[str, ...]
    quota_bytes: int
    branding: dict = field(default_factory=dict)

    def tenant_columns(self) -> dict:
        """Return the Tenant column values this manifest sets (status and domains aside)."""
        return {
            "slug": self.slug,
            "name": self.name,
            "kind": self.kind,
            "insee": self.insee,
            "siren": self.siren,
            "population": self.population,
            "departement": self.departement,
            "arrondissement": self.arrondissement,
            "origins": list(self.origins),
            "modules": list(self.modules),
            "quota_bytes": self.quota_bytes,
            "branding": dict(self.branding),
        }

    def normalised(self) -> dict:
        """Return the manifest as canonical data: equal meaning gives equal data."""
        return {**self.tenant_columns(), "domains": list(self.domains), "status": self.status}

    @property
    def digest(self) -> str:
        blob = json.dumps(self.normalised(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def contrast_ratio(color: str, background: str = "#ffffff") -> float:
    """Return the WCAG 2.1 contrast ratio between two #RRGGBB colours."""

    def luminance(hex_color: str) -> float:
        channels = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(color), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def parse_size(value: int | str) -> int:
    """Turn 20 GiB, "500 Mo" or a byte count into bytes; raise ValueError with a French reason."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(_("une taille s'écrit comme « 20 GiB », « 500 Mo » ou un nombre d'octets"))
    if isinstance(value, int):
        if value < 0:
            raise ValueError(_("la taille ne peut pas être négative"))
        return value
    match = _SIZE.match(value) if len(value) <= 64 else None
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(_(
            "taille illisible « %(value)s » : écrivez par exemple « 20 GiB », « 500 Mo » ou « 2 To »",
            value=_shown(value),
        ))
    # Decimal, not float: exact, and no overflow to infinity on a long number.
    return round(Decimal(match.group(1).replace(",", ".")) * _UNITS[unit])


def hostname_error(host: str) -> str | None:
    """Return why `host` (lower-case ASCII) is not a DNS host name, or None."""
    if len(host) > 253:
        return _("nom d'hôte trop long (253 caractères au plus)")
    labels = host.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return _("« %(host)s » n'est pas un nom d'hôte valide (ex. demarches.ma-commune.fr)", host=host)
    if labels[-1].isdigit():
        return _("une adresse IP n'est pas un nom d'hôte")
    return None


def _to_ascii_host(value: str) -> str:
    host = value.strip().rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _is_local(host: str) -> bool:
    return host in _LOCAL_HOSTS or host.endswith(".localhost")


def normalise_origin(value: str) -> str:
    """Return the canonical form of a website origin; raise ValueError with a French reason."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(_("une origine est une adresse comme « https://www.ma-commune.fr »"))
    raw = value.strip()
    if len(raw) > 2048:
        raise ValueError(_("« %(value)s » : adresse trop longue (2048 caractères au plus)", value=_shown(raw)))
    problem = _control_error(raw)
    if problem:
        raise ValueError(_("« %(value)s » %(reason)s", value=_shown(raw), reason=problem))
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ValueError(_("« %(value)s » n'est pas une adresse valide", value=_shown(raw))) from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(_(
            "« %(value)s » : une origine commence par https:// suivi du nom du site", value=_shown(raw)
        ))
    if parts.username is not None or parts.password is not None:
        raise ValueError(_("« %(value)s » : pas d'identifiant dans une origine", value=_shown(raw)))
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in raw or "#" in raw:
        raise ValueError(_(
            "« %(value)s » : une origine n'a ni chemin, ni paramètres (seulement https://nom-du-site)",
            value=_shown(raw),
        ))
    host = _to_ascii_host(parts.hostname)
    bracketed = f"[{host}]" if ":" in host else host
    if parts.scheme == "http" and not _is_local(bracketed):
        raise ValueError(_(
            "« %(value)s » : http:// n'est admis que pour localhost ; utilisez https://", value=_shown(raw)
        ))
    if not _is_local(bracketed):
        problem = hostname_error(host)
        if problem:
            raise ValueError(problem)
    default_port = 443 if parts.scheme == "https" else 80
    suffix = f":{port}" if port and port != default_port else ""
    return f"{parts.scheme}://{bracketed}{suffix}"


class _FileParser:
    """Validate one manifest's data, collecting every error instead of stopping at the first."""

    def __init__(self, path: Path, data: dict, base_domain: str | None):
        self.path = path
        self.data = data
        self.base_domain = base_domain
        self.errors: list[ManifestError] = []
        # (field, value) pairs that must be unique across the directory, kept even when the
        # file has other errors so that a duplicate is reported alongside them.
        self.unique_keys: list[tuple[str, str]] = []

    def error(self, field_name: str, reason: str) -> None:
        # Quoted values never reach the operator's terminal as control sequences.
        reason = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", reason)
        self.errors.append(ManifestError(str(self.path), _shown(field_name), reason))

    def _string(self, name: str, *, required: bool, max_length: int = 200) -> str | None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.error(name, _("champ obligatoire manquant"))
            return None
        if not isinstance(value, str):
            self.error(name, _("doit être une chaîne de caractères entre guillemets"))
            return None
        value = value.strip()
        if not value:
            if required:
                self.error(name, _("ne doit pas être vide"))
            return None
        if len(value) > max_length:
            self.error(name, _("trop long (%(n)d caractères au plus)", n=max_length))
            return None
        problem = _control_error(value)
        if problem:
            self.error(name, problem)
            return None
        return value

    def _string_list(self, name: str) -> list[str]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(name, _("doit être une liste de chaînes, ex. [\"…\", \"…\"]"))
            return []
        return value

    def parse(self) -> TenantManifest | None:
        for name in self.data:
            if name not in FIELDS:
                self._unknown(name, FIELDS)
        slug = self._slug()
        name = self._string("name", required=True)
        kind = self._choice("kind", [k.value for k in TenantKind], default=TenantKind.COMMUNE.value)
        siren = self._siren(kind)
        insee = self._insee(kind)
        population = self._int("population", required=True, minimum=0, maximum=MAX_POPULATION)
        departement = self._departement(insee)
        arrondissement = self._int("arrondissement", required=False, minimum=1, maximum=99)
        origins = self._origins()
        domains = self._domains()
        status = self._choice("status", [s.value for s in TenantStatus], default=None)
        modules = self._modules()
        quota = self._quota()
        branding = self._branding()
        if self.errors:
            return None
        return TenantManifest(
            path=self.path, slug=slug, name=name, kind=kind, insee=insee, siren=siren,
            population=population, departement=departement, arrondissement=arrondissement,
            origins=origins, domains=domains, status=status, modules=modules, quota_bytes=quota,
            branding=branding,
        )

    def _unknown(self, name: str, known: tuple[str, ...], prefix: str = "") -> None:
        close = difflib.get_close_matches(name, known, n=1)
        hint = _(" (vouliez-vous dire « %(name)s » ?)", name=close[0]) if close else ""
        self.error(prefix + name, _("champ inconnu%(hint)s ; champs admis : %(known)s",
                                    hint=hint, known=", ".join(known)))

    def _slug(self) -> str | None:
        slug = self._string("slug", required=True, max_length=40)
        if slug is None:
            return None
        if not _SLUG.match(slug) or "--" in slug:
            self.error("slug", _(
                "« %(slug)s » : lettres minuscules sans accent, chiffres et tirets simples, "
                "40 caractères au plus, ni tiret au début ni à la fin", slug=slug))
            return None
        if slug in RESERVED_SLUGS:
            self.error("slug", _("« %(slug)s » est réservé par la plateforme (réservés : %(list)s)",
                                 slug=slug, list=", ".join(sorted(RESERVED_SLUGS))))
            return None
        self.unique_keys.append(("slug", slug))
        if self.path.name != f"{slug}.toml":
            self.error("slug", _("le fichier doit s'appeler « %(expected)s » (nom du fichier = slug)",
                                 expected=f"{slug}.toml"))
            return None
        return slug

    def _choice(self, name: str, allowed: list[str], default: str | None) -> str | None:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, str) or value not in allowed:
            self.error(name, _("valeur « %(value)s » inconnue ; valeurs admises : %(allowed)s",
                               value=_shown(value), allowed=", ".join(allowed)))
            return None
        return value

    def _siren(self, kind: str | None) -> str | None:
        value = self.data.get("siren")
        if isinstance(value, int) and not isinstance(value, bool):
            self.error("siren", _("écrivez le SIREN entre guillemets, ex. siren = \"214400012\""))
            return None
        siren = self._string("siren", required=True, max_length=20)
        if siren is None:
            return None
        siren = siren.replace(" ", "")
        problem = siren_error(siren)
        if problem:
            self.error("siren", _("« %(value)s » : %(reason)s", value=siren, reason=problem))
            return None
        if kind == TenantKind.COMMUNE and not siren.startswith("21"):
            self.error("siren", _("le SIREN d'une commune commence par 21"))
            return None
        if kind == TenantKind.EPCI and not siren.startswith("2"):
            self.error("siren", _("le SIREN d'un établissement public de coopération intercommunale commence par 2"))
            return None
        self.unique_keys.append(("siren", siren))
        return siren

    def _insee(self, kind: str | None) -> str | None:
        value = self.data.get("insee")
        if isinstance(value, int) and not isinstance(value, bool):
            self.error("insee", _("écrivez le code INSEE entre guillemets, ex. insee = \"44109\""))
            return None
        insee = self._string("insee", required=kind == TenantKind.COMMUNE, max_length=5)
        if insee is None:
            return None
        insee = insee.upper()
        problem = insee_error(insee)
        if problem:
            self.error("insee", _("« %(value)s » : %(reason)s", value=insee, reason=problem))
            return None
        self.unique_keys.append(("insee", insee))
        return insee

    def _departement(self, insee: str | None) -> str | None:
        value = self.data.get("departement")
        if isinstance(value, int) and not isinstance(value, bool):
            self.error("departement", _("écrivez le département entre guillemets, ex. departement = \"44\""))
            return None
        departement = self._string("departement", required=True, max_length=3)
        if departement is None:
            return None
        departement = departement.upper()
        problem = departement_error(departement)
        if problem:
            self.error("departement", _("« %(value)s » : %(reason)s", value=departement, reason=problem))
            return None
        if insee and departement_of_insee(insee) != departement:
            self.error("departement", _(
                "« %(dep)s » ne correspond pas au code INSEE %(insee)s (département %(expected)s)",
                dep=departement, insee=insee, expected=departement_of_insee(insee)))
            return None
        return departement

    def _int(self, name: str, *, required: bool, minimum: int, maximum: int | None = None) -> int | None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.error(name, _("champ obligatoire manquant"))
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(name, _("doit être un nombre entier sans guillemets"))
            return None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = (_("entre %(lo)d et %(hi)d", lo=minimum, hi=maximum) if maximum is not None
                      else _("supérieur ou égal à %(lo)d", lo=minimum))
            self.error(name, _("doit être un entier %(bounds)s", bounds=bounds))
            return None
        return value

    def _origins(self) -> tuple[str, ...]:
        origins: list[str] = []
        for raw in self._string_list("origins"):
            try:
                origin = normalise_origin(raw)
            except ValueError as exc:
                self.error("origins", str(exc))
                continue
            if origin in origins:
                self.error("origins", _("« %(value)s » figure deux fois", value=origin))
                continue
            origins.append(origin)
        return tuple(sorted(origins))

    def _domains(self) -> tuple[str, ...]:
        domains: list[str] = []
        base = self.base_domain
        for raw in self._string_list("domains"):
            host = _to_ascii_host(raw)
            problem = hostname_error(host)
            if problem is None and _is_local(host):
                problem = _("« %(host)s » ne peut pas servir de domaine personnalisé", host=host)
            if problem is None and base and (host == base or host.endswith("." + base)):
                problem = _("« %(host)s » est sous le domaine de la plateforme (%(base)s) : "
                            "chaque collectivité y a déjà son adresse <slug>.%(base)s", host=host, base=base)
            if problem is None and host in domains:
                problem = _("« %(host)s » figure deux fois", host=host)
            if problem:
                self.error("domains", problem)
                continue
            domains.append(host)
            self.unique_keys.append(("domains", host))
        return tuple(sorted(domains))

    def _modules(self) -> tuple[str, ...]:
        modules = self._string_list("modules")
        unknown = [m for m in modules if m not in KNOWN_MODULES]
        if unknown:
            self.error("modules", _("module(s) inconnu(s) : %(unknown)s ; modules disponibles : %(known)s",
                                    unknown=", ".join(_shown(m) for m in unknown[:10]),
                                    known=", ".join(KNOWN_MODULES)))
        if len(set(modules)) != len(modules):
            self.error("modules", _("un module figure deux fois"))
        # The platform's order, so that reordering the list is not a change.
        return tuple(m for m in KNOWN_MODULES if m in modules)

    def _quota(self) -> int:
        value = self.data.get("quota", 0)
        try:
            quota = parse_size(value)
        except ValueError as exc:
            self.error("quota", str(exc))
            return 0
        if quota > MAX_QUOTA:
            self.error("quota", _("trop grand : 1 Pio (2^50 octets) au plus"))
            return 0
        return quota

    def _branding(self) -> dict:
        value = self.data.get("branding", {})
        if not isinstance(value, dict):
            self.error("branding", _("doit être une table [branding]"))
            return {}
        branding: dict = {}
        for name in value:
            if name not in BRANDING_FIELDS:
                self._unknown(name, BRANDING_FIELDS, prefix="branding.")
        color = value.get("primary_color")
        if color is not None:
            if not isinstance(color, str) or not _COLOR.match(color):
                self.error("branding.primary_color", _("une couleur s'écrit « #RRGGBB », ex. \"#1F5C99\""))
            else:
                ratio = contrast_ratio(color)
                if ratio < MIN_CONTRAST:
                    self.error("branding.primary_color", _(
                        "contraste insuffisant avec le blanc : %(ratio)s:1, il faut au moins "
                        "%(min)s:1 (RGAA / WCAG AA) ; choisissez une couleur plus foncée",
                        ratio=f"{ratio:.2f}".replace(".", ","), min=str(MIN_CONTRAST).replace(".", ",")))
                else:
                    branding["primary_color"] = color.lower()
        logo_text = value.get("logo_text")
        if logo_text is not None:
            if not isinstance(logo_text, str) or not logo_text.strip() or len(logo_text) > 60:
                self.error("branding.logo_text", _("texte de 1 à 60 caractères"))
            elif _control_error(logo_text):
                self.error("branding.logo_text", _control_error(logo_text))
            else:
                branding["logo_text"] = logo_text.strip()
        return branding


def parse_manifest(path: Path, *, base_domain: str | None = None) -> tuple[TenantManifest | None, list[ManifestError]]:
    """Read and validate one manifest file."""
    manifest, errors, _keys = _parse_file(path, base_domain)
    return manifest, errors


def _parse_file(path: Path, base_domain: str | None) -> tuple[TenantManifest | None, list[ManifestError], list[tuple[str, str]]]:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
        if len(raw) > MAX_MANIFEST_BYTES:
            return None, [ManifestError(str(path), _("fichier"), _(
                "trop gros (%(n)s au plus pour un manifeste)", n=format_size(MAX_MANIFEST_BYTES)))], []
        data = tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        where = _LINE_COL.search(str(exc))
        detail = _LINE_COL.sub("", str(exc)).strip()
        if where:
            field_name = _("ligne %(line)s", line=where.group(1))
            reason = _("syntaxe TOML invalide (colonne %(col)s) : %(detail)s", col=where.group(2), detail=detail)
        else:
            field_name, reason = _("syntaxe"), _("syntaxe TOML invalide : %(detail)s", detail=detail)
        return None, [ManifestError(str(path), field_name, reason)], []
    except (OSError, UnicodeDecodeError) as exc:
        return None, [ManifestError(str(path), _("fichier"), _("illisible : %(detail)s", detail=exc))], []
    except RecursionError:
        return None, [ManifestError(str(path), _("syntaxe"), _(
            "syntaxe TOML refusée : tableaux ou tables imbriqués trop profondément"))], []
    except ValueError:
        # Not a TOMLDecodeError: Python's own limit on converting a huge integer literal.
        return None, [ManifestError(str(path), _("syntaxe"), _(
            "syntaxe TOML refusée : nombre entier trop long"))], []
    parser = _FileParser(path, data, base_domain)
    manifest = parser.parse()
    return manifest, parser.errors, parser.unique_keys


def load_directory(directory: Path, *, base_domain: str | None = None) -> tuple[list[TenantManifest], list[ManifestError]]:
    """Read every `*.toml` manifest of a directory and check them against each other."""
    if not directory.is_dir():
        return [], [ManifestError(str(directory), _("dossier"), _("introuvable ou n'est pas un dossier"))]
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        return [], [ManifestError(str(directory), _("dossier"), _("aucun manifeste <slug>.toml"))]
    manifests: list[TenantManifest] = []
    errors: list[ManifestError] = []
    # Values that must be unique across the directory: slug, SIREN, INSEE, custom domains.
    seen: dict[tuple[str, str], Path] = {}
    for path in paths:
        manifest, problems, keys = _parse_file(path, base_domain)
        errors.extend(problems)
        for key in keys:
            first = seen.setdefault(key, path)
            if first != path:
                errors.append(ManifestError(str(path), key[0], _(
                    "« %(value)s » est déjà déclaré dans %(other)s", value=key[1], other=str(first))))
        if manifest is not None:
            manifests.append(manifest)
    return manifests, errors
