"""Criteria decisions."""

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from opaque_keys.edx.keys import CourseKey

from badges_bridge.criteria import evaluate
from badges_bridge.data import BadgeRule, EventKind, LearnerEvent

COURSE = CourseKey.from_string("course-v1:Org+Course+Run")
BASE = LearnerEvent(
    event_id="e",
    event_type="t",
    occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    kind=EventKind.PASSING_STATUS,
    user_id=1,
    course_key=COURSE,
    run_key=str(COURSE),
)


def rule(criterion, threshold=None, modes=()):
    return BadgeRule(1, criterion, threshold, frozenset(modes), "never", 1)


def test_passed_follows_the_passing_status():
    assert evaluate(rule("passed"), replace(BASE, is_passing=True)) is True
    assert evaluate(rule("passed"), replace(BASE, is_passing=False)) is False
    assert evaluate(rule("passed"), replace(BASE, kind=EventKind.GRADE, percent_grade=Decimal(99))) is None


@pytest.mark.parametrize(("grade", "met"), [("79.99", False), ("80", True), ("80.0001", True), ("100", True)])
def test_grade_threshold_is_inclusive(grade, met):
    event = replace(BASE, kind=EventKind.GRADE, percent_grade=Decimal(grade))
    assert evaluate(rule("grade_at_least", Decimal("80.00")), event) is met


def test_grade_rule_ignores_passing_status():
    assert evaluate(rule("grade_at_least", Decimal(50)), replace(BASE, is_passing=True)) is None


@pytest.mark.parametrize(
    ("status", "mode", "revoked", "expected"),
    [
        ("downloadable", "verified", False, True),
        ("downloadable", "audit", False, False),
        ("notpassing", "verified", False, False),
        ("generating", "verified", False, None),
        ("downloadable", "verified", True, False),
    ],
)
def test_certificate_modes_and_statuses(status, mode, revoked, expected):
    event = replace(
        BASE, kind=EventKind.CERTIFICATE, certificate_status=status, certificate_mode=mode, certificate_revoked=revoked
    )
    assert evaluate(rule("certificate", modes={"verified", "professional"}), event) is expected


def test_certificate_without_modes_accepts_any_mode():
    event = replace(BASE, kind=EventKind.CERTIFICATE, certificate_status="downloadable", certificate_mode="honor")
    assert evaluate(rule("certificate"), event) is True


def test_unknown_criterion_decides_nothing():
    assert evaluate(rule("series"), replace(BASE, is_passing=True)) is None
