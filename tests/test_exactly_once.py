"""Exactly once under every interleaving.

Each test stages one interleaving that once broke the promise "one live badge per
qualifying learner, none for the others, and a ledger that agrees with the
provider". Events go through the real receivers; queued tasks wait in a deferred
broker (the ``work_queue`` fixture) until the test delivers them, and run for
real against the fake providers over HTTP.
"""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core import checks
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, issuing, ledger
from badges_bridge.models import BadgeIssuance, IssuanceState, Operation, RevokePolicy
from badges_bridge.providers.base import AwardState
from badges_bridge.providers.credly import CredlyProvider
from badges_bridge.signals import handlers
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Once+2026")
S = IssuanceState
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


def badge_at(harness, revoke_policy=RevokePolicy.CRITERION_UNMET, allow_duplicates=False, **account_fields):
    template = make_template(make_account(harness, **account_fields), harness, allow_duplicates=allow_duplicates)
    return make_course_badge(template, COURSE, revoke_policy=revoke_policy)


def row_of(learner) -> BadgeIssuance:
    return BadgeIssuance.objects.get(user=learner)


def live_ids(harness, badge, learner) -> list[str]:
    return [str(award["id"]) for award in harness.live_awards(badge.template.external_id, learner.email)]


def assert_one_live_badge_recorded(harness, badge, learner) -> BadgeIssuance:
    """The learner holds exactly one live badge, and the ledger says issued and names it."""
    row = row_of(learner)
    assert live_ids(harness, badge, learner) == [row.external_id]
    assert row.state == S.ISSUED
    return row


def assert_no_live_badge(harness, badge, learner) -> None:
    assert live_ids(harness, badge, learner) == []
    assert row_of(learner).state in (S.REVOKED, S.NOT_MET)


def pass_then_fail(deliver, work_queue, learner):
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    first = row_of(learner).external_id
    deliver(send.send_passing_status, learner, COURSE, False)
    work_queue.run()
    assert row_of(learner).state == S.REVOKED
    return first


# -- defect 1: a re-award keeps the revoked badge's id ---------------------------------------------------------------


def test_reaward_whose_answer_was_lost_then_unmet_leaves_no_live_badge(credly, learner, deliver, work_queue):
    badge = badge_at(credly)
    pass_then_fail(deliver, work_queue, learner)
    credly.inject("issue", "commit_then_drop")
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run(1)  # the re-award's badge is created, its answer is lost: the row fails, with a retry queued
    assert row_of(learner).state == S.FAILED
    work_queue.lose()  # the learner fails again before the retry runs
    deliver(send.send_passing_status, learner, COURSE, False)
    work_queue.run()
    assert_no_live_badge(credly, badge, learner)
    assert api.redrive(inline=True).ids == []


def test_pass_fail_pass_after_a_revoke_before_any_task_runs(credly, learner, deliver, work_queue):
    badge = badge_at(credly)
    first = pass_then_fail(deliver, work_queue, learner)
    for passing in (True, False, True):
        deliver(send.send_passing_status, learner, COURSE, passing)
    work_queue.run()
    row = assert_one_live_badge_recorded(credly, badge, learner)
    assert row.external_id != first
    assert credly.award_state(first) == AwardState.REVOKED


def test_reaward_gets_a_new_award_identity(credly, learner, deliver, work_queue):
    badge_at(credly)
    first = pass_then_fail(deliver, work_queue, learner)
    deliver(send.send_passing_status, learner, COURSE, True)
    row = row_of(learner)
    assert (row.state, row.external_id, row.award_number) == (S.PENDING, "", 2)
    assert list(row.awards.values_list("external_id", "number", "status")) == [(first, 1, "revoked")]


# -- defect 3: a lease that expires while a provider call runs -------------------------------------------------------


