"""Crash safety with real `saas worker` processes, real Redis and PostgreSQL.

Workers run with a 2 s lease and a 0.5 s reconciler (conftest.FAST_TIMINGS), so every recovery
here is automatic and bounded: no test pokes the database to help.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.jobs import enqueue
from saas.jobs.models import QueueEntry
from saas.tenancy.context import tenant_context
from tests.jobs.conftest import wait_for
from tests.jobs.sample_tasks import lines

pytestmark = pytest.mark.slow

# Lease 2 s + reconciler 0.5 s + back-off + a worker's start-up, with margin for 2 slow cores.
RECOVERY_BOUND = 25


def _states(job_ids) -> dict[str, int]:
    db.session.rollback()
    rows = db.session.execute(
        sa.select(QueueEntry.state, sa.func.count()).where(QueueEntry.id.in_(job_ids))
        .group_by(QueueEntry.state)
    ).all()
    return dict(rows)


def _enqueue(tenant, kind: str, **args):
    with tenant_context(tenant):
        job = enqueue(kind, **args)
        db.session.commit()
    return job


@pytest.mark.parametrize("mode", [[], ["--fork"]], ids=["in-process", "fork-per-job"])
def test_kill_9_of_the_whole_worker_mid_job_is_recovered_by_another(
        app, tenant_a, box, workers, fresh_job, mode):
    first = workers(1, *mode)
    job = _enqueue(tenant_a, "test.block", box=str(box))
    wait_for(lambda: lines(box, "job.started"), 60, "the job to start")
    first.kill()  # supervisor, RQ worker, work horse, scheduler: all -9
    killed_at = time.monotonic()
    assert fresh_job(job.id).state == "running"  # the database still believes it runs
    workers(1)
    (box / "job.go").touch()
    wait_for(lambda: fresh_job(job.id).state == "succeeded", RECOVERY_BOUND, "the job to be re-run")
    assert time.monotonic() - killed_at < RECOVERY_BOUND
    done = fresh_job(job.id)
    assert done.attempts == 2 and done.result["attempt"] == 2
    assert len(lines(box, "job.started")) == 2
    assert len(lines(box, "job.finished")) == 1  # the killed run never finished


@pytest.mark.parametrize("mode", [[], ["--fork"]], ids=["in-process", "fork-per-job"])
def test_kill_9_of_the_process_running_the_job_is_recovered_under_the_same_supervisor(
        app, tenant_a, box, workers, fresh_job, mode):
    group = workers(1, *mode)
    job = _enqueue(tenant_a, "test.block", box=str(box))
    started = wait_for(lambda: lines(box, "job.started"), 60, "the job to start")
    runner = int(started[0].split()[0])  # the RQ worker itself, or its work horse with --fork
    # With --fork, RQ files the message as failed and will not retry it; without, the
    # supervisor restarts the worker. Either way only the lease brings the job back.
    os.kill(runner, signal.SIGKILL)
    (box / "job.go").touch()
    wait_for(lambda: fresh_job(job.id).state == "succeeded", RECOVERY_BOUND, "the job to be re-run")
    assert group.alive
    assert fresh_job(job.id).attempts == 2
    assert len(lines(box, "job.finished")) == 1


def test_redis_flushed_with_jobs_waiting_loses_nothing(
        app, tenant_a, box, workers, redis_client, fresh_job):
    group = workers(2)
    jobs = [_enqueue(tenant_a, "test.block", box=str(box), name="flush") for _ in range(12)]
    wait_for(lambda: len(lines(box, "flush.started")) >= 2, 60, "two jobs to start")
    assert redis_client.llen("rq:queue:default") > 0  # some wait in Redis, the rest in the database
    redis_client.flushall()
    (box / "flush.go").touch()
    ids = [j.id for j in jobs]
    wait_for(lambda: _states(ids).get("succeeded") == 12, 60,
             "every job to succeed after FLUSHALL")
    assert group.alive
    assert len(lines(box, "flush.finished")) == 12  # each ran to the end exactly once
    assert {fresh_job(i).attempts for i in ids} == {1}


def test_redis_restarted_empty_loses_nothing(
        app, tenant_a, box, workers, redis_server, fresh_job):
    workers(1)
    jobs = [_enqueue(tenant_a, "test.block", box=str(box), name="restart") for _ in range(5)]
    wait_for(lambda: lines(box, "restart.started"), 60, "a job to start")
    redis_server.restart()  # no persistence: every message is gone, the workers lose their link
    (box / "restart.go").touch()
    ids = [j.id for j in jobs]
    wait_for(lambda: _states(ids).get("succeeded") == 5, 90, "every job to succeed after the restart")
    assert len(lines(box, "restart.finished")) == 5


def test_retries_then_dead_letter_through_real_workers(app, tenant_a, box, workers, fresh_job):
    workers(1)
    flaky = _enqueue(tenant_a, "test.flaky", box=str(box), failures=2)
    broken = _enqueue(tenant_a, "test.broken", box=str(box))
    permanent = _enqueue(tenant_a, "test.permanent")
    wait_for(lambda: fresh_job(flaky.id).state == "succeeded" and fresh_job(broken.id).state == "dead"
             and fresh_job(permanent.id).state == "failed", 60, "retries to play out")
    assert lines(box, "flaky") == ["1", "2", "3"]
    assert lines(box, "broken") == ["1", "2", "3"]
    assert fresh_job(permanent.id).attempts == 1


def test_sigterm_finishes_the_job_in_hand_then_exits(app, tenant_a, box, workers, fresh_job):
    group = workers(1)
    job = _enqueue(tenant_a, "test.block", box=str(box), name="warm")
    wait_for(lambda: lines(box, "warm.started"), 60, "the job to start")
    group.proc.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    assert group.alive, "the worker must not leave its job"
    (box / "warm.go").touch()
    assert group.proc.wait(30) == 0
    done = fresh_job(job.id)
    assert done.state == "succeeded" and done.attempts == 1


def test_sigterm_exits_even_when_a_job_left_a_thread_behind(app, tenant_a, box, workers, fresh_job):
    """A finished worker process leaves at once: a non-daemon thread it still has (a library's
    timer, a job's forgotten thread) would otherwise be joined at exit, for an hour here."""
    group = workers(1)
    job = _enqueue(tenant_a, "test.leave_thread", box=str(box))
    wait_for(lambda: lines(box, "thread.started"), 60, "the job to start")
    group.proc.send_signal(signal.SIGTERM)
    (box / "thread.go").touch()
    assert group.proc.wait(30) == 0, group.log()[-3000:]
    assert fresh_job(job.id).state == "succeeded"


def _waiting_on_locks(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar()


def test_sigterm_does_not_wait_for_a_scheduler_stuck_in_the_database(
        app, pg_database, workers, worker_env):
    """The scheduler holds no job: one blocked on a lock is killed after its stop grace."""
    from saas.jobs.models import QueueEntry

    worker_env["SAAS_JOBS_SCHEDULER_STOP_SECONDS"] = "2"
    group = workers(1)
    wait_for(lambda: "active scheduler" in group.log(), 60, "the scheduler to lead")
    owner = sa.create_engine(pg_database.owner_url)
    try:
        with owner.connect() as conn:
            conn.execute(sa.text(f"LOCK TABLE {QueueEntry.__tablename__} IN ACCESS EXCLUSIVE MODE"))
            # The scheduler's next pass (every 0.5 s) now waits on the lock.
            wait_for(lambda: _waiting_on_locks(owner) > 0, 30, "the scheduler to block on the lock")
            stopped_at = time.monotonic()
            group.proc.send_signal(signal.SIGTERM)
            assert group.proc.wait(20) == 0, group.log()[-3000:]
            assert time.monotonic() - stopped_at < 15
            assert "scheduler" in group.log() and "killed" in group.log()
            conn.rollback()
    finally:
        owner.dispose()


class FakeRemote:
    """A stand-in for the préfecture: counts what it receives, can hold its answer back."""

    def __init__(self):
        self.received: dict[str, dict] = {}
        self.calls = 0
        self.got_call = threading.Event()
        self.release = threading.Event()
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                remote.calls += 1
                receipt = {"receipt": f"AR-{remote.calls}"}
                remote.received[body["token"]] = receipt
                remote.got_call.set()
                remote.release.wait(30)  # the worker dies while waiting for this answer
                self._send(200, receipt)

            def do_GET(self):
                token = self.path.rsplit("/", 1)[-1]
                if token in remote.received:
                    self._send(200, remote.received[token])
                else:
                    self._send(404, {"error": "unknown"})

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the caller is gone

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def remote():
    server = FakeRemote()
    yield server
    server.close()


def test_worker_dying_between_the_call_and_its_record_never_sends_twice(
        app, tenant_a, box, workers, remote, fresh_job):
    first = workers(1)
    job = _enqueue(tenant_a, "test.remote_send", url=remote.url, box=str(box))
    assert remote.got_call.wait(60), "the job never called the remote"
    first.kill()  # the remote has the message; the worker never learnt the answer
    remote.release.set()
    workers(1)
    wait_for(lambda: fresh_job(job.id).state == "succeeded", RECOVERY_BOUND, "the job to complete")
    done = fresh_job(job.id)
    assert remote.calls == 1
    assert done.attempts == 2 and len(lines(box, "remote.started")) == 2
    assert done.result == {"receipt": {"receipt": "AR-1"}}
    effect = done.effects["remote.send"]
    assert effect["state"] == "done" and effect["recovered"] is True


def test_worker_processes_are_replaced_after_max_jobs_without_losing_any(
        app, tenant_a, box, workers, fresh_job):
    group = workers(1, "--max-jobs", "2")
    jobs = [_enqueue(tenant_a, "test.echo", value=i, box=str(box)) for i in range(5)]
    ids = [j.id for j in jobs]
    wait_for(lambda: _states(ids).get("succeeded") == 5, 60, "every job to succeed")
    assert sorted(lines(box, "echo")) == [str(i) for i in range(5)]
    assert group.alive
    log = group.log()
    assert log.count("started with PID") >= 3  # 5 jobs, 2 per process at most
    assert "exited with 1" not in log  # replaced at once, not restarted as a crash
