"""The exactly-once defects, staged end to end on the real stack.

``tests/test_exactly_once.py`` stages these interleavings in one process with a deferred
broker. Here the same scenarios run through the real receivers in this process, MariaDB,
Redis, ``celery worker`` processes the test starts (paused, resumed or given a short lease
to order things) and the fake providers over HTTP. Each test ends with the invariant of
the ledger checked against the fake provider (:func:`assert_exactly_once`).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from badges_bridge import api
from badges_bridge.models import AuditEntry, AwardStatus, BadgeIssuance, IssuanceState, Operation, RevokePolicy
from badges_bridge.providers.base import AwardState
from badges_bridge.testing.invariant import assert_exactly_once
from badges_bridge.testing.setup import make_course_badge, make_template
from tests.integration.faults.conftest import broker_client, queue_length, wait_for_log
from tests.integration.helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

S = IssuanceState
credly_only = pytest.mark.parametrize("provider_server", ["credly"], indirect=True)
accredible_only = pytest.mark.parametrize("provider_server", ["accredible"], indirect=True)
#: What the issue task answers when the row is not due (or taken): it does nothing.
NOT_DUE = "not due or taken by another worker"


def revoke_when_unmet(world) -> None:
    world.badge.revoke_policy = RevokePolicy.CRITERION_UNMET
    world.badge.save()


def row_state(world, learner) -> str:
    return world.row(learner).state


def wait_for_state(world, learner, state: str, timeout: float = 30.0) -> BadgeIssuance:
    return wait_until(
        lambda: BadgeIssuance.objects.filter(user=learner, state=state).first(), timeout, f"the row to be {state}"
    )


def audit_messages(row) -> list[str]:
    return list(AuditEntry.objects.filter(issuance=row).order_by("id").values_list("message", flat=True))


def pass_then_fail(world, events, settle, learner) -> str:
    """Issue, then revoke the learner's badge; return the revoked badge's id."""
    events.passing(learner, world.course_key, True)
    settle()
    first = world.row(learner).external_id
    events.passing(learner, world.course_key, False)
    settle()
    assert row_state(world, learner) == S.REVOKED
    return first


# -- defect 1: a re-award keeps the revoked badge's id -----------------------------------------------------------


@credly_only
def test_reaward_whose_answer_was_lost_then_unmet_leaves_no_live_badge(world, events, workers, settle):
    """The re-award's create is committed at the provider, its answer lost; the learner fails before the retry."""
    revoke_when_unmet(world)
    worker = workers.start("worker", BADGES_BRIDGE_RETRY_BASE_SECONDS=4, BADGES_BRIDGE_RETRY_MAX_SECONDS=4)
    ada = world.learner("ada")
    first = pass_then_fail(world, events, settle, ada)
    world.harness.inject("issue", "commit_then_drop")

    events.passing(ada, world.course_key, True)
    failed = wait_for_state(world, ada, S.FAILED)  # the retry is queued with a countdown of 2 to 4 s
    assert failed.next_attempt_at > timezone.now()
    (created,) = world.live_ids(ada)  # the badge the lost answer named
    assert created != first
    skipped = worker.log_text().count(NOT_DUE)
    events.passing(ada, world.course_key, False)  # before the retry runs
    settle()
    wait_for_log(worker, NOT_DUE, skipped + 1)  # the retry came, found the row revoked and did nothing

    assert_exactly_once(world.harness, world.badge, [], [ada])
    assert world.harness.award_state(created) == AwardState.REVOKED
    assert len(world.harness.requests_for("issue")) == 2


