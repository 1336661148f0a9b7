"""The whole chain: openedx-events signal -> receiver -> ledger row -> Celery task -> provider client -> fake provider.

Every test runs against both fake providers over loopback HTTP. In the default
mode the tasks run eagerly in this process on SQLite; with
``BADGES_BRIDGE_TEST_DB=mysql BADGES_BRIDGE_TEST_CELERY=worker`` they go through
Redis to a real worker process writing into MariaDB. ``drain`` waits for the
ledger to settle in both modes.
"""

from __future__ import annotations

import io
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.management import call_command, get_commands
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from badges_bridge import api, tasks
from badges_bridge.conf import get_setting
from badges_bridge.models import AuditEntry, BadgeIssuance, IssuanceState, Operation, RejectedEvent, RevokePolicy
from badges_bridge.providers.base import AwardState
from badges_bridge.signals import handlers
from tests.integration.helpers import WORKER_MODE, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

S = IssuanceState


def retire_template(harness, template_id: str) -> str:
    """Make the template unusable at the fake so that issuing is refused with a 422; return the expected reason."""
    if harness.kind == "credly":
        harness.server.set_template_state(harness.organization().id, template_id, "archived")
        return "archived"
    if harness.kind == "accredible":
        with harness.server.lock:
            del harness.server.account("main").groups[int(template_id)]
        return "Invalid Group"
    raise NotImplementedError(harness.kind)


# -- the happy path -----------------------------------------------------------------------------------------------


def test_passing_learner_gets_exactly_one_badge(world, events, drain):
    ada = world.learner("ada")

    metadata = events.passing(ada, world.course_key)
    drain()

    row = world.row(ada)
    award = world.assert_one_live_badge(ada)
    assert row.state == S.ISSUED
    assert row.external_id == str(award["id"])
    assert row.public_url.startswith("http")
    assert row.provider_state in (AwardState.PENDING, AwardState.ACCEPTED)
    assert row.qualified_at == metadata.time
    assert row.issued_at >= metadata.time  # issued after the learner qualified
    assert row.event_id == str(metadata.id)
    assert row.event_type == metadata.event_type == "org.openedx.learning.course.passing.status.updated.v1"
    assert row.event_time == metadata.time
    assert row.course_run_key == str(world.course_key)
    assert row.attempts == 1
    assert row.confirmed_at is not None
    assert (row.last_error, row.lease_token, row.lease_expires_at, row.next_attempt_at) == ("", "", None, None)
    audit = list(AuditEntry.objects.filter(issuance=row).order_by("id"))
    assert [(entry.from_state, entry.to_state) for entry in audit] == [
        ("", S.PENDING),
        (S.PENDING, S.ISSUING),
        (S.ISSUING, S.ISSUED),
    ]
    assert audit[0].event_id == str(metadata.id)
    assert audit[0].actor == f"event:{metadata.event_type}"
    assert audit[-1].actor == "task:issue"
    assert len(world.harness.requests_for("issue")) == 1
    assert not RejectedEvent.objects.exists()


def test_the_same_event_delivered_three_times_gives_one_badge(world, events, drain):
    ada = world.learner("ada")

    metadata = events.passing(ada, world.course_key)
    events.redeliver(metadata, ada, world.course_key)  # while the first delivery's task may still be running
    drain()
    events.redeliver(metadata, ada, world.course_key)  # after the badge was issued
    drain()

    assert BadgeIssuance.objects.count() == 1
    row = world.row(ada)
    assert row.state == S.ISSUED
    assert row.event_id == str(metadata.id)
    assert world.transitions(row) == [("", S.PENDING), (S.PENDING, S.ISSUING), (S.ISSUING, S.ISSUED)]
    assert AuditEntry.objects.count() == 3
    world.assert_one_live_badge(ada)
    assert len(world.harness.requests_for("issue")) == 1
    assert not RejectedEvent.objects.exists()


