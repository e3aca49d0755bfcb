"""gunicorn settings `saas serve` loads: a lighter garbage collector in the workers, and
Prometheus multiprocess clean-up when it is enabled."""

import gc
import os


def post_worker_init(worker) -> None:
    # The application is loaded: its modules, routes, models and caches live as long as the
    # worker. Moved out of the collector's generations, they are no longer traversed by every
    # full collection, which otherwise adds pauses of 100 ms and more to a request now and then.
    gc.freeze()


def child_exit(server, worker) -> None:
    # Under PROMETHEUS_MULTIPROC_DIR each worker leaves metric files; a dead worker's live
    # gauges must be dropped or /metrics would keep reporting them.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
