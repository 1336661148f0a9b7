"""Turn openedx-events payloads into :class:`~badges_bridge.data.LearnerEvent` objects.

Every parser validates what it reads and raises
:class:`~badges_bridge.exceptions.InvalidEventError` with a readable reason;
nothing here touches the database.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone
from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey
from opaque_keys.edx.locator import CourseLocator

from badges_bridge.data import EventKind, LearnerEvent
from badges_bridge.exceptions import InvalidEventError

EVENT_PREFIX = "org.openedx.learning."
#: Characters of an event value quoted in a message; longer values are clipped.
VALUE_PREVIEW_CHARS = 100


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with "…" when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def preview(value: Any) -> str:
    """The repr of an event value for a message: a longer string shows its first VALUE_PREVIEW_CHARS characters."""
    if isinstance(value, str) and len(value) > VALUE_PREVIEW_CHARS:
        return f"{value[:VALUE_PREVIEW_CHARS]!r}…"
    return clip(repr(value), VALUE_PREVIEW_CHARS)


def event_identity(kwargs: dict[str, Any]) -> tuple[str, str]:
    """(event id, event type) from the metadata, as far as they can be read."""
    metadata = kwargs.get("metadata")
    event_id = str(getattr(metadata, "id", "") or "")
    event_type = str(getattr(metadata, "event_type", "") or getattr(kwargs.get("signal"), "event_type", "") or "")
    return event_id, event_type


def event_subject(kwargs: dict[str, Any]) -> tuple[str, int | None]:
    """(course key, user id) of an event, as far as they can be read, for the record of a rejected event."""
    data = next((kwargs[name] for name in ("course_passing_status", "grade", "certificate") if kwargs.get(name)), None)
    course = getattr(data, "course", None)
    course_key = getattr(course, "master_course_key", None) or getattr(course, "course_key", None)
    user_id = getattr(getattr(data, "user", None), "id", None) or getattr(data, "user_id", None)
    return str(course_key or "")[:255], user_id if isinstance(user_id, int) and not isinstance(user_id, bool) else None


def configured_course(payload: Any) -> str | None:
    """The key, as text, of the course whose badges apply to a payload, read without checking the rest.

    For a CCX run that is its master course, as the parsers decide. None when the payload holds no course
    key object: the parser then says what is wrong with it.
    """
    course = getattr(payload, "course", None)
    key = course.master_course_key if hasattr(course, "master_course_key") else getattr(course, "course_key", None)
    if type(key) is CourseLocator:  # the usual case, decided without looking for a CCX
        return str(key)
    if not isinstance(key, CourseKey):
        return None
    return str(_split_run(key)[0])


def _occurred_at(kwargs: dict[str, Any]) -> datetime:
    moment = getattr(kwargs.get("metadata"), "time", None)
    if not isinstance(moment, datetime):
        return timezone.now()
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


def _course_key(value: Any, what: str) -> CourseKey:
    if isinstance(value, CourseKey):
        return value
    if isinstance(value, str) and value:
        try:
            return CourseKey.from_string(value)
        except InvalidKeyError as err:
            raise InvalidEventError(f"{what} {preview(value)} is not a valid course key") from err
    raise InvalidEventError(f"{what} is missing or not a course key")


def _split_run(course_key: CourseKey) -> tuple[CourseKey, str]:
    """(configuration course, run key): a CCX run is configured on its master course."""
    if hasattr(course_key, "ccx") and hasattr(course_key, "to_course_locator"):
        return course_key.to_course_locator(), str(course_key)
    return course_key, str(course_key)


def _configured_course(data: Any) -> tuple[CourseKey, str]:
    """(configuration course, run key) of a payload with a ``course.course_key``."""
    return _split_run(_course_key(getattr(getattr(data, "course", None), "course_key", None), "course.course_key"))


def _user_id(user: Any) -> int:
    user_id = getattr(user, "id", user)
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
        raise InvalidEventError("the event carries no valid user id")
    return user_id


def _payload(kwargs: dict[str, Any], name: str) -> Any:
    payload = kwargs.get(name)
    if payload is None:
        raise InvalidEventError(f"the event has no {name!r} data")
    return payload


def _base(kwargs: dict[str, Any], kind: EventKind, user_id: int, course: CourseKey, run: str) -> dict[str, Any]:
    event_id, event_type = event_identity(kwargs)
    return {
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at": _occurred_at(kwargs),
        "kind": kind,
        "user_id": user_id,
        "course_key": course,
        "run_key": run,
    }


def parse_passing_status(kwargs: dict[str, Any]) -> LearnerEvent:
    """COURSE_PASSING_STATUS_UPDATED and CCX_COURSE_PASSING_STATUS_UPDATED."""
    data = _payload(kwargs, "course_passing_status")
    is_passing = getattr(data, "is_passing", None)
    if not isinstance(is_passing, bool):
        raise InvalidEventError("course_passing_status.is_passing is missing or not a boolean")
    course = getattr(data, "course", None)
    if hasattr(course, "master_course_key"):
        master = _course_key(course.master_course_key, "course.master_course_key")
        run = str(getattr(course, "ccx_course_key", "") or master)
    else:
        master, run = _split_run(_course_key(getattr(course, "course_key", None), "course.course_key"))
    user_id = _user_id(getattr(data, "user", None))
    return LearnerEvent(**_base(kwargs, EventKind.PASSING_STATUS, user_id, master, run), is_passing=is_passing)


def parse_grade_summary(kwargs: dict[str, Any]) -> LearnerEvent:
    """PERSISTENT_GRADE_SUMMARY_CHANGED: the percent grade (0-1) becomes a 0-100 Decimal."""
    data = _payload(kwargs, "grade")
    percent = getattr(data, "percent_grade", None)
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not math.isfinite(percent):
        raise InvalidEventError("grade.percent_grade is missing or not a number")
    if not 0 <= percent <= 1:
        raise InvalidEventError(f"grade.percent_grade {preview(percent)} is outside 0..1")
    master, run = _split_run(
        _course_key(getattr(getattr(data, "course", None), "course_key", None), "course.course_key")
    )
    user_id = _user_id(getattr(data, "user_id", None))
    grade = (Decimal(str(percent)) * 100).quantize(Decimal("0.0001"))
    return LearnerEvent(**_base(kwargs, EventKind.GRADE, user_id, master, run), percent_grade=grade)


def _parse_certificate(kwargs: dict[str, Any], revoked: bool) -> LearnerEvent:
    data = _payload(kwargs, "certificate")
    master, run = _split_run(
        _course_key(getattr(getattr(data, "course", None), "course_key", None), "course.course_key")
    )
    user_id = _user_id(getattr(data, "user", None))
    mode = str(getattr(data, "mode", "") or "")
    status = str(getattr(data, "current_status", "") or "")
    if not revoked and not status:
        raise InvalidEventError("certificate.current_status is missing")
    return LearnerEvent(
        **_base(kwargs, EventKind.CERTIFICATE, user_id, master, run),
        certificate_mode=mode,
        certificate_status=status,
        certificate_revoked=revoked,
    )


def parse_certificate(kwargs: dict[str, Any]) -> LearnerEvent:
    """CERTIFICATE_CREATED and CERTIFICATE_CHANGED."""
    return _parse_certificate(kwargs, revoked=False)


def parse_certificate_revoked(kwargs: dict[str, Any]) -> LearnerEvent:
    """CERTIFICATE_REVOKED."""
    return _parse_certificate(kwargs, revoked=True)


Parser = Callable[[dict[str, Any]], LearnerEvent]
