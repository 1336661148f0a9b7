"""Decide whether a learning event meets, unmeets or says nothing about a badge's criterion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from opaque_keys.edx.keys import CourseKey

from badges_bridge.data import BadgeRule, EventKind, LearnerEvent
from badges_bridge.models import Criterion, RevokePolicy

#: The certificate status that means "earned".
CERTIFICATE_EARNED = "downloadable"
#: Certificate statuses that mean the learner does not hold a certificate (any other status, such
#: as "generating" or "error", is transitional and decides nothing).
CERTIFICATE_NOT_EARNED = frozenset(
    {"notpassing", "unavailable", "invalidated", "deleted", "audit_notpassing", "restricted", "unverified"}
)


def _passed(rule: BadgeRule, event: LearnerEvent) -> bool | None:
    if event.kind is not EventKind.PASSING_STATUS:
        return None
    return event.is_passing


def _grade_at_least(rule: BadgeRule, event: LearnerEvent) -> bool | None:
    if event.kind is not EventKind.GRADE or event.percent_grade is None or rule.grade_threshold is None:
        return None
    return event.percent_grade >= rule.grade_threshold


def _certificate(rule: BadgeRule, event: LearnerEvent) -> bool | None:
    if event.kind is not EventKind.CERTIFICATE:
        return None
    if event.certificate_revoked or event.certificate_status in CERTIFICATE_NOT_EARNED:
        return False
    if event.certificate_status != CERTIFICATE_EARNED:
        return None
    return not rule.certificate_modes or event.certificate_mode in rule.certificate_modes


EVALUATORS: dict[str, Callable[[BadgeRule, LearnerEvent], bool | None]] = {
    Criterion.PASSED: _passed,
    Criterion.GRADE_AT_LEAST: _grade_at_least,
    Criterion.CERTIFICATE: _certificate,
}


def evaluate(rule: BadgeRule, event: LearnerEvent) -> bool | None:
    """True: the criterion is met; False: it is not (any more); None: the event does not decide it.

    A series is not decided by one event: see :func:`evaluate_course` and :mod:`badges_bridge.series`.
    Under the "only when the certificate is revoked" policy, a certificate revocation says "not met"
    whatever the criterion (passed, a grade, a certificate or a course of a series), so that the policy can act on it.
    """
    if event.certificate_revoked and rule.revoke_policy == RevokePolicy.CERTIFICATE_REVOKED:
        return False
    evaluator = EVALUATORS.get(rule.criterion)
    return evaluator(rule, event) if evaluator else None


def in_window(rule: BadgeRule, moment: datetime) -> bool:
    """Whether a criterion met at ``moment`` earns the badge: at or after ``earned_after``, before ``earned_before``."""
    if rule.earned_after is not None and moment < rule.earned_after:
        return False
    return rule.earned_before is None or moment < rule.earned_before


def decide(rule: BadgeRule, event: LearnerEvent) -> bool | None:
    """:func:`evaluate` within the rule's window: a criterion met outside it decides nothing.

    "Not met" still decides outside the window (the revoke policy applies to a badge earned in it).
    """
    met = evaluate(rule, event)
    if met and not in_window(rule, event.occurred_at):
        return None
    return met


def course_rule(rule: BadgeRule, course_key: CourseKey | str) -> BadgeRule | None:
    """The single-course rule of one course of a series badge (None when the course is not in its series)."""
    course = next((item for item in rule.series if str(item.course_key) == str(course_key)), None)
    if course is None:
        return None
    return replace(
        rule,
        criterion=course.criterion,
        grade_threshold=course.grade_threshold,
        certificate_modes=course.certificate_modes,
        series=(),
        series_required=0,
    )


def evaluate_course(rule: BadgeRule, event: LearnerEvent) -> bool | None:
    """For a series badge: whether the event's course meets its own condition in the series (None: undecided)."""
    member = course_rule(rule, event.course_key)
    return evaluate(member, event) if member is not None else None
