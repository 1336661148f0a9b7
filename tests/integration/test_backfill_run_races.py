"""Backfill runs on MariaDB: starts that race make one run, and a task delivered to two workers runs it once.

Each contender runs in its own thread and database connection, released together by a barrier.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection

from badges_bridge import course_setup
from badges_bridge.models import BackfillRun, BackfillRunState, CourseBadge
from tests.integration.helpers import MYSQL_MODE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not MYSQL_MODE, reason="only with BADGES_BRIDGE_TEST_DB=mysql"),
]

CONTENDERS = 4


def race(func: Callable[[], Any]) -> list[Any]:
    """Run ``func`` in CONTENDERS threads at once, each on its own connection; their results."""
    barrier = threading.Barrier(CONTENDERS)

    def contender(_number: int) -> Any:
        try:
            barrier.wait(10)
            return func()
        finally:
            connection.close()

    with ThreadPoolExecutor(CONTENDERS) as pool:
        return list(pool.map(contender, range(CONTENDERS)))


def test_starts_at_the_same_moment_make_one_run_and_queue_one_task(world, monkeypatch):
    queued: list[int] = []
    monkeypatch.setattr("badges_bridge.course_setup._queue_run", queued.append)
    fail_stale_runs = course_setup._fail_stale_runs

    def slowly(badge: CourseBadge) -> None:
        time.sleep(0.3)  # between the badge's lock and the look for a run: every start would get there unlocked
        fail_stale_runs(badge)

    monkeypatch.setattr("badges_bridge.course_setup._fail_stale_runs", slowly)

    def start() -> tuple[int, bool]:
        run, created = course_setup.start_backfill(CourseBadge.objects.get(pk=world.badge.pk), None)
        return run.pk, created

    results = race(start)

    assert sorted(created for _pk, created in results) == [False] * (CONTENDERS - 1) + [True]
    assert len({pk for pk, _created in results}) == 1
    assert BackfillRun.objects.count() == 1
    assert queued == [results[0][0]]


def test_a_run_task_delivered_to_several_workers_runs_once(world, monkeypatch):
    monkeypatch.setattr("badges_bridge.course_setup._queue_run", lambda run_id: None)
    monkeypatch.setattr("badges_bridge.compat.iter_enrolled_user_ids", lambda course_key, chunk_size: iter([]))
    run, _created = course_setup.start_backfill(world.badge, None)

    results = race(lambda: course_setup.perform_backfill(run.pk))

    assert sorted(results).count(f"backfill run {run.pk}: not queued, nothing to do") == CONTENDERS - 1
    run.refresh_from_db()
    assert (run.state, run.read, run.total) == (BackfillRunState.DONE, 0, 0)