@pytest.mark.parametrize("provider_server", ["credly", "accredible"], indirect=True)
def test_pass_fail_pass_arriving_before_the_queued_tasks_run(world, events, workers, settle, celery_app, fault_queue):
    """After a revoke, pass, fail and pass are recorded while the worker is paused; their three tasks run after."""
    revoke_when_unmet(world)
    worker = workers.start("worker")
    ada = world.learner("ada")
    first = pass_then_fail(world, events, settle, ada)

    worker.pause(celery_app)
    for passing in (True, False, True):
        events.passing(ada, world.course_key, passing)
    assert queue_length(broker_client(celery_app), fault_queue) == 3
    worker.resume(celery_app)
    settle()

    assert_exactly_once(world.harness, world.badge, [ada])
    row = world.row(ada)
    if world.harness.kind == "credly":  # a revoked Credly badge cannot come back: a new one, a new award
        assert row.external_id != first
        assert world.harness.award_state(first) == AwardState.REVOKED
    else:  # Accredible: the credential this plugin expired is brought back
        assert row.external_id == first
    assert row.award_number == 2


# -- defect 3: a lease that runs out while a provider call is still running -------------------------------------------


LEASE_RACES = ["another-worker-issues", "another-worker-fails", "not-met-meanwhile"]


@credly_only
@pytest.mark.parametrize("race", LEASE_RACES)
def test_lease_lost_during_a_slow_create(world, events, workers, settle, settings, celery_app, race):
    """The slow worker's lease runs out inside its create; another worker takes the row; the late result is kept.

    another-worker-issues: the other worker creates the badge (the template allows duplicates,
    so the late create makes a second one), and the reconcile undoes the late badge.
    another-worker-fails: the other worker's create fails, and the reconcile adopts the late badge.
    not-met-meanwhile: the learner fails, the other worker finds nothing to revoke, and the
    reconcile undoes the late badge.
    """
    settings.BADGES_BRIDGE_REDRIVE_GRACE_SECONDS = 0
    if race == "another-worker-issues":
        template = make_template(world.badge.template.account, world.harness, name="Twice", allow_duplicates=True)
        world.badge.delete()
        world.badge = make_course_badge(template, world.course_key)
    if race == "not-met-meanwhile":
        revoke_when_unmet(world)
    slow = workers.start("slow", wait=False, BADGES_BRIDGE_LEASE_SECONDS=2, BADGES_BRIDGE_HTTP_TIMEOUT=[2, 20])
    other = workers.start("other", wait=False, BADGES_BRIDGE_RETRY_BASE_SECONDS=60, BADGES_BRIDGE_RETRY_MAX_SECONDS=60)
    workers.ready(slow, other)
    other.pause(celery_app)
    world.harness.inject("issue", "slow", delay=8.0, times=1)
    if race == "another-worker-fails":
        world.harness.inject("issue", "status", status=503, times=1)
    ada = world.learner("ada")

    events.passing(ada, world.course_key)
    world.harness.wait_for_arrival("issue", timeout=30)  # the slow worker's create is held by the provider
    slow.pause(celery_app)
    other.resume(celery_app)
    wait_until(
        lambda: world.row(ada).lease_expires_at < timezone.now(), timeout=10, what="the slow worker's lease to run out"
    )
    if race == "not-met-meanwhile":
        events.passing(ada, world.course_key, False)
    else:
        api.redrive()  # the row is issuing with no live lease: it goes to the queue again
    expected = {"another-worker-issues": S.ISSUED, "another-worker-fails": S.FAILED, "not-met-meanwhile": S.REVOKED}
    wait_for_state(world, ada, expected[race], timeout=20)
    # The other worker got there while the slow create is still held: only its own badge exists, if any.
    assert len(world.harness.all_awards()) == (1 if race == "another-worker-issues" else 0)

    wait_until(
        lambda: AuditEntry.objects.filter(message__contains="after its lease had run out").exists(),
        timeout=20,
        what="the slow worker to record its late badge as unconfirmed",
    )
    settle(30)  # the other worker reconciles the late badge

    row = world.row(ada)
    messages = audit_messages(row)
    history = dict(row.awards.values_list("external_id", "status"))
    if race == "another-worker-fails":
        assert_exactly_once(world.harness, world.badge, [ada])
        assert history == {row.external_id: AwardStatus.LIVE}  # the late badge became the row's own
        assert any(message.startswith("adopted badge") for message in messages), messages
        assert row.attempts == 2
        return
    (late,) = [external_id for external_id, status in history.items() if status == AwardStatus.UNDONE]
    assert world.harness.award_state(late) == AwardState.DELETED
    assert any("undone at the provider" in message for message in messages), messages
    if race == "another-worker-issues":
        assert_exactly_once(world.harness, world.badge, [ada])
        assert history[row.external_id] == AwardStatus.LIVE
    else:
        assert_exactly_once(world.harness, world.badge, [], [ada])


