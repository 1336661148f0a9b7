"""Every touch point with edx-platform, imported lazily with fallbacks.

The plugin runs inside the LMS and Studio, but its tests and the demo run
without edx-platform; each function here degrades to a sensible default then.

The user retirement signals are module attributes, so that the plugin machinery
can connect receivers to them by dotted path (``badges_bridge.compat.USER_RETIRE_*``):
the platform's own signals inside the LMS, stand-in signals elsewhere (tests send
those).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.dispatch import Signal
from opaque_keys.edx.keys import CourseKey

from badges_bridge.data import CourseCertificate, CourseGrade, CourseStanding, SeriesCourse

log = logging.getLogger(__name__)


def _retirement_signal(name: str) -> Signal:
    """The platform's retirement signal ``name``, or a stand-in Signal outside edx-platform."""
    try:
        from openedx.core.djangoapps.user_api.accounts import signals
    except ImportError:
        return Signal()
    return getattr(signals, name, None) or Signal()


#: Sent with ``user=`` by the LMS retirement endpoint ``retire_misc`` (before the critical step).
USER_RETIRE_LMS_MISC = _retirement_signal("USER_RETIRE_LMS_MISC")
#: Sent with ``user=`` by the LMS retirement endpoint ``retire`` (the username and e-mail are still the originals).
USER_RETIRE_LMS_CRITICAL = _retirement_signal("USER_RETIRE_LMS_CRITICAL")


def badge_signal(kind: str):
    """openedx-events' BADGE_AWARDED ("awarded") or BADGE_REVOKED ("revoked"); None when this version lacks it."""
    try:
        from openedx_events.learning import signals
    except ImportError:
        return None
    signal = getattr(signals, f"BADGE_{kind.upper()}", None)
    if signal is None:
        log.info("badges_bridge: this openedx-events version has no BADGE_%s signal", kind.upper())
    return signal


def course_exists(course_key: CourseKey) -> bool:
    """Whether the course exists: the platform's CourseOverview, or the plugin's StandaloneCourse outside it."""
    try:
        from openedx.core.djangoapps.content.course_overviews.models import CourseOverview
    except ImportError:
        from badges_bridge.models import StandaloneCourse

        return StandaloneCourse.objects.filter(course_key=course_key).exists()
    return CourseOverview.course_exists(course_key)


def has_studio_write_access(user, course_key: CourseKey) -> bool:
    """Whether the user may change the course in Studio, by edx-platform's own rule.

    Outside edx-platform: active global staff and superusers, and the course's staff and
    instructors recorded in the plugin's StandaloneCourseRole table.
    """
    try:
        from common.djangoapps.student.auth import has_studio_write_access as platform_rule
    except ImportError:
        return _standalone_write_access(user, course_key)
    return bool(platform_rule(user, course_key))


def _standalone_write_access(user, course_key: CourseKey) -> bool:
    from badges_bridge.models import StandaloneCourseRole

    if not (user is not None and user.is_authenticated and user.is_active):
        return False
    if user.is_staff or user.is_superuser:
        return True
    return StandaloneCourseRole.objects.filter(user=user, course_key=course_key).exists()


class StandaloneCourseApp(ABC):
    """The interface of edx-platform's ``CourseApp`` (Studio's Pages & Resources), for use outside edx-platform."""

    app_id: str = ""
    name: str = ""
    description: str = ""
    documentation_links: dict[str, str] = {}

    @classmethod
    @abstractmethod
    def is_available(cls, course_key: CourseKey) -> bool:
        """Whether the app is offered to the course at all."""

    @classmethod
    @abstractmethod
    def is_enabled(cls, course_key: CourseKey) -> bool:
        """Whether the app is on in the course."""

    @classmethod
    @abstractmethod
    def set_enabled(cls, course_key: CourseKey, enabled: bool, user) -> bool:
        """Turn the app on or off in the course; returns the new state."""

    @classmethod
    @abstractmethod
    def get_allowed_operations(cls, course_key: CourseKey, user=None) -> dict[str, bool]:
        """What the user may do with the app in the course: ``{"enable": bool, "configure": bool}``."""

    @classmethod
    def legacy_link(cls, course_key: CourseKey) -> str | None:
        """Where the app's own configuration page is."""
        return None


