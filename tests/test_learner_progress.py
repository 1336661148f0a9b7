"""Available badges and progress, for every criterion kind: pure computation, the fallbacks, and the platform path."""

from __future__ import annotations

import sys
import types
from decimal import Decimal

import pytest
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, compat
from badges_bridge.data import CourseCertificate, CourseGrade
from badges_bridge.learner import criterion_text, progress_for, provider_name
from badges_bridge.models import BadgeIssuance, Criterion, IssuanceState, RevokedBy, RevokePolicy
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Progress+2026")
OTHER = CourseKey.from_string("course-v1:Org+Other+2026")
NONE = frozenset()
VERIFIED = frozenset({"verified", "professional"})


# -- the criterion in words -------------------------------------------------------------------------------------


def test_each_criterion_in_words():
    assert criterion_text(Criterion.PASSED, None, NONE) == "Pass the course."
    assert criterion_text(Criterion.GRADE_AT_LEAST, Decimal("80.00"), NONE) == ("Reach a course grade of at least 80%.")
    assert criterion_text(Criterion.GRADE_AT_LEAST, Decimal("72.50"), NONE) == (
        "Reach a course grade of at least 72.5%."
    )
    assert criterion_text(Criterion.CERTIFICATE, None, NONE) == "Earn a certificate in the course."
    assert criterion_text(Criterion.CERTIFICATE, None, VERIFIED) == (
        "Earn a certificate in the course, in one of these modes: professional, verified."
    )


# -- progress, computed from a grade and a certificate -------------------------------------------------------------


def grade(percent: str | None, passed: bool | None = None) -> CourseGrade:
    return CourseGrade(percent=None if percent is None else Decimal(percent), passed=passed)


@pytest.mark.parametrize(
    ("standing", "met", "text", "done"),
    [
        (None, False, "No grade yet.", 0),
        (grade(None, False), False, "No grade yet.", 0),
        (grade("72"), False, "Your current grade is 72%; 80% is needed.", 90),
        (grade("80"), True, "Your grade of 80% meets the 80% needed.", 100),
        (grade("95.5"), True, "Your grade of 95.5% meets the 80% needed.", 100),
    ],
)
def test_grade_threshold_progress(standing, met, text, done):
    progress = progress_for(Criterion.GRADE_AT_LEAST, Decimal("80.00"), NONE, standing, None)
    assert (progress.met, progress.text, progress.percent_done) == (met, text, done)
    assert progress.target == Decimal("80.00")


def test_a_zero_threshold_is_met_by_any_grade():
    progress = progress_for(Criterion.GRADE_AT_LEAST, Decimal("0"), NONE, grade("0"), None)
    assert (progress.met, progress.percent_done) == (True, 100)


@pytest.mark.parametrize(
    ("standing", "met", "text"),
    [
        (None, False, "No grade yet."),
        (grade("81", True), True, "You passed the course."),
        (grade(None, True), True, "You passed the course."),
        (grade("42", False), False, "Your current grade is 42%; you have not passed the course yet."),
        (grade("42", None), None, "Your current grade is 42%; you have not passed the course yet."),
        (grade(None, False), False, "You have not passed the course yet."),
    ],
)
def test_passed_progress(standing, met, text):
    progress = progress_for(Criterion.PASSED, None, NONE, standing, None)
    assert (progress.met, progress.text) == (met, text)


@pytest.mark.parametrize(
    ("modes", "certificate", "met", "text"),
    [
        (VERIFIED, None, False, "No certificate yet."),
        (VERIFIED, CourseCertificate("verified", "generating"), False, "No certificate yet."),
        (VERIFIED, CourseCertificate("verified", "notpassing"), False, "No certificate yet."),
        (NONE, CourseCertificate("audit", "downloadable"), True, "You earned a certificate."),
        (VERIFIED, CourseCertificate("professional", "downloadable"), True, "You earned a certificate."),
        (
            VERIFIED,
            CourseCertificate("audit", "downloadable"),
            False,
            "Your audit certificate does not count for this badge; it needs one of: professional, verified.",
        ),
        (
            VERIFIED,
            CourseCertificate("", "downloadable"),
            None,
            "You earned a certificate; its mode is not known here.",
        ),
    ],
)
def test_certificate_progress_with_modes(modes, certificate, met, text):
    progress = progress_for(Criterion.CERTIFICATE, None, modes, None, certificate)
    assert (progress.met, progress.text) == (met, text)


# -- available badges, from what the plugin recorded (no edx-platform) -------------------------------------------


@pytest.fixture
def course_badges(credly):
    account = make_account(credly)
    policy = {"revoke_policy": RevokePolicy.CRITERION_UNMET}
    return {
        "passed": make_course_badge(make_template(account, credly, "Finisher"), COURSE),
        "grade": make_course_badge(
            make_template(account, credly, "High Achiever"),
            COURSE,
            criterion=Criterion.GRADE_AT_LEAST,
            grade_threshold=Decimal("80"),
            **policy,
        ),
        "certificate": make_course_badge(
            make_template(account, credly, "Certified"),
            COURSE,
            criterion=Criterion.CERTIFICATE,
            certificate_modes="verified",
            **policy,
        ),
        "disabled": make_course_badge(make_template(account, credly, "Retired"), COURSE, enabled=False),
        "elsewhere": make_course_badge(make_template(account, credly, "Other course"), OTHER),
    }


def by_name(available) -> dict:
    return {badge.name: badge for badge in available}


