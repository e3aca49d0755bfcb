"""A date can never break a commune: document dates are bounded, and a retention end computed from
any row (one written before the bound, or by hand) never fails a list, a page or the sweep."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from saas.extensions import db
from saas.ged.models import Document
from saas.tenancy.context import tenant_context
from tests.ged.conftest import make_pdf, upload


def test_document_dates_out_of_range_are_refused_in_french(app, tenant_a, api):
    client = api(tenant_a)
    doc = upload(client, make_pdf(), "a.pdf", document_date="2024-05-01").get_json()
    for bad in ("9999-12-31", "2201-01-01", "1799-12-31", "0001-01-01"):
        refused = client.patch(f"/api/v1/documents/{doc['id']}",
                               json={"document_date": bad, "retention_years": 200})
        assert refused.status_code == 422, (bad, refused.get_json())
        problem = refused.get_json()["error"]["details"]["fields"]["document_date"]
        assert problem == "doit être comprise entre le 01/01/1800 et le 31/12/2200"
        refused_upload = upload(client, make_pdf(), "b.pdf", document_date=bad)
        assert refused_upload.status_code == 422
    kept = client.get(f"/api/v1/documents/{doc['id']}").get_json()
    assert (kept["document_date"], kept["retention_years"]) == ("2024-05-01", None)
    assert client.get("/api/v1/documents").get_json()["total"] == 1
    edge = client.patch(f"/api/v1/documents/{doc['id']}",
                        json={"document_date": "2200-12-31", "retention_years": 200})
    assert edge.status_code == 200
    assert edge.get_json()["retention_end"] == "2400-12-31"


def test_one_row_past_the_calendar_breaks_no_list(app, tenant_a, tenant_b, api, web):
    from saas.ged.services import retention

    owner = api(tenant_a, "admin")
    bad = upload(owner, make_pdf(), "a.pdf", title="Date fautive", type="facture").get_json()
    good = upload(owner, make_pdf(), "b.pdf", title="Date juste").get_json()
    assert owner.post("/api/v1/shares", json={"target": "commune-b", "document_id": bad["id"]}
                      ).status_code == 201
    # As the PATCH of the report left it (or anything written outside the application).
    with tenant_context(tenant_a):
        db.session.execute(sa.update(Document).where(Document.id == uuid.UUID(bad["id"]))
                           .values(document_date=sa.text("'9999-12-31'::date"), retention_years=200))
        db.session.commit()
    listed = owner.get("/api/v1/documents")
    assert listed.status_code == 200
    assert {d["id"] for d in listed.get_json()["items"]} == {bad["id"], good["id"]}
    one = owner.get(f"/api/v1/documents/{bad['id']}").get_json()
    assert one["retention_end"] == "9999-12-31"  # held to the end of the calendar
    shared = api(tenant_b, "agent").get("/api/v1/shared-documents")
    assert shared.status_code == 200 and shared.get_json()["total"] == 1
    assert api(tenant_b, "agent").get(f"/api/v1/shared-documents/{bad['id']}").status_code == 200
    page = web(tenant_a, "admin")
    assert page.get("/ged/").status_code == 200
    assert page.get(f"/ged/documents/{bad['id']}").status_code == 200
    assert web(tenant_b, "agent").get("/ged/partages").status_code == 200
    with tenant_context(tenant_a):
        assert retention.retention_sweep() is None  # nothing due, and no crash
    refused = owner.delete(f"/api/v1/documents/{bad['id']}")
    assert refused.status_code == 409  # still under retention, not freed by the overflow


def test_a_negative_period_written_by_hand_breaks_nothing(app, tenant_a, api):
    owner = api(tenant_a, "admin")
    doc = upload(owner, make_pdf(), "a.pdf").get_json()
    with tenant_context(tenant_a):
        db.session.execute(sa.update(Document).where(Document.id == uuid.UUID(doc["id"]))
                           .values(document_date=sa.text("'0004-02-29'::date"),
                                   retention_years=-10))
        db.session.commit()
    assert owner.get("/api/v1/documents").status_code == 200
    assert owner.get(f"/api/v1/documents/{doc['id']}").get_json()["retention_end"] == "0001-01-01"