# -- defect 8: a "met" event while a revoke is dead --------------------------------------------------------------------


@pytest.mark.parametrize("provider_server", ["credly", "accredible"], indirect=True)
def test_met_again_while_a_revoke_is_dead_keeps_the_badge(world, events, workers, settle):
    revoke_when_unmet(world)
    workers.start("worker")
    ada = world.learner("ada")
    events.passing(ada, world.course_key, True)
    settle()
    first = world.row(ada).external_id
    world.harness.inject("revoke", "status", status=400, body={"message": "Bad request"}, times=None)

    events.passing(ada, world.course_key, False)
    settle()
    row = world.row(ada)
    assert (row.state, row.operation) == (S.DEAD, Operation.REVOKE)
    world.harness.server.faults.clear()
    events.passing(ada, world.course_key, True)
    settle()

    assert_exactly_once(world.harness, world.badge, [ada])
    row = world.row(ada)
    assert row.external_id == first
    assert not api.retry_issuance(row.pk, "admin:user#1").applied  # nothing left for an operator's retry to revoke
    settle()
    assert_exactly_once(world.harness, world.badge, [ada])


# -- defect 9: an older "met" event after a newer "not met" one -------------------------------------------------------


@pytest.mark.parametrize("provider_server", ["credly", "accredible"], indirect=True)
def test_older_met_event_after_a_newer_unmet_one_issues_nothing(world, events, workers, settle):
    revoke_when_unmet(world)
    workers.start("worker")
    ada = world.learner("ada")
    now = timezone.now()

    events.passing_at(ada, world.course_key, False, now - timedelta(minutes=1))
    events.passing_at(ada, world.course_key, True, now - timedelta(minutes=5))  # delivered late
    settle()
    assert row_state(world, ada) == S.NOT_MET
    assert_exactly_once(world.harness, world.badge, [], [ada])
    assert world.harness.requests_for("issue") == []

    events.passing_at(ada, world.course_key, True, now)
    settle()
    assert_exactly_once(world.harness, world.badge, [ada])


# -- defect 13: Accredible re-award after an expire-mode revoke --------------------------------------------------------


@accredible_only
@pytest.mark.parametrize("expired_blocks", [True, False], ids=["expired-blocks", "expired-does-not-block"])
@pytest.mark.parametrize("revoke_mode", ["default", "delete"])
def test_accredible_pass_fail_pass(world, events, workers, settle, expired_blocks, revoke_mode):
    world.harness.server.expired_blocks_duplicates = expired_blocks
    account = world.badge.template.account
    account.revoke_mode = revoke_mode
    account.save()
    revoke_when_unmet(world)
    workers.start("worker")
    ada = world.learner("ada")

    first = pass_then_fail(world, events, settle, ada)
    assert world.harness.award_state(first) == (AwardState.EXPIRED if revoke_mode == "default" else AwardState.DELETED)
    events.passing(ada, world.course_key, True)
    settle()

    assert_exactly_once(world.harness, world.badge, [ada])
    row = world.row(ada)
    if revoke_mode == "default":  # the credential this plugin expired is brought back, not created again
        assert row.external_id == first
        assert len(world.harness.all_awards()) == 1
    else:
        assert row.external_id != first
