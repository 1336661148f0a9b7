"""The services of the selected mode are really in use: a silent fallback to SQLite or eager Celery fails here."""

from __future__ import annotations

import os

import pytest
from celery.result import EagerResult
from django.conf import settings
from django.db import connection

from badges_bridge import tasks
from badges_bridge.models import BadgeIssuance, IssuanceState
from tests.integration.helpers import MYSQL_MODE, WORKER_MODE, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

needs_mysql = pytest.mark.skipif(not MYSQL_MODE, reason="only with BADGES_BRIDGE_TEST_DB=mysql")
needs_worker = pytest.mark.skipif(not WORKER_MODE, reason="only with BADGES_BRIDGE_TEST_CELERY=worker")


@needs_mysql
def test_the_database_is_mariadb():
    expected = os.environ.get("BADGES_BRIDGE_MYSQL_TEST_NAME", "test_badges_bridge")
    assert connection.vendor == "mysql"
    assert connection.settings_dict["NAME"] == expected
    with connection.cursor() as cursor:
        cursor.execute("SELECT DATABASE(), VERSION()")
        database, version = cursor.fetchone()
    assert database == expected
    assert version  # e.g. "10.11.x-MariaDB"


@needs_worker
def test_the_broker_and_cache_are_redis(celery_worker):
    from tests.celery_app import app

    assert app.conf.task_always_eager is False
    assert app.conf.broker_url.startswith("redis://")
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    stats = app.control.inspect(destination=[celery_worker.node], timeout=5).stats()
    assert stats, "the worker did not answer"
    assert stats[celery_worker.node]["pid"] == celery_worker.pid != os.getpid()


@needs_worker
def test_a_task_round_trips_through_the_worker(world, celery_worker):
    learner = world.learner("ada")
    row = BadgeIssuance.objects.create(user=learner, course_badge=world.badge, state=IssuanceState.PENDING)

    result = tasks.issue_badge.apply_async((row.pk,))

    assert not isinstance(result, EagerResult)
    issued = wait_until(
        lambda: BadgeIssuance.objects.filter(pk=row.pk, state=IssuanceState.ISSUED).first(),
        timeout=30,
        what="the worker to issue the badge",
    )
    assert issued.external_id
    world.assert_one_live_badge(learner)
    wait_until(
        lambda: f"badges_bridge.tasks.issue_badge[{result.id}] succeeded" in celery_worker.tail(400),
        timeout=10,
        what="the task's success line in the worker's log",
    )


@needs_worker
def test_the_client_side_rate_limit_is_shared_with_the_worker(world, celery_worker):
    from badges_bridge.accounts import rate_limiter

    account = world.badge.template.account
    account.rate_limit_requests, account.rate_limit_period = 1, 300
    account.save()
    rate_limiter(account)()  # this process uses the only request of the window
    learner = world.learner("ada")
    row = BadgeIssuance.objects.create(user=learner, course_badge=world.badge, state=IssuanceState.PENDING)

    tasks.issue_badge.apply_async((row.pk,))

    # The worker's own limiter refuses its create: with a per-process count it would have had
    # its request left and issued the badge.
    failed = wait_until(
        lambda: BadgeIssuance.objects.filter(pk=row.pk, state=IssuanceState.FAILED).first(),
        timeout=30,
        what="the worker to be refused by the shared limit",
    )
    assert "client-side rate limit" in failed.last_error
    assert failed.attempts == 0
    assert world.live(learner) == []
