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
from decimal import Decimal

from django.conf import settings
from django.dispatch import Signal
from opaque_keys.edx.keys import CourseKey

from badges_bridge.data import CourseCertificate, CourseGrade

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


def enrolled_user_ids(course_key: CourseKey) -> list[int] | None:
    """The user ids of the course's active enrollments; None outside the LMS (they cannot be known there)."""
    try:
        from common.djangoapps.student.models import CourseEnrollment
    except ImportError:
        return None
    return list(
        CourseEnrollment.objects.filter(course_id=course_key, is_active=True)
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )


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
    from badges_bridge.models import IssuanceState, RevokedBy

    if row.state == IssuanceState.NOT_MET:
        return False
    revoked = row.state in (IssuanceState.REVOKED, IssuanceState.REVOKE_PENDING)
    return not (revoked and row.revoked_by == RevokedBy.POLICY)


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
