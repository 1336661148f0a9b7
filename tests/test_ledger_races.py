"""Events that arrive while a task holds a ledger row."""

from datetime import UTC, datetime, timedelta

import pytest
from opaque_keys.edx.keys import CourseKey

from badges_bridge import ledger
from badges_bridge.data import BadgeRule, EventKind, LearnerEvent
from badges_bridge.models import BadgeIssuance, IssuanceState, Operation
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

pytestmark = pytest.mark.django_db
COURSE = CourseKey.from_string("course-v1:Org+Race+2026")
START = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def setup(credly, learner):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE, revoke_policy="criterion_unmet")
    rule = BadgeRule(badge.pk, "passed", None, frozenset(), "criterion_unmet", badge.version)
    return learner, rule


def event(learner, passing: bool, minute: int) -> LearnerEvent:
    return LearnerEvent(
        event_id=f"e{minute}",
        event_type="t",
        occurred_at=START + timedelta(minutes=minute),
        kind=EventKind.PASSING_STATUS,
        user_id=learner.pk,
        course_key=COURSE,
        run_key=str(COURSE),
        is_passing=passing,
    )


def apply(setup, passing, minute):
    learner, rule = setup
    return ledger.apply_event(event(learner, passing, minute), [(rule, passing)])


def test_unmet_then_met_while_issuing_ends_issued(setup):
    (work,) = apply(setup, True, 1)
    row = ledger.claim(work.issuance_id, Operation.ISSUE)
    assert [w.operation for w in apply(setup, False, 2)] == [Operation.REVOKE]
    assert apply(setup, True, 3) == []  # the issue task still holds the row
    ledger.finish(row, IssuanceState.ISSUED, "task", "issued", external_id="b1")
    row.refresh_from_db()
    assert (row.state, row.external_id) == (IssuanceState.ISSUED, "b1")


def test_unmet_while_issuing_ends_revoke_pending(setup):
    (work,) = apply(setup, True, 1)
    row = ledger.claim(work.issuance_id, Operation.ISSUE)
    apply(setup, False, 2)
    ledger.finish(row, IssuanceState.ISSUED, "task", "issued", external_id="b1")
    assert (row.state, row.external_id, row.lease_token) == (IssuanceState.REVOKE_PENDING, "b1", "")


def test_met_while_revoking_re_awards_after_the_revoke(setup):
    (work,) = apply(setup, True, 1)
    row = ledger.claim(work.issuance_id, Operation.ISSUE)
    ledger.finish(row, IssuanceState.ISSUED, "task", "issued", external_id="b1")
    apply(setup, False, 2)
    row = ledger.claim(work.issuance_id, Operation.REVOKE)
    apply(setup, True, 3)
    ledger.finish(row, IssuanceState.REVOKED, "task", "revoked", provider_state="revoked")
    assert (row.state, row.operation, row.external_id) == (IssuanceState.PENDING, Operation.ISSUE, "")


def test_pending_row_that_may_exist_at_the_provider_is_revoked_through_the_provider(setup):
    (work,) = apply(setup, True, 1)
    row = ledger.claim(work.issuance_id, Operation.ISSUE)
    ledger.fail(row, RuntimeError("answer lost"), "task", transient=True)
    apply(setup, False, 2)
    apply(setup, True, 3)
    apply(setup, False, 4)
    row = BadgeIssuance.objects.get(pk=work.issuance_id)
    assert row.state == IssuanceState.REVOKE_PENDING  # never straight to revoked: a badge may exist
