"""Fixtures of the fault tests: worker processes each test starts, a queue of its own, a Redis of its own.

The fault tests run only on the real stack (``make test-faults``: MariaDB, Redis and
``celery worker`` processes). Each test gets its own queue, so the session worker of
the other integration tests never takes its tasks, and starts the workers it needs
with the settings it chooses; every worker is stopped at teardown, and only the
processes started here are ever signalled.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration import helpers
from tests.integration.conftest import purge, wait_for_ping
from tests.integration.workers import WorkerProcess, launch_worker, node_name

NEEDS_REAL_STACK = (
    "the fault tests run only on the real stack: run `make test-faults` "
    "(BADGES_BRIDGE_TEST_DB=mysql BADGES_BRIDGE_TEST_CELERY=worker, MariaDB and Redis)"
)


def pytest_collection_modifyitems(config, items):
    """Skip the fault tests in the default (SQLite, eager) mode, before any fixture is set up."""
    if helpers.WORKER_MODE and helpers.MYSQL_MODE:
        return
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=NEEDS_REAL_STACK))


@pytest.fixture(autouse=True)
def _services(integration_services):
    """Missing services skip the fault tests, or fail them with BADGES_BRIDGE_REQUIRE_SERVICES=1."""


@pytest.fixture
def celery_app():
    """The Celery app of the test process (its broker is the one the workers use)."""
    from tests.celery_app import app

    return app


# -- a queue and workers of the test's own -----------------------------------------------------------------------


@pytest.fixture
def fault_queue(settings, celery_app):
    """A queue for this test alone: the test process sends the plugin's tasks there."""
    queue = f"badges-bridge-faults-{uuid.uuid4().hex[:12]}"
    settings.BADGES_BRIDGE_CELERY_QUEUE = queue
    yield queue
    try:
        purge(celery_app, queue)
    except Exception as err:  # noqa: BLE001 - the broker may be the test's own Redis, already stopped
        print(f"could not purge the queue {queue!r}: {err}")


class WorkerFactory:
    """Starts ``celery worker`` processes for one test, with the settings the test chooses.

    Every worker consumes the test's queue and sends its follow-up tasks there. ``stop_all``
    (run at teardown) stops each worker started here, by its own process.
    """

    def __init__(self, app, queue: str, database: str, rootpath: Path, log_dir: Path) -> None:
        self.app = app
        self.queue = queue
        self.database = database
        self.rootpath = rootpath
        self.log_dir = log_dir
        self.broker_url: str | None = None
        self.started: list[WorkerProcess] = []

    def start(self, label: str, *, concurrency: int = 1, wait: bool = True, **settings) -> WorkerProcess:
        """Start a worker whose Django settings are the test settings plus ``settings``."""
        overrides = {"BADGES_BRIDGE_CELERY_QUEUE": self.queue, **settings}
        worker = launch_worker(
            rootpath=self.rootpath,
            log_path=self.log_dir / f"{label}-{len(self.started)}.log",
            node=node_name(f"{label}-{uuid.uuid4().hex[:6]}"),
            queue=self.queue,
            database=self.database,
            overrides=overrides,
            broker_url=self.broker_url,
            concurrency=concurrency,
        )
        self.started.append(worker)
        if wait:
            self.ready(worker)
        return worker

    def ready(self, *workers: WorkerProcess) -> None:
        """Wait until each worker answers a ping."""
        for worker in workers:
            wait_for_ping(self.app, worker)

    def alive(self) -> list[WorkerProcess]:
        """The workers started here that still run."""
        return [worker for worker in self.started if worker.alive]

    def stop_all(self) -> None:
        """Stop every worker started here (warm, then SIGKILL of that process if it hangs)."""
        for worker in self.started:
            worker.stop()


