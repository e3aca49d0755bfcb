"""The commune's filing plan (plan de classement): seeded with a default one, extended by admins."""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.audit.services import record
from saas.extensions import db
from saas.ged.models import Classification
from saas.ged.services.validation import clean_text, raise_problems

# The filing plan a commune starts with: short, in the order a secrétaire de mairie files.
DEFAULT_FILING_PLAN: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("1", "Administration générale", (("1.1", "Courrier"), ("1.2", "Assurances et contentieux"))),
    ("2", "Finances", (("2.1", "Budget et comptes"), ("2.2", "Factures"), ("2.3", "Fiscalité"))),
    ("3", "Urbanisme", (("3.1", "Autorisations d'urbanisme"), ("3.2", "Documents d'urbanisme"))),
    ("4", "Personnel", (("4.1", "Dossiers des agents"), ("4.2", "Paie"))),
    ("5", "Conseil municipal", (("5.1", "Délibérations"), ("5.2", "Arrêtés"),
                                ("5.3", "Procès-verbaux"))),
    ("6", "Marchés publics", (("6.1", "Consultations"), ("6.2", "Contrats"))),
    ("7", "État civil et élections", ()),
    ("8", "Voirie et patrimoine", (("8.1", "Voirie"), ("8.2", "Bâtiments"))),
)


def find_classification(value: str) -> Classification | None:
    """A classification of the current commune by code ("5.1") or id."""
    value = (value or "").strip()
    if not value or len(value) > 64 or "\x00" in value:
        return None  # no code nor id looks like that (and PostgreSQL text cannot hold a NUL)
    try:
        as_id = uuid.UUID(value)
    except ValueError:
        as_id = None
    stmt = sa.select(Classification)
    stmt = stmt.where(Classification.id == as_id) if as_id else stmt.where(Classification.code == value)
    return db.session.execute(stmt).scalar_one_or_none()


def ensure_filing_plan() -> bool:
    """Seed the current commune's filing plan with the default one if it has none; True if seeded."""
    exists = db.session.execute(sa.select(Classification.id).limit(1)).first()
    if exists:
        return False
    for code, label, children in DEFAULT_FILING_PLAN:
        root = Classification(id=uuid.uuid4(), code=code, label=label, parent_id=None)
        root.path = f"/{root.id}/"
        db.session.add(root)
        for child_code, child_label in children:
            child = Classification(id=uuid.uuid4(), code=child_code, label=child_label,
                                   parent_id=root.id, path=f"{root.path}")
            child.path = f"{root.path}{child.id}/"
            db.session.add(child)
    db.session.flush()
    return True


def filing_plan() -> list[Classification]:
    """The commune's classification nodes, in code order (seeded on first use)."""
    if ensure_filing_plan():
        db.session.commit()
    nodes = db.session.execute(sa.select(Classification)).scalars().all()
    return sorted(nodes, key=lambda n: [int(p) if p.isdigit() else p for p in n.code.split(".")])


def add_classification(code: str, label: str, parent: Classification | None) -> Classification:
    """Add a node to the filing plan (commune admins)."""
    code, label = clean_text(code, 20), clean_text(label, 200)
    problems = {}
    if not re.fullmatch(r"[0-9A-Za-z]+(\.[0-9A-Za-z]+)*", code or ""):
        problems["code"] = _("code de la forme 5.1.2")
    if not label:
        problems["label"] = _("ne doit pas être vide")
    if not problems and find_classification(code) is not None:
        problems["code"] = _("ce code existe déjà")
    raise_problems(problems)
    node = Classification(id=uuid.uuid4(), code=code, label=label,
                          parent_id=parent.id if parent else None)
    node.path = f"{parent.path if parent else '/'}{node.id}/"
    db.session.add(node)
    record("ged.classification.create", f"classification:{node.id}", {"code": code, "label": label})
    db.session.commit()
    return node
