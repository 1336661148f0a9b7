"""Badges changed by a worker that had lost its lease: decisions, the reconcile task and the redrive."""

from datetime import timedelta

import pytest
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, issuing, ledger
from badges_bridge.models import AwardStatus, BadgeIssuance, IssuanceState, IssuedBadge, Operation
from badges_bridge.providers.base import Award, AwardState
from badges_bridge.providers.credly import CredlyProvider
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

S = IssuanceState
COURSE = CourseKey.from_string("course-v1:Org+Reconcile+2026")
LIVE = Award(external_id="x", state=AwardState.ACCEPTED, public_url="https://badges.example.com/x")
GONE = Award(external_id="x", state=AwardState.REVOKED)


def plan(state, operation=Operation.ISSUE, external_id="", **found):
    row = BadgeIssuance(state=state, operation=operation, external_id=external_id)
    return issuing.plan_settlement(row, found)


def test_a_live_stray_is_undone_when_the_row_has_its_badge():
    settlement, discard = plan(S.ISSUED, external_id="mine", stray=LIVE)
    assert discard == ["stray"]
    assert settlement.badges == {"stray": (AwardStatus.UNDONE, "deleted")}
    assert settlement.adopt is None


@pytest.mark.parametrize("state", [S.PENDING, S.ISSUING, S.FAILED, S.DEAD])
def test_a_live_stray_is_adopted_by_a_row_that_waits_for_its_badge(state):
    settlement, discard = plan(state, stray=LIVE)
    assert (discard, settlement.adopt) == ([], ("stray", LIVE.public_url, "accepted"))


@pytest.mark.parametrize("state", [S.REVOKE_PENDING, S.REVOKED, S.NOT_MET])
def test_a_live_stray_is_undone_when_the_row_wants_no_badge(state):
    settlement, discard = plan(state, Operation.REVOKE, stray=LIVE)
    assert (discard, settlement.adopt) == (["stray"], None)


def test_only_one_live_stray_is_adopted():
    settlement, discard = plan(S.PENDING, first=LIVE, second=LIVE)
    assert settlement.adopt[0] == "first"
    assert discard == ["second"]


def test_a_stray_that_is_not_live_needs_nothing():
    settlement, discard = plan(S.ISSUED, external_id="mine", stray=GONE, deleted=None)
    assert discard == []
    assert settlement.badges == {"stray": (AwardStatus.GONE, "revoked"), "deleted": (AwardStatus.GONE, "deleted")}


def test_the_rows_own_badge_gone_starts_a_new_award_and_may_adopt_a_stray():
    settlement, discard = plan(S.ISSUED, external_id="mine", mine=GONE, stray=LIVE)
    assert settlement.reaward
    assert settlement.badges["mine"] == (AwardStatus.REVOKED, "revoked")
    assert settlement.adopt[0] == "stray"
    assert discard == []


def test_the_rows_own_badge_live_again_after_a_revoke_is_revoked_again():
    settlement, discard = plan(S.REVOKED, Operation.REVOKE, external_id="mine", mine=LIVE)
    assert settlement.revoke_again
    assert discard == []


# -- the task ------------------------------------------------------------------------------------------------------


@pytest.fixture
def row(credly, learner, db):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    return BadgeIssuance.objects.create(user=learner, course_badge=badge, state=S.ISSUED, external_id="")


def unconfirmed(row, *external_ids):
    assert ledger.record_unconfirmed(row.pk, external_ids, "test", "created a badge")


def seed_badge(credly, row) -> str:
    """A live badge at the fake for the row's template and learner, created as a lost worker would."""
    provider = CredlyProvider(credly.account_config())
    return provider.issue(issuing.issue_request_for(row)).external_id


def test_reconcile_waits_while_another_worker_holds_the_row(row, credly, learner):
    unconfirmed(row, "abc")
    BadgeIssuance.objects.filter(pk=row.pk).update(
        lease_token="other", lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    outcome = issuing.process_reconcile(row.pk)
    assert outcome.summary == "held by another worker"
    assert [(work.operation, delay) for work, delay in outcome.follow_up] == [("reconcile", 300)]
    assert credly.server.journal == []
    assert IssuedBadge.objects.get().status == AwardStatus.UNCONFIRMED


def test_reconcile_adopts_a_live_stray_for_a_failed_row(row, credly, learner):
    BadgeIssuance.objects.filter(pk=row.pk).update(state=S.FAILED, next_attempt_at=timezone.now())
    stray = seed_badge(credly, row)
    unconfirmed(row, stray)
    issuing.process_reconcile(row.pk)
    row.refresh_from_db()
    assert (row.state, row.external_id, row.lease_token) == (S.ISSUED, stray, "")
    assert IssuedBadge.objects.get().status == AwardStatus.LIVE


def test_reconcile_keeps_the_badges_unconfirmed_when_the_provider_fails(row, credly, learner):
    stray = seed_badge(credly, row)
    unconfirmed(row, stray)
    credly.inject("get", "status", status=503)
    outcome = issuing.process_reconcile(row.pk)
    assert outcome.summary.startswith("reconcile failed")
    assert [work.operation for work, _delay in outcome.follow_up] == ["reconcile"]
    row.refresh_from_db()
    assert row.lease_token == ""
    assert IssuedBadge.objects.get().status == AwardStatus.UNCONFIRMED
    issuing.process_reconcile(row.pk)  # the provider is back
    assert IssuedBadge.objects.get().status == AwardStatus.LIVE


def test_redrive_queues_a_reconcile_once_the_row_is_free(row, work_queue):
    unconfirmed(row, "gone-badge")
    BadgeIssuance.objects.filter(pk=row.pk).update(
        lease_token="other", lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    assert ledger.due_work(10) == []
    BadgeIssuance.objects.filter(pk=row.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    result = api.redrive()
    assert (result.reconcile, result.ids) == (1, [row.pk])
    work_queue.run()
    assert IssuedBadge.objects.get().status == AwardStatus.GONE
    assert ledger.due_work(10) == []