def course_app_base() -> type:
    """edx-platform's ``CourseApp`` base class inside Studio, else :class:`StandaloneCourseApp`.

    Call it when the apps are ready (the platform's module reads the user model when imported).
    """
    try:
        from openedx.core.djangoapps.course_apps.plugins import CourseApp
    except ImportError:
        return StandaloneCourseApp
    return CourseApp


def studio_root_url() -> str:
    """Studio's address (``CMS_ROOT_URL``), '' when it is not set (links are then relative to the site)."""
    return (getattr(settings, "CMS_ROOT_URL", "") or "").rstrip("/")


def course_display_name(course_key: CourseKey) -> str:
    """The course title from the platform's CourseOverview (outside it, StandaloneCourse), or the course key."""
    try:
        from openedx.core.djangoapps.content.course_overviews.models import CourseOverview
    except ImportError:
        from badges_bridge.models import StandaloneCourse

        name = StandaloneCourse.objects.filter(course_key=course_key).values_list("display_name", flat=True).first()
        return name or str(course_key)
    try:
        return CourseOverview.get_from_id(course_key).display_name_with_default
    except Exception:  # noqa: BLE001 - any lookup failure falls back to the key
        log.info("badges_bridge: no course overview for %s", course_key)
        return str(course_key)


def course_about_url(course_key: CourseKey | str) -> str:
    """Public URL of the course in the LMS ('' when LMS_ROOT_URL is not set)."""
    root = getattr(settings, "LMS_ROOT_URL", "")
    return f"{root.rstrip('/')}/courses/{course_key}/about" if root else ""


def learner_full_name(user) -> str:
    """The learner's full name: the Open edX profile name, else the Django user's name."""
    profile = getattr(user, "profile", None)
    name = getattr(profile, "name", "") if profile is not None else ""
    return (name or user.get_full_name() or "").strip()


# -- the learner's standing in their courses (learner page) ----------------------------------------------------
#
# Inside the LMS these read the platform's enrollments, persisted course grades and
# certificates. Elsewhere (tests, the demo) they fall back to what the plugin recorded
# in its ledger from the learning events it received.


def enrolled_course_keys(user) -> list[CourseKey]:
    """The courses the learner is actively enrolled in (outside the LMS: the courses of their ledger rows)."""
    try:
        from common.djangoapps.student.models import CourseEnrollment
    except ImportError:
        return _recorded_courses(user.pk)
    return [enrollment.course_id for enrollment in CourseEnrollment.enrollments_for_user(user)]


def reads_platform() -> bool:
    """Whether the learners' enrollments, grades and certificates are read from edx-platform (inside the LMS)."""
    try:
        from common.djangoapps.student.models import CourseEnrollment  # noqa: F401
    except ImportError:
        return False
    return True


def iter_enrolled_user_ids(course_key: CourseKey, chunk_size: int = 1000) -> Iterator[list[int]]:
    """The course's learners in user id order, ``chunk_size`` ids at a time (keyset pagination, never all at once).

    Inside the LMS: the active enrollments. Elsewhere: the learners the plugin recorded in the course (ledger
    rows of its badges, and progress in series badges that list it).
    """
    try:
        from common.djangoapps.student.models import CourseEnrollment
    except ImportError:
        yield from _iter_recorded_user_ids(course_key, chunk_size)
        return
    enrollments = CourseEnrollment.objects.filter(course_id=course_key, is_active=True).order_by("user_id")
    last = 0
    while True:
        ids = list(enrollments.filter(user_id__gt=last).values_list("user_id", flat=True)[:chunk_size])
        if ids:
            yield ids
        if len(ids) < chunk_size:
            return
        last = ids[-1]


def _iter_recorded_user_ids(course_key: CourseKey, chunk_size: int) -> Iterator[list[int]]:
    from badges_bridge.models import BadgeIssuance, SeriesProgress

    sources = [
        BadgeIssuance.objects.filter(course_badge__course_key=course_key, user_id__isnull=False),
        SeriesProgress.objects.filter(course_key=course_key, event_time__isnull=False),
    ]
    last = 0
    while True:
        found: set[int] = set()
        for rows in sources:
            query = rows.filter(user_id__gt=last).order_by("user_id").values_list("user_id", flat=True).distinct()
            found.update(query[:chunk_size])
        ids = sorted(found)[:chunk_size]
        if ids:
            yield ids
        if len(ids) < chunk_size:
            return
        last = ids[-1]


