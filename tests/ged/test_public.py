"""saas.ged.public: what other features call, with the GED's own rules (visibility, roles, types)."""

from __future__ import annotations

import hashlib
import io

import pytest

from saas.auth.actor import Actor
from saas.errors import AppError
from saas.ged import public
from saas.tenancy.context import tenant_context
from tests.ged.conftest import make_pdf


def test_a_feature_files_reads_and_versions_a_document(app, tenant_a, make_user):
    user = make_user(tenant_a, "agent")
    actor = Actor(user.id, "agent", user)
    signed = make_pdf("Arrêté signé")
    with tenant_context(tenant_a, user):
        document = public.create_document_from_stream(
            io.BytesIO(make_pdf("Arrêté")), filename="arrete.pdf", actor=actor,
            title="Arrêté n° 12", type="arrete")
        assert (document.title, document.doc_type) == ("Arrêté n° 12", "arrete")
        found = public.get_document(document.id, actor)
        version = public.add_version_from_stream(found, io.BytesIO(signed),
                                                 filename="arrete-signe.pdf", actor=actor)
        assert version.number == 2
        current = public.get_version(document.id, actor)
        assert current.number == 2 and current.sha256 == hashlib.sha256(signed).hexdigest()
        with public.open_version(current) as reader:
            assert reader.read() == signed
        assert public.get_version(document.id, actor, 1).filename == "arrete.pdf"


def test_the_ged_rules_hold_for_other_features(app, tenant_a, tenant_b, make_user):
    agent = make_user(tenant_a, "agent")
    actor = Actor(agent.id, "agent", agent)
    with tenant_context(tenant_a, agent):
        restricted = public.create_document_from_stream(
            io.BytesIO(make_pdf()), filename="rh.pdf", actor=actor, confidentiality="restricted")
        restricted_id = restricted.id
        elu = make_user(tenant_a, "elu")
        assert public.get_document(restricted_id, Actor(elu.id, "elu", elu)) is None
        with pytest.raises(AppError) as refused:
            public.create_document_from_stream(io.BytesIO(b"MZ" + b"\0" * 100),
                                               filename="a.pdf", actor=actor)
        assert refused.value.code == "executable_refused"
        with pytest.raises(AppError) as forbidden:
            public.add_version_from_stream(restricted, io.BytesIO(make_pdf()), filename="b.pdf",
                                           actor=Actor(elu.id, "elu", elu))
        assert forbidden.value.status == 403
    other = make_user(tenant_b, "admin")
    with tenant_context(tenant_b, other):
        assert public.get_document(restricted_id, Actor(other.id, "admin", other)) is None
