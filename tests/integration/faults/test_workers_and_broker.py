"""Faults of the real stack: a killed worker, racing workers, a restarted broker, a rolled-back sender.

Every test starts its own ``celery worker`` processes on a queue of its own, sends real
openedx-events events through the plugin's receivers in this process, and ends with the
invariant of the ledger checked against the fake provider (:func:`assert_exactly_once`).
"""

from __future__ import annotations

import pytest
from django.db import transaction

from badges_bridge import tasks
from badges_bridge.models import AuditEntry, BadgeIssuance, IssuanceState, RevokePolicy
from badges_bridge.testing.invariant import assert_exactly_once
from badges_bridge.testing.setup import make_course_badge, make_template
from tests.integration.faults.conftest import broker_at, broker_client, queue_length
from tests.integration.helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

S = IssuanceState


def last_message(row) -> str:
    return AuditEntry.objects.filter(issuance=row).order_by("id").last().message


def succeeded(worker, task: str = "issue_badge") -> int:
    """How many tasks of this kind the worker's log says it ran to the end."""
    return sum(
        1
        for line in worker.log_text().splitlines()
        if f"badges_bridge.tasks.{task}[" in line and "succeeded in" in line
    )


# -- kill -9 in the middle of an issue ----------------------------------------------------------------------------


