"""The revoke policy "only when the certificate is revoked", whatever the course badge's criterion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey
from openedx_events.learning.signals import CERTIFICATE_CHANGED

from badges_bridge import config_cache, criteria, ledger
from badges_bridge.data import BadgeRule, EventKind, LearnerEvent
from badges_bridge.models import (
    BadgeIssuance,
    Criterion,
    IssuanceState,
    Operation,
    RevokedBy,
    RevokePolicy,
    StandaloneCourse,
)
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Cert+2026")
S = IssuanceState
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


def make_badge(credly, criterion: str, policy: str = RevokePolicy.CERTIFICATE_REVOKED, **fields):
    return make_course_badge(
        make_template(make_account(credly), credly, f"Badge {criterion}"),
        COURSE,
        criterion=criterion,
        revoke_policy=policy,
        **fields,
    )


def row_of(user, badge) -> BadgeIssuance:
    return BadgeIssuance.objects.get(user=user, course_badge=badge)


def live(credly, badge, user) -> int:
    return len(credly.live_awards(badge.template.external_id, user.email))


#: Per criterion: (event that meets it, event that says it is no longer met but is no certificate revocation).
CASES = {
    Criterion.PASSED: (
        lambda user: send.send_passing_status(user, COURSE, True),
        lambda user: send.send_passing_status(user, COURSE, False),
    ),
    Criterion.GRADE_AT_LEAST: (
        lambda user: send.send_grade(user, COURSE, 0.9),
        lambda user: send.send_grade(user, COURSE, 0.2),
    ),
    Criterion.CERTIFICATE: (
        lambda user: send.send_certificate_created(user, COURSE),
        lambda user: CERTIFICATE_CHANGED.send_event(
            certificate=send.certificate_data(user, COURSE, "verified", "notpassing")
        ),
    ),
}


@pytest.mark.parametrize("criterion", list(CASES))
def test_only_a_certificate_revocation_revokes_and_meeting_it_again_re_awards(credly, learner, deliver, criterion):
    meet, fail = CASES[criterion]
    fields = {"grade_threshold": 80} if criterion == Criterion.GRADE_AT_LEAST else {}
    badge = make_badge(credly, criterion, **fields)
    deliver(meet, learner)
    assert row_of(learner, badge).state == S.ISSUED
    deliver(fail, learner)  # a failing grade or a not-passing status revokes nothing
    assert row_of(learner, badge).state == S.ISSUED
    deliver(send.send_certificate_revoked, learner, COURSE)
    row = row_of(learner, badge)
    assert (row.state, row.revoked_by) == (S.REVOKED, RevokedBy.POLICY)
    assert live(credly, badge, learner) == 0
    deliver(meet, learner)
    row = row_of(learner, badge)
    assert (row.state, row.award_number) == (S.ISSUED, 2)
    assert live(credly, badge, learner) == 1


def test_a_series_badge_is_revoked_by_a_certificate_revocation(credly, learner, deliver, work_queue):
    StandaloneCourse.objects.create(course_key=COURSE, display_name="Certified")
    badge = make_badge(credly, Criterion.SERIES, series=[{"course_key": str(COURSE), "criterion": "certificate"}])
    row = BadgeIssuance.objects.create(
        user=learner, course_badge=badge, state=S.ISSUED, external_id="b-1", event_time=timezone.now() - timedelta(1)
    )
    deliver(send.send_passing_status, learner, COURSE, False)
    assert row_of(learner, badge).state == S.ISSUED
    deliver(send.send_certificate_revoked, learner, COURSE)
    row.refresh_from_db()
    assert (row.state, row.operation, row.revoked_by) == (S.REVOKE_PENDING, Operation.REVOKE, RevokedBy.POLICY)
    assert [(work.issuance_id, work.operation) for work in work_queue.pending] == [(row.pk, Operation.REVOKE)]


@pytest.mark.parametrize("policy", [RevokePolicy.NEVER, RevokePolicy.CERTIFICATE_REVOKED])
def test_a_certificate_revocation_decides_every_criterion_only_under_its_policy(policy):
    rules = [
        BadgeRule(1, criterion, None, frozenset(), policy, 1)
        for criterion in (Criterion.PASSED, Criterion.GRADE_AT_LEAST, Criterion.SERIES)
    ]
    event = LearnerEvent(
        event_id="e",
        event_type="cert",
        occurred_at=timezone.now(),
        kind=EventKind.CERTIFICATE,
        user_id=1,
        course_key=COURSE,
        run_key=str(COURSE),
        certificate_status="notpassing",
        certificate_revoked=True,
    )
    expected = False if policy == RevokePolicy.CERTIFICATE_REVOKED else None
    assert [criteria.evaluate(rule, event) for rule in rules] == [expected] * 3


def test_a_revocation_of_a_new_learner_is_recorded_so_an_older_met_event_issues_nothing(credly, learner):
    badge = make_badge(credly, Criterion.CERTIFICATE)
    (rule,) = config_cache.rules_for_course(COURSE)
    now = timezone.now()

    def event(minutes: int, revoked: bool) -> LearnerEvent:
        return LearnerEvent(
            event_id=f"e{minutes}",
            event_type="cert",
            occurred_at=now + timedelta(minutes=minutes),
            kind=EventKind.CERTIFICATE,
            user_id=learner.pk,
            course_key=COURSE,
            run_key=str(COURSE),
            certificate_status="notpassing" if revoked else "downloadable",
            certificate_revoked=revoked,
        )

    assert ledger.apply_event(event(2, True), [(rule, False)]) == []
    assert row_of(learner, badge).state == S.NOT_MET
    assert ledger.apply_event(event(1, False), [(rule, True)]) == []  # older than the revocation: ignored
    assert row_of(learner, badge).state == S.NOT_MET


def test_a_failing_event_of_a_new_learner_records_nothing_under_this_policy(credly, learner, deliver):
    badge = make_badge(credly, Criterion.PASSED)
    deliver(send.send_passing_status, learner, COURSE, False)
    assert not BadgeIssuance.objects.filter(course_badge=badge).exists()


def test_the_never_policy_keeps_the_badge_through_a_certificate_revocation(credly, learner, deliver):
    badge = make_badge(credly, Criterion.CERTIFICATE, policy=RevokePolicy.NEVER)
    deliver(send.send_certificate_created, learner, COURSE)
    deliver(send.send_certificate_revoked, learner, COURSE)
    assert row_of(learner, badge).state == S.ISSUED


def test_a_certificate_revocation_takes_a_waiting_row_out_of_the_approval_queue(credly, learner, deliver):
    badge = make_badge(credly, Criterion.PASSED, requires_approval=True)
    deliver(send.send_passing_status, learner, COURSE, True)
    deliver(send.send_passing_status, learner, COURSE, False)
    assert row_of(learner, badge).state == S.AWAITING_APPROVAL
    deliver(send.send_certificate_revoked, learner, COURSE)
    assert row_of(learner, badge).state == S.NOT_MET
