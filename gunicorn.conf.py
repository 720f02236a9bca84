"""gunicorn settings of a web host: `gunicorn -c gunicorn.conf.py`.

The scheduler does not run here (SCHEDULER_IN_WEB stays false): one dedicated
`flask scheduler run` process serves every web host.
"""

import multiprocessing
import os

wsgi_app = "app:create_app()"
bind = os.environ.get("BIND", "0.0.0.0:8000")
# Sync workers: each request holds a database connection for its whole transaction anyway.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 30
keepalive = 5
# The app writes one JSON line per request; gunicorn's access log would repeat it.
accesslog = None
# Recycle workers now and then so a slow leak cannot grow without bound.
max_requests = 10_000
max_requests_jitter = 1_000


def child_exit(server: object, worker: object) -> None:
    """A worker that exits leaves its metrics behind for the others' totals, not as live."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
