"""Workers: RQ processes in the Redis mode, threads in the embedded default.

`saas worker --jobs N` (Redis mode) is a small supervisor: it builds the application once, then
forks N RQ worker processes and one scheduler process, restarts any that dies, and on SIGTERM
asks each to stop after the job in hand (RQ's warm shutdown) before exiting. The supervisor
itself stays single-threaded and touches neither the database nor Redis, so forking is safe.

By default each worker process runs its jobs itself (RQ's SimpleWorker: warm database pool,
a few milliseconds per job) and is replaced after `max_jobs` jobs; a job stuck past its
timeout takes its process down (see execution.Heartbeat) and is re-run elsewhere.
`--fork` instead forks a work horse per job (RQ's Worker: memory isolation, RQ's own hard
timeout) at the cost of a fork and fresh database connections per job. Either way the job
runs through `perform(job_id, token)`, which claims it in the database and runs it.

Without Redis (`make run`), `EmbeddedRunner` threads in the web process (or in
`saas worker`) claim due jobs straight from the database and run the very same code.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import weakref

from flask import Flask, current_app, has_app_context

from saas.extensions import db
from saas.jobs.execution import run_claimed, run_next

log = logging.getLogger("saas.jobs")

# A worker process that ran its `max_jobs` exits with this status to be replaced.
RECYCLE_EXIT = 75

# The application built by the supervisor before forking; work horses inherit it.
_APP: Flask | None = None


def _app() -> Flask:
    if _APP is not None:
        return _APP
    if has_app_context():  # called in-process (tests, tools)
        return current_app._get_current_object()
    # The job core does not build the application (it sits below the factory): `saas worker`
    # builds it once and hands it over before forking.
    raise RuntimeError("jobs run under `saas worker`, not a plain `rq worker`")


_engine_pid: int | None = None


def _fresh_connections(app: Flask) -> None:
    """After a fork, never reuse the parent's pooled database connections."""
    global _engine_pid
    if _engine_pid != os.getpid():
        with app.app_context():
            db.engine.dispose(close=False)
        _engine_pid = os.getpid()


_performed = 0  # messages handled by this process (without --fork: counts toward max_jobs)


def perform(job_id: str, token: str) -> None:
    """RQ entry point: run job `job_id` if this message (`token`) is still the current one."""
    global _performed
    _performed += 1
    app = _app()
    _fresh_connections(app)
    run_claimed(app, job_id, token=token, worker_label="rq")


# -- Redis mode: the supervisor ------------------------------------------------------------------


def _reset_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _exit_process(status: int) -> None:
    """Leave a worker or scheduler process whose loop is done, whatever threads remain.

    A normal exit of a forked process joins every non-daemon thread left behind (a library's
    timer, a thread a job started and never ended): one of them can hold a process that has
    finished its work, and with it `saas worker`'s shutdown, for ever. Everything this process
    owed is written by now (jobs commit before RQ takes the next message), so flush the logs
    and go.
    """
    try:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


# RQ's pubsub thread (commands sent to a worker) blocks up to this long per read. RQ's own 60 s
# could hold a warm shutdown for a minute: when the thread reads the reply to UNSUBSCRIBE before
# it is told to stop, it waits for the next subscription until its read times out, while
# `teardown()` joins it without a timeout.
PUBSUB_POLL_SECONDS = 1.0


def _worker_classes():
    """RQ's two worker classes, with a pubsub thread that notices a stop within a second."""
    from rq import SimpleWorker, Worker

    class PromptUnsubscribe:
        def subscribe(self) -> None:
            self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
            self.pubsub = self.connection.pubsub()
            self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
            self.pubsub_thread = self.pubsub.run_in_thread(
                sleep_time=PUBSUB_POLL_SECONDS, daemon=True,
                exception_handler=self._pubsub_exception_handler)

    class MutualisSimpleWorker(PromptUnsubscribe, SimpleWorker):
        pass

    class MutualisForkWorker(PromptUnsubscribe, Worker):
        pass

    return MutualisSimpleWorker, MutualisForkWorker


