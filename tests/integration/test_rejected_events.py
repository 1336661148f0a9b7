"""Rejected events on MariaDB: what the receivers record must fit the real column types."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.utils import timezone

from badges_bridge.models import RejectedEvent
from badges_bridge.signals import handlers
from tests.integration.helpers import MYSQL_MODE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not MYSQL_MODE, reason="only with BADGES_BRIDGE_TEST_DB=mysql"),
]


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