@pytest.fixture
def workers(request, celery_app, fault_queue, django_db_setup, tmp_path):
    """A WorkerFactory for this test; its workers are stopped at teardown."""
    from django.db import connection

    factory = WorkerFactory(
        celery_app, fault_queue, connection.settings_dict["NAME"], request.config.rootpath, tmp_path
    )
    yield factory
    factory.stop_all()


def broker_client(app):
    """A Redis client of the app's broker (imported here: the unit tests collect this module without redis)."""
    import redis

    return redis.Redis.from_url(app.conf.broker_url)


def workers_idle(app, workers: list[WorkerProcess], queue: str) -> bool:
    """Whether no message waits in the queue and no worker runs or holds a task (those with an ETA aside)."""
    if queue_length(broker_client(app), queue):
        return False
    nodes = [worker.node for worker in workers]
    if not nodes:
        return True
    inspector = app.control.inspect(destination=nodes, timeout=1.0)
    for answers in (inspector.active(), inspector.reserved()):
        if answers is None or len(answers) < len(nodes) or any(answers.values()):
            return False
    return True


@pytest.fixture
def settle(workers, celery_app, fault_queue):
    """``settle(timeout)``: wait until the ledger has no work left and the test's workers are idle.

    A redundant task (a second reconcile of a row already reconciled, say) holds a row for a
    moment; the invariant is checked only once nothing runs any more.
    """

    def wait(timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            helpers.drain(max(1.0, deadline - time.monotonic()), workers=workers.alive())
            if workers_idle(celery_app, workers.alive(), fault_queue) and not helpers.active_rows():
                return
            if time.monotonic() >= deadline:
                raise helpers.DrainTimeoutError(f"the workers did not go idle within {timeout:.0f}s")
            time.sleep(0.1)

    return wait


# -- a Redis of the test's own ------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A ``redis-server`` process on loopback that keeps nothing on disk, started and killed by the test."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.workdir),
        ]
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        helpers.wait_until(self.ping, timeout=10, what=f"redis-server on port {self.port} to answer")
        return self

    def ping(self) -> bool:
        import redis

        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"redis-server on port {self.port} exited; see {self.workdir / 'redis.log'}")
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.ConnectionError:
            return False

    def client(self):
        import redis

        return redis.Redis(port=self.port, socket_connect_timeout=2, socket_timeout=2)

    def kill(self) -> None:
        """SIGKILL the process this object started, and reap it: everything it held is lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> None:
        """Kill, then start again on the same port (empty)."""
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own on a free port (the shared Redis is never touched)."""
    try:
        subprocess.run(["redis-server", "--version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as err:
        reason = f"redis-server cannot be started ({err}); install the redis-server package"
        if helpers.REQUIRE_SERVICES:
            pytest.fail(f"{reason} (BADGES_BRIDGE_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)
    server = RedisServer(free_port(), tmp_path).start()
    yield server
    server.stop()


def _drop_broker_pools(app) -> None:
    """Close the process's broker connections so that the next use connects to ``app.conf.broker_url``."""
    from kombu import pools

    pools.reset()  # closes and forgets every connection and producer pool of this process
    app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def broker_at(app, url: str):
    """Send this process's tasks and control messages to another broker for a while."""
    previous = app.conf.broker_url
    _drop_broker_pools(app)
    app.conf.broker_url = url
    try:
        yield
    finally:
        _drop_broker_pools(app)
        app.conf.broker_url = previous


def queue_length(redis_client, queue: str) -> int:
    """Messages waiting in a Celery queue of a Redis broker (kombu keeps one list per queue and priority)."""
    return sum(
        redis_client.llen(key) for key in redis_client.scan_iter(f"{queue}*") if redis_client.type(key) == b"list"
    )


def wait_for_log(worker: WorkerProcess, text: str, count: int = 1, timeout: float = 30.0) -> None:
    """Wait until ``text`` appears ``count`` times in the worker's log."""
    helpers.wait_until(
        lambda: worker.log_text().count(text) >= count,
        timeout=timeout,
        what=f"{text!r} x{count} in {worker.node}'s log",
    )