def course_standings(course_key: CourseKey, user_ids: list[int]) -> dict[int, CourseStanding]:
    """The grade and certificate in the course of each of these learners who has one, in two queries.

    Inside the LMS: the platform's persisted course grades and certificates. Elsewhere: what the plugin
    recorded (its ledger rows of the course's badges and the learners' progress in series badges).
    """
    try:
        from lms.djangoapps.certificates.models import GeneratedCertificate
        from lms.djangoapps.grades.models import PersistentCourseGrade
    except ImportError:
        return _recorded_standings(course_key, user_ids)
    grades = {
        user_id: CourseGrade(
            percent=(Decimal(str(percent)) * 100).quantize(Decimal("0.01")), passed=bool(passed_timestamp)
        )
        for user_id, percent, passed_timestamp in PersistentCourseGrade.objects.filter(
            course_id=course_key, user_id__in=user_ids
        ).values_list("user_id", "percent_grade", "passed_timestamp")
    }
    certificates = {
        user_id: CourseCertificate(mode=mode or "", status=status or "")
        for user_id, mode, status in GeneratedCertificate.objects.filter(
            course_id=course_key, user_id__in=user_ids
        ).values_list("user_id", "mode", "status")
    }
    return {
        user_id: CourseStanding(grades.get(user_id), certificates.get(user_id))
        for user_id in set(grades) | set(certificates)
    }


#: What a recorded fact says: (when, what) per learner and kind ("percent", "passed" or "certificate").
_Facts = dict[int, dict[str, tuple[datetime, object]]]


def _note(facts: _Facts, user_id: int, kind: str, when: datetime | None, value: object) -> None:
    """Keep the latest fact of each kind."""
    when = when or datetime.min.replace(tzinfo=UTC)
    known = facts.setdefault(user_id, {})
    if kind not in known or known[kind][0] <= when:
        known[kind] = (when, value)


def _certificate_of(met: bool, modes: frozenset[str]) -> CourseCertificate:
    if not met:
        return CourseCertificate(mode="", status="notpassing")
    return CourseCertificate(mode=next(iter(modes)) if len(modes) == 1 else "", status="downloadable")


def _recorded_standings(course_key: CourseKey, user_ids: list[int]) -> dict[int, CourseStanding]:
    """Read as plain values, not model instances: a preview reads every learner of a course."""
    from badges_bridge.models import BadgeIssuance, CourseBadge, Criterion, SeriesProgress

    facts: _Facts = {}
    badges = {
        pk: (criterion, frozenset(mode.strip() for mode in modes.split(",") if mode.strip()))
        for pk, criterion, modes in CourseBadge.objects.filter(course_key=course_key)
        .exclude(criterion=Criterion.SERIES)
        .values_list("pk", "criterion", "certificate_modes")
    }
    rows = BadgeIssuance.objects.filter(user_id__in=user_ids, course_badge_id__in=list(badges)).values_list(
        "user_id", "course_badge_id", "grade", "event_time", "state", "revoked_by"
    )
    for user_id, badge_id, grade, event_time, state, revoked_by in rows:
        criterion, modes = badges[badge_id]
        met = _met_state(state, revoked_by)
        if grade is not None:
            _note(facts, user_id, "percent", event_time, grade)
        if criterion == Criterion.PASSED:
            _note(facts, user_id, "passed", event_time, met)
        elif criterion == Criterion.CERTIFICATE:
            _note(facts, user_id, "certificate", event_time, _certificate_of(met, modes))
    progress = list(
        SeriesProgress.objects.filter(
            user_id__in=user_ids, course_key=course_key, event_time__isnull=False
        ).values_list("user_id", "course_badge_id", "grade", "event_time", "met")
    )
    conditions: dict[int, SeriesCourse | None] = {  # per series badge: its condition for this course
        badge.pk: next((item for item in badge.series_courses() if item.course_key == course_key), None)
        for badge in CourseBadge.objects.filter(pk__in={row[1] for row in progress})
    }
    for user_id, badge_id, grade, event_time, met in progress:
        condition = conditions.get(badge_id)
        if grade is not None:
            _note(facts, user_id, "percent", event_time, grade)
        if condition is not None and condition.criterion == Criterion.PASSED:
            _note(facts, user_id, "passed", event_time, met)
        elif condition is not None and condition.criterion == Criterion.CERTIFICATE:
            _note(facts, user_id, "certificate", event_time, _certificate_of(met, condition.certificate_modes))
    standings = {}
    for user_id, known in facts.items():
        percent, passed = known.get("percent", (None, None))[1], known.get("passed", (None, None))[1]
        grade = CourseGrade(percent=percent, passed=passed) if percent is not None or passed is not None else None
        standings[user_id] = CourseStanding(grade, known.get("certificate", (None, None))[1])
    return standings


