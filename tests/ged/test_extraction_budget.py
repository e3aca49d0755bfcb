"""Text extraction runs in a child process with CPU, memory and wall-clock budgets.

A hostile document (many pages sharing one big content stream) is left unindexed with a French
reason on its version, and its job ends at once, without retry. The hostile PDF below needs
about half a minute of pypdf unbounded; the budgets given here are one second.
"""

from __future__ import annotations

import html
import os
import uuid

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.ged.models import DocumentVersion
from saas.ged.services import extraction
from saas.jobs import find_job
from saas.tenancy.context import tenant_context
from tests.ged.conftest import ged_settings, make_pdf, run_jobs, upload
from tests.ged.crafted_pdf import shared_stream_pdf

# 40 pages × 480 KB of text operators that show nothing: ~8 KB on disk.
HOSTILE = shared_stream_pdf(40, 480_000)


def _extraction(client, doc_id) -> dict:
    return client.get(f"/api/v1/documents/{doc_id}").get_json()["current_version"]["extraction"]


def _job(tenant, doc_id):
    with tenant_context(tenant):
        version = db.session.execute(
            sa.select(DocumentVersion).where(DocumentVersion.document_id == uuid.UUID(doc_id))
        ).scalar_one()
        return find_job(extraction.EXTRACT_KIND, f"extract:{version.id}")


@pytest.mark.parametrize("budget, why", [
    ({"extract_cpu_seconds": 1, "extract_wall_seconds": 300}, "plus de 1 s de calcul"),
    ({"extract_cpu_seconds": 300, "extract_wall_seconds": 1}, "plus de 1 s"),
])
def test_a_pdf_beyond_its_budget_is_left_unindexed_without_retry(app, tenant_a, api, web,
                                                                 monkeypatch, budget, why):
    ged_settings(monkeypatch, app, **budget)
    client = api(tenant_a)
    body = upload(client, HOSTILE, "budget-primitif.pdf").get_json()
    assert body["current_version"]["extraction"]["state"] == "pending"
    run_jobs()
    state = _extraction(client, body["id"])
    assert state["state"] == "failed"
    assert state["error"].startswith("Texte non extrait : document trop complexe")
    assert why in state["error"]
    job = _job(tenant_a, body["id"])
    assert (job.state, job.attempts) == ("succeeded", 1)
    assert job.result["code"] == "too_complex"
    assert run_jobs() == 0  # nothing left to retry
    # Shown where the indexing state is.
    page = web(tenant_a).get(f"/ged/documents/{body['id']}").get_data(as_text=True)
    assert "document trop complexe" in html.unescape(page)
    # The document itself stays, downloadable as sent.
    assert client.get(f"/api/v1/documents/{body['id']}/content").data == HOSTILE


def test_the_memory_budget_is_the_childs_address_space(app, tenant_a, api, monkeypatch):
    # 48 MiB of address space: the child cannot even load its PDF reader.
    ged_settings(monkeypatch, app, extract_memory_bytes=48 * 1024 * 1024)
    client = api(tenant_a)
    body = upload(client, make_pdf("Délibération"), "d.pdf").get_json()
    run_jobs()
    state = _extraction(client, body["id"])
    assert state["state"] == "failed"
    assert state["error"] == ("Texte non extrait : document trop complexe "
                              "(plus de 50,3\u00a0Mo de mémoire).")  # 48 MiB, in decimal units


def test_within_its_budget_the_text_is_indexed(app, tenant_a, api, monkeypatch):
    ged_settings(monkeypatch, app, extract_max_chars=13)
    client = api(tenant_a)
    body = upload(client, make_pdf("Délibération cimetière"), "d.pdf", title="Acte").get_json()
    run_jobs()
    assert _extraction(client, body["id"]) == {"state": "done", "error": None}

    def found(word):
        listed = client.get("/api/v1/documents", query_string={"q": word}).get_json()
        return [d["id"] for d in listed["items"]]

    assert found("délibération") == [body["id"]]
    assert found("cimetière") == []  # past the character budget


def test_the_child_inherits_no_secret_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SAAS_SECRET_KEY", "ne-doit-pas-sortir")
    source = tmp_path / "probe.txt"
    source.write_text("Délibération n° 12\x00fin")
    budget = extraction.Budget(cpu_seconds=30, memory_bytes=1024 ** 3, wall_seconds=60,
                               max_pages=10, max_chars=100)
    assert extraction.extract_file(source, "text/plain; charset=utf-8", budget) == \
        "Délibération n° 12 fin"
    env = extraction._child_environment()
    assert not any(key.startswith("SAAS_") for key in env)
    assert os.environ["SAAS_SECRET_KEY"] not in env.values()



def test_the_budgets_come_from_the_settings(tmp_path):
    from saas.config import ConfigError, load_settings

    ged = load_settings({"INSTANCE_PATH": str(tmp_path), "GED_EXTRACT_CPU_SECONDS": "5",
                         "GED_EXTRACT_MEMORY_BYTES": str(256 * 1024 ** 2),
                         "GED_EXTRACT_WALL_SECONDS": "7.5", "GED_EXTRACT_MAX_PAGES": "20",
                         "GED_EXTRACT_MAX_CHARS": "1000"}).ged
    assert extraction.Budget.from_settings(ged) == extraction.Budget(
        cpu_seconds=5, memory_bytes=256 * 1024 ** 2, wall_seconds=7.5, max_pages=20,
        max_chars=1000)
    with pytest.raises(ConfigError):
        load_settings({"INSTANCE_PATH": str(tmp_path), "GED_EXTRACT_CPU_SECONDS": "0"})
