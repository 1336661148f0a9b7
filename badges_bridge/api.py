"""The public Python API of badges_bridge.

Admin actions, management commands, REST views and other apps call these
functions; they never touch providers or the ledger directly. Nothing here
returns a model instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from badges_bridge import accounts, config_cache, criteria, events, learner, ledger, privacy
from badges_bridge.conf import get_setting
from badges_bridge.data import (
    AccountHealth,
    AvailableBadge,
    LearnerBadge,
    LearnerEvent,
    LearnerPrivacy,
    RedriveResult,
    RejectedEventSummary,
    ReplayResult,
    SyncResult,
)
from badges_bridge.exceptions import BadgesBridgeError, InvalidEventError
from badges_bridge.ledger import Work
from badges_bridge.models import (
    BadgeIssuance,
    IssuanceState,
    ProviderAccount,
    RejectedEvent,
    RejectedEventStatus,
    RevokedBy,
)

log = logging.getLogger(__name__)

#: Longest reason (and last error) kept with a rejected event; longer texts are clipped.
REASON_MAX_CHARS = 1000


def _queue_after_commit(work: list[Work]) -> None:
    from badges_bridge.tasks import enqueue

    for item in work:
        transaction.on_commit(lambda item=item: enqueue(item))


def record_learner_event(event: LearnerEvent) -> list[Work]:
    """Apply a learning event to the ledger and queue the resulting work after commit.

    Costs no database query when the course has no enabled badge (the
    configuration is cached); otherwise a small constant number of queries.
    """
    rules = config_cache.rules_for_course(event.course_key)
    if not rules:
        return []
    decisions = [(rule, met) for rule in rules if (met := criteria.evaluate(rule, event)) is not None]
    if not decisions:
        return []
    work = ledger.apply_event(event, decisions)
    _queue_after_commit(work)
    return work


def record_rejected_event(
    event_id: str,
    event_type: str,
    reason: str,
    course_key: str = "",
    user_id: int | None = None,
    *,
    event: LearnerEvent | None = None,
) -> None:
    """Keep a learning event that could not be processed, for operators to see.

    Without ``event`` the record is *invalid*: nothing can replay it. With
    ``event``, the parsed event whose processing failed, it keeps what a replay
    needs (:meth:`LearnerEvent.to_payload`) and *waits* for the redrive to replay
    it. ``reason`` is clipped to REASON_MAX_CHARS characters.
    """
    replay = {}
    if event is not None:
        replay = {"status": RejectedEventStatus.WAITING, "payload": event.to_payload(), "next_attempt_at": _next(1)}
    with transaction.atomic():  # a savepoint: a failure here must not spoil the sender's transaction
        RejectedEvent.objects.create(
            event_id=event_id[:64],
            event_type=event_type[:128],
            reason=events.clip(reason, REASON_MAX_CHARS),
            course_key=course_key[:255],
            user_id=user_id,
            **replay,
        )


def _next(attempt: int) -> datetime:
    """When replay number ``attempt`` is due: the ledger's backoff."""
    return timezone.now() + timedelta(seconds=ledger.retry_delay(attempt, None))


def _replayable(*, due_only: bool, include_failed: bool) -> Q:
    """Rejected events a replay may take: waiting ones (only those due with ``due_only``), and failed ones."""
    waiting = Q(status=RejectedEventStatus.WAITING)
    if due_only:
        waiting &= Q(next_attempt_at__lte=timezone.now())
    return waiting | Q(status=RejectedEventStatus.FAILED) if include_failed else waiting


def _candidates(selection: Q, ids: list[int] | None, limit: int | None) -> QuerySet[RejectedEvent]:
    queryset = RejectedEvent.objects.filter(selection)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    default = len(set(ids)) if ids is not None else get_setting("REDRIVE_BATCH_SIZE")
    return queryset.order_by("id")[: limit or default]


