"""Job kinds used by the job-system tests and the benchmark.

Imported by the test process and, through SAAS_EXTRA_JOB_MODULES, by worker subprocesses.
Jobs talk to the test through files under a directory the test passes in (`box`): they write
what happened there, and wait for flag files the test creates.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import sqlalchemy as sa

from saas.extensions import db
from saas.jobs import (
    PermanentError,
    QueueNames,
    TransientError,
    current_job,
    job_kind,
    once,
    progress,
)
from saas.tenancy.context import current_tenant_id

FAST = {"backoff": 0.2, "max_backoff": 1.0, "max_attempts": 3, "timeout": 60}


def _append(box: str, name: str, line: str) -> None:
    with open(Path(box) / name, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def lines(box, name: str) -> list[str]:
    path = Path(box) / name
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TransientError("flag never came")
        time.sleep(0.02)


@job_kind("test.echo", **FAST)
def echo(value=None, box: str | None = None) -> dict:
    if box:
        _append(box, "echo", json.dumps(value))
    return {"value": value, "tenant": str(current_tenant_id()) if current_tenant_id() else None}


@job_kind("test.platform_echo", queue=QueueNames.MAINTENANCE, platform=True, **FAST)
def platform_echo(value=None) -> dict:
    return {"value": value, "tenant": str(current_tenant_id()) if current_tenant_id() else None}


@job_kind("test.tenant_probe", **FAST)
def tenant_probe() -> dict:
    """What the job sees of the tenant walls: the context, RLS setting, and visible rows."""
    from saas.auth.models import Membership

    setting = db.session.execute(sa.text("SELECT current_setting('app.current_tenant', true)")).scalar()
    members = db.session.execute(sa.select(Membership)).scalars().all()
    raw = db.session.execute(sa.text("SELECT count(*) FROM memberships")).scalar()
    return {"context": str(current_tenant_id()), "rls": setting,
            "member_tenants": sorted({str(m.tenant_id) for m in members}), "raw_count": raw}


@job_kind("test.audit_then", **FAST)
def audit_then(fail: bool = False) -> dict:
    """Write in the job's transaction, then succeed or fail: the write must follow the outcome."""
    from saas.audit.services import record

    record("test.job_write", target="job", data={"fail": fail}, actor="job")
    if fail:
        raise PermanentError("échec voulu après écriture")
    return {"written": True}


@job_kind("test.flaky", **FAST)
def flaky(box: str, failures: int) -> dict:
    """Fail transiently `failures` times, then succeed."""
    _append(box, "flaky", str(current_job().attempt))
    if current_job().attempt <= failures:
        raise TransientError(f"panne passagère n°{current_job().attempt}")
    return {"attempt": current_job().attempt}


@job_kind("test.permanent", **FAST)
def permanent() -> None:
    raise PermanentError("Document illisible : impossible de le signer.")


@job_kind("test.broken", **FAST)
def broken(box: str | None = None) -> None:
    if box:
        _append(box, "broken", str(current_job().attempt))
    raise RuntimeError("bug")


@job_kind("test.block", **FAST)
def block(box: str, name: str = "job") -> dict:
    """Record a start (with the horse's pid), wait for the flag `<name>.go`, record the end."""
    run = current_job()
    _append(box, f"{name}.started", f"{os.getpid()} {run.attempt}")
    progress(10, "attend le signal")
    _wait_for(Path(box) / f"{name}.go")
    _append(box, f"{name}.finished", f"{os.getpid()} {run.attempt}")
    return {"attempt": run.attempt, "pid": os.getpid()}


@job_kind("test.leave_thread", **FAST)
def leave_thread(box: str) -> None:
    """Leave a non-daemon thread behind (as a library's timer can), then wait for `thread.go`."""
    threading.Thread(target=time.sleep, args=(3600,), name="left-behind", daemon=False).start()
    _append(box, "thread.started", str(os.getpid()))
    _wait_for(Path(box) / "thread.go")


