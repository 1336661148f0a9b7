"""Build and send real openedx-events learning events (for tests, the demo and benchmarks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from opaque_keys.edx.keys import CourseKey
from openedx_events.learning.data import (
    CertificateData,
    CourseData,
    CoursePassingStatusData,
    PersistentCourseGradeData,
    UserData,
    UserPersonalData,
)
from openedx_events.learning.signals import (
    CERTIFICATE_CREATED,
    CERTIFICATE_REVOKED,
    COURSE_PASSING_STATUS_UPDATED,
    PERSISTENT_GRADE_SUMMARY_CHANGED,
)


def user_data(user) -> UserData:
    """openedx-events UserData for a Django user."""
    return UserData(
        id=user.pk,
        is_active=True,
        pii=UserPersonalData(username=user.username, email=user.email, name=user.get_full_name()),
    )


def passing_status_data(user, course_key: CourseKey, is_passing: bool) -> CoursePassingStatusData:
    """The payload of COURSE_PASSING_STATUS_UPDATED."""
    return CoursePassingStatusData(
        is_passing=is_passing, course=CourseData(course_key=course_key), user=user_data(user)
    )


def send_passing_status(user, course_key: CourseKey, is_passing: bool) -> list:
    """Send COURSE_PASSING_STATUS_UPDATED as the LMS grades app does."""
    data = passing_status_data(user, course_key, is_passing)
    return COURSE_PASSING_STATUS_UPDATED.send_event(course_passing_status=data)


def send_grade(user, course_key: CourseKey, percent: float) -> list:
    """Send PERSISTENT_GRADE_SUMMARY_CHANGED with a 0-1 percent grade."""
    now = datetime.now().astimezone()
    data = PersistentCourseGradeData(
        user_id=user.pk,
        course=CourseData(course_key=course_key),
        course_edited_timestamp=now,
        course_version="v1",
        grading_policy_hash="hash",
        percent_grade=percent,
        letter_grade="Pass" if percent >= 0.5 else "",
        passed_timestamp=now if percent >= 0.5 else None,
    )
    return PERSISTENT_GRADE_SUMMARY_CHANGED.send_event(grade=data)


def certificate_data(user, course_key: CourseKey, mode: str, status: str) -> CertificateData:
    """The payload of the certificate events."""
    return CertificateData(
        user=user_data(user),
        course=CourseData(course_key=course_key),
        mode=mode,
        grade="0.9",
        current_status=status,
        download_url="",
        name=user.get_full_name(),
    )


def send_certificate_created(user, course_key: CourseKey, mode: str = "verified") -> list:
    """Send CERTIFICATE_CREATED for a downloadable certificate."""
    return CERTIFICATE_CREATED.send_event(certificate=certificate_data(user, course_key, mode, "downloadable"))


def send_certificate_revoked(user, course_key: CourseKey, mode: str = "verified") -> list:
    """Send CERTIFICATE_REVOKED."""
    return CERTIFICATE_REVOKED.send_event(certificate=certificate_data(user, course_key, mode, "notpassing"))


@contextmanager
def plugin_receivers_connected() -> Iterator[list]:
    """Connect the plugin's LMS receivers the way edx-platform does (from ``plugin_app``), then disconnect them.

    Yields the (signal, dispatch uid) pairs that were connected.
    """
    from django.utils.module_loading import import_string
    from edx_django_utils.plugins import connect_plugin_receivers

    from badges_bridge.apps import LMS, BadgesBridgeConfig

    connect_plugin_receivers(LMS)
    connected = [
        (import_string(entry["signal_path"]), entry["dispatch_uid"])
        for entry in BadgesBridgeConfig.plugin_app["signals_config"][LMS]["receivers"]
    ]
    try:
        yield connected
    finally:
        for signal, uid in connected:
            signal.disconnect(dispatch_uid=uid)