def _summary(row: RejectedEvent) -> RejectedEventSummary:
    return RejectedEventSummary(
        id=row.pk,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
    )


def replay_candidates(
    ids: list[int] | None = None, *, due_only: bool = True, include_failed: bool = False, limit: int | None = None
) -> list[RejectedEventSummary]:
    """The rejected events :func:`replay_rejected_events` would take with the same arguments; changes nothing."""
    selection = _replayable(due_only=due_only, include_failed=include_failed)
    return [_summary(row) for row in _candidates(selection, ids, limit)]


def replay_rejected_events(
    ids: list[int] | None = None,
    *,
    due_only: bool = True,
    include_failed: bool = False,
    limit: int | None = None,
    progress: Callable[[RejectedEventSummary], None] | None = None,
) -> ReplayResult:
    """Process again the rejected events that were valid, oldest first.

    Takes the *waiting* events (only those due, unless ``due_only`` is False)
    and, with ``include_failed``, the *failed* ones; only those of ``ids`` when
    given; at most ``limit`` (default: the number of ids, else
    BADGES_BRIDGE_REDRIVE_BATCH_SIZE). Each event is given to
    :func:`record_learner_event` in its own transaction, whose work is queued
    after commit. Success makes it *replayed*; a failure counts an attempt and
    waits with the ledger's backoff, or makes it *failed* after
    BADGES_BRIDGE_MAX_ATTEMPTS (at once when it cannot be replayed at all).
    Repeating a replay is safe: the ledger ignores an event older than the last
    one applied to a row, and applying the same event again changes nothing.
    ``progress`` is called with each event once its replay is recorded.
    """
    selection = _replayable(due_only=due_only, include_failed=include_failed)
    pks = list(_candidates(selection, ids, limit).values_list("pk", flat=True))
    result = ReplayResult(skipped=len(set(ids)) - len(pks) if ids is not None else 0)
    for pk in pks:
        summary = _replay_one(pk, selection)
        if summary is None:  # replayed meanwhile by someone else
            result.skipped += 1
            continue
        result.events.append(summary)
        if summary.status == RejectedEventStatus.REPLAYED:
            result.replayed += 1
        else:
            result.failed += 1
        if progress is not None:
            progress(summary)
    return result


def _replay_one(pk: int, selection: Q) -> RejectedEventSummary | None:
    """Replay one rejected event if it is still selected; None when it no longer is."""
    try:
        with transaction.atomic():
            row = RejectedEvent.objects.select_for_update().filter(selection, pk=pk).first()
            if row is None:
                return None
            record_learner_event(LearnerEvent.from_payload(row.payload))
            row.status = RejectedEventStatus.REPLAYED
            row.resolved_at = timezone.now()
            row.next_attempt_at = None
            row.save(update_fields=["status", "resolved_at", "next_attempt_at"])
    except Exception as err:  # noqa: BLE001 - a failed replay is recorded on the event; the others go on
        log.warning("badges_bridge: replay of rejected event %s failed", pk, exc_info=True)
        return _replay_failed(pk, err)
    return _summary(row)


def _replay_failed(pk: int, error: Exception) -> RejectedEventSummary | None:
    """Count a failed replay: wait with backoff, or give up (at once when the event cannot be replayed)."""
    with transaction.atomic():
        row = (
            RejectedEvent.objects.select_for_update()
            .filter(pk=pk, status__in=[RejectedEventStatus.WAITING, RejectedEventStatus.FAILED])
            .first()
        )
        if row is None:
            return None
        row.attempts += 1
        row.last_error = events.clip(f"{type(error).__name__}: {error}", REASON_MAX_CHARS)
        if isinstance(error, InvalidEventError) or row.attempts >= get_setting("MAX_ATTEMPTS"):
            row.status, row.next_attempt_at = RejectedEventStatus.FAILED, None
        else:
            row.status, row.next_attempt_at = RejectedEventStatus.WAITING, _next(row.attempts + 1)
        row.save(update_fields=["attempts", "last_error", "status", "next_attempt_at"])
    return _summary(row)