def test_pass_fail_pass_revokes_then_awards_again(world, events, drain):
    world.badge.revoke_policy = RevokePolicy.CRITERION_UNMET
    world.badge.save()
    ada = world.learner("ada")

    events.passing(ada, world.course_key, True)
    drain()
    first = world.row(ada).external_id
    assert world.live_ids(ada) == [first]

    events.passing(ada, world.course_key, False)
    drain()
    row = world.row(ada)
    assert row.state == S.REVOKED
    assert row.revoked_at is not None
    assert world.harness.award_state(first) in (AwardState.REVOKED, AwardState.EXPIRED)
    assert world.live(ada) == []

    events.passing(ada, world.course_key, True)
    drain()
    row = world.row(ada)
    award = world.assert_one_live_badge(ada)
    assert row.state == S.ISSUED
    assert row.external_id == str(award["id"])
    assert row.revoked_at is None
    assert row.award_number == 2
    if world.harness.kind == "accredible":  # the credential this plugin expired is brought back
        assert row.external_id == first
        assert len(world.harness.all_awards()) == 1
    else:  # Credly cannot bring a revoked badge back: a new one is issued
        assert row.external_id != first
        assert world.harness.award_state(first) == AwardState.REVOKED
    assert [to for _from, to in world.transitions(row)] == [
        S.PENDING,
        S.ISSUING,
        S.ISSUED,
        S.REVOKE_PENDING,
        S.REVOKED,
        S.PENDING,
        S.ISSUING,
        S.ISSUED,
    ]
    assert BadgeIssuance.objects.count() == 1


def test_pass_fail_pass_keeps_the_badge_when_the_policy_is_never(world, events, drain):
    assert world.badge.revoke_policy == RevokePolicy.NEVER
    ada = world.learner("ada")

    events.passing(ada, world.course_key, True)
    drain()
    first = world.row(ada).external_id
    events.passing(ada, world.course_key, False)
    drain()
    assert world.row(ada).state == S.ISSUED
    assert world.live_ids(ada) == [first]
    events.passing(ada, world.course_key, True)
    drain()

    row = world.row(ada)
    assert row.state == S.ISSUED
    assert row.external_id == first
    assert world.live_ids(ada) == [first]
    assert world.harness.duplicates_created() == 0
    assert len(world.harness.requests_for("issue")) == 1
    assert len(world.harness.requests_for("revoke")) == 0


# -- provider failures ---------------------------------------------------------------------------------------------


def test_unavailable_provider_is_retried(world, events, drain):
    world.harness.inject("issue", status=503, body={"message": "Service Unavailable"}, times=1)
    ada = world.learner("ada")

    events.passing(ada, world.course_key)
    drain()

    row = world.row(ada)
    world.assert_one_live_badge(ada)
    assert row.state == S.ISSUED
    assert row.attempts == 2
    assert row.last_error == ""
    assert world.transitions(row) == [
        ("", S.PENDING),
        (S.PENDING, S.ISSUING),
        (S.ISSUING, S.FAILED),
        (S.FAILED, S.ISSUING),
        (S.ISSUING, S.ISSUED),
    ]
    failure = AuditEntry.objects.get(issuance=row, to_state=S.FAILED)
    assert "503" in failure.message
    assert len(world.harness.requests_for("issue")) == 2


def test_provider_down_for_good_gives_up_after_max_attempts(world, events, drain):
    world.harness.inject("issue", status=503, times=None)
    ada = world.learner("ada")
    max_attempts = get_setting("MAX_ATTEMPTS")

    events.passing(ada, world.course_key)
    drain()

    row = world.row(ada)
    assert row.state == S.DEAD
    assert row.attempts == max_attempts
    assert row.last_error.startswith(f"gave up after {max_attempts} attempts")
    assert "503" in row.last_error
    assert len(world.harness.requests_for("issue")) == max_attempts
    assert world.harness.all_awards() == []


def test_failed_revoke_is_retried(world, events, drain):
    world.badge.revoke_policy = RevokePolicy.CRITERION_UNMET
    world.badge.save()
    ada = world.learner("ada")
    events.passing(ada, world.course_key, True)
    drain()
    external_id = world.row(ada).external_id
    world.harness.inject("revoke", status=503, times=1)

    events.passing(ada, world.course_key, False)
    drain()

    row = world.row(ada)
    assert row.state == S.REVOKED
    assert row.operation == Operation.REVOKE
    assert row.attempts == 2
    assert world.harness.award_state(external_id) in (AwardState.REVOKED, AwardState.EXPIRED)
    assert world.live(ada) == []
    assert len(world.harness.requests_for("revoke")) == 2


def test_rate_limited_provider_is_retried_after_retry_after(world, events, drain):
    retry_after = 2
    world.harness.inject("issue", status=429, headers={"Retry-After": str(retry_after)}, times=1)
    ada = world.learner("ada")
    sent_at = timezone.now()

    events.passing(ada, world.course_key)
    failed = wait_until(
        lambda: BadgeIssuance.objects.filter(user=ada, state=S.FAILED).first(), what="the rate-limited attempt"
    )

    assert failed.attempts == 1
    assert "429" in failed.last_error or "rate limit" in failed.last_error
    assert failed.next_attempt_at >= sent_at + timedelta(seconds=retry_after)
    assert failed.next_attempt_at - failed.state_changed_at >= timedelta(seconds=retry_after - 0.5)
    assert len(world.harness.requests_for("issue")) == 1
    if not WORKER_MODE:  # eager: nothing may run before the row is due
        assert api.redrive(inline=True).ids == []
        assert world.row(ada).state == S.FAILED

    drain()

    row = world.row(ada)
    world.assert_one_live_badge(ada)
    assert row.state == S.ISSUED
    assert row.attempts == 2
    assert row.confirmed_at >= failed.next_attempt_at
    assert len(world.harness.requests_for("issue")) == 2