def expire_lease(row_id: int) -> None:
    BadgeIssuance.objects.filter(pk=row_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def race_inside(monkeypatch, method: str, meanwhile):
    """Run ``meanwhile(row_id)`` while the first call of a Credly client method is on its way to the provider.

    The worker has just renewed its lease and sent the request; the provider is slow, the
    lease runs out, and ``meanwhile`` happens before the answer comes back.
    """
    original_call, original_renew = getattr(CredlyProvider, method), ledger.renew
    state = {"calling": False, "raced": False}

    def call(provider, *args):
        state["calling"] = not state["raced"]
        try:
            return original_call(provider, *args)
        finally:
            state["calling"] = False

    def renew(row):
        original_renew(row)
        if state["calling"] and not state["raced"]:
            state["raced"] = True
            expire_lease(row.pk)
            meanwhile(row.pk)

    monkeypatch.setattr(CredlyProvider, method, call)
    monkeypatch.setattr(ledger, "renew", renew)


def race_inside_create(monkeypatch, meanwhile):
    race_inside(monkeypatch, "issue", meanwhile)


def test_lease_lost_during_create_never_leaves_two_live_badges(credly, learner, deliver, work_queue, monkeypatch):
    badge = badge_at(credly, RevokePolicy.NEVER, allow_duplicates=True)
    race_inside_create(monkeypatch, lambda row_id: issuing.process_issue(row_id))
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    row = assert_one_live_badge_recorded(credly, badge, learner)
    assert len(credly.requests_for("issue")) == 2
    assert len(credly.all_awards()) == 1  # the late worker's badge was undone (deleted) at the provider
    (undone,) = row.awards.filter(status="undone").values_list("external_id", flat=True)
    assert credly.award_state(undone) == AwardState.DELETED
    assert "undone" in " ".join(row.audit_entries.values_list("message", flat=True))


def test_lease_lost_during_create_then_revoked_leaves_no_live_badge(credly, learner, deliver, work_queue, monkeypatch):
    badge = badge_at(credly)

    def fail_and_revoke(row_id):
        deliver(send.send_passing_status, learner, COURSE, False)
        work_queue.run()

    race_inside_create(monkeypatch, fail_and_revoke)
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    assert_no_live_badge(credly, badge, learner)


def test_lease_lost_during_create_is_recorded_when_nobody_else_issued(
    credly, learner, deliver, work_queue, monkeypatch
):
    badge = badge_at(credly, RevokePolicy.NEVER)
    race_inside_create(monkeypatch, lambda row_id: None)  # the lease runs out, but no other worker came
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    assert_one_live_badge_recorded(credly, badge, learner)


def test_lease_lost_during_a_revoke_that_lands_after_a_re_award(credly, learner, deliver, work_queue, monkeypatch):
    badge = badge_at(credly)
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    first = row_of(learner).external_id

    def met_again_and_kept(row_id):  # the badge is still live when the second worker checks it
        deliver(send.send_passing_status, learner, COURSE, True)
        work_queue.run()
        assert (row_of(learner).state, row_of(learner).external_id) == (S.ISSUED, first)

    race_inside(monkeypatch, "revoke", met_again_and_kept)
    deliver(send.send_passing_status, learner, COURSE, False)
    work_queue.run()  # the late revoke lands: the badge the row kept is gone, so it is awarded again
    row = assert_one_live_badge_recorded(credly, badge, learner)
    assert row.external_id != first
    assert row.award_number == 2
    assert dict(row.awards.values_list("external_id", "status")) == {first: "revoked", row.external_id: "live"}


def test_a_worker_that_lost_its_lease_calls_the_provider_no_more(credly, learner, deliver, work_queue, monkeypatch):
    badge = badge_at(credly, RevokePolicy.NEVER)
    original = issuing.issue_request_for
    sent_by_second_worker = []

    def lose_lease_first(row):
        if not sent_by_second_worker:
            sent_by_second_worker.append(0)
            expire_lease(row.pk)
            issuing.process_issue(row.pk)  # a second worker takes the row and issues
            sent_by_second_worker[0] = len(credly.server.journal)
        return original(row)

    monkeypatch.setattr(issuing, "issue_request_for", lose_lease_first)
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    assert_one_live_badge_recorded(credly, badge, learner)
    assert len(credly.requests_for("issue")) == 1
    assert len(credly.server.journal) == sent_by_second_worker[0]  # the first worker sent nothing more


def test_lease_must_outlast_one_provider_request(settings):
    settings.BADGES_BRIDGE_HTTP_TIMEOUT = (5, 30)
    settings.BADGES_BRIDGE_LEASE_SECONDS = 40
    assert "badges_bridge.E005" in [message.id for message in checks.run_checks()]
    settings.BADGES_BRIDGE_LEASE_SECONDS = 300
    assert "badges_bridge.E005" not in [message.id for message in checks.run_checks()]


# -- defect 4: "missing from the listing" is not "deleted" ------------------------------------------------------------


def test_drift_check_confirms_a_missing_badge_before_changing_the_row(credly, deliver, work_queue, django_user_model):
    badge = badge_at(credly, RevokePolicy.NEVER)
    learners = [
        django_user_model.objects.create_user(
            username=f"l{i}", email=f"l{i}@example.com", first_name="L", last_name="N"
        )
        for i in range(5)
    ]
    for person in learners:
        deliver(send.send_passing_status, person, COURSE, True)
    work_queue.run()
    rows = {row.user_id: row for row in BadgeIssuance.objects.all()}
    listing = [str(award["id"]) for award in credly.all_awards()]
    deleted = listing[0]
    credly.set_page_size(2)
    # The first badge is deleted at the provider while the check reads page 2: the pages shift by one.
    credly.inject("find", "hook", skip=1, action=lambda request: credly.set_award_state(deleted, AwardState.DELETED))
    account = badge.template.account.name
    assert api.check_drift() == {account: 0}  # listed before it went; no other badge is taken for gone
    assert set(BadgeIssuance.objects.values_list("state", flat=True)) == {S.ISSUED}
    assert api.check_drift() == {account: 1}  # the next check sees it missing, and confirms it
    states = {row.external_id: row.state for row in BadgeIssuance.objects.all()}
    assert states.pop(deleted) == S.REVOKED
    assert set(states.values()) == {S.ISSUED}
    assert len(rows) == 5


# -- defect 8: a met criterion while a revoke is dead -----------------------------------------------------------------


def test_met_again_while_a_revoke_is_dead_keeps_the_badge(credly, learner, deliver, work_queue):
    badge = badge_at(credly)
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    first = row_of(learner).external_id
    credly.inject("revoke", "status", status=400, body={"data": {"message": "Bad request"}}, times=None)
    deliver(send.send_passing_status, learner, COURSE, False)
    work_queue.run()
    assert (row_of(learner).state, row_of(learner).operation) == (S.DEAD, Operation.REVOKE)
    credly.server.faults.clear()
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    row = assert_one_live_badge_recorded(credly, badge, learner)
    assert row.external_id == first
    assert not api.retry_issuance(row.pk, "admin:user#1").applied  # nothing left for an operator's retry to revoke
    work_queue.run()
    assert_one_live_badge_recorded(credly, badge, learner)


# -- defect 9: out-of-order delivery before any row exists ------------------------------------------------------------


def send_at(learner, passing: bool, minutes_ago: int, event_id: str) -> None:
    metadata = SimpleNamespace(id=event_id, event_type="t", time=timezone.now() - timedelta(minutes=minutes_ago))
    data = send.passing_status_data(learner, COURSE, passing)
    handlers.on_course_passing_status(course_passing_status=data, metadata=metadata)


def test_older_met_event_after_a_newer_unmet_one_issues_nothing(credly, learner, deliver, work_queue):
    badge = badge_at(credly)
    deliver(send_at, learner, False, 1, "newer-unmet")
    deliver(send_at, learner, True, 5, "older-met")
    work_queue.run()
    assert credly.live_awards(badge.template.external_id, learner.email) == []
    assert row_of(learner).state == S.NOT_MET
    deliver(send_at, learner, True, 0, "newest-met")
    work_queue.run()
    assert_one_live_badge_recorded(credly, badge, learner)


def test_older_met_event_still_issues_when_badges_are_never_revoked(credly, learner, deliver, work_queue):
    badge = badge_at(credly, RevokePolicy.NEVER)
    deliver(send_at, learner, False, 1, "newer-unmet")
    assert not BadgeIssuance.objects.exists()  # without a revoke policy an unmet event records nothing
    deliver(send_at, learner, True, 5, "older-met")
    work_queue.run()
    assert_one_live_badge_recorded(credly, badge, learner)


# -- defect 10: a row whose worker never reports back ----------------------------------------------------------------


def test_claim_gives_up_after_the_maximum_attempts(credly, learner, deliver, work_queue, settings):
    badge_at(credly)
    settings.BADGES_BRIDGE_MAX_ATTEMPTS = 2
    deliver(send.send_passing_status, learner, COURSE, True)
    row_id = row_of(learner).pk
    for _ in range(2):  # each worker dies (out of memory, hard time limit) before it reports
        assert ledger.claim(row_id, Operation.ISSUE) is not None
        expire_lease(row_id)
    assert ledger.claim(row_id, Operation.ISSUE) is None
    row = row_of(learner)
    assert row.state == S.DEAD
    assert "2 attempts" in row.last_error
    assert credly.all_awards() == []


# -- defect 13: Accredible re-award after an expire-mode revoke --------------------------------------------------------


@pytest.mark.parametrize("expired_blocks", [True, False], ids=["expired-blocks", "expired-does-not-block"])
@pytest.mark.parametrize("revoke_mode", ["default", "delete"])
def test_accredible_pass_fail_pass(accredible, learner, deliver, work_queue, expired_blocks, revoke_mode):
    accredible.server.expired_blocks_duplicates = expired_blocks
    badge = badge_at(accredible, revoke_mode=revoke_mode)
    first = pass_then_fail(deliver, work_queue, learner)
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    row = assert_one_live_badge_recorded(accredible, badge, learner)
    if revoke_mode == "default":  # the credential this plugin expired is brought back, not created again
        assert row.external_id == first
        assert len(accredible.all_awards()) == 1
    else:
        assert row.external_id != first