@pytest.mark.parametrize("late_commit", [False, True], ids=["new-worker-adopts", "new-worker-creates"])
def test_worker_killed_in_the_middle_of_an_issue(world, events, workers, settle, settings, late_commit):
    """The worker dies while the provider holds its create; the redrive hands the row to a new worker.

    new-worker-adopts: the slow create is committed at the provider before the new worker looks,
    so its look-up adopts that badge. new-worker-creates: the create is still held when the new
    worker looks, so it creates the badge; the dead worker's create then lands and is refused as
    a duplicate (the template allows none).
    """
    settings.BADGES_BRIDGE_REDRIVE_GRACE_SECONDS = 0
    delay = 10.0 if late_commit else 0.5
    doomed = workers.start("doomed", BADGES_BRIDGE_LEASE_SECONDS=2, BADGES_BRIDGE_HTTP_TIMEOUT=[2, 20])
    world.harness.inject("issue", "slow", delay=delay, times=1)
    ada = world.learner("ada")

    events.passing(ada, world.course_key)
    world.harness.wait_for_arrival("issue", timeout=30)  # the worker is inside its create
    row = world.row(ada)
    assert (row.state, row.attempts) == (S.ISSUING, 1)
    assert row.lease_token
    doomed.kill()
    if not late_commit:
        wait_until(lambda: world.harness.requests_for("issue"), timeout=10, what="the create to be committed")
        assert len(world.harness.all_awards()) == 1

    workers.start("rescuer")
    settle(60)  # the redrive queues the row again once the dead worker's lease has run out

    if late_commit:
        # At least two, so that a third create fails the exact check below with what the fake received.
        wait_until(lambda: len(world.harness.requests_for("issue")) >= 2, timeout=60, what="the dead worker's create")
    assert_exactly_once(world.harness, world.badge, [ada])
    row = world.row(ada)
    assert row.attempts == 2
    assert world.harness.duplicates_created() == 0
    if late_commit:
        assert last_message(row) == "issued"
        assert [entry.status // 100 for entry in world.harness.requests_for("issue")] == [2, 4]
    else:
        assert "adopted" in last_message(row)
        assert len(world.harness.requests_for("issue")) == 1


# -- two workers racing on the same rows ----------------------------------------------------------------------------


def test_two_workers_race_on_the_same_rows(world, events, workers, settle, celery_app):
    """Two worker processes take the same rows: duplicate messages, and pass-then-fail learners, race.

    The template allows duplicates at the provider, so only the ledger (claims and leases)
    stands between the racing workers and a second badge.
    """
    template = make_template(world.badge.template.account, world.harness, name="Racy", allow_duplicates=True)
    world.badge.delete()
    world.badge = make_course_badge(template, world.course_key, revoke_policy=RevokePolicy.CRITERION_UNMET)
    world.harness.server.latency = 0.02  # long enough for the workers' requests to overlap
    first = workers.start("racer-a", concurrency=4, wait=False)
    second = workers.start("racer-b", concurrency=4, wait=False)
    workers.ready(first, second)
    passing = [world.learner(f"pass{i}") for i in range(24)]
    failing = [world.learner(f"fail{i}") for i in range(8)]

    for worker in (first, second):  # the messages pile up, each event's task next to two copies of it
        worker.pause(celery_app)
    for learner in passing:
        events.passing(learner, world.course_key)
        send_copies(world.row(learner), 2)
    for learner in failing:  # passed, then failed before the issue runs
        events.passing(learner, world.course_key)
        send_copies(world.row(learner), 2)
        events.passing(learner, world.course_key, False)
        send_copies(world.row(learner), 2)
    for worker in (first, second):
        worker.resume(celery_app)
    settle(90)

    assert_exactly_once(world.harness, world.badge, passing, failing)
    issued = world.harness.requests_for("issue")
    assert len([entry for entry in issued if entry.status in (200, 201)]) <= len(passing) + len(failing)
    assert world.harness.duplicates_created() == 0
    assert succeeded(first) > 0, "the first worker took no task"
    assert succeeded(second) > 0, "the second worker took no task"


def send_copies(row, copies: int) -> None:
    """Queue the row's current task again, as a broker that delivers a message more than once."""
    for _copy in range(copies):
        tasks.TASKS[row.operation].apply_async((row.pk,), **tasks.queue_options())


# -- Redis restarted between the ledger write and the task -----------------------------------------------------------


def test_redis_restart_loses_the_task_and_the_redrive_recovers(
    world, events, workers, settle, settings, own_redis, celery_app, fault_queue
):
    """The broker keeps nothing on disk: its restart loses the queued tasks; the rows stay, the redrive sends them."""
    learners = [world.learner(f"l{i}") for i in range(3)]
    workers.broker_url = own_redis.url
    with broker_at(celery_app, own_redis.url):
        worker = workers.start("survivor")
        worker.pause(celery_app)  # the ledger writes commit, the tasks wait at the broker
        for learner in learners:
            events.passing(learner, world.course_key)
        assert queue_length(own_redis.client(), fault_queue) == len(learners)

        own_redis.restart()
        assert queue_length(own_redis.client(), fault_queue) == 0
        wait_until(lambda: _answers(celery_app, worker), timeout=30, what="the worker to reconnect to the new Redis")
        worker.resume(celery_app)
        assert set(BadgeIssuance.objects.values_list("state", "attempts")) == {(S.PENDING, 0)}
        assert not world.harness.server.journal  # no task reached the worker

        settings.BADGES_BRIDGE_REDRIVE_GRACE_SECONDS = 0
        settle(60)

    assert_exactly_once(world.harness, world.badge, learners)
    assert set(BadgeIssuance.objects.values_list("attempts", flat=True)) == {1}
    assert credentials_sent(world.harness) == len(learners)  # each badge created once, alone or in a bulk create


def credentials_sent(harness) -> int:
    """Badges asked for in create requests, single or bulk (bulk creates exist where the provider has them)."""
    sent = len(harness.requests_for("issue"))
    if harness.kind == "accredible":
        sent += sum(len(entry.json()["credentials"]) for entry in harness.requests_for("bulk_issue"))
    return sent


def _answers(app, worker) -> bool:
    try:
        return bool(app.control.ping(destination=[worker.node], timeout=0.5))
    except Exception:  # noqa: BLE001 - the broker connection is being re-established
        return False


# -- the sender's transaction rolled back ----------------------------------------------------------------------------


def test_rolled_back_sender_leaves_no_row_no_task_no_badge(world, events, workers, settle, celery_app, fault_queue):
    """An event sent inside a transaction that then fails leaves nothing behind; the next one works."""
    ada, bob = world.learner("ada"), world.learner("bob")
    broker = broker_client(celery_app)

    def send_then_fail():
        with transaction.atomic():
            events.passing(ada, world.course_key)
            assert BadgeIssuance.objects.filter(user=ada).exists()  # written in the sender's transaction
            raise RuntimeError("the sender failed after the event")

    with pytest.raises(RuntimeError, match="the sender failed"):
        send_then_fail()

    assert not BadgeIssuance.objects.filter(user=ada).exists()
    assert not AuditEntry.objects.exists()
    assert queue_length(broker, fault_queue) == 0  # no task was published

    workers.start("worker")
    events.passing(bob, world.course_key)  # the same path works once the transaction commits
    settle()

    assert_exactly_once(world.harness, world.badge, [bob], [ada])
    assert not any(ada.email in entry.body or ada.email in str(entry.query) for entry in world.harness.server.journal)
