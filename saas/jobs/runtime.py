"""What "a job was enqueued" means in this process, installed on the application by init_app."""

from __future__ import annotations

import logging
import threading

from flask import Flask

from saas.config import Settings
from saas.jobs.dispatcher import dispatch, redis_connection, rq_queue
from saas.jobs.queueing import install_session_hooks
from saas.jobs.registry import QUEUES
from saas.jobs.worker import EmbeddedRunner

log = logging.getLogger("saas.jobs")


class JobsRuntime:
    """What "a job was enqueued" means in this process: dispatch to Redis, or wake a thread."""

    def __init__(self, app: Flask, settings: Settings):
        self.app = app
        self.embedded = settings.embedded
        self.redis_url = settings.redis_url
        self._runner = None
        self._lock = threading.Lock()

    @property
    def runner(self):
        return self._runner

    def kick(self, queues: list[str]) -> None:
        """Jobs may have become due on `queues`: act now instead of at the next tick."""
        if self.embedded:
            runner = self.ensure_runner()
            if runner is not None:
                runner.wake()
            return
        dispatch(queues)

    def kick_after_claim(self, queue: str) -> None:
        """A worker took a message: refill Redis once half of the queue's prefetch is gone."""
        if self.embedded:
            return
        spec = QUEUES.get(queue)
        if spec is None:
            return
        redis = redis_connection(self.redis_url)
        # One Redis round trip instead of a database dispatch after every single claim.
        if redis.llen(rq_queue(queue, redis).key) <= spec.prefetch // 2:
            dispatch([queue], redis=redis)

    def ensure_runner(self):
        """Start the in-process runner (embedded default) unless configured off."""
        if not self.embedded or self.app.config["SAAS_SETTINGS"].jobs.embedded_runner == "off":
            return None
        with self._lock:
            if self._runner is None or not self._runner.running:
                # Under tests, periodic jobs would appear in the middle of unrelated tests.
                self._runner = EmbeddedRunner(self.app, threads=1,
                                              periodic=not self.app.testing).start()
        return self._runner


def init_app(app: Flask, settings: Settings) -> None:
    """Dispatch (or run) the jobs each commit enqueues, with `app`'s runtime."""
    install_session_hooks()
    runtime = JobsRuntime(app, settings)
    app.extensions["saas_jobs"] = runtime
    if settings.embedded and not app.testing:
        # Queued jobs left from a previous run resume once the server serves its first request.
        @app.before_request
        def _start_embedded_runner() -> None:
            if runtime.runner is None:
                runtime.ensure_runner()
