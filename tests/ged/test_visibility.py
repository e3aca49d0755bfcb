"""Who sees which document: the three writings of the rule (lists, a loaded row, the one-query hot
path of GET /documents/{id} and downloads) agree on every case of one matrix, and say what the
rule says: admins see every document of their commune, agents the open ones, their own and those
they are named on, élus their own and those they are named on."""

from __future__ import annotations

import itertools
import uuid
from datetime import date

import pytest
import sqlalchemy as sa

from saas.auth.actor import Actor
from saas.extensions import db
from saas.ged.models import Document, DocumentAccess
from saas.ged.services import access
from saas.tenancy.context import tenant_context
from tests.ged.conftest import make_pdf, upload

ROLES = ("admin", "agent", "elu")
CONFIDENTIALITIES = ("all_agents", "restricted")


def expected(role: str, confidentiality: str, creator: bool, designated: bool) -> bool:
    if role == "admin":
        return True
    if role == "agent" and confidentiality == "all_agents":
        return True
    return creator or designated


def _matrix_documents(tenant, readers: dict[str, object], someone) -> dict[tuple, uuid.UUID]:
    """One document per (reader role, confidentiality, creator, designated)."""
    made = {}
    with tenant_context(tenant):
        for role, conf, creator, designated in itertools.product(
                ROLES, CONFIDENTIALITIES, (True, False), (True, False)):
            reader = readers[role]
            doc = Document(id=uuid.uuid4(), title=f"{role} {conf} {creator} {designated}",
                           doc_type="autre", document_date=date(2024, 1, 1),
                           created_by=reader.id if creator else someone.id, tags=[],
                           metadata_={}, confidentiality=conf, status="final", legal_hold=False,
                           final_fate="trier", current_version_number=0, versions_count=0)
            db.session.add(doc)
            db.session.flush()
            if designated:
                db.session.add(DocumentAccess(document_id=doc.id, user_id=reader.id))
            made[(role, conf, creator, designated)] = doc.id
        db.session.commit()
    return made


def test_the_three_writings_of_the_rule_agree_with_it(app, tenant_a, make_user):
    readers = {role: make_user(tenant_a, role) for role in ROLES}
    someone = make_user(tenant_a, "agent")
    made = _matrix_documents(tenant_a, readers, someone)
    cases = 0
    with tenant_context(tenant_a):
        for (role, conf, creator, designated), doc_id in made.items():
            actor = Actor(readers[role].id, role, readers[role])
            want = expected(role, conf, creator, designated)
            listed = db.session.execute(sa.select(Document.id).where(
                Document.id == doc_id, access.visible_clause(actor))).first() is not None
            loaded = access.can_see(db.session.get(Document, doc_id), actor)
            by_accessor = access.get_document(doc_id, actor) is not None
            hot_path, _version = access.get_document_version(doc_id, None, actor)
            got = (listed, loaded, by_accessor, hot_path is not None)
            assert got == (want,) * 4, ((role, conf, creator, designated), got)
            cases += 1
    assert cases == len(ROLES) * len(CONFIDENTIALITIES) * 4


@pytest.mark.parametrize("path", ["", "/content", "/versions"])
def test_an_agent_cannot_hide_a_document_from_the_admins(app, tenant_a, api, path):
    agent, admin, other_agent = api(tenant_a, "agent"), api(tenant_a, "admin"), api(tenant_a, "agent")
    doc = upload(agent, make_pdf(), "a.pdf").get_json()
    hidden = agent.patch(f"/api/v1/documents/{doc['id']}", json={"confidentiality": "restricted"})
    assert hidden.status_code == 200
    assert other_agent.get(f"/api/v1/documents/{doc['id']}{path}").status_code == 404
    seen = admin.get(f"/api/v1/documents/{doc['id']}{path}")
    assert seen.status_code == 200
    if path == "":
        assert seen.get_json()["confidentiality"] == "restricted"
    listed = admin.get("/api/v1/documents").get_json()["items"]
    assert [(d["id"], d["confidentiality"]) for d in listed] == [(doc["id"], "restricted")]
