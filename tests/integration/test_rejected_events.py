"""Rejected events against the services of the selected mode: recorded, stored and replayed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import OperationalError
from django.utils import timezone

from badges_bridge import api, ledger
from badges_bridge.models import BadgeIssuance, Criterion, IssuanceState, RejectedEvent
from badges_bridge.signals import handlers
from badges_bridge.testing.events import send_certificate_created
from tests.integration.helpers import MYSQL_MODE

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

needs_mysql = pytest.mark.skipif(not MYSQL_MODE, reason="only with BADGES_BRIDGE_TEST_DB=mysql")


@needs_mysql
def test_a_huge_course_key_gives_one_rejected_event_with_a_capped_reason(integration_services):
    huge = "course-v1:" + "x" * 200_000
    metadata = SimpleNamespace(
        id="huge-key", event_type="org.openedx.learning.course.passing.status.updated.v1", time=timezone.now()
    )
    status = SimpleNamespace(is_passing=True, course=SimpleNamespace(course_key=huge), user=SimpleNamespace(id=5))
    handlers.on_course_passing_status(course_passing_status=status, metadata=metadata)
    rejected = RejectedEvent.objects.get()
    assert rejected.event_id == "huge-key"
    assert len(rejected.reason) <= 1000
    assert rejected.course_key == huge[:255]


def test_a_certificate_event_that_met_a_database_error_is_replayed_and_issued_once(world, events, drain, monkeypatch):
    world.badge.criterion = Criterion.CERTIFICATE
    world.badge.save()
    ada = world.learner("ada")
    real = ledger.apply_event
    calls = []

    def lock_wait_timeout_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError(1205, "Lock wait timeout exceeded; try restarting transaction")
        return real(*args, **kwargs)

    monkeypatch.setattr("badges_bridge.ledger.apply_event", lock_wait_timeout_once)

    send_certificate_created(ada, world.course_key)
    rejected = RejectedEvent.objects.get()
    assert rejected.status == "waiting"
    assert ada.email not in str(rejected.payload)
    assert not BadgeIssuance.objects.exists()

    assert api.redrive().replayed == 1  # as the periodic task does
    drain()
    assert api.redrive().replayed == 0

    rejected.refresh_from_db()
    assert rejected.status == "replayed"
    assert world.row(ada).state == IssuanceState.ISSUED
    world.assert_one_live_badge(ada)
    assert len(world.harness.requests_for("issue")) == 1
