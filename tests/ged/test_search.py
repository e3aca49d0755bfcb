"""Search: the ged_search index and ged_search_top() (GIN under RLS), order, capped counts."""

from __future__ import annotations

import re

import sqlalchemy as sa

from saas.extensions import db
from saas.ged.models import SearchEntry
from saas.ged.services import search
from tests.ged.conftest import make_pdf, run_jobs, upload


def _search(client, **query) -> dict:
    response = client.get("/api/v1/documents", query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _titles(client, **query) -> list[str]:
    return [d["title"] for d in _search(client, **query)["items"]]


def test_title_matches_first_then_the_newest(app, tenant_a, api):
    client = api(tenant_a)
    upload(client, make_pdf("Rien à signaler"), "a.pdf", title="Reprise des concessions du cimetière",
           document_date="2019-05-01")
    upload(client, make_pdf("Travaux au cimetière communal"), "b.pdf", title="Devis maçonnerie",
           document_date="2024-02-01")
    upload(client, make_pdf("Allée du cimetière"), "c.pdf", title="Plan des allées",
           document_date="2021-09-01")
    upload(client, make_pdf("Cantine scolaire"), "d.pdf", title="Menus", document_date="2025-01-01")
    assert run_jobs() == 4
    assert _titles(client, q="cimetiere") == [
        "Reprise des concessions du cimetière", "Devis maçonnerie", "Plan des allées"]
    found = _search(client, q="cimetière")
    assert found["total"] == 3 and found["total_is_lower_bound"] is False
    # Pages walk the same order.
    assert _titles(client, q="cimetière", per_page=2, page=2) == ["Plan des allées"]
    assert _search(client, q="cimetière", per_page=2, page=3)["items"] == []


def test_count_stops_at_the_cap_and_says_so(app, tenant_a, api, monkeypatch):
    client = api(tenant_a)
    for i in range(4):
        upload(client, make_pdf(), f"{i}.pdf", title=f"Arrêté de voirie {i}",
               document_date=f"202{i}-01-01")
    monkeypatch.setattr(search, "SEARCH_COUNT_CAP", 2)
    for query in ({"q": "voirie"}, {}):  # search and plain listing
        first = _search(client, per_page=1, **query)
        assert (first["total"], first["total_is_lower_bound"]) == (2, True), query
        assert len(first["items"]) == 1
        # Asking past the cap counts up to the page asked for: the last page is exact.
        last = _search(client, per_page=1, page=4, **query)
        assert (last["total"], last["total_is_lower_bound"]) == (4, False), query
        assert len(last["items"]) == 1
    monkeypatch.setattr(search, "SEARCH_COUNT_CAP", 10)
    exact = _search(client, q="voirie")
    assert (exact["total"], exact["total_is_lower_bound"]) == (4, False)


def test_web_list_says_more_than_when_capped(app, tenant_a, api, web, monkeypatch):
    writer = api(tenant_a)
    for i in range(3):
        upload(writer, make_pdf(), f"{i}.pdf", title=f"Budget primitif {i}")
    from saas.ged import views

    monkeypatch.setattr(search, "SEARCH_COUNT_CAP", 1)
    monkeypatch.setattr(views, "PER_PAGE", 1)
    html = web(tenant_a).get("/ged/?q=budget").get_data(as_text=True)
    heading = re.search(r'id="results-title">(.*?)</h2>', html, re.S).group(1)
    assert heading == "Plus de 1 documents"
    assert 'rel="next"' in html  # more pages than counted


def test_the_index_stays_in_its_commune(app, tenant_a, tenant_b, api):
    from saas.tenancy.context import tenant_context

    a, b = api(tenant_a), api(tenant_b)
    mine = upload(a, make_pdf(), "a.pdf", title="Tarifs de la cantine").get_json()
    upload(b, make_pdf(), "b.pdf", title="Cantine de la voisine")
    assert run_jobs() == 2
    assert [d["id"] for d in _search(a, q="cantine")["items"]] == [mine["id"]]
    matches = sa.text("SELECT document_id FROM ged_search_top("
                      "websearch_to_tsquery('fr_unaccent', 'cantine'), 10)")
    with tenant_context(tenant_a):
        assert [str(i) for i in db.session.execute(matches).scalars()] == [mine["id"]]
        # RLS is enabled on the table itself for the app role.
        rows = db.session.execute(sa.select(SearchEntry.tenant_id)).scalars().all()
        assert rows == [tenant_a.id]
        db.session.rollback()
    # No commune in the transaction: the function fails closed.
    assert db.session.execute(matches).scalars().all() == []
    db.session.rollback()


def test_trash_visibility_and_edits_are_followed(app, tenant_a, api):
    author, other = api(tenant_a), api(tenant_a)
    kept = upload(author, make_pdf(), "k.pdf", title="Convention piscine").get_json()
    trashed = upload(author, make_pdf(), "t.pdf", title="Piscine, devis").get_json()
    secret = upload(author, make_pdf(), "s.pdf", title="Piscine, contentieux",
                    confidentiality="restricted").get_json()
    assert author.delete(f"/api/v1/documents/{trashed['id']}").status_code in (200, 204)
    assert {d["id"] for d in _search(author, q="piscine")["items"]} == {kept["id"], secret["id"]}
    assert [d["id"] for d in _search(other, q="piscine")["items"]] == [kept["id"]]
    assert _search(other, q="piscine")["total"] == 1
    renamed = author.patch(f"/api/v1/documents/{kept['id']}", json={"title": "Convention gymnase"})
    assert renamed.status_code == 200, renamed.get_json()
    assert [d["id"] for d in _search(other, q="gymnase")["items"]] == [kept["id"]]
    assert _search(other, q="piscine")["items"] == []


def test_best_matches_hidden_from_the_reader_do_not_hide_the_others(app, tenant_a, api,
                                                                     monkeypatch):
    author, other = api(tenant_a), api(tenant_a)
    # Ranked first (the word is in their titles), but restricted: `other` does not see them.
    for i in range(3):
        upload(author, make_pdf(), f"r{i}.pdf", title=f"Piscine, contentieux {i}",
               confidentiality="restricted", document_date=f"202{i}-01-01")
    # The word only in the text: ranked after, visible to every agent.
    seen = [upload(author, make_pdf(f"Réfection de la piscine {i}"), f"v{i}.pdf",
                   title=f"Travaux {i}", document_date=f"201{i}-01-01").get_json()
            for i in range(2)]
    assert run_jobs() == 5
    # The ranking function keeps as many candidates as a page needs, no slack: the three
    # restricted ones fill them.
    monkeypatch.setattr(search, "SEARCH_COUNT_CAP", 2)
    monkeypatch.setattr(search, "_candidates", lambda needed: needed)
    statements = []

    def seen_sql(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", seen_sql)
    try:
        first = _search(other, q="piscine", per_page=1)
        ranking_queries = sum("ged_search_top" in st for st in statements)
        statements.clear()
        mine = _search(author, q="piscine", per_page=1)
        author_queries = sum("ged_search_top" in st for st in statements)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", seen_sql)
    assert [d["id"] for d in first["items"]] == [seen[1]["id"]]
    assert (first["total"], first["total_is_lower_bound"]) == (2, False)
    assert [d["id"] for d in _search(other, q="piscine", per_page=1, page=2)["items"]] == [
        seen[0]["id"]]
    assert ranking_queries == 2  # the capped look found nothing visible: then every match
    # The author sees the best candidates: one look, and the count stops at the cap.
    assert author_queries == 1
    assert (mine["total"], mine["total_is_lower_bound"]) == (2, True)
