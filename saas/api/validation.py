"""Request bodies against JSON Schema (jsonschema, Draft 2020-12), with French messages per field.

Schemas use a checked subset of JSON Schema (SUPPORTED_KEYWORDS): each keyword has a French
message, and an unsupported one fails when the operation is declared rather than being
reported in English (or ignored) at run time.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime
from typing import Any, Protocol

from flask_babel import gettext as _
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from saas.errors import AppError

SUPPORTED_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "enum", "const",
    "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "minItems", "maxItems",
    "$ref", "description", "title", "examples", "default", "readOnly", "writeOnly",
})
# Formats the validator checks; other formats are refused at declaration time.
SUPPORTED_FORMATS = frozenset({"uuid", "date", "date-time", "email", "uri"})



class SchemaResolver(Protocol):
    schemas: dict[str, dict]

    def resolve(self, schema: dict) -> dict: ...


def validation_error(fields: dict[str, str]) -> AppError:
    """A 422 naming each invalid field (dotted paths) with a French explanation."""
    return AppError(422, "validation_error", _("Les données envoyées sont invalides."),
                    {"fields": fields})


def check_schema(schema: Any, registry: SchemaResolver | None = None, path: str = "#") -> None:
    """Refuse keywords and formats the validator does not implement (fail at declaration)."""
    if not isinstance(schema, dict):
        raise ValueError(f"{path}: a schema must be a dict")
    unknown = set(schema) - SUPPORTED_KEYWORDS
    if unknown:
        raise ValueError(f"{path}: unsupported JSON Schema keywords {sorted(unknown)}")
    if "$ref" in schema and registry is not None:
        registry.resolve(schema)
    fmt = schema.get("format")
    if fmt is not None and fmt not in SUPPORTED_FORMATS:
        raise ValueError(f"{path}: unsupported format {fmt!r}")
    for name, sub in (schema.get("properties") or {}).items():
        check_schema(sub, registry, f"{path}/properties/{name}")
    if isinstance(schema.get("items"), dict):
        check_schema(schema["items"], registry, f"{path}/items")
    if isinstance(schema.get("additionalProperties"), dict):
        check_schema(schema["additionalProperties"], registry, f"{path}/additionalProperties")


def _type_names() -> dict[str, str]:
    return {
        "string": _("du texte"), "integer": _("un entier"), "number": _("un nombre"),
        "boolean": _("un booléen"), "object": _("un objet"), "array": _("une liste"),
        "null": _("null"),
    }


def _format_message(fmt: str) -> str:
    return {
        "uuid": _("doit être un identifiant (UUID)"),
        "date": _("doit être une date AAAA-MM-JJ"),
        "date-time": _("doit être un horodatage ISO 8601 avec fuseau"),
        "email": _("doit être une adresse électronique"),
        "uri": _("doit être une adresse (URI)"),
    }[fmt]


_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(uuid.UUID(value))


@_FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or bool(date.fromisoformat(value))


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    # An instant, not a wall-clock time: the offset is required.
    return not isinstance(value, str) or (
        datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None)


@_FORMATS.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) is not None


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", value) is not None


def _read_only(validator, read_only, instance, schema):
    # A property marked readOnly is part of answers; a request that sends it is refused.
    if read_only:
        yield ValidationError("read-only property")


_Validator = validators.extend(
    Draft202012Validator,
    validators={"readOnly": _read_only},
    # JSON Schema counts 1.0 as an integer; a count or an id sent as 1.0 is refused here.
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool)),
)

# When one field breaks several rules, the French message names the most basic one.
_PRIORITY = ("type", "const", "enum", "minLength", "maxLength", "pattern", "format")


def _problem(error: ValidationError) -> tuple[str, str] | None:
    """(field path, French problem) for one jsonschema error; None when reported elsewhere."""
    where = _path_of(error) or "body"
    keyword, expected = error.validator, error.validator_value
    if keyword == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        labels = _type_names()
        return where, _("doit être %(t)s", t=" ou ".join(labels[t] for t in names))
    if keyword == "const":
        return where, _("doit valoir %(v)s", v=json.dumps(expected, ensure_ascii=False))
    if keyword == "enum":
        allowed = ", ".join(json.dumps(v, ensure_ascii=False) for v in expected)
        return where, _("doit valoir l'une des valeurs : %(v)s", v=allowed)
    if keyword == "minLength":
        if expected == 1:
            return where, _("ne doit pas être vide")
        return where, _("doit comporter au moins %(n)d caractères", n=expected)
    if keyword == "maxLength":
        return where, _("doit comporter au plus %(n)d caractères", n=expected)
    if keyword == "pattern":
        return where, _("n'a pas la forme attendue")
    if keyword == "format":
        return where, _format_message(expected)
    if keyword == "minimum":
        return where, _("doit être supérieur ou égal à %(n)s", n=expected)
    if keyword == "maximum":
        return where, _("doit être inférieur ou égal à %(n)s", n=expected)
    if keyword == "minItems":
        return where, _("doit contenir au moins %(n)d éléments", n=expected)
    if keyword == "maxItems":
        return where, _("doit contenir au plus %(n)d éléments", n=expected)
    if keyword == "readOnly":
        return where, _("champ en lecture seule")
    return None


def validate(value: Any, schema: dict, registry: SchemaResolver | None = None) -> dict[str, str]:
    """Check `value` against `schema`; return {field path: French problem} (empty when valid)."""
    root = dict(schema)
    if registry is not None:
        root["components"] = {"schemas": registry.schemas}  # where "#/components/..." points
    elif "$ref" in schema:
        raise ValueError("a $ref needs the registry")
    problems: dict[str, str] = {}
    errors = sorted(_Validator(root, format_checker=_FORMATS).iter_errors(value),
                    key=lambda e: _PRIORITY.index(e.validator) if e.validator in _PRIORITY
                    else len(_PRIORITY))
    for error in errors:
        if error.validator == "required":
            for name in error.validator_value:
                if isinstance(error.instance, dict) and name not in error.instance:
                    problems.setdefault(_join(_path_of(error), name), _("champ obligatoire"))
        elif error.validator == "additionalProperties" and error.validator_value is False:
            known = error.schema.get("properties") or {}
            for name in error.instance:
                if name not in known:
                    problems.setdefault(_join(_path_of(error), name), _("champ inconnu"))
        else:
            found = _problem(error)
            if found is not None:
                problems.setdefault(*found)
    return problems


def _path_of(error: ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    return path


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