def test_validation_error_is_dead_at_once(world, events, drain):
    reason = retire_template(world.harness, world.template_id)
    ada = world.learner("ada")

    events.passing(ada, world.course_key)
    drain()

    row = world.row(ada)
    assert row.state == S.DEAD
    assert row.attempts == 1
    assert row.next_attempt_at is None
    assert "422" in row.last_error
    assert reason in row.last_error
    assert "gave up" not in row.last_error  # permanent: no retry was attempted
    assert len(world.harness.requests_for("issue")) == 1
    assert world.live(ada) == []
    assert world.harness.duplicates_created() == 0
    assert api.ledger_health().dead == 1


def test_learner_without_email_is_dead_with_a_reason(world, events, drain):
    nobody = world.learner("nobody", email="")

    events.passing(nobody, world.course_key)
    drain()

    row = world.row(nobody)
    assert row.state == S.DEAD
    assert row.attempts == 1
    assert "no e-mail" in row.last_error
    assert world.harness.requests_for("issue") == []
    assert world.harness.all_awards() == []


# -- lost work -----------------------------------------------------------------------------------------------------


class _BrokerDown:
    """Stands in for a task whose broker is unreachable."""

    def apply_async(self, *args, **kwargs):
        raise OperationalError("Error 111 connecting to the broker. Connection refused.")


def _lose_the_task(how: str, events, world, user, monkeypatch) -> None:
    """Record the learner's event while the task message gets lost."""
    if how == "broker_down":
        with monkeypatch.context() as patch:
            patch.setitem(tasks.TASKS, Operation.ISSUE, _BrokerDown())
            events.passing(user, world.course_key)
    else:  # the process dies after the commit, before the message is published
        with transaction.atomic():
            queued = len(connection.run_on_commit)
            events.passing(user, world.course_key)
            assert len(connection.run_on_commit) == queued + 1
            del connection.run_on_commit[queued:]


@pytest.mark.parametrize("recovery", ["api", "command"])
@pytest.mark.parametrize("how", ["broker_down", "crash_before_publish"])
def test_lost_task_is_recovered_by_the_redrive(world, events, drain, settings, monkeypatch, how, recovery):
    ada = world.learner("ada")

    _lose_the_task(how, events, world, ada, monkeypatch)

    row = world.row(ada)
    assert (row.state, row.attempts) == (S.PENDING, 0)
    assert world.harness.requests_for("issue") == []
    assert api.redrive().ids == []  # not yet: the task may still be on its way
    # (timedelta(0) would mean "the default" to ledger_health, hence one microsecond)
    wait_until(lambda: api.ledger_health(stuck_after=timedelta(microseconds=1)).stuck == 1, 2, "a stuck row")

    settings.BADGES_BRIDGE_REDRIVE_GRACE_SECONDS = 0
    if recovery == "command":
        if "badges_bridge_redrive" not in get_commands():
            pytest.skip("the badges_bridge_redrive command does not exist")
        out = io.StringIO()
        call_command("badges_bridge_redrive", stdout=out)
        assert "1 row(s) redriven" in out.getvalue()
    else:
        assert api.redrive().ids == [row.pk]
    drain()

    row = world.row(ada)
    world.assert_one_live_badge(ada)
    assert row.state == S.ISSUED
    assert row.attempts == 1
    assert len(world.harness.requests_for("issue")) == 1


@pytest.mark.parametrize("fault", ["commit_then_fail", "commit_then_drop"])
def test_lost_response_is_adopted_not_duplicated(world, events, drain, fault):
    world.harness.inject("issue", fault, status=500, times=1)
    ada = world.learner("ada")

    events.passing(ada, world.course_key)
    drain()

    row = world.row(ada)
    award = world.assert_one_live_badge(ada)
    assert row.state == S.ISSUED
    assert row.external_id == str(award["id"])
    assert row.attempts == 2
    assert len(world.harness.requests_for("issue")) == 1  # the retry found the badge instead of creating one
    assert "adopted" in AuditEntry.objects.filter(issuance=row).order_by("id").last().message


# -- receivers ---------------------------------------------------------------------------------------------------