def retry_issuance(issuance_id: int, actor: str) -> bool:
    """Retry a failed or dead row now; False when the row is not in such a state."""
    work = ledger.operator_retry(issuance_id, actor)
    if work is not None:
        _queue_after_commit([work])
    return work is not None


def revoke_issuance(issuance_id: int, actor: str, reason: str) -> bool:
    """Revoke one learner's badge; False when there is nothing to revoke."""
    work = ledger.operator_revoke(issuance_id, actor, reason)
    if work is not None:
        _queue_after_commit([work])
        return True
    return BadgeIssuance.objects.filter(
        pk=issuance_id, state__in=[IssuanceState.REVOKED, IssuanceState.REVOKE_PENDING]
    ).exists()


def redrive(limit: int | None = None, *, inline: bool = False) -> RedriveResult:
    """Replay the rejected events that are due; queue (or, with ``inline``, run here) the work of the rows due.

    This recovers from transient errors met by the receivers, lost broker
    messages, killed workers and scheduled retries. Replays pause while
    BADGES_BRIDGE_ENABLED is False. ``limit`` bounds the events replayed and,
    separately, the rows taken (default: BADGES_BRIDGE_REDRIVE_BATCH_SIZE).
    Badges waiting for a learner whose data may now be sent (consent given, or
    BADGES_BRIDGE_REQUIRE_CONSENT turned off) are queued too.
    """
    from badges_bridge.tasks import TASKS, enqueue

    result = RedriveResult()
    if get_setting("ENABLED"):
        replay = replay_rejected_events(limit=limit)
        result.replayed, result.replay_failed = replay.replayed, replay.failed
    batch = limit or get_setting("REDRIVE_BATCH_SIZE")
    released = ledger.release_waiting(None, "task:redrive", batch)
    for work in [*released, *ledger.due_work(batch)]:
        if inline:
            TASKS[work.operation](work.issuance_id)
        elif not enqueue(work):
            continue
        result.ids.append(work.issuance_id)
        setattr(result, work.operation, getattr(result, work.operation) + 1)
    return result


def sync_account_templates(account_id: int) -> SyncResult:
    """Copy one account's templates from its provider."""
    return accounts.sync_templates(ProviderAccount.objects.get(pk=account_id))


def check_drift(account_ids: list[int] | None = None) -> dict[str, int]:
    """Reconcile issued rows with each enabled account (or the given ones).

    Returns the rows changed per account name; -1 for an account whose check failed (logged).
    """
    from badges_bridge.drift import check_account_drift

    queryset = ProviderAccount.objects.filter(enabled=True)
    if account_ids:
        queryset = queryset.filter(pk__in=account_ids)
    changed: dict[str, int] = {}
    for account in queryset:
        try:
            changed[account.name] = check_account_drift(account)
        except BadgesBridgeError as err:  # one failing account must not stop the others
            log.warning("badges_bridge: drift check of account %s failed: %s", account.pk, err)
            changed[account.name] = -1
    return changed


def check_accounts(account_ids: list[int] | None = None) -> list[AccountHealth]:
    """Check that each enabled account (or the given ones) is reachable and authorised."""
    queryset = ProviderAccount.objects.all()
    queryset = queryset.filter(pk__in=account_ids) if account_ids else queryset.filter(enabled=True)
    return [accounts.check_account(account) for account in queryset]


@dataclass(frozen=True)
class LedgerHealth:
    """Counts of ledger rows by state, and of rows that look stuck."""

    by_state: dict[str, int]
    stuck: int
    dead: int

    @property
    def healthy(self) -> bool:
        """No dead and no stuck rows."""
        return not (self.stuck or self.dead)


