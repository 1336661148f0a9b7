"""Series badges and backfills racing on MariaDB.

Two events of one learner for two courses of a series, handled at the same moment in
two transactions, must still award the badge: each sees the other's progress because
the learner's progress rows are locked in course order. Two backfills of one badge at
once record each learner's row once.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, backfill
from badges_bridge.data import CourseGrade, CourseStanding, EventKind, LearnerEvent
from badges_bridge.models import AuditEntry, BadgeIssuance, IssuanceState, SeriesProgress
from badges_bridge.testing.setup import make_course_badge
from tests.integration.helpers import MYSQL_MODE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not MYSQL_MODE, reason="only with BADGES_BRIDGE_TEST_DB=mysql"),
]

A, B = (CourseKey.from_string(f"course-v1:BridgeOrg+Part{n}+2026") for n in (1, 2))
HOME = CourseKey.from_string("course-v1:BridgeOrg+Programme+2026")
#: How long the first transaction keeps its locks while the second one tries to read the series.
HOLD_SECONDS = 1.0


@pytest.fixture
def series(world):
    return make_course_badge(
        world.badge.template,
        HOME,
        criterion="series",
        series=[{"course_key": str(A), "criterion": "passed"}, {"course_key": str(B), "criterion": "passed"}],
    )


def passing(user_id: int, course: CourseKey, minute: int) -> LearnerEvent:
    return LearnerEvent(
        event_id=f"{course.course}-{user_id}",
        event_type="org.openedx.learning.course.passing.status.updated.v1",
        occurred_at=timezone.now() + timedelta(minutes=minute),
        kind=EventKind.PASSING_STATUS,
        user_id=user_id,
        course_key=course,
        run_key=str(course),
        is_passing=True,
    )


def _own_connection(func):
    def run(*args):
        try:
            return func(*args)
        finally:
            connection.close()

    return run


@pytest.mark.parametrize("first_events", [True, False], ids=["no-progress-yet", "progress-rows-exist"])
def test_two_courses_met_at_the_same_moment_in_two_transactions_award_the_series(world, series, first_events):
    learner = world.learner()
    if not first_events:  # an earlier unmet event created the learner's rows
        SeriesProgress.objects.create(user=learner, course_badge=series, course_key=A)
        SeriesProgress.objects.create(user=learner, course_badge=series, course_key=B)
    recorded, starting = threading.Event(), threading.Event()

    def first() -> None:
        with transaction.atomic():
            api.record_learner_event(passing(learner.pk, A, 1))
            recorded.set()
            assert starting.wait(10)
            time.sleep(HOLD_SECONDS)  # the second transaction reads the series meanwhile, unless it waits

    def second() -> float:
        assert recorded.wait(10)
        starting.set()
        began = time.monotonic()
        with transaction.atomic():
            api.record_learner_event(passing(learner.pk, B, 2))
        return time.monotonic() - began

    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(_own_connection(first))
        waited = pool.submit(_own_connection(second)).result(timeout=60)
        holder.result(timeout=60)
    assert SeriesProgress.objects.filter(user=learner, course_badge=series, met=True).count() == 2
    row = BadgeIssuance.objects.filter(user=learner, course_badge=series).first()
    assert row is not None, "the second transaction did not see the first one's course"
    assert row.state in (IssuanceState.PENDING, IssuanceState.ISSUING, IssuanceState.ISSUED)
    assert waited >= HOLD_SECONDS / 2  # it waited for the first transaction's locks


def test_many_learners_racing_on_two_courses_all_get_the_series(world, series):
    learners = [world.learner(f"racer{n}").pk for n in range(12)]
    start = threading.Barrier(2)

    def handle(course: CourseKey, minute: int) -> None:
        start.wait(10)
        for user_id in learners:
            api.record_learner_event(passing(user_id, course, minute))

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(_own_connection(handle), A, 1), pool.submit(_own_connection(handle), B, 2)]
        for future in futures:
            future.result(timeout=120)
    assert set(BadgeIssuance.objects.filter(course_badge=series).values_list("user_id", flat=True)) == set(learners)


def test_two_backfills_of_one_badge_at_once_record_each_learner_once(world, monkeypatch):
    learners = [world.learner(f"backfilled{n}").pk for n in range(30)]
    standing = CourseStanding(CourseGrade(percent=Decimal(90), passed=True))
    monkeypatch.setattr("badges_bridge.compat.course_standings", lambda key, ids: dict.fromkeys(ids, standing))
    monkeypatch.setattr(backfill, "CHUNK", 7)
    start = threading.Barrier(2)

    def run() -> backfill.BackfillResult:
        start.wait(10)
        return api.backfill_course_badge(str(world.course_key), learners, badge_ids=[world.badge.pk])

    with ThreadPoolExecutor(2) as pool:
        results = [future.result(timeout=120) for future in [pool.submit(_own_connection(run)) for _ in range(2)]]
    rows = BadgeIssuance.objects.filter(course_badge=world.badge)
    assert sorted(rows.values_list("user_id", flat=True)) == sorted(learners)
    assert AuditEntry.objects.filter(issuance__in=rows, message="criterion met; backfill").count() == len(learners)
    assert all(result.learners == len(learners) for result in results)
