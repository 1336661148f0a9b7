"""Celery tasks. Arguments are JSON-only (ids); the work itself lives in :mod:`badges_bridge.issuing`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from celery import shared_task
from django.core.cache import cache
from edx_django_utils.monitoring import set_code_owner_attribute

from badges_bridge import issuing
from badges_bridge.conf import get_setting
from badges_bridge.exceptions import BadgesBridgeError
from badges_bridge.ledger import RECONCILE, Work
from badges_bridge.models import MaintenanceJob, Operation

log = logging.getLogger(__name__)


def _run(process: Callable[[int], issuing.Outcome], issuance_id: int) -> str:
    """Run one pipeline step for a ledger row and queue its follow-up work."""
    outcome = process(int(issuance_id))
    schedule(outcome.follow_up)
    if outcome.resync_account is not None and issuing.claim_resync(outcome.resync_account):
        queue_template_sync(outcome.resync_account)
    if outcome.cleanup:
        enqueue_cleanup()
    return outcome.summary


@shared_task(name="badges_bridge.tasks.issue_badge", ignore_result=True)
@set_code_owner_attribute
def issue_badge(issuance_id: int) -> str:
    """Issue the badge of one ledger row (a no-op unless the row is due)."""
    return _run(issuing.process_issue, issuance_id)


@shared_task(name="badges_bridge.tasks.revoke_badge", ignore_result=True)
@set_code_owner_attribute
def revoke_badge(issuance_id: int) -> str:
    """Revoke the badge of one ledger row (a no-op unless the row is due)."""
    return _run(issuing.process_revoke, issuance_id)


@shared_task(name="badges_bridge.tasks.reconcile_badges", ignore_result=True)
@set_code_owner_attribute
def reconcile_badges(issuance_id: int) -> str:
    """Adopt or undo the badges a worker changed after it had lost its lease on a ledger row."""
    return _run(issuing.process_reconcile, issuance_id)


@shared_task(name="badges_bridge.tasks.redrive", ignore_result=True)
@set_code_owner_attribute
def redrive() -> int:
    """Periodic: replay the rejected events that are due, and queue again every row whose work is due.

    Returns the number of rows queued; the run and its result are kept as the redrive's latest run.
    """
    from badges_bridge import api

    with api.maintenance_run(MaintenanceJob.REDRIVE) as run:
        result = api.redrive()
        run.add(api.describe_redrive(result), failed=bool(result.replay_failed))
    if result.replayed or result.replay_failed:
        log.info(
            "badges_bridge: redrive replayed %d rejected event(s); %d replay(s) failed",
            result.replayed,
            result.replay_failed,
        )
    return len(result.ids)


@shared_task(name="badges_bridge.tasks.check_drift", ignore_result=True)
@set_code_owner_attribute
def check_drift() -> int:
    """Periodic: mark issued rows whose badge was deleted or expired at the provider.

    The run and its result per account are kept as the drift check's latest run.
    """
    from badges_bridge import api

    with api.maintenance_run(MaintenanceJob.DRIFT) as run:
        changed, summary = api.drift_report()
        run.add(summary, failed=any(count < 0 for count in changed.values()))
    return sum(count for count in changed.values() if count > 0)


@shared_task(name="badges_bridge.tasks.sync_templates", ignore_result=True)
@set_code_owner_attribute
def sync_templates(account_id: int) -> str:
    """Sync the templates of one provider account; the result, success or failure, is recorded on the account."""
    from badges_bridge import api

    try:
        return api.sync_account_templates(int(account_id)).describe()
    except BadgesBridgeError as err:
        log.warning("badges_bridge: template sync of account %s failed: %s", account_id, err)
        return f"failed: {err}"


def queue_template_sync(account_id: int) -> bool:
    """Queue a template sync of one account; never raises (False when the broker refused it)."""
    try:
        sync_templates.apply_async((account_id,), **queue_options())
    except Exception:  # noqa: BLE001 - a later refusal queues it again; the sync command does it by hand
        log.exception("badges_bridge: could not queue the template sync of account %s", account_id)
        return False
    return True


@shared_task(name="badges_bridge.tasks.process_provider_event", ignore_result=True)
@set_code_owner_attribute
def process_provider_event(account_id: int, event_id: str) -> str:
    """Fetch a notified event back from the account's provider and apply what was fetched."""
    from badges_bridge import provider_events

    return provider_events.process(int(account_id), str(event_id))


