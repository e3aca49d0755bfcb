"""Job system benchmark (`make bench`): overhead, throughput, fairness — one run, real services.

Prints, against baselines measured in the same run:
1. the overhead per job of going through the queue, against calling the function directly;
2. throughput with 1 and then 2 worker processes (`saas worker --jobs N`);
3. the p95 wait of a small commune's job while another commune has 10,000 jobs queued,
   in job durations (target: under 2 with 2 workers).

It builds its own PostgreSQL database (app role under RLS) and a private Redis, like the tests.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from flask.cli import ScriptInfo  # noqa: E402

N_OVERHEAD = 200
JOB_SECONDS = 0.02  # the "real work" of the overhead jobs
N_THROUGHPUT = 400
BIG_BACKLOG = 10_000
FAIR_JOB_SECONDS = 0.25
SMALL_SAMPLES = 30


def _saas() -> str:
    return str(Path(sys.executable).with_name("saas"))


class Bench:
    def __init__(self):
        from tests.support.postgres import create_test_database
        from tests.support.redis import RedisServer

        self.tdb = create_test_database("bench")
        self.redis = RedisServer().start()
        self.instance = tempfile.mkdtemp(prefix="mutualis-bench-")
        self.overrides = {
            "INSTANCE_PATH": self.instance, "DATABASE_URL": self.tdb.app_url,
            "DATABASE_OWNER_URL": self.tdb.owner_url, "REDIS_URL": self.redis.url,
            "BASE_DOMAIN": "mutualis.test", "SECRET_KEY": "bench-secret", "TESTING": True,
        }
        os.environ["SAAS_EXTRA_JOB_MODULES"] = "tests.jobs.sample_tasks"
        from saas import create_app
        from saas.cli import init_command

        self.app = create_app(self.overrides)
        result = CliRunner().invoke(init_command, obj=ScriptInfo(create_app=lambda: self.app))
        assert result.exit_code == 0, result.output
        self.ctx = self.app.app_context()
        self.ctx.push()
        import tests.jobs.sample_tasks  # noqa: F401

        self.big = self._tenant("grande-commune", 1)
        self.small = self._tenant("petite-commune", 2)
        self.procs: list[subprocess.Popen] = []

    def _tenant(self, slug: str, n: int):
        from saas.extensions import db
        from saas.tenancy.codes import luhn_ok
        from saas.tenancy.models import Tenant

        base = f"21{n:06d}"
        siren = next(base + str(c) for c in range(10) if luhn_ok(base + str(c)))
        tenant = Tenant(slug=slug, name=slug, kind="commune", insee=f"44{n:03d}", siren=siren,
                        population=1000, departement="44", origins=[], modules=[],
                        quota_bytes=0, branding={})
        db.session.add(tenant)
        db.session.commit()
        return tenant

    # -- workers -------------------------------------------------------------------------------

    def start_workers(self, jobs: int, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAAS_")}
        env.update({
            "SAAS_DATABASE_URL": self.tdb.app_url, "SAAS_REDIS_URL": self.redis.url,
            "SAAS_SECRET_KEY": "bench-secret", "SAAS_BASE_DOMAIN": "mutualis.test",
            "SAAS_INSTANCE_PATH": self.instance, "SAAS_EXTRA_JOB_MODULES": "tests.jobs.sample_tasks",
            "PYTHONPATH": str(REPO),
        })
        log = open(Path(self.instance) / f"worker-{len(self.procs)}.log", "ab")
        self.procs.append(subprocess.Popen([_saas(), "worker", "--jobs", str(jobs), *extra], env=env, cwd=REPO,
                                           stdout=log, stderr=subprocess.STDOUT))
        # Warm-up: the workers are ready once they have run a job of each commune.
        self.run_batch(self.small, "test.noop", 2 * jobs)

    def stop_workers(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []

    # -- helpers -------------------------------------------------------------------------------

    def enqueue(self, tenant, kind: str, n: int, **args) -> list:
        from saas.extensions import db
        from saas.jobs import enqueue
        from saas.tenancy.context import tenant_context

        with tenant_context(tenant):
            ids = [enqueue(kind, **args).id for _ in range(n)]
            db.session.commit()
        return ids

    def wait_done(self, ids: list, timeout: float = 600) -> None:
        from saas.extensions import db
        from saas.jobs.models import QueueEntry

        deadline = time.monotonic() + timeout
        while True:
            db.session.rollback()
            done = db.session.execute(
                sa.select(sa.func.count()).where(QueueEntry.id.in_(ids), QueueEntry.state == "succeeded")
            ).scalar()
            if done == len(ids):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"timeout: {done}/{len(ids)} jobs done")
            time.sleep(0.05)

    def run_batch(self, tenant, kind: str, n: int, **args) -> float:
        start = time.perf_counter()
        ids = self.enqueue(tenant, kind, n, **args)
        self.wait_done(ids)
        return time.perf_counter() - start

    def close(self) -> None:
        from tests.support.postgres import drop_test_database

        self.stop_workers()
        from saas.extensions import db

        db.session.remove()
        db.engine.dispose()
        self.ctx.pop()
        self.redis.stop()
        drop_test_database(self.tdb)


def overhead(bench: Bench) -> None:
    from saas.extensions import db
    from saas.jobs import enqueue
    from saas.tenancy.context import tenant_context
    from tests.jobs.sample_tasks import sleep_job

    start = time.perf_counter()
    for _ in range(N_OVERHEAD):
        sleep_job(JOB_SECONDS)
    direct = (time.perf_counter() - start) / N_OVERHEAD
    t0 = time.perf_counter()
    with tenant_context(bench.big):
        for _ in range(N_OVERHEAD):
            enqueue("test.noop")
        db.session.rollback()
    enqueue_cost = (time.perf_counter() - t0) / N_OVERHEAD
    print(f"1. overhead per job, 1 worker, job of {JOB_SECONDS * 1000:.0f} ms")
    print(f"   direct call                 {direct * 1000:8.2f} ms/job (baseline)")
    bare = bare_rq(bench) / N_OVERHEAD
    print(f"   bare RQ, no database        {bare * 1000:8.2f} ms/job (x{bare / direct:.2f}), "
          f"overhead {(bare - direct) * 1000:.2f} ms/job (RQ's own share, for reference)")
    for label, extra in (("default", ()), ("--fork", ("--fork",))):
        bench.start_workers(1, *extra)
        queued = bench.run_batch(bench.big, "test.sleep", N_OVERHEAD, seconds=JOB_SECONDS) / N_OVERHEAD
        bench.stop_workers()
        print(f"   queue, {label:<8}            {queued * 1000:8.2f} ms/job (x{queued / direct:.2f}), "
              f"overhead {(queued - direct) * 1000:.2f} ms/job")
    print(f"   of which enqueue (in the caller's transaction): {enqueue_cost * 1000:.2f} ms/job")


def bare_rq(bench: Bench) -> float:
    """The same jobs through RQ alone (SimpleWorker, no database): RQ's own cost."""
    from redis import Redis
    from rq import Queue, SimpleWorker
    from rq.serializers import JSONSerializer

    connection = Redis.from_url(bench.redis.url)
    queue = Queue("bench-baseline", connection=connection, serializer=JSONSerializer)
    for _ in range(N_OVERHEAD):
        queue.enqueue("time.sleep", JOB_SECONDS, result_ttl=0)
    worker = SimpleWorker([queue], connection=connection, serializer=JSONSerializer)
    start = time.perf_counter()
    worker.work(burst=True, logging_level="WARNING")
    return time.perf_counter() - start


