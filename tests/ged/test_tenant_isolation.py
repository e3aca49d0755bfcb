"""Tenant isolation of the GED beyond what the sweep of tests/tenancy/test_isolation.py sees.

- A document commune A shares with B opens the shared-document routes only: on every route of
  B's own documents it is still exactly an unknown object. The main sweep's documents of A are
  unshared, so PostgreSQL's row-level security alone already hides them from B; a live share lets
  B's transactions read A's row, so here only the GED's own tenant scoping stands in the way.
- Lists and search take no object reference, so the sweep does not reach them: B's lists never
  show A's documents, trash, shares or filing plan, shared or not.
"""

from __future__ import annotations

import uuid

import pytest

from tests.ged import isolation_factories as ged
from tests.ged.conftest import csrf_from, make_pdf, upload
from tests.tenancy import test_isolation as isolation


@pytest.fixture
def env(app, tenant_a, tenant_b, make_user) -> isolation.SweepEnv:
    return isolation.SweepEnv(app, tenant_a, tenant_b, make_user(tenant_a, "admin"),
                              make_user(tenant_b, "admin")).setup()


def test_a_document_shared_with_b_is_not_one_of_bs_documents(env, monkeypatch):
    plain = ged.OBJECT_FACTORIES["document_id"]
    shared_ids: list[str] = []

    def shared_with_b(sweep_env, tenant, user) -> dict[str, str]:
        values = plain(sweep_env, tenant, user)
        if tenant.id == sweep_env.tenant_a.id:
            ged.share_document(tenant, user, sweep_env.tenant_b, uuid.UUID(values["document_id"]))
            shared_ids.append(values["document_id"])
        return values

    monkeypatch.setitem(isolation.OBJECT_FACTORIES, "document_id", shared_with_b)

    def own_document_route(rule) -> bool:
        # The routes whose document comes from the generic factory: not the shared-document
        # routes (where a shared document is B's to read) nor the trash's restore routes.
        return ("document_id" in rule.arguments
                and isolation._factory(rule.endpoint, "document_id") is shared_with_b)

    problems, checked = isolation.sweep(env, only=own_document_route)
    assert problems == [], "\n".join(problems)
    # API: get, update, delete, content, versions (list, add); pages: document, content, edit,
    # delete, new version — 16 requests with the HEADs.
    assert checked >= 16
    # The door was really open: B reads those documents through the share.
    assert shared_ids
    response = env.api_client.get(f"/api/v1/shared-documents/{shared_ids[0]}")
    assert response.status_code == 200, response.get_json()


def test_lists_and_search_of_b_never_show_a(app, tenant_a, tenant_b, api, web):
    owner = api(tenant_a, "admin")
    word = "Zygomorphe"
    private = upload(owner, make_pdf(f"{word} prive"), "prive.pdf", title=f"{word} privé").get_json()
    shared = upload(owner, make_pdf(f"{word} partage"), "partage.pdf",
                    title=f"{word} partagé").get_json()
    trashed = upload(owner, make_pdf(f"{word} jete"), "jete.pdf", title=f"{word} jeté").get_json()
    assert owner.delete(f"/api/v1/documents/{trashed['id']}").status_code == 204
    share = owner.post("/api/v1/shares", json={"target": "commune-b", "document_id": shared["id"]})
    assert share.status_code == 201, share.get_json()
    # A's plan gets a folder of its own: B's plan must not show it.
    page_a = web(tenant_a, "admin", user=owner.user)
    csrf = csrf_from(page_a.get("/ged/").get_data(as_text=True))
    assert page_a.post("/ged/plan", data={"csrf_token": csrf, "code": "9.9",
                                          "label": word}).status_code == 303
    assert word in {node["label"] for node in owner.get("/api/v1/classifications").get_json()["items"]}
    assert [d["id"] for d in owner.get("/api/v1/trash").get_json()["items"]] == [trashed["id"]]
    found_by_a = owner.get("/api/v1/documents", query_string={"q": word}).get_json()["items"]
    assert {d["id"] for d in found_by_a} == {private["id"], shared["id"]}

    reader = api(tenant_b, "admin")
    mine = upload(reader, make_pdf(f"{word} de B"), "b.pdf", title=f"{word} de B").get_json()

    def ids(path: str, **query) -> set[str]:
        response = reader.get(path, query_string=query)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["total"] == len(body["items"])  # no row of A counted either
        return {item["id"] for item in body["items"]}

    assert ids("/api/v1/documents") == {mine["id"]}
    assert ids("/api/v1/documents", q=word) == {mine["id"]}
    assert ids("/api/v1/documents", q="partage") == set()
    assert ids("/api/v1/trash") == set()
    assert ids("/api/v1/shares") == set()
    assert word not in {node["label"] for node in reader.get("/api/v1/classifications").get_json()["items"]}
    # The share shows where it belongs, and only there.
    assert ids("/api/v1/shared-documents") == {shared["id"]}
    page_b = web(tenant_b, "admin", user=reader.user)
    listing = page_b.get("/ged/", query_string={"q": word}).get_data(as_text=True)
    assert f"{word} de B" in listing
    for title in ("privé", "partagé", "jeté"):
        assert f"{word} {title}" not in listing
    trash = page_b.get("/ged/corbeille").get_data(as_text=True)
    assert word not in trash