@pytest.mark.django_db
@pytest.mark.usefixtures("receivers")
def test_available_badges_from_the_ledger(course_badges, learner):
    assert api.available_badges(learner.pk) == []  # no enrollment known yet: nothing recorded
    send.send_grade(learner, COURSE, 0.72)  # below the threshold: a not-met row keeps the grade
    available = by_name(api.available_badges(learner.pk))
    assert set(available) == {"Finisher", "High Achiever", "Certified"}
    high = available["High Achiever"]
    assert high.criterion_text == "Reach a course grade of at least 80%."
    assert (high.progress.text, high.progress.percent_done) == ("Your current grade is 72%; 80% is needed.", 90)
    assert high.course_key == str(COURSE)
    assert high.provider_name == "Credly"
    assert available["Finisher"].progress.text == "Your current grade is 72%; you have not passed the course yet."
    assert available["Certified"].progress.text == "No certificate yet."

    send.send_certificate_created(learner, COURSE, mode="audit")  # does not count: a not-met row
    assert by_name(api.available_badges(learner.pk))["Certified"].progress.text == "No certificate yet."

    send.send_passing_status(learner, COURSE, True)  # the passing badge is earned: no longer available
    available = by_name(api.available_badges(learner.pk))
    assert set(available) == {"High Achiever", "Certified"}


@pytest.mark.django_db
@pytest.mark.usefixtures("receivers")
def test_a_badge_taken_back_by_the_policy_can_be_earned_again_but_not_one_the_learner_declined(course_badges, learner):
    send.send_grade(learner, COURSE, 0.9)
    send.send_grade(learner, COURSE, 0.5)
    row = BadgeIssuance.objects.get(user=learner, course_badge=course_badges["grade"])
    BadgeIssuance.objects.filter(pk=row.pk).update(state=IssuanceState.REVOKED, revoked_by=RevokedBy.POLICY)
    assert "High Achiever" in by_name(api.available_badges(learner.pk))
    BadgeIssuance.objects.filter(pk=row.pk).update(state=IssuanceState.REJECTED, revoked_by="")
    assert "High Achiever" not in by_name(api.available_badges(learner.pk))


@pytest.mark.django_db
def test_an_unknown_learner_has_no_available_badges():
    assert api.available_badges(987654) == []


# -- the platform path (edx-platform's modules stood in for) ---------------------------------------------------------


class _Enrollments:
    courses: list = []

    @classmethod
    def enrollments_for_user(cls, user):
        return [types.SimpleNamespace(course_id=course) for course in cls.courses]


class _PersistentCourseGrade:
    class DoesNotExist(Exception):  # noqa: N818 - the name Django models give it
        pass

    grades: dict = {}

    @classmethod
    def read(cls, user_id, course_key):
        try:
            return cls.grades[str(course_key)]
        except KeyError:
            raise cls.DoesNotExist from None


class _GeneratedCertificate:
    certificates: dict = {}

    @classmethod
    def certificate_for_student(cls, user, course_key):
        return cls.certificates.get(str(course_key))


@pytest.fixture
def platform(monkeypatch):
    """edx-platform's enrollments, persisted grades and certificates, as compat imports them."""
    modules = {
        "common.djangoapps.student.models": {"CourseEnrollment": _Enrollments},
        "lms.djangoapps.grades.models": {"PersistentCourseGrade": _PersistentCourseGrade},
        "lms.djangoapps.certificates.models": {"GeneratedCertificate": _GeneratedCertificate},
    }
    for dotted, attributes in modules.items():
        parts = dotted.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name not in sys.modules:
                monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        for attribute, value in attributes.items():
            monkeypatch.setattr(sys.modules[dotted], attribute, value, raising=False)
    monkeypatch.setattr(_Enrollments, "courses", [COURSE, OTHER])
    monkeypatch.setattr(_PersistentCourseGrade, "grades", {})
    monkeypatch.setattr(_GeneratedCertificate, "certificates", {})
    return types.SimpleNamespace(grades=_PersistentCourseGrade.grades, certificates=_GeneratedCertificate.certificates)


@pytest.mark.django_db
def test_available_badges_from_the_platform(course_badges, learner, platform):
    platform.grades[str(COURSE)] = types.SimpleNamespace(percent_grade=0.855, passed_timestamp="2026-05-01")
    platform.certificates[str(COURSE)] = types.SimpleNamespace(mode="audit", status="downloadable")
    available = by_name(api.available_badges(learner.pk))
    assert set(available) == {"Finisher", "High Achiever", "Certified", "Other course"}
    assert available["Finisher"].progress.text == "You passed the course."
    assert available["High Achiever"].progress.text == "Your grade of 85.5% meets the 80% needed."
    assert available["Certified"].progress.text == (
        "Your audit certificate does not count for this badge; it needs one of: verified."
    )
    assert available["Other course"].progress.text == "No grade yet."  # no persisted grade there


@pytest.mark.django_db
def test_compat_reads_the_platform(learner, platform):
    assert compat.enrolled_course_keys(learner) == [COURSE, OTHER]
    assert compat.course_grade(learner, COURSE) is None
    platform.grades[str(COURSE)] = types.SimpleNamespace(percent_grade=0.5, passed_timestamp=None)
    assert compat.course_grade(learner, COURSE) == CourseGrade(percent=Decimal("50.00"), passed=False)
    assert compat.course_certificate(learner, COURSE) is None
    platform.certificates[str(COURSE)] = types.SimpleNamespace(mode="verified", status="downloadable")
    assert compat.course_certificate(learner, COURSE) == CourseCertificate(mode="verified", status="downloadable")


def test_a_provider_no_longer_installed_is_named_by_its_key():
    assert provider_name("credly") == "Credly"
    assert provider_name("retired-provider") == "retired-provider"
