"""User retirement: erase the learner's personal data at once, and their badges at the providers when they can.

When Open edX retires a learner (its ``USER_RETIRE_LMS_MISC`` and
``USER_RETIRE_LMS_CRITICAL`` signals), :func:`retire_learner`, in one
transaction and without calling any provider:

1. records a tombstone (a keyed hash of the user id), so that no later event,
   task or outgoing Open edX event ever concerns this learner again;
2. copies the provider ids of the learner's badges that must be revoked or
   deleted (BADGES_BRIDGE_RETIREMENT_ACTION) to ProviderCleanup, unlinked from the
   learner;
3. erases the learner's personal data from the ledger and its audit log (rows
   are kept, anonymous, in state ``retired``) and from the rejected events, and
   deletes their progress in series badges.

The clean-up runs afterwards, in the ``erase_retired_badges`` task queued on
commit and in every redrive: each badge is revoked or deleted at its provider
and its record is deleted once the provider confirmed (a badge already gone
counts). A provider that is down only delays it: failures are retried with the
ledger's backoff, without end, and are shown in the admin. Every step can run
again safely, as the retirement pipeline may call the signals more than once.
"""

from __future__ import annotations

import enum
import logging

from django.db import transaction

from badges_bridge import ledger, tombstones
from badges_bridge.accounts import provider_for
from badges_bridge.data import RetirementResult
from badges_bridge.exceptions import NotFoundError
from badges_bridge.models import CleanupAction, RejectedEvent, RejectedEventStatus, SeriesProgress
from badges_bridge.providers.base import RevokeMode

log = logging.getLogger(__name__)

ACTOR = "task:retirement"
#: Reason given to the provider for a revoke (Credly shows it with the badge).
RETIREMENT_REVOKE_REASON = "The earner's account was closed."
#: Reason kept on a rejected event whose learner retired.
ERASED_REASON = "erased: the learner retired"


def retire_learner(user_id: int) -> RetirementResult:
    """Erase a learner's personal data and queue their provider badges for clean-up; idempotent."""
    with transaction.atomic():
        new = tombstones.bury(user_id)
        rows, badges = ledger.retire_learner(user_id, ACTOR)
        SeriesProgress.objects.filter(user_id=user_id).delete()
        events = RejectedEvent.objects.filter(user_id=user_id).update(
            user_id=None,
            event_id="",
            payload=None,
            reason=ERASED_REASON,
            last_error="",
            status=RejectedEventStatus.ERASED,
            next_attempt_at=None,
        )
    log.info(
        "badges_bridge: learner retirement: %d ledger row(s) and %d rejected event(s) erased, "
        "%d provider badge(s) queued for clean-up",
        rows,
        events,
        badges,
    )
    return RetirementResult(new=new, rows=rows, rejected_events=events, badges=badges)


class CleanupOutcome(enum.StrEnum):
    """What one clean-up run did."""

    DONE = "done"
    FAILED = "failed, will retry"
    SKIPPED = "not due or taken by another worker"


def process_cleanup(cleanup_id: int) -> CleanupOutcome:
    """Revoke or delete one retired learner's badge at its provider; the record goes once the provider confirmed."""
    cleanup = ledger.claim_cleanup(cleanup_id)
    if cleanup is None:
        return CleanupOutcome.SKIPPED
    mode = RevokeMode.DELETE if cleanup.action == CleanupAction.DELETE else None
    try:
        provider_for(cleanup.account, revoke_mode=mode).revoke(cleanup.external_id, RETIREMENT_REVOKE_REASON)
    except NotFoundError:
        pass  # already gone at the provider: nothing left to erase
    except Exception as error:  # noqa: BLE001 - retried with backoff, never given up
        delay = ledger.retry_delay(cleanup.attempts, getattr(error, "retry_after", None))
        ledger.finish_cleanup(cleanup, f"attempt {cleanup.attempts} failed: {error}", delay)
        log.warning(
            "badges_bridge: clean-up %s at account %s failed (attempt %d; retry in %.0fs): %s",
            cleanup.pk,
            cleanup.account_id,
            cleanup.attempts,
            delay,
            error,
        )
        return CleanupOutcome.FAILED
    ledger.finish_cleanup(cleanup)
    return CleanupOutcome.DONE


def process_due_cleanups(limit: int) -> tuple[int, int]:
    """Run the clean-ups that are due, up to ``limit``; returns (done, failed)."""
    outcomes = [process_cleanup(cleanup_id) for cleanup_id in ledger.due_cleanups(limit)]
    return outcomes.count(CleanupOutcome.DONE), outcomes.count(CleanupOutcome.FAILED)
