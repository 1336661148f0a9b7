"""Fixtures of the integration tests: services, the Celery worker process, fake providers, receivers.

Two modes, chosen by environment variables (see tests/settings.py):

* default: SQLite in memory, Celery eager; the whole chain runs in the test process;
* ``BADGES_BRIDGE_TEST_DB=mysql BADGES_BRIDGE_TEST_CELERY=worker``: MariaDB, Redis as the
  broker and cache, and a real ``celery worker`` process writing into the test database.

Missing services skip the tests, or fail them with ``BADGES_BRIDGE_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import sys
import time
from functools import partial

import pytest
from django.conf import settings

from tests.integration import helpers
from tests.integration.workers import LOG_TAIL_LINES, WorkerProcess, launch_worker, live_workers, node_name

# -- services -----------------------------------------------------------------------------------------------------


def _mysql_problem() -> str | None:
    import MySQLdb

    db = settings.DATABASES["default"]
    host, port = db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 3306)
    try:
        MySQLdb.connect(
            host=host, port=port, user=db.get("USER") or "", password=db.get("PASSWORD") or "", connect_timeout=3
        ).close()
    except Exception as err:  # noqa: BLE001 - any failure means the service is unusable
        return f"MariaDB at {host}:{port} is not reachable ({err})"
    return None


def _redis_problem(url: str, what: str) -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except Exception as err:  # noqa: BLE001 - any failure means the service is unusable
        return f"Redis ({what}) at {url} is not reachable ({err})"
    return None


def service_problems() -> list[str]:
    """What prevents the selected mode from running (empty: nothing)."""
    problems = []
    if helpers.WORKER_MODE and not helpers.MYSQL_MODE:
        problems.append(
            "BADGES_BRIDGE_TEST_CELERY=worker needs BADGES_BRIDGE_TEST_DB=mysql "
            "(a worker process cannot share an in-memory SQLite database)"
        )
    if helpers.MYSQL_MODE:
        problems.append(_mysql_problem())
    if helpers.WORKER_MODE:
        problems.append(_redis_problem(settings.CELERY_BROKER_URL, "Celery broker"))
        problems.append(_redis_problem(settings.CACHES["default"]["LOCATION"], "cache"))
    return [problem for problem in problems if problem]


@pytest.fixture(scope="session")
def integration_services():
    """Check the services of the selected mode: skip when they are missing, or fail when they are required."""
    problems = service_problems()
    if problems:
        reason = "integration services unavailable: " + "; ".join(problems)
        if helpers.REQUIRE_SERVICES:
            pytest.fail(f"{reason} (BADGES_BRIDGE_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def django_db_setup(integration_services, django_db_setup):
    """pytest-django's test database, created only once the database server is known to answer."""
    return django_db_setup


# -- worker processes ---------------------------------------------------------------------------------------------


def purge(app, queue: str) -> int:
    """Drop every message waiting in a queue (left by an earlier run)."""
    with app.connection_for_write() as conn:
        return conn.default_channel.queue_purge(queue) or 0


def wait_for_ping(app, worker: WorkerProcess, timeout: float = 60.0) -> None:
    """Wait until the worker answers a ping; fail (stopping it) when it exits or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.check_alive()
        if app.control.ping(destination=[worker.node], timeout=0.5):
            return
        time.sleep(0.2)
    worker.stop()
    silent = f"the Celery worker {worker.node} did not answer a ping within {timeout:.0f}s"
    pytest.fail(f"{silent}; log tail:\n{worker.tail()}")


@pytest.fixture(scope="session")
def celery_worker(request, integration_services, django_db_setup, tmp_path_factory):
    """Worker mode: a real worker process on the test database and broker; None in eager mode."""
    if not helpers.WORKER_MODE:
        yield None
        return
    from django.db import connection

    from badges_bridge.conf import get_setting
    from tests.celery_app import app

    assert not app.conf.task_always_eager, "worker mode, yet the test process runs tasks eagerly"
    queue = get_setting("CELERY_QUEUE") or app.conf.task_default_queue
    purge(app, queue)
    worker = launch_worker(
        rootpath=request.config.rootpath,
        log_path=tmp_path_factory.mktemp("celery-worker") / "worker.log",
        node=node_name("session"),
        queue=queue,
        database=connection.settings_dict["NAME"],
    )
    try:
        wait_for_ping(app, worker)
        yield worker
    finally:
        worker.stop()
        try:
            purge(app, queue)  # retries the worker restored to the queue on shutdown
        except Exception as err:  # noqa: BLE001 - best effort: the next run purges first anyway
            print(f"could not purge the queue {queue!r} after the run: {err}", file=sys.stderr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Show the tail of every running worker's log with every failing test (and failing fixture)."""
    report = yield
    if report.failed:
        for worker in sorted(live_workers, key=lambda w: w.node):
            report.sections.append(
                (f"Celery worker {worker.node}, last {LOG_TAIL_LINES} lines ({worker.log_path})", worker.tail())
            )
    return report


# -- the chain ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", params=helpers.KINDS)
def provider_server(request):
    """One fake provider per kind, served on loopback for the whole session (the worker reaches it too)."""
    from badges_bridge.testing.harness import get_harness_class

    kind = request.param
    try:
        harness_class = get_harness_class(kind)
    except ImportError as err:
        pytest.skip(f"the {kind} fake provider cannot be imported yet: {err}")
    harness = harness_class().start()
    yield harness
    harness.stop()


@pytest.fixture
def harness(provider_server):
    """The fake provider, emptied for this test."""
    provider_server.reset()
    return provider_server


@pytest.fixture
def event_recorder():
    """Connect the plugin's receivers, and a recorder of the metadata of every event; disconnect after."""
    from badges_bridge.testing.events import plugin_receivers_connected

    recorder = helpers.EventRecorder()
    with plugin_receivers_connected() as connected:
        recorded = []
        for signal, _uid in connected:
            if not hasattr(signal, "event_type"):  # the platform's user retirement signals carry no metadata
                continue
            record_uid = f"badges_bridge.tests.recorder.{signal.event_type}"
            signal.connect(recorder, weak=False, dispatch_uid=record_uid)
            recorded.append((signal, record_uid))
        yield recorder
        for signal, uid in recorded:
            signal.disconnect(dispatch_uid=uid)


@pytest.fixture
def events(event_recorder):
    """Send real openedx-events events through the connected receivers."""
    return helpers.Events(event_recorder)


@pytest.fixture
def drain(celery_worker):
    """``drain(timeout)``: wait until the ledger has no work left, in either mode."""
    return partial(helpers.drain, worker=celery_worker)


@pytest.fixture
def world(harness):
    """A course badge on a template seeded at the fake provider."""
    from badges_bridge.testing.setup import make_account, make_course_badge, make_template

    account = make_account(harness)
    template = make_template(account, harness, name="Python fundamentals")
    badge = make_course_badge(template, "course-v1:BridgeOrg+Python101+2026")
    return helpers.World(harness=harness, badge=badge)
