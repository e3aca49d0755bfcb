"""Shutdown paths of `saas worker` that a real run only hits by chance, forced here."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import redis as redis_lib

from saas.jobs.shutdown import StopSignal
from saas.jobs.worker import _worker_classes
from tests.jobs.conftest import wait_for


@pytest.mark.parametrize("fork", [False, True], ids=["in-process", "fork-per-job"])
def test_worker_teardown_is_prompt_when_its_pubsub_thread_already_read_the_unsubscribe(
        redis_server, fork):
    """The race behind a `saas worker` that hung after SIGTERM (test_crash, 2 CI runs in 3).

    RQ's teardown sends UNSUBSCRIBE, then stops and joins its pubsub thread without a timeout.
    When the thread reads the reply first, it goes back to waiting for a subscription, for as
    long as its read timeout: 60 s with RQ's default. Here the reply is read first on purpose.
    """
    from rq import Queue

    in_process, forking = _worker_classes()
    connection = redis_lib.Redis.from_url(redis_server.url)
    worker = (forking if fork else in_process)([Queue("shutdown-test", connection=connection)],
                                                 connection=connection)
    worker.subscribe()
    wait_for(lambda: worker.pubsub.subscribed, 10, "the subscription")
    worker.pubsub.unsubscribe()
    wait_for(lambda: not worker.pubsub.subscribed, 10, "the pubsub thread to read the reply")

    done = threading.Event()
    threading.Thread(target=lambda: (worker.unsubscribe(), done.set()), daemon=True).start()
    assert done.wait(10), "the worker's teardown is stuck joining its pubsub thread"
    assert not worker.pubsub_thread.is_alive()


def test_stop_signal_handler_takes_no_lock_and_wakes_the_waiter():
    stop = StopSignal()
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        stop.install(signal.SIGUSR1)
        assert not stop.wait(0.05)
        timer = threading.Timer(0.2, lambda: signal.pthread_kill(threading.main_thread().ident,
                                                                 signal.SIGUSR1))
        started = time.monotonic()
        timer.start()
        assert stop.wait(30)
        assert time.monotonic() - started < 5
    finally:
        signal.signal(signal.SIGUSR1, previous)