@shared_task(name="badges_bridge.tasks.erase_retired_badges", ignore_result=True)
@set_code_owner_attribute
def erase_retired_badges() -> int:
    """Revoke or delete at their providers the badges of retired learners that are due; returns how many were done."""
    from badges_bridge import retirement

    done, _failed = retirement.process_due_cleanups(get_setting("REDRIVE_BATCH_SIZE"))
    return done


@shared_task(name="badges_bridge.tasks.retire_learner", ignore_result=True)
@set_code_owner_attribute
def retire_learner(user_id: int) -> int:
    """Retire a learner (queued when the retirement receiver could not do it in place); returns the rows erased."""
    from badges_bridge import api

    return api.retire_learner(int(user_id)).rows


FEEDER_KEY = "badges_bridge:backfill-feeder"


@shared_task(name="badges_bridge.tasks.feed_backfill", ignore_result=True)
@set_code_owner_attribute
def feed_backfill() -> int:
    """Queue the backfill rows the budget has room for; runs again while some wait. Returns the rows queued."""
    from badges_bridge import backfill

    cache.delete(FEEDER_KEY)
    result = backfill.feed(
        lambda issuance_id: send(issue_badge, (issuance_id,), f"backfill issue of {issuance_id}", backfill=True)
    )
    if result.waiting and not feed_backfill.request.is_eager:  # eager (tests): the redrive starts the next run
        schedule_feeder(get_setting("BACKFILL_FEED_SECONDS"))
    return sum(result.queued.values())


def schedule_feeder(countdown: float | None = None) -> bool:
    """Queue the feeder unless a run is already queued (one chain at a time); never raises."""
    seconds = float(get_setting("BACKFILL_FEED_SECONDS"))
    if not cache.add(FEEDER_KEY, 1, timeout=int((countdown or 0) + 3 * seconds) + 1):
        return False
    if send(feed_backfill, (), "the backfill feeder", countdown, backfill=True):
        return True
    cache.delete(FEEDER_KEY)
    return False


@shared_task(name="badges_bridge.tasks.run_backfill", ignore_result=True)
@set_code_owner_attribute
def run_backfill(run_id: int) -> str:
    """Run a backfill run that course staff started, writing its progress (a no-op unless the run is queued)."""
    from badges_bridge import course_setup

    return course_setup.perform_backfill(int(run_id))


def queue_backfill_run(run_id: int) -> bool:
    """Queue a backfill run's task on the backfill queue; never raises (a run whose task was refused goes stale)."""
    return send(run_backfill, (run_id,), f"backfill run {run_id}", backfill=True)


TASKS = {Operation.ISSUE: issue_badge, Operation.REVOKE: revoke_badge, RECONCILE: reconcile_badges}


def queue_options(countdown: float | None = None, *, backfill: bool = False) -> dict:
    """apply_async options: the configured queue (the backfill queue for ``backfill``), and a delay."""
    options: dict = {"countdown": countdown} if countdown else {}
    queue = (backfill and get_setting("BACKFILL_QUEUE")) or get_setting("CELERY_QUEUE")
    if queue:
        options["queue"] = queue
    return options


def enqueue(work: Work, countdown: float | None = None) -> bool:
    """Queue the task for one piece of work; never raises (the redrive picks up what fails here)."""
    return send(
        TASKS[work.operation], (work.issuance_id,), f"{work.operation} for issuance {work.issuance_id}", countdown
    )


def enqueue_provider_event(account_id: int, event_id: str) -> bool:
    """Queue the fetch of a notified event; never raises (the redrive picks up what fails here)."""
    return send(process_provider_event, (account_id, event_id), f"a provider event of account {account_id}")


def enqueue_cleanup() -> bool:
    """Queue the clean-up of retired learners' badges; never raises (the redrive picks up what fails here)."""
    return send(erase_retired_badges, (), "the retirement clean-up")


def send(task, args: tuple, what: str, countdown: float | None = None, *, backfill: bool = False) -> bool:
    """apply_async with the queue options; False (logged) when the broker refused it."""
    try:
        task.apply_async(args, **queue_options(countdown, backfill=backfill))
    except Exception:  # noqa: BLE001 - a broker outage must not lose work: it stays due for the redrive
        log.exception("badges_bridge: could not queue %s; the redrive will retry", what)
        return False
    return True


def schedule(items: Iterable[tuple[Work, float | None]]) -> None:
    """Queue follow-up work, each with its delay."""
    for work, countdown in items:
        enqueue(work, countdown)