@job_kind("test.progress_loop", **FAST)
def progress_loop(box: str) -> None:
    """Report progress until cancelled (progress() raises JobCancelled)."""
    _append(box, "loop.started", str(os.getpid()))
    for i in range(600):
        progress(i % 100, f"étape {i}")
        time.sleep(0.05)
    raise PermanentError("never cancelled")


@job_kind("test.sleep", **FAST)
def sleep_job(seconds: float = 0.0) -> None:
    if seconds:
        time.sleep(seconds)


@job_kind("test.noop", **FAST)
def noop() -> None:
    return None


def _post(url: str, token: str, timeout: float = 30.0) -> dict:
    request = urllib.request.Request(url + "/send", data=json.dumps({"token": token}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise TransientError(f"distant indisponible ({exc.code})") from None


def _status(url: str, token: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/status/{token}", timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise TransientError(f"distant indisponible ({exc.code})") from None


@job_kind("test.remote_send", **FAST)
def remote_send(url: str, box: str | None = None, with_check: bool = True) -> dict:
    """Send once to the fake remote (préfecture stand-in), exactly once whatever happens."""
    if box:
        _append(box, "remote.started", f"{os.getpid()} {current_job().attempt}")
    receipt = once("remote.send", call=lambda token: _post(url, token),
                   check=(lambda token: _status(url, token)) if with_check else None)
    return {"receipt": receipt}


# An in-process stand-in for a remote service, for tests that crash a job on purpose.
LOCAL_REMOTE: dict = {"calls": 0, "received": {}, "flags": set()}


class SimulatedCrash(BaseException):
    """The process 'dies' here: not an Exception, so nothing in the job system catches it."""


@job_kind("test.effect_local", **FAST)
def effect_local(crash_after_call: bool = False, lost_before_remote: bool = False,
                 fail_after: bool = False, with_check: bool = True, steal_lease: bool = False):
    remote = LOCAL_REMOTE

    def call(token):
        if lost_before_remote and "lost" not in remote["flags"]:
            remote["flags"].add("lost")
            raise TransientError("réseau coupé avant le destinataire")
        remote["calls"] += 1
        remote["received"][token] = {"n": remote["calls"]}
        if crash_after_call and "crashed" not in remote["flags"]:
            remote["flags"].add("crashed")
            raise SimulatedCrash()
        return remote["received"][token]

    if steal_lease:
        from saas.jobs.models import QueueEntry

        with db.engine.begin() as conn:
            conn.execute(sa.update(QueueEntry.__table__)
                         .where(QueueEntry.__table__.c.id == current_job().id)
                         .values(worker_id="thief"))
    result = once("send", call, check=(lambda t: remote["received"].get(t)) if with_check else None)
    if fail_after and "failed" not in remote["flags"]:
        remote["flags"].add("failed")
        raise TransientError("échec après l'envoi")
    return result


@job_kind("test.transmit", queue=QueueNames.TRANSMISSIONS, **FAST)
def transmit() -> None:
    """A job on the queue that limits each commune's jobs in flight."""


@job_kind("test.bounded_extract", queue=QueueNames.DOCUMENTS, **FAST)
def bounded_extract(box: str, pages: int = 40, stream_bytes: int = 480_000) -> dict:
    """Extract a hostile PDF through the GED's budgeted child process (1 s of CPU)."""
    from saas.ged.services import extraction
    from tests.ged.crafted_pdf import shared_stream_pdf

    path = Path(box) / f"hostile-{os.getpid()}-{threading.get_ident()}.pdf"
    path.write_bytes(shared_stream_pdf(pages, stream_bytes))
    budget = extraction.Budget(cpu_seconds=1, memory_bytes=1024 ** 3, wall_seconds=60,
                               max_pages=2000, max_chars=1000)
    try:
        text = extraction.extract_file(path, "application/pdf", budget)
    except extraction.ExtractionFailed as exc:
        _append(box, "extract", exc.code)
        return {"code": exc.code, "reason": exc.reason}
    _append(box, "extract", "done")
    return {"chars": len(text)}
