"""Parsing openedx-events payloads into LearnerEvents."""

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from opaque_keys.edx.keys import CourseKey
from openedx_events.learning.data import CcxCourseData, CourseData, CoursePassingStatusData, UserData, UserPersonalData

from badges_bridge import events
from badges_bridge.data import EventKind
from badges_bridge.exceptions import InvalidEventError

COURSE = CourseKey.from_string("course-v1:Org+Course+Run")
METADATA = SimpleNamespace(
    id="evt-1",
    event_type="org.openedx.learning.course.passing.status.updated.v1",
    time=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
)
USER = UserData(id=7, is_active=True, pii=UserPersonalData(username="u", email="u@example.com"))


def test_passing_status_is_parsed_with_metadata():
    data = CoursePassingStatusData(is_passing=True, course=CourseData(course_key=COURSE), user=USER)
    event = events.parse_passing_status({"course_passing_status": data, "metadata": METADATA})
    assert event.kind is EventKind.PASSING_STATUS
    assert (event.user_id, event.course_key, event.is_passing) == (7, COURSE, True)
    assert event.event_id == "evt-1"
    assert event.occurred_at == METADATA.time


def test_ccx_passing_status_uses_the_master_course():
    ccx = CourseKey.from_string("ccx-v1:Org+Course+Run+ccx@3")
    course = CcxCourseData(ccx_course_key=ccx, master_course_key=COURSE, display_name="", coach_email="")
    data = CoursePassingStatusData(is_passing=False, course=course, user=USER)
    event = events.parse_passing_status({"course_passing_status": data, "metadata": METADATA})
    assert event.course_key == COURSE
    assert event.run_key == str(ccx)


def test_grade_summary_is_converted_to_percent():
    data = SimpleNamespace(user_id=7, course=SimpleNamespace(course_key=COURSE), percent_grade=0.8125)
    event = events.parse_grade_summary({"grade": data, "metadata": METADATA})
    assert event.percent_grade == Decimal("81.2500")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no 'course_passing_status' data"),
        ({"course_passing_status": SimpleNamespace(is_passing="yes")}, "not a boolean"),
        (
            {
                "course_passing_status": SimpleNamespace(
                    is_passing=True, course=SimpleNamespace(course_key="bad key"), user=USER
                )
            },
            "not a valid course key",
        ),
        (
            {
                "course_passing_status": SimpleNamespace(
                    is_passing=True, course=SimpleNamespace(course_key=COURSE), user=SimpleNamespace(id=None)
                )
            },
            "no valid user id",
        ),
    ],
)
def test_malformed_passing_status_is_rejected(kwargs, message):
    with pytest.raises(InvalidEventError, match=message):
        events.parse_passing_status(kwargs)


@pytest.mark.parametrize("percent", [1.5, -0.1, float("nan"), "0.5", None, True])
def test_bad_grades_are_rejected(percent):
    data = SimpleNamespace(user_id=7, course=SimpleNamespace(course_key=COURSE), percent_grade=percent)
    with pytest.raises(InvalidEventError):
        events.parse_grade_summary({"grade": data})


def test_certificate_needs_a_status_unless_revoked():
    data = SimpleNamespace(user=USER, course=SimpleNamespace(course_key=COURSE), mode="verified", current_status="")
    with pytest.raises(InvalidEventError, match="current_status"):
        events.parse_certificate({"certificate": data})
    event = events.parse_certificate_revoked({"certificate": data})
    assert event.certificate_revoked
    assert event.course_key == COURSE


def test_naive_event_times_are_taken_as_utc():
    metadata = SimpleNamespace(id="e", event_type="t", time=datetime(2026, 1, 1, 12, 0))  # noqa: DTZ001
    data = CoursePassingStatusData(is_passing=True, course=CourseData(course_key=COURSE), user=USER)
    event = events.parse_passing_status({"course_passing_status": data, "metadata": metadata})
    assert event.occurred_at.tzinfo is not None


def test_short_values_are_quoted_whole():
    assert events.preview("bad key") == "'bad key'"
    assert events.preview(1.5) == "1.5"


def test_long_values_are_clipped_in_messages():
    data = SimpleNamespace(is_passing=True, course=SimpleNamespace(course_key="k" * 200_000), user=USER)
    with pytest.raises(InvalidEventError) as caught:
        events.parse_passing_status({"course_passing_status": data})
    message = str(caught.value)
    assert len(message) < 200
    assert "'" + "k" * 100 + "'… is not a valid course key" in message
