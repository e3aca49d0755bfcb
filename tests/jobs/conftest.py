"""Job-system fixtures: sample kinds, a clean Redis, real `saas worker` subprocesses."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis as redis_lib

import tests.jobs.sample_tasks  # noqa: F401  (registers the test.* kinds in this process)
from saas.extensions import db

REPO = Path(__file__).resolve().parents[2]
SAAS = str(Path(sys.executable).with_name("saas"))

# Short timings so crash recovery is observable in seconds (production: 60 s lease).
FAST_TIMINGS = {
    "JOBS_LEASE_SECONDS": "2",
    "JOBS_RECONCILE_SECONDS": "0.5",
    "JOBS_DISPATCH_GRACE_SECONDS": "1",
    "JOBS_DISPATCH_SECONDS": "0.5",
    "JOBS_TICK_SECONDS": "0.1",
}


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll until `predicate()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def _clean_redis(request):
    if "redis_server" in request.fixturenames or "app" in request.fixturenames:
        server = request.getfixturevalue("redis_server")
        redis_lib.Redis.from_url(server.url).flushall()
    yield


@pytest.fixture
def box(tmp_path) -> Path:
    """A directory jobs and tests talk through."""
    directory = tmp_path / "box"
    directory.mkdir()
    return directory


@pytest.fixture
def fresh_job(app) -> Callable:
    """fresh_job(id) -> the job as the database has it now (any commune)."""
    from saas.jobs.records import get_job_any_tenant

    def read(job_id):
        db.session.rollback()
        db.session.expire_all()
        return get_job_any_tenant(job_id)

    return read


@pytest.fixture
def redis_client(redis_server):
    return redis_lib.Redis.from_url(redis_server.url)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        for child in children.get(current, []):
            out.append(child)
            todo.append(child)
    return out


class WorkerGroup:
    """One `saas worker --jobs N` subprocess (supervisor, RQ workers, horses, scheduler)."""

    def __init__(self, env: dict, log_path: Path, jobs: int, extra: list[str]):
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([SAAS, "worker", "--jobs", str(jobs), *extra], env=env,
                                     cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 60) -> int:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """kill -9 the whole tree, horses included (they live in their own process groups)."""
        pids = _descendants(self.proc.pid) + [self.proc.pid]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def worker_env(app_overrides, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAAS_")}
    env.update({
        "SAAS_DATABASE_URL": app_overrides["DATABASE_URL"],
        "SAAS_REDIS_URL": app_overrides["REDIS_URL"],
        "SAAS_SECRET_KEY": app_overrides["SECRET_KEY"],
        "SAAS_BASE_DOMAIN": app_overrides["BASE_DOMAIN"],
        "SAAS_INSTANCE_PATH": str(tmp_path / "worker-instance"),
        "SAAS_EXTRA_JOB_MODULES": "tests.jobs.sample_tasks",
        "SAAS_WORKER_LOG_LEVEL": "INFO",
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
    })
    env.update({f"SAAS_{k}": v for k, v in FAST_TIMINGS.items()})
    return env


@pytest.fixture
def workers(app, worker_env, tmp_path):
    """start(jobs=1, *extra) -> a WorkerGroup; every group is killed at the end of the test."""
    groups: list[WorkerGroup] = []

    def start(jobs: int = 1, *extra: str) -> WorkerGroup:
        group = WorkerGroup(worker_env, tmp_path / f"worker-{len(groups)}.log", jobs, list(extra))
        groups.append(group)
        return group

    yield start
    for group in groups:
        group.kill()
        # Shown by pytest only when the test failed.
        print(f"--- {group.log_path.name} (last lines) ---\n{group.log()[-4000:]}")


def set_jobs_settings(app, monkeypatch, **changes) -> None:
    """Give `app` other Settings.jobs values for this test."""
    settings = app.config["SAAS_SETTINGS"]
    jobs = dataclasses.replace(settings.jobs, **changes)
    monkeypatch.setitem(app.config, "SAAS_SETTINGS", dataclasses.replace(settings, jobs=jobs))


@pytest.fixture
def fast_jobs(app, monkeypatch):
    """The in-process app with the workers' short timings."""
    set_jobs_settings(app, monkeypatch, **{
        key.removeprefix("JOBS_").lower(): float(value) for key, value in FAST_TIMINGS.items()})
    return app


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def logged_in(client_for) -> Callable:
    """logged_in(user, host) -> a test client whose session is that user's on that host."""
    import contextvars

    def make(user, host="admin", tenant=None):
        client = client_for(tenant if tenant is not None else host)
        original = client.open
        # Each request in a fresh context, as a server would run it (no g shared with the test).
        client.open = lambda *a, **kw: contextvars.Context().run(original, *a, **kw)
        with client.session_transaction() as session:
            session["_user_id"] = f"{user.id}:{user.session_version}"
            session["_fresh"] = True
            session["scope"] = str(tenant.id) if tenant is not None else "console"
            session["login_at"] = int(time.time())
            session["totp_ok"] = True
            session["sid"] = f"test-{user.id}"
        return client

    return make