def course_grade(user, course_key: CourseKey) -> CourseGrade | None:
    """The learner's persisted course grade (percent 0-100 and passed), or None when there is none."""
    try:
        from lms.djangoapps.grades.models import PersistentCourseGrade
    except ImportError:
        return _recorded_grade(user.pk, course_key)
    try:
        grade = PersistentCourseGrade.read(user.id, course_key)
    except PersistentCourseGrade.DoesNotExist:
        return None
    percent = (Decimal(str(grade.percent_grade)) * 100).quantize(Decimal("0.01"))
    return CourseGrade(percent=percent, passed=bool(grade.passed_timestamp))


def course_certificate(user, course_key: CourseKey) -> CourseCertificate | None:
    """The learner's certificate in a course (mode and status), or None when there is none."""
    try:
        from lms.djangoapps.certificates.models import GeneratedCertificate
    except ImportError:
        return _recorded_certificate(user.pk, course_key)
    certificate = GeneratedCertificate.certificate_for_student(user, course_key)
    if certificate is None:
        return None
    return CourseCertificate(mode=certificate.mode or "", status=certificate.status or "")


def _recorded_rows(user_id: int, course_key: CourseKey | None = None):
    from badges_bridge.models import BadgeIssuance

    rows = BadgeIssuance.objects.filter(user_id=user_id)
    if course_key is not None:
        rows = rows.filter(course_badge__course_key=course_key)
    return rows.select_related("course_badge")


def _recorded_courses(user_id: int) -> list[CourseKey]:
    keys = {str(row.course_badge.course_key): row.course_badge.course_key for row in _recorded_rows(user_id)}
    return [keys[key] for key in sorted(keys)]


def _met(row) -> bool:
    """Whether a ledger row says its criterion was met when last decided."""
    return _met_state(row.state, row.revoked_by)


def _met_state(state: str, revoked_by: str) -> bool:
    """Whether a ledger row in this state, revoked by this party, says its criterion was met when last decided."""
    from badges_bridge.models import IssuanceState, RevokedBy

    if state == IssuanceState.NOT_MET:
        return False
    revoked = state in (IssuanceState.REVOKED, IssuanceState.REVOKE_PENDING)
    return not (revoked and revoked_by == RevokedBy.POLICY)


def _recorded_grade(user_id: int, course_key: CourseKey) -> CourseGrade | None:
    from badges_bridge.models import Criterion

    rows = sorted(_recorded_rows(user_id, course_key), key=lambda row: (row.event_time is None, row.event_time))
    graded = [row.grade for row in rows if row.grade is not None]
    passing = [_met(row) for row in rows if row.course_badge.criterion == Criterion.PASSED]
    if not graded and not passing:
        return None
    return CourseGrade(percent=graded[-1] if graded else None, passed=passing[-1] if passing else None)


def _recorded_certificate(user_id: int, course_key: CourseKey) -> CourseCertificate | None:
    from badges_bridge.models import Criterion

    rows = [row for row in _recorded_rows(user_id, course_key) if row.course_badge.criterion == Criterion.CERTIFICATE]
    if not rows:
        return None
    if any(_met(row) for row in rows):
        modes = sorted(set().union(*(row.course_badge.modes() for row in rows if _met(row))))
        return CourseCertificate(mode=modes[0] if len(modes) == 1 else "", status="downloadable")
    return CourseCertificate(mode="", status="notpassing")


def learner_base_template() -> str:
    """The LMS page template the learner page extends (``main_django.html``), or the plugin's own base."""
    from django.template import TemplateDoesNotExist
    from django.template.loader import get_template

    try:
        get_template("main_django.html")
    except TemplateDoesNotExist:
        return "badges_bridge/learner/base.html"
    return "main_django.html"


def enrollment_count(course_key: CourseKey) -> int | None:
    """How many active enrollments the course has; None outside the LMS (it cannot be known there)."""
    try:
        from common.djangoapps.student.models import CourseEnrollment
    except ImportError:
        return None
    return CourseEnrollment.objects.filter(course_id=course_key, is_active=True).count()