def _worker_process(queues: list[str], burst: bool, slot: int, fork: bool, max_jobs: int | None) -> None:
    from redis import Redis
    from rq.serializers import JSONSerializer
    from rq.worker import DequeueStrategy

    from saas.jobs import execution
    from saas.jobs.dispatcher import rq_queue

    _reset_signals()
    app = _app()
    _fresh_connections(app)
    settings = app.config["SAAS_SETTINGS"]
    connection = Redis.from_url(settings.redis_url)
    if not fork:
        execution.HARD_KILL_STUCK_JOBS = True
    in_process, forking = _worker_classes()
    worker_class = forking if fork else in_process
    worker = worker_class([rq_queue(q, connection) for q in queues], connection=connection,
                          serializer=JSONSerializer,
                          name=f"mutualis-{os.uname().nodename[:40]}-{os.getpid()}-{slot}")
    strategy = DequeueStrategy.ROUND_ROBIN if len(queues) > 1 else DequeueStrategy.DEFAULT
    worker.work(burst=burst, logging_level=settings.jobs.worker_log_level,
                dequeue_strategy=strategy, max_jobs=max_jobs)
    if burst or getattr(worker, "_shutdown_requested_date", None) is not None:
        _exit_process(0)  # drained, or asked to stop
    # Its share of jobs done: replace it at once. Anything else (Redis gone…): restart later.
    _exit_process(RECYCLE_EXIT if max_jobs is not None and _performed >= max_jobs else 1)


def _scheduler_process(with_periodic: bool) -> None:
    from saas.jobs.scheduler import run_scheduler
    from saas.jobs.shutdown import StopSignal

    _reset_signals()
    stop = StopSignal().install()
    app = _app()
    _fresh_connections(app)
    run_scheduler(app, stop, periodic=with_periodic)
    _exit_process(0)


# How often a shutdown that waits for jobs says so in the log.
STOP_REPORT_SECONDS = 10.0


class Supervisor:
    """Keeps N RQ worker processes (and a scheduler process) alive until told to stop."""

    def __init__(self, app: Flask, jobs: int, queues: list[str], *, burst: bool = False,
                 scheduler: bool = True, fork: bool = False, max_jobs: int | None = 500):
        self.app = app
        self.jobs = jobs
        self.queues = queues
        self.burst = burst
        self.fork = fork
        # Without a fork per job, a worker process is replaced after this many jobs (like
        # gunicorn's max_requests) so slow leaks in job code cannot grow without bound.
        self.max_jobs = None if fork else max_jobs
        self.scheduler = scheduler and not burst
        self.stopping = False
        self._ctx = multiprocessing.get_context("fork")
        self.workers: dict[int, multiprocessing.Process] = {}
        self.scheduler_proc: multiprocessing.Process | None = None
        self._restarts: dict[int, float] = {}
        self._pid = os.getpid()

    def _start_worker(self, slot: int) -> None:
        proc = self._ctx.Process(target=_worker_process,
                                 args=(self.queues, self.burst, slot, self.fork, self.max_jobs),
                                 name=f"mutualis-worker-{slot}", daemon=False)
        proc.start()
        self.workers[slot] = proc

    def _start_scheduler(self) -> None:
        proc = self._ctx.Process(target=_scheduler_process, args=(True,),
                                 name="mutualis-scheduler", daemon=False)
        proc.start()
        self.scheduler_proc = proc

    def _on_signal(self, signum, frame) -> None:
        if os.getpid() != self._pid:
            # A child forked a moment ago, before its own handlers: stop it, nothing is in hand.
            sys.exit(0)
        self.stopping = True

    def run(self) -> int:
        """Start the processes and supervise them; returns the exit status."""
        global _APP
        _APP = self.app
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if self.burst:
            # Push every due job once before the workers drain the queues.
            from saas.jobs.dispatcher import reconcile

            with self.app.app_context():
                reconcile()
                db.engine.dispose()
        for slot in range(self.jobs):
            self._start_worker(slot)
        if self.scheduler:
            self._start_scheduler()
        log.info("supervising %d worker(s) on %s", self.jobs, ", ".join(self.queues))
        while not self.stopping:
            time.sleep(0.2)
            self._check_children()
            if self.burst and not self.workers:
                return 0
        return self._shutdown()

    def _check_children(self) -> None:
        for slot, proc in list(self.workers.items()):
            if proc.is_alive():
                continue
            proc.join()
            del self.workers[slot]
            if self.burst and proc.exitcode == 0:
                continue
            if proc.exitcode == RECYCLE_EXIT and not self.stopping:
                self._start_worker(slot)  # done its share of jobs: a fresh process takes over
                continue
            # Redis down, a crash: wait a little, longer if it keeps failing, then restart it.
            last = self._restarts.get(slot)
            delay = 5.0 if last is not None and time.monotonic() - last < 30 else 1.0
            log.warning("worker %d exited with %s; restarting in %.0f s", slot, proc.exitcode, delay)
            time.sleep(0 if self.stopping else delay)
            if not self.stopping:
                self._restarts[slot] = time.monotonic()
                self._start_worker(slot)
        if self.scheduler and self.scheduler_proc is not None and not self.scheduler_proc.is_alive():
            self.scheduler_proc.join()
            log.warning("scheduler exited with %s; restarting", self.scheduler_proc.exitcode)
            time.sleep(1.0)
            if not self.stopping:
                self._start_scheduler()

    def _shutdown(self) -> int:
        """Ask every child to stop; wait for the jobs in hand, not for the scheduler.

        A worker finishes its job first, however long it takes (systemd's stop timeout bounds
        that in production). The scheduler holds no job: what it does is idempotent (keyed
        enqueues, reconciliation) and its leadership is a lock that dies with its connection,
        so one still busy `Settings.jobs.scheduler_stop_seconds` after SIGTERM (a statement
        waiting on a lock, a slow database) is killed rather than allowed to hold the shutdown.
        """
        grace = self.app.config["SAAS_SETTINGS"].jobs.scheduler_stop_seconds
        log.info("stopping: waiting for the jobs in hand")
        workers = list(self.workers.values())
        scheduler = self.scheduler_proc
        for proc in workers + ([scheduler] if scheduler else []):
            if proc.is_alive():
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        started = time.monotonic()
        next_report = started + STOP_REPORT_SECONDS
        while True:
            waiting = [p for p in workers if p.is_alive()]
            if scheduler is not None and scheduler.is_alive():
                if time.monotonic() - started < grace:
                    waiting.append(scheduler)
                else:
                    log.warning("scheduler (pid %s) still busy %.0f s after SIGTERM: killed",
                                scheduler.pid, grace)
                    scheduler.kill()
                    scheduler.join()
            if not waiting:
                break
            if time.monotonic() >= next_report:
                log.info("stopping: still waiting for %s",
                         ", ".join(f"{p.name} (pid {p.pid})" for p in waiting))
                next_report += STOP_REPORT_SECONDS
            time.sleep(0.1)
        for proc in workers + ([scheduler] if scheduler else []):
            proc.join()  # reap
        return 0