def test_receivers_never_raise_on_malformed_payloads(world, events, drain):
    ada = world.learner("ada")
    signal_type = "org.openedx.learning.course.passing.status.updated.v1"

    def metadata(event_id):
        return SimpleNamespace(id=event_id, event_type=signal_type, time=timezone.now())

    user = SimpleNamespace(id=ada.pk)
    handlers.on_course_passing_status(metadata=metadata("no-data"))
    handlers.on_course_passing_status(course_passing_status="garbage", metadata=metadata("garbage"))
    handlers.on_course_passing_status(
        course_passing_status=SimpleNamespace(is_passing=True, course=SimpleNamespace(course_key=12345), user=user),
        metadata=metadata("int-course-key"),
    )
    handlers.on_course_passing_status(
        course_passing_status=SimpleNamespace(
            is_passing=True, course=SimpleNamespace(course_key="not a course key"), user=user
        ),
        metadata=metadata("bad-course-key"),
    )
    handlers.on_course_passing_status(
        course_passing_status=SimpleNamespace(
            is_passing="yes", course=SimpleNamespace(course_key=world.course_key), user=user
        ),
        metadata=metadata("string-flag"),
    )
    handlers.on_grade_summary_changed(grade=SimpleNamespace(user_id=ada.pk, course=None, percent_grade=float("nan")))
    handlers.on_certificate_awarded(certificate=SimpleNamespace(user=None), metadata=None)
    handlers.on_certificate_revoked()

    rejected = {event.event_id: event for event in RejectedEvent.objects.all()}
    assert {"no-data", "garbage", "int-course-key", "bad-course-key", "string-flag"} <= set(rejected)
    assert RejectedEvent.objects.count() == 8
    assert "course" in rejected["int-course-key"].reason
    assert "not a course key" in rejected["bad-course-key"].reason
    assert all(event.reason for event in rejected.values())
    assert rejected["garbage"].event_type == signal_type
    assert not BadgeIssuance.objects.exists()
    assert world.harness.server.journal == []

    # the receivers still work afterwards
    events.passing(ada, world.course_key)
    drain()
    assert world.row(ada).state == S.ISSUED
    world.assert_one_live_badge(ada)


# -- events racing the tasks ---------------------------------------------------------------------------------------


def _in_flight(world, user) -> None:
    """Worker mode: wait until the worker has claimed the row and is talking to the provider."""
    if WORKER_MODE:
        wait_until(
            lambda: BadgeIssuance.objects.filter(user=user, state=S.ISSUING).exists(), what="the issue to be in flight"
        )


def test_criterion_lost_while_the_badge_is_being_issued(world, events, drain):
    world.badge.revoke_policy = RevokePolicy.CRITERION_UNMET
    world.badge.save()
    world.harness.inject("issue", "slow", delay=1.0, times=1)
    ada = world.learner("ada")

    events.passing(ada, world.course_key, True)
    _in_flight(world, ada)
    events.passing(ada, world.course_key, False)
    drain()

    row = world.row(ada)
    assert row.state == S.REVOKED
    assert world.live(ada) == []
    assert world.harness.duplicates_created() == 0
    assert len(world.harness.all_awards()) <= 1


def test_criterion_lost_and_met_again_while_the_badge_is_being_issued(world, events, drain):
    world.badge.revoke_policy = RevokePolicy.CRITERION_UNMET
    world.badge.save()
    world.harness.inject("issue", "slow", delay=1.0, times=1)
    ada = world.learner("ada")

    events.passing(ada, world.course_key, True)
    _in_flight(world, ada)
    events.passing(ada, world.course_key, False)
    events.passing(ada, world.course_key, True)
    drain()

    row = world.row(ada)
    award = world.assert_one_live_badge(ada)
    assert row.state == S.ISSUED
    assert row.external_id == str(award["id"])


def test_criterion_met_again_while_the_badge_is_being_revoked(world, events, drain):
    world.badge.revoke_policy = RevokePolicy.CRITERION_UNMET
    world.badge.save()
    ada = world.learner("ada")
    events.passing(ada, world.course_key, True)
    drain()
    world.harness.inject("revoke", "slow", delay=1.0, times=1)

    events.passing(ada, world.course_key, False)
    if WORKER_MODE:
        wait_until(
            lambda: BadgeIssuance.objects.filter(user=ada, state=S.REVOKE_PENDING).exclude(lease_token="").exists(),
            what="the revoke to be in flight",
        )
    events.passing(ada, world.course_key, True)
    drain()

    row = world.row(ada)
    assert row.state == S.ISSUED
    world.assert_one_live_badge(ada)
