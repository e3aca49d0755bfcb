"""gunicorn settings `saas serve` loads: Prometheus multiprocess clean-up when it is enabled."""

import os


def child_exit(server, worker) -> None:
    # Under PROMETHEUS_MULTIPROC_DIR each worker leaves metric files; a dead worker's live
    # gauges must be dropped or /metrics would keep reporting them.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