# -- Embedded mode: threads ------------------------------------------------------------------------


class EmbeddedRunner:
    """Runs jobs in background threads of this process, straight from the database."""

    def __init__(self, app: Flask, threads: int = 1, *, scheduler: bool = True,
                 periodic: bool = True):
        self._app_ref = weakref.ref(app)
        self.threads = max(1, threads)
        self.with_scheduler = scheduler
        self.periodic = periodic
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.instance_path = app.config["SAAS_SETTINGS"].instance_path

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> EmbeddedRunner:
        with self._lock:
            if self.running:
                return self
            self._stop.clear()
            self._threads = [
                threading.Thread(target=self._loop, args=(i,), name=f"mutualis-jobs-{i}", daemon=True)
                for i in range(self.threads)
            ]
            for t in self._threads:
                t.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the jobs in hand."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    def _loop(self, index: int) -> None:
        scheduler = None
        while not self._stop.is_set():
            app = self._app_ref()
            if app is None or not self.instance_path.exists():
                return  # the application is gone (tests) or its instance was removed
            worked = False
            tick = min(1.0, max(0.1, app.config["SAAS_SETTINGS"].jobs.tick_seconds))
            try:
                if index == 0 and self.with_scheduler:
                    if scheduler is None:
                        from saas.jobs.scheduler import Scheduler

                        scheduler = Scheduler(app, periodic=self.periodic)
                    with app.app_context():
                        scheduler.tick()
                worked = run_next(app, worker_label=f"embedded-{index}")
            except Exception:
                log.exception("embedded job runner: unexpected error")
                time.sleep(1.0)
            del app
            if not worked:
                self._wake.wait(timeout=tick)
                self._wake.clear()
