"""The GED's budgeted extraction child works under every kind of worker.

Real `saas worker` processes (RQ's in-process SimpleWorker, and a work horse forked per job)
and the embedded runner's threads all start the child, and its budget ends it the same way.
"""

from __future__ import annotations

import threading

import pytest

from saas.extensions import db
from saas.jobs import enqueue
from saas.tenancy.context import tenant_context
from tests.jobs.conftest import wait_for
from tests.jobs.sample_tasks import bounded_extract, lines

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", [[], ["--fork"]], ids=["in-process", "fork-per-job"])
def test_a_hostile_pdf_ends_within_its_budget_under_real_workers(app, tenant_a, box, workers,
                                                                 fresh_job, mode):
    workers(1, "--queue", "documents", *mode)
    with tenant_context(tenant_a):
        job = enqueue("test.bounded_extract", box=str(box))
        db.session.commit()
    wait_for(lambda: fresh_job(job.id).state == "succeeded", 90, "the extraction job to end")
    done = fresh_job(job.id)
    assert done.attempts == 1 and done.result["code"] == "too_complex"
    assert "document trop complexe" in done.result["reason"]
    assert lines(box, "extract") == ["too_complex"]


def test_the_child_works_from_the_embedded_runners_threads(app, box):
    outcomes: list[dict] = []
    threads = [threading.Thread(target=lambda: outcomes.append(bounded_extract(str(box))))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [o["code"] for o in outcomes] == ["too_complex", "too_complex"]
