"""Decide whether a learning event meets, unmeets or says nothing about a badge's criterion."""

from __future__ import annotations

from collections.abc import Callable

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

    Under the "only when the certificate is revoked" policy, a certificate revocation says "not met"
    whatever the criterion (passed, a grade, a certificate or a series), so that the policy can act on it.
    """
    if event.certificate_revoked and rule.revoke_policy == RevokePolicy.CERTIFICATE_REVOKED:
        return False
    evaluator = EVALUATORS.get(rule.criterion)
    return evaluator(rule, event) if evaluator else None