def throughput(bench: Bench, workers: int) -> float:
    seconds = bench.run_batch(bench.big, "test.noop", N_THROUGHPUT)
    rate = N_THROUGHPUT / seconds
    print(f"   {workers} worker(s)            {rate:8.1f} jobs/s ({N_THROUGHPUT} empty jobs in {seconds:.1f} s)")
    return rate


def fairness(bench: Bench) -> float:
    from saas.extensions import db
    from saas.jobs.models import QueueEntry

    t0 = time.perf_counter()
    big_ids = bench.enqueue(bench.big, "test.sleep", BIG_BACKLOG, seconds=FAIR_JOB_SECONDS)
    print(f"3. fairness, 2 workers, jobs of {FAIR_JOB_SECONDS * 1000:.0f} ms")
    print(f"   big commune enqueued {BIG_BACKLOG} jobs in {time.perf_counter() - t0:.1f} s")
    time.sleep(1.0)
    waits = []
    for _ in range(SMALL_SAMPLES):
        [job_id] = bench.enqueue(bench.small, "test.sleep", 1, seconds=FAIR_JOB_SECONDS)
        bench.wait_done([job_id], timeout=120)
        row = db.session.execute(
            sa.select(QueueEntry.created_at, QueueEntry.started_at).where(QueueEntry.id == job_id)
        ).one()
        waits.append((row.started_at - row.created_at).total_seconds())
        time.sleep(0.13)  # land at various points of the big commune's jobs
    db.session.rollback()
    left = db.session.execute(
        sa.select(sa.func.count()).where(QueueEntry.id.in_(big_ids), QueueEntry.state == "queued")
    ).scalar()
    p95 = statistics.quantiles(waits, n=20)[-1]
    median = statistics.median(waits)
    print(f"   small commune's job wait: median {median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
          f"= {p95 / FAIR_JOB_SECONDS:.2f} job durations (target < 2); "
          f"{left} big jobs still queued")
    print(f"   first-come-first-served would have made it wait ~{left * FAIR_JOB_SECONDS / 2:.0f} s")
    # Stop the backlog: the benchmark is over.
    db.session.execute(sa.update(QueueEntry).where(QueueEntry.id.in_(big_ids), QueueEntry.state == "queued")
                       .values(state="failed"))
    db.session.commit()
    return p95 / FAIR_JOB_SECONDS


def main() -> int:
    bench = Bench()
    try:
        overhead(bench)
        print("2. throughput (default mode)")
        bench.start_workers(1)
        one = throughput(bench, 1)
        bench.stop_workers()
        bench.start_workers(2)
        two = throughput(bench, 2)
        print(f"   speed-up with 2 workers: x{two / one:.2f}")
        ratio = fairness(bench)
    finally:
        bench.close()
    return 0 if ratio < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
