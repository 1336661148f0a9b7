"""``celery worker`` processes started by the tests and the load test, on the test settings.

Each worker runs ``celery -A tests.celery_app worker`` with the threads pool, writes into
the database it is given and reads extra Django settings from ``BADGES_BRIDGE_TEST_SETTINGS``
(see tests/settings.py). Only the processes started here are ever signalled, by their PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path

#: The module ``celery -A`` loads in the worker process (the test app, with Django set up first).
WORKER_APP = "tests.celery_app"
#: Lines of a worker's log shown with a failure.
LOG_TAIL_LINES = 80


class WorkerExitedError(AssertionError):
    """A worker process exited while it was expected to run."""


class WorkerProcess:
    """A ``celery worker`` subprocess, its node name, queue and log file."""

    def __init__(self, process: subprocess.Popen, node: str, queue: str, log_path: Path):
        self.process = process
        self.node = node
        self.queue = queue
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the worker's log."""
        try:
            with self.log_path.open(encoding="utf-8", errors="replace") as log:
                return "".join(deque(log, maxlen=lines))
        except OSError as err:
            return f"(cannot read {self.log_path}: {err})"

    def log_text(self) -> str:
        """The worker's whole log."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def check_alive(self) -> None:
        """Raise WorkerExitedError (with the log's tail) when the worker has exited."""
        code = self.process.poll()
        if code is not None:
            raise WorkerExitedError(f"the Celery worker {self.node} exited with code {code}; log tail:\n{self.tail()}")

    def peak_rss_kib(self) -> int | None:
        """The high-water mark of the worker's resident memory (VmHWM), in KiB; None once it has exited."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return None

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        live_workers.discard(self)

    def kill(self) -> None:
        """SIGKILL this worker (the process this object started, nothing else) and reap it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        live_workers.discard(self)

    def pause(self, app) -> None:
        """Stop consuming the queue (the tasks it runs go on); messages wait at the broker."""
        replies = app.control.cancel_consumer(self.queue, destination=[self.node], reply=True, timeout=5)
        assert replies, f"the worker {self.node} did not answer cancel_consumer"

    def resume(self, app) -> None:
        """Consume the queue again."""
        replies = app.control.add_consumer(self.queue, destination=[self.node], reply=True, timeout=5)
        assert replies, f"the worker {self.node} did not answer add_consumer"


#: Workers started and not yet stopped (the integration tests show their logs with a failure).
live_workers: set[WorkerProcess] = set()


def node_name(label: str) -> str:
    """A Celery node name unique to this process."""
    return f"badges-bridge-tests-{label}-{os.getpid()}@{socket.gethostname()}"


def launch_worker(
    *,
    rootpath: Path,
    log_path: Path,
    node: str,
    queue: str,
    database: str,
    overrides: dict | None = None,
    broker_url: str | None = None,
    concurrency: int = 2,
    loglevel: str = "INFO",
) -> WorkerProcess:
    """Start a ``celery worker`` (threads pool) on the given database; it is not yet known to answer.

    ``overrides`` are Django settings for the worker only (``BADGES_BRIDGE_TEST_SETTINGS``);
    ``broker_url`` replaces ``BADGES_BRIDGE_TEST_BROKER``.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "BADGES_BRIDGE_TEST_DB": "mysql",
        "BADGES_BRIDGE_TEST_CELERY": "worker",
        "BADGES_BRIDGE_MYSQL_NAME": database,
        "BADGES_BRIDGE_TEST_SETTINGS": json.dumps(overrides or {}),
        "PYTHONUNBUFFERED": "1",
    }
    if broker_url:
        env["BADGES_BRIDGE_TEST_BROKER"] = broker_url
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        WORKER_APP,
        "worker",
        "--pool=threads",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-Q",
        queue,
        "-n",
        node,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=rootpath, env=env, stdout=log, stderr=subprocess.STDOUT)
    worker = WorkerProcess(process, node, queue, log_path)
    live_workers.add(worker)
    return worker
