"""The GED's objects for the tenant-isolation sweep (tests/tenancy/test_isolation.py).

Every factory builds a real object through the GED's own code (public.create_document_from_stream,
create_share, retention_sweep, the tus API) in the commune it is given, as that commune's
administrator, and returns the route arguments that name it.

Sharing is the one legitimate door between communes, so two families of routes need care:

- /…/shared-documents/<id> and /ged/partages/documents/<id>: commune A's object is a document A
  never shared, while A shares *another* document with B (the door is open right beside it).
  B's own object there — what B may legitimately reach — is a document A shares with B.
- /…/shares/<share_id>: A's object is a share A granted *to B*. Being its target gives B no right
  on the share record (row-level security even lets B's transactions read it): B must get 404.
"""

from __future__ import annotations

import base64
import functools
import io
import uuid
from datetime import date, timedelta

from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from saas.extensions import db
from saas.tenancy.context import tenant_context

TUS = {"Tus-Resumable": "1.0.0"}
MULTIPART_BOUNDARY = "balayage-isolement-ged"


@functools.cache
def _pdf(label: str) -> bytes:
    from tests.ged.conftest import make_pdf

    return make_pdf(label)


def _actor(user):
    from saas.auth.actor import Actor

    # The sweep's accounts are commune administrators (see SweepEnv): every GED write is open.
    return Actor(user.id, "admin", user)


def create_document(tenant, user, title: str, **fields: str) -> uuid.UUID:
    """A document of `tenant` uploaded by `user` through the GED service (bytes in its bucket)."""
    from saas.ged import public

    with tenant_context(tenant, user):
        document = public.create_document_from_stream(io.BytesIO(_pdf(title)), filename="balayage.pdf",
                                                      actor=_actor(user), title=title, **fields)
        return document.id


def share_document(tenant, user, target, document_id: uuid.UUID) -> uuid.UUID:
    """Share one of `tenant`'s documents read-only with `target`; return the share's id."""
    from saas.ged.services import access, shares

    actor = _actor(user)
    with tenant_context(tenant, user):
        document = access.get_document(document_id, actor)
        share = shares.create_share(target_slug=target.slug, actor=actor, document=document)
        return share.id


def _other(env, tenant):
    return env.tenant_b if tenant.id == env.tenant_a.id else env.tenant_a


# -- factories ---------------------------------------------------------------------------------


def _document(env, tenant, user) -> dict[str, str]:
    """A live document (all agents may see it, no retention: deletable), never shared."""
    return {"document_id": str(create_document(tenant, user, f"Balayage {tenant.slug}"))}


def _trashed_document(env, tenant, user) -> dict[str, str]:
    """A document in the trash, for the restore routes (which look into the trash)."""
    from saas.ged.services import access, documents

    document_id = create_document(tenant, user, f"Corbeille {tenant.slug}")
    actor = _actor(user)
    with tenant_context(tenant, user):
        documents.delete_document(access.get_document(document_id, actor), actor)
    return {"document_id": str(document_id)}


def _shared_document(env, tenant, user) -> dict[str, str]:
    """A's: a document A never shared. B's: a document A shares with B (B's legitimate reach)."""
    if tenant.id == env.tenant_b.id:
        document_id = create_document(env.tenant_a, env.owner_a, "Partagé avec la commune B")
        share_document(env.tenant_a, env.owner_a, env.tenant_b, document_id)
        return {"document_id": str(document_id)}
    # Open a share from A to B beside it: the sweep's document must stay closed anyway.
    other = create_document(tenant, user, "Autre document partagé")
    share_document(tenant, user, env.tenant_b, other)
    return _document(env, tenant, user)


def _share(env, tenant, user) -> dict[str, str]:
    """A share `tenant` granted to the other commune (A's targets B itself)."""
    document_id = create_document(tenant, user, f"Document partagé par {tenant.slug}")
    return {"share_id": str(share_document(tenant, user, _other(env, tenant), document_id))}


def _upload(env, tenant, user) -> dict[str, str]:
    """A resumable upload `user` started in `tenant` through the tus API (nothing sent yet)."""
    from saas.auth.tokens import create_token
    from tests.conftest import host_client

    token, _row = create_token(user, tenant, "balayage GED")
    db.session.commit()
    filename = base64.b64encode(b"envoi.pdf").decode()
    response = host_client(env.app, tenant).post("/api/v1/uploads", headers={
        **TUS, "Authorization": f"Bearer {token}", "Upload-Length": str(len(_upload_bytes())),
        "Upload-Metadata": f"filename {filename}"})
    assert response.status_code == 201, response.get_data(as_text=True)
    return {"upload_id": response.headers["Location"].rsplit("/", 1)[1]}


def _upload_bytes() -> bytes:
    return _pdf("Envoi reprenable du balayage")


def _proposal(env, tenant, user) -> dict[str, str]:
    """A bordereau d'élimination proposed by the retention sweep for an invoice past its DUA."""
    from saas.ged.services import retention

    long_ago = date.today() - timedelta(days=3 * 366)
    create_document(tenant, user, f"Facture échue {tenant.slug}", type="facture",
                     document_date=long_ago.isoformat(), retention_years="1")
    with tenant_context(tenant, user):
        proposal = retention.retention_sweep()
        assert proposal is not None, "the retention sweep proposed nothing"
        return {"proposal_id": str(proposal.id)}


OBJECT_FACTORIES = {
    "document_id": _document,
    "api.restore_document:document_id": _trashed_document,
    "ged.restore:document_id": _trashed_document,
    "api.get_shared_document:document_id": _shared_document,
    "api.shared_document_content:document_id": _shared_document,
    "ged.shared_document:document_id": _shared_document,
    "ged.shared_content:document_id": _shared_document,
    "share_id": _share,
    "upload_id": _upload,
    "proposal_id": _proposal,
}


# -- request bodies and headers: B's own object must pass validation, so the control means something


def _new_version_multipart(values) -> bytes:
    file = FileStorage(io.BytesIO(_pdf("Version 2 du balayage")), filename="v2.pdf",
                       content_type="application/pdf")
    _boundary, body = encode_multipart({"file": file}, boundary=MULTIPART_BOUNDARY)
    return body


REQUEST_BODIES = {
    ("api.update_document", "PATCH"): lambda values: {"title": "Renommé par le balayage"},
    ("ged.edit", "POST"): lambda values: {"title": "Renommé par le balayage"},
    ("api.create_version", "POST"): _new_version_multipart,
    ("ged.new_version", "POST"): lambda values: {
        "file": (io.BytesIO(_pdf("Version 2 du balayage")), "v2.pdf")},
    # Reject rather than approve: B's positive control then destroys nothing.
    ("ged.proposal_decide", "POST"): lambda values: {"action": "reject"},
    # The whole file in one PATCH: B's own upload completes into a document.
    ("api.patch_upload", "PATCH"): lambda values: _upload_bytes(),
}

REQUEST_HEADERS = {
    ("api.create_version", "POST"): lambda values: {
        "Content-Type": f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"},
    ("api.patch_upload", "PATCH"): lambda values: {
        **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    ("api.delete_upload", "DELETE"): lambda values: dict(TUS),
}
