"""Parsing openedx-events payloads into LearnerEvents."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from opaque_keys.edx.keys import CourseKey
from openedx_events.learning.data import CcxCourseData, CourseData, CoursePassingStatusData, UserData, UserPersonalData

from badges_bridge import events
from badges_bridge.data import EventKind, LearnerEvent
from badges_bridge.exceptions import InvalidEventError

COURSE = CourseKey.from_string("course-v1:Org+Course+Run")
METADATA = SimpleNamespace(
    id="evt-1",
    event_type="org.openedx.learning.course.passing.status.updated.v1",
    time=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
)
CCX = CourseKey.from_string("ccx-v1:Org+Course+Run+ccx@3")
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


def _round_trip(event: LearnerEvent) -> LearnerEvent:
    return LearnerEvent.from_payload(json.loads(json.dumps(event.to_payload())))


@pytest.mark.parametrize(
    ("parser", "kwargs"),
    [
        (
            events.parse_passing_status,
            {"course_passing_status": CoursePassingStatusData(True, CourseData(course_key=COURSE), USER)},
        ),
        (
            events.parse_passing_status,
            {
                "course_passing_status": CoursePassingStatusData(
                    False,
                    CcxCourseData(
                        ccx_course_key=CourseKey.from_string("ccx-v1:Org+Course+Run+ccx@3"),
                        master_course_key=COURSE,
                        display_name="",
                        coach_email="",
                    ),
                    USER,
                )
            },
        ),
        (
            events.parse_grade_summary,
            {"grade": SimpleNamespace(user_id=7, course=SimpleNamespace(course_key=COURSE), percent_grade=0.8125)},
        ),
        (
            events.parse_certificate,
            {
                "certificate": SimpleNamespace(
                    user=USER, course=CourseData(COURSE), mode="verified", current_status="ok"
                )
            },
        ),
        (
            events.parse_certificate_revoked,
            {"certificate": SimpleNamespace(user=USER, course=CourseData(COURSE), mode="audit", current_status="")},
        ),
    ],
)
def test_events_survive_a_json_round_trip(parser, kwargs):
    event = parser({**kwargs, "metadata": METADATA})
    assert _round_trip(event) == event
    assert _round_trip(event).kind is event.kind


@pytest.mark.parametrize(
    ("parser", "name", "payload"),
    [
        (
            events.parse_passing_status,
            "course_passing_status",
            CoursePassingStatusData(True, CourseData(course_key=COURSE), USER),
        ),
        (
            events.parse_passing_status,
            "course_passing_status",
            CoursePassingStatusData(
                False,
                CcxCourseData(ccx_course_key=CCX, master_course_key=COURSE, display_name="", coach_email=""),
                USER,
            ),
        ),
        (
            events.parse_grade_summary,
            "grade",
            SimpleNamespace(user_id=7, course=SimpleNamespace(course_key=CCX), percent_grade=0.5),
        ),
        (
            events.parse_certificate,
            "certificate",
            SimpleNamespace(user=USER, course=CourseData(CourseKey.from_string("Org/Old/Run")), current_status="ok"),
        ),
    ],
)
def test_the_configured_course_is_read_as_the_parsers_read_it(parser, name, payload):
    """The receivers' early check uses the same course as the full parse: the master course of a CCX run."""
    parsed = parser({name: payload, "metadata": METADATA})
    assert events.configured_course(payload) == str(parsed.course_key)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        SimpleNamespace(course=None),
        SimpleNamespace(course=SimpleNamespace(course_key="course-v1:Org+Text+Run")),
        SimpleNamespace(course=SimpleNamespace(master_course_key=None, course_key=COURSE)),
    ],
)
def test_a_course_that_is_not_a_key_object_is_left_to_the_parser(payload):
    assert events.configured_course(payload) is None


def test_the_payload_is_json_ready_and_holds_no_personal_data():
    data = CoursePassingStatusData(is_passing=True, course=CourseData(course_key=COURSE), user=USER)
    payload = events.parse_grade_summary(
        {"grade": SimpleNamespace(user_id=7, course=SimpleNamespace(course_key=COURSE), percent_grade=0.5)}
    ).to_payload()
    assert payload["percent_grade"] == "50.0000"
    payload = events.parse_passing_status({"course_passing_status": data, "metadata": METADATA}).to_payload()
    assert payload == {
        "event_id": "evt-1",
        "event_type": "org.openedx.learning.course.passing.status.updated.v1",
        "occurred_at": "2026-03-01T10:00:00+00:00",
        "kind": "passing_status",
        "user_id": 7,
        "course_key": str(COURSE),
        "run_key": str(COURSE),
        "is_passing": True,
        "percent_grade": None,
        "certificate_mode": "",
        "certificate_status": "",
        "certificate_revoked": False,
    }
    assert "u@example.com" not in json.dumps(payload)


@pytest.mark.parametrize(
    "change",
    [{"kind": "nonsense"}, {"course_key": "not a key"}, {"occurred_at": None}, {"percent_grade": "x"}, {"user_id": []}],
)
def test_a_payload_that_cannot_be_read_is_an_invalid_event(change):
    data = CoursePassingStatusData(is_passing=True, course=CourseData(course_key=COURSE), user=USER)
    payload = events.parse_passing_status({"course_passing_status": data, "metadata": METADATA}).to_payload()
    with pytest.raises(InvalidEventError, match="cannot be read"):
        LearnerEvent.from_payload({**payload, **change})
    del payload["event_id"]
    with pytest.raises(InvalidEventError, match="KeyError"):
        LearnerEvent.from_payload(payload)