def ledger_health(stuck_after: timedelta | None = None) -> LedgerHealth:
    """Ledger counts; a row is stuck when its work has been due for longer than ``stuck_after``."""
    if stuck_after is None:
        stuck_after = timedelta(seconds=get_setting("LEASE_SECONDS") + get_setting("REDRIVE_GRACE_SECONDS"))
    cutoff = timezone.now() - stuck_after
    by_state = dict(BadgeIssuance.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    stuck = (
        BadgeIssuance.objects.filter(
            state__in=[IssuanceState.PENDING, IssuanceState.ISSUING, IssuanceState.REVOKE_PENDING],
            state_changed_at__lte=cutoff,
        ).count()
        + BadgeIssuance.objects.filter(state=IssuanceState.FAILED, next_attempt_at__lte=cutoff).count()
    )
    return LedgerHealth(by_state=by_state, stuck=stuck, dead=by_state.get(IssuanceState.DEAD, 0))


def learner_badges(user_id: int) -> list[LearnerBadge]:
    """Every badge of one learner, newest first, in learner-facing terms, with share links once issued.

    Badges on their way (``processing``, ``waiting_consent``), held (``issued``), taken back
    (``revoked``, ``expired``) and declined (``rejected``); never the internal ``not_met`` rows.
    """
    return learner.learner_badges(user_id)


def available_badges(user_id: int) -> list[AvailableBadge]:
    """The badges of the learner's enrolled courses that they can still earn, with their progress."""
    return learner.available_badges(user_id)


def learner_privacy(
    user_id: int, badges: list[LearnerBadge] | None = None, available: list[AvailableBadge] | None = None
) -> LearnerPrivacy:
    """The learner's consent and opt-out choices, and what each provider receives about them.

    ``badges`` and ``available`` (the learner's, from :func:`learner_badges` and
    :func:`available_badges`) spare reading them again.
    """
    if badges is None:
        badges = learner.learner_badges(user_id)
    if available is None:
        available = learner.available_badges(user_id)
    return learner.learner_privacy(user_id, badges, available)


def _learner_actor(user_id: int) -> str:
    return f"learner:{user_id}"


def set_consent(user_id: int, given: bool) -> int:
    """Record the learner's consent (or its withdrawal) and apply it to their badges.

    Consent queues the badges that waited for it (when nothing else holds them back);
    a withdrawal holds back every badge not yet sent. Returns the number of badges changed.
    """
    with transaction.atomic():
        privacy.record_consent(user_id, given)
        return _apply_choices(user_id)


def set_opt_out(user_id: int, opted_out: bool) -> int:
    """Record that the learner opted out of new badges (or back in) and apply it; returns the badges changed."""
    with transaction.atomic():
        privacy.record_opt_out(user_id, opted_out)
        return _apply_choices(user_id)


def _apply_choices(user_id: int) -> int:
    reason = privacy.hold_reason(user_id)
    if reason:
        return ledger.hold_learner(user_id, _learner_actor(user_id), privacy.HOLD_MESSAGES[reason])
    work = ledger.release_waiting(user_id, _learner_actor(user_id))
    _queue_after_commit(work)
    return len(work)


def learner_revoke(user_id: int, issuance_id: int, reason: str = "") -> bool:
    """Revoke one of the learner's own badges at their request; the audit log names the learner.

    False when the badge is not theirs or cannot be revoked (declined, already taken back).
    """
    text = _LEARNER_REVOKE_REASON + (f": {reason.strip()}" if reason.strip() else "")
    work = ledger.operator_revoke(
        issuance_id, _learner_actor(user_id), text[:1000], revoked_by=RevokedBy.LEARNER, user_id=user_id
    )
    if work is not None:
        _queue_after_commit([work])
        return True
    return BadgeIssuance.objects.filter(pk=issuance_id, user_id=user_id, revoked_by=RevokedBy.LEARNER).exists()


#: The reason sent to the provider when a learner asks for their badge to be revoked.
_LEARNER_REVOKE_REASON = "Revoked at the learner's request"
