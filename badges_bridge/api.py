"""The public Python API of badges_bridge.

Admin actions, management commands, REST views and other apps call these
functions; they never touch providers or the ledger directly. Nothing here
returns a model instance.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import (
    accounts,
    backfill,
    causes,
    config_cache,
    criteria,
    events,
    issuing,
    learner,
    ledger,
    manual,
    privacy,
    provider_events,
    retirement,
    series,
    tombstones,
)
from badges_bridge.causes import ErrorCause
from badges_bridge.conf import get_setting
from badges_bridge.data import (
    AccountHealth,
    AccountStatus,
    ActionOutcome,
    AvailableBadge,
    DeadReason,
    HealthReport,
    JobStatus,
    LearnerBadge,
    LearnerEvent,
    LearnerPrivacy,
    ManualAwardReport,
    QualifierPreview,
    RedriveResult,
    RejectedEventSummary,
    ReplayResult,
    RetirementResult,
    ReviewResult,
    RowActionResult,
    StateCount,
    SyncResult,
    TokenStatus,
)
from badges_bridge.display import format_time
from badges_bridge.exceptions import BadgesBridgeError, ConfigurationError, InvalidEventError
from badges_bridge.ledger import Work
from badges_bridge.models import (
    BadgeIssuance,
    CourseBadge,
    CourseSettings,
    IssuanceState,
    MaintenanceJob,
    MaintenanceRun,
    Operation,
    ProviderAccount,
    RejectedEvent,
    RejectedEventStatus,
    RevokedBy,
)
from badges_bridge.providers import get_provider_class

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
    A badge's earned-between window applies to the event's time; a series
    badge that lists the course records the learner's progress in it and is
    decided from their progress in all its courses (:mod:`badges_bridge.series`).
    """
    rules = config_cache.rules_for_course(event.course_key)
    if not rules:
        return []
    decisions = [(rule, met) for rule in rules if not rule.series and (met := criteria.decide(rule, event)) is not None]
    in_series = [
        (rule, met) for rule in rules if rule.series and (met := criteria.evaluate_course(rule, event)) is not None
    ]
    work = ledger.apply_event(event, decisions) if decisions else []
    if in_series:
        work += series.record_event(event, in_series)
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
    it. ``reason`` is clipped to REASON_MAX_CHARS characters. Nothing is kept
    for a retired learner.
    """
    if user_id is not None and tombstones.is_retired(user_id):
        return
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


def retry_issuance(issuance_id: int, actor: str, *, force: bool = False) -> RowActionResult:
    """Retry a failed or dead row now, and report what became of it.

    A row whose failure has a cause that is still there (the learner has no e-mail
    address, the template is not active, the account is disabled...) is left alone
    unless ``force`` is given. The work is queued after commit; when it runs at once
    (eager Celery, no transaction), the report says how it ended.
    """
    row = BadgeIssuance.objects.select_related("course_badge__template__account").filter(pk=issuance_id).first()
    if row is None:
        return RowActionResult(issuance_id, ActionOutcome.SKIPPED, "no such ledger row")
    if row.state not in ledger.RETRYABLE_STATES:
        return RowActionResult(
            issuance_id,
            ActionOutcome.SKIPPED,
            f"not retried: it is {_state_label(row)}; only failed or dead rows are retried",
        )
    blocker = issuing.retry_blocker(row)
    if blocker is not None and not force:
        return RowActionResult(
            issuance_id, ActionOutcome.BLOCKED, f"not retried, the cause is still there: {blocker[1]}"
        )
    work = ledger.operator_retry(issuance_id, actor, forced_past=blocker[1] if blocker else "")
    if work is None:  # changed meanwhile
        return RowActionResult(issuance_id, ActionOutcome.SKIPPED, "not retried: the row changed meanwhile")
    _queue_after_commit([work])
    return _report(issuance_id, work.operation)


def reissue_issuance(issuance_id: int, actor: str) -> bool:
    """Issue again, on purpose, a badge the learner rejected or that was revoked by an operator or at the provider.

    Starts a new award whatever the criterion says and records ``actor`` in the audit log;
    False when the row is in no such state (a retired learner's row never is).
    """
    work = ledger.operator_reissue(issuance_id, actor)
    if work is not None:
        _queue_after_commit([work])
    return work is not None


def receive_provider_event(account_id: int, event_id: str) -> bool:
    """Record an event id a provider notified and queue its fetch after commit; False when it was seen before."""
    from badges_bridge.tasks import enqueue_provider_event

    record = provider_events.receive(account_id, event_id)
    if record is None:
        return False
    transaction.on_commit(lambda: enqueue_provider_event(account_id, event_id))
    return True


def retire_learner(user_id: int) -> RetirementResult:
    """Retire a learner: erase their personal data now and queue their provider badges for clean-up after commit.

    Safe to call again (the platform's retirement pipeline may repeat its steps).
    """
    from badges_bridge.tasks import enqueue_cleanup

    result = retirement.retire_learner(user_id)
    if result.badges:
        transaction.on_commit(enqueue_cleanup)
    return result


def revoke_issuance(issuance_id: int, actor: str, reason: str) -> RowActionResult:
    """Revoke one learner's badge with the operator's reason, and report what became of it.

    The reason is kept on the row and sent to providers that accept one. A row
    already revoked (or being revoked) by the policy or the provider sends nothing
    new, but the revocation becomes the operator's, so it is never re-awarded.
    """
    row = BadgeIssuance.objects.filter(pk=issuance_id).first()
    if row is None:
        return RowActionResult(issuance_id, ActionOutcome.SKIPPED, "no such ledger row")
    if row.state in (IssuanceState.REJECTED, IssuanceState.NOT_MET, IssuanceState.DECLINED):
        return RowActionResult(
            issuance_id, ActionOutcome.SKIPPED, f"not revoked: it is {_state_label(row)}; there is no badge to revoke"
        )
    if row.state in (IssuanceState.REVOKED, IssuanceState.REVOKE_PENDING) and row.revoked_by == RevokedBy.OPERATOR:
        return RowActionResult(
            issuance_id, ActionOutcome.SKIPPED, f"already revoked by an operator ({_state_label(row)}); nothing sent"
        )
    before, decided_by = row.state, row.get_revoked_by_display().lower()
    work = ledger.operator_revoke(issuance_id, actor, reason)
    if work is None and before == IssuanceState.AWAITING_APPROVAL:
        return RowActionResult(
            issuance_id,
            ActionOutcome.RECORDED,
            "taken out of the approval queue and closed as revoked, with your reason; nothing was sent to the provider",
        )
    if work is None:
        where = "revoked" if before == IssuanceState.REVOKED else "being revoked"
        return RowActionResult(
            issuance_id,
            ActionOutcome.RECORDED,
            f"already {where} ({decided_by or 'by the pipeline'}): recorded as an operator's revocation with your "
            "reason, so it is never re-awarded; nothing new sent to the provider",
        )
    _queue_after_commit([work])
    return _report(issuance_id, work.operation)


def award_manually(
    course_badge_id: int, lines: Iterable[str], actor: str, reason: str = "", *, dry_run: bool = False
) -> ManualAwardReport:
    """Award a course badge by hand to the learners named by ``lines``, with one result per line.

    Each line is a username or an e-mail address (or a CSV line whose first column is one; a
    ``username`` or ``email`` header row, blank lines and ``#`` comments are ignored). Each award
    goes through the ledger like any other, is marked manual (the revoke policy never takes it
    back) and is queued after commit; its audit entry names ``actor`` and ``reason``. With
    ``dry_run`` nothing is written. Raises :class:`~badges_bridge.exceptions.ManualAwardError`
    when the course badge does not exist or there are more than ``manual.MAX_LINES`` lines.
    """
    report, work = manual.award(course_badge_id, lines, actor, reason, dry_run=dry_run)
    _queue_after_commit(work)
    return report


#: Longest reason kept with a decline (longer reasons are clipped), as for a revoke.
DECLINE_REASON_MAX_CHARS = 500


def _reviewer_actor(user) -> str:
    """The audit actor of a staff review: the staff member's user id, never a name."""
    return f"staff:{user.pk}"


def approve_awards(course_badge_id: int, issuance_ids: Iterable[int], user) -> ReviewResult:
    """Approve awards of a course badge waiting in its approval queue; their issue is queued after commit.

    Any number of ids: each must be a row of this course badge awaiting approval, else it is
    skipped with why (another staff member reviewed it first, an event took it out of the
    queue...). An approved row becomes pending, in the lane it was recorded in (backfill rows are
    fed within the backfill budget share), or waits for the learner when their data may not be
    sent. The audit log says "approved by staff:<user id>". Nothing is approved while the course badge
    is disabled, its template is not active or the course's badges are switched off (every row is
    skipped with that reason).
    """
    badge = CourseBadge.objects.select_related("template").filter(pk=course_badge_id).first()
    refusal = "no such course badge" if badge is None else manual.badge_refusal(badge)
    if refusal:
        return ReviewResult(skipped=[(int(pk), refusal) for pk in dict.fromkeys(issuance_ids)])
    review = ledger.review(course_badge_id, issuance_ids, _reviewer_actor(user), user.pk)
    _queue_after_commit(review.work)
    if review.feed_backfill:
        transaction.on_commit(lambda: backfill.start_feeder(0))
    return ReviewResult(done=review.done, skipped=review.skipped)


def decline_awards(course_badge_id: int, issuance_ids: Iterable[int], user, reason: str) -> ReviewResult:
    """Decline awards of a course badge waiting in its approval queue, with the staff member's reason.

    The reason is required (ValueError when blank) and clipped to DECLINE_REASON_MAX_CHARS
    characters. A declined row is never re-queued by learning events; course staff can still
    award the badge by hand later. Rows that cannot be declined are skipped with why.
    """
    text = events.clip(reason.strip(), DECLINE_REASON_MAX_CHARS)
    if not text:
        raise ValueError("A reason is required to decline an award.")
    review = ledger.review(course_badge_id, issuance_ids, _reviewer_actor(user), user.pk, decline_reason=text)
    return ReviewResult(done=review.done, skipped=review.skipped)


def issue_payload_preview(course_badge_id: int) -> dict:
    """The exact JSON body the course badge's provider would receive to issue it to a sample learner.

    The learner is "Sample Learner" (learner@example.com) with a grade of 87.5, meeting the criterion
    now; only the evidence the course badge chose is in it. The body is built by the provider client's
    own ``issue_payload``, the code that sends real issues. Raises CourseBadge.DoesNotExist, and
    ConfigurationError when the account's provider is not installed.
    """
    badge = CourseBadge.objects.select_related("template__account").get(pk=course_badge_id)
    provider_class = get_provider_class(badge.template.account.provider)
    return provider_class.issue_payload(issuing.sample_issue_request(badge))


def _state_label(row: BadgeIssuance) -> str:
    return str(row.get_state_display()).lower()


def _report(issuance_id: int, operation: str) -> RowActionResult:
    """What became of a row whose work was just queued (and may have run already)."""
    row = BadgeIssuance.objects.get(pk=issuance_id)
    verb = "issue" if operation == Operation.ISSUE else "revoke"
    if row.state in (IssuanceState.ISSUED, IssuanceState.REVOKED, IssuanceState.REJECTED):
        last = row.audit_entries.order_by("-at", "-id").values_list("message", flat=True).first() or ""
        return RowActionResult(issuance_id, ActionOutcome.DONE, f"{_state_label(row)}: {last}".rstrip(": "))
    if row.state == IssuanceState.FAILED:
        return RowActionResult(
            issuance_id,
            ActionOutcome.FAILED,
            f"the {verb} was tried and failed; it is retried automatically at {format_time(row.next_attempt_at)}. "
            f"Error: {row.last_error}",
        )
    if row.state == IssuanceState.DEAD:
        return RowActionResult(
            issuance_id,
            ActionOutcome.DEAD,
            f"the {verb} was tried and failed; the row is dead. Error: {row.last_error}",
        )
    return RowActionResult(issuance_id, ActionOutcome.QUEUED, f"queued: a worker will {verb} the badge shortly")


def redrive(limit: int | None = None, *, inline: bool = False) -> RedriveResult:
    """Replay the rejected events that are due; queue (or, with ``inline``, run here) the work that is due.

    This recovers from transient errors met by the receivers, lost broker
    messages, killed workers and scheduled retries: the rows due, the provider
    notifications whose fetch is due, and the retirement clean-up when badges of
    retired learners are due. Records of provider notifications past their
    retention are deleted. Replays pause while BADGES_BRIDGE_ENABLED is False.
    ``limit`` bounds the events replayed and, separately, the rows and the
    notifications taken (default: BADGES_BRIDGE_REDRIVE_BATCH_SIZE). Badges
    waiting for a learner whose data may now be sent (consent given, or
    BADGES_BRIDGE_REQUIRE_CONSENT turned off) are queued too.
    """
    from badges_bridge.tasks import (
        TASKS,
        enqueue,
        enqueue_cleanup,
        enqueue_provider_event,
        erase_retired_badges,
        process_provider_event,
    )

    batch = limit or get_setting("REDRIVE_BATCH_SIZE")
    result = RedriveResult()
    if get_setting("ENABLED"):
        replay = replay_rejected_events(limit=limit)
        result.replayed, result.replay_failed = replay.replayed, replay.failed
    released = ledger.release_waiting(None, "task:redrive", batch)
    for work in [*released, *ledger.due_work(batch)]:
        if inline:
            TASKS[work.operation](work.issuance_id)
        elif not enqueue(work):
            continue
        result.ids.append(work.issuance_id)
        setattr(result, work.operation, getattr(result, work.operation) + 1)
    for account_id, event_id in provider_events.due(batch):
        if inline:
            process_provider_event(account_id, event_id)
        elif not enqueue_provider_event(account_id, event_id):
            continue
        result.provider_events += 1
    result.cleanups = len(ledger.due_cleanups(batch))
    if result.cleanups and inline:
        erase_retired_badges()
    elif result.cleanups:
        enqueue_cleanup()
    provider_events.prune()
    if BadgeIssuance.objects.filter(ledger.backfill_waiting()).exists():
        result.backfill_feeder = backfill.start_feeder()
    return result


def backfill_course_badge(
    course_key: str,
    user_ids: list[int] | None = None,
    *,
    badge_ids: list[int] | None = None,
    dry_run: bool = False,
    progress: Callable[[backfill.BackfillResult], None] | None = None,
) -> backfill.BackfillResult:
    """Record the badges of a course's learners who already meet a badge's criterion, for the feeder to issue.

    Goes through the ledger's event path (a learner who already has a row keeps it as it is, so
    running it twice, or two runs at once, records nothing twice). Without ``user_ids`` the
    learners are streamed a chunk at a time: the course's active enrollments inside the LMS,
    elsewhere the learners the plugin recorded (a series badge: the learners of any of its
    courses). ``badge_ids`` limits it to these badges of the course. The rows are not queued one
    message each: the feeder task queues them within the backfill share of each account's
    request budget (BADGES_BRIDGE_BACKFILL_BUDGET_SHARE), so that learners who pass meanwhile are
    issued at once. Raises ConfigurationError for an unknown course key or a course without an
    enabled badge (among ``badge_ids``); a course whose badges are switched off has none.
    """
    return backfill.record(course_key, user_ids, badge_ids=badge_ids, dry_run=dry_run, progress=progress)


def preview_course_badge(course_badge_id: int, *, sample_size: int = 10) -> QualifierPreview:
    """How many learners already meet a course badge's criterion now, and a sample of them; changes nothing.

    Read from the platform's persisted course grades and certificates inside the LMS
    (``source`` "platform"), elsewhere from what the plugin recorded ("recorded"). The learners
    are streamed a chunk at a time (a series: the learners of any of its courses), so memory does
    not grow with their number. Works for a disabled badge too (the criterion is judged as set).
    Raises ConfigurationError when the course badge does not exist.
    """
    badge = CourseBadge.objects.select_related(None).filter(pk=course_badge_id).first()
    if badge is None:
        raise ConfigurationError(f"There is no course badge {course_badge_id}")
    return backfill.preview(config_cache.rule_for(badge), sample_size)


def course_badges_enabled(course_key: CourseKey | str) -> bool:
    """Whether the course's badges are on (the Course App toggle); a course never switched is on."""
    key = backfill.parse_course_key(str(course_key))
    stored = CourseSettings.objects.filter(course_key=key).values_list("badges_enabled", flat=True).first()
    return True if stored is None else stored


def set_course_badges_enabled(course_key: CourseKey | str, enabled: bool, user=None) -> bool:
    """Switch the course's badges on or off (the Course App toggle); returns whether anything changed.

    Off: the course's badges (series badges included) take no learning event, so nothing new is
    issued and nothing already issued is touched (not even revoked); a backfill is refused, and the
    rows of an earlier backfill wait instead of being queued by the feeder. On again: events are
    taken from then on (a backfill catches up with learners who qualified meanwhile) and the
    feeder is started for the waiting backfill rows.
    Every process sees the change within BADGES_BRIDGE_CONFIG_CHECK_SECONDS.
    """
    key = backfill.parse_course_key(str(course_key))
    user_id = getattr(user, "pk", None)
    with transaction.atomic():
        row = CourseSettings.objects.select_for_update().filter(course_key=key).first()
        if (True if row is None else row.badges_enabled) == enabled:
            return False
        row = row or CourseSettings(course_key=key)
        row.badges_enabled, row.changed_by_id = enabled, user_id
        row.save()  # the cached configuration of the course, and of its series' courses, is forgotten
    if enabled:  # backfill rows of the course wait for the feeder again
        transaction.on_commit(backfill.start_feeder)
    log.info("badges_bridge: badges of course %s switched %s by user %s", key, "on" if enabled else "off", user_id)
    return True


def sync_account_templates(account_id: int) -> SyncResult:
    """Copy one account's templates from its provider."""
    return accounts.sync_templates(ProviderAccount.objects.get(pk=account_id))


def check_drift(account_ids: list[int] | None = None) -> dict[str, int]:
    """Reconcile issued rows with each enabled account (or the given ones).

    Returns the rows changed per account name; -1 for an account whose check failed (logged).
    """
    return drift_report(account_ids)[0]


def drift_report(account_ids: list[int] | None = None) -> tuple[dict[str, int], str]:
    """:func:`check_drift`, with a one-line summary that names each account's result or error.

    Every account whose check failed is also in the summary (as "<name>: failed: <error>").
    """
    from badges_bridge.drift import check_account_drift

    queryset = ProviderAccount.objects.filter(enabled=True)
    if account_ids:
        queryset = queryset.filter(pk__in=account_ids)
    changed: dict[str, int] = {}
    parts: list[str] = []
    for account in queryset:
        try:
            changed[account.name] = check_account_drift(account)
        except BadgesBridgeError as err:  # one failing account must not stop the others
            log.warning("badges_bridge: drift check of account %s failed: %s", account.pk, err)
            changed[account.name] = -1
            parts.append(f"{account.name}: failed: {err}")
        else:
            parts.append(f"{account.name}: {changed[account.name]} row(s) no longer live at the provider")
    return changed, "; ".join(parts) or "no enabled account"


@dataclass
class RunLog:
    """What a periodic job reports about its run (see :func:`maintenance_run`)."""

    lines: list[str] = field(default_factory=list)
    failed: bool = False

    def add(self, line: str, *, failed: bool = False) -> None:
        """Add one line to the run's summary; ``failed`` marks the run as failed."""
        self.lines.append(line)
        self.failed = self.failed or failed


@contextmanager
def maintenance_run(job: str) -> Iterator[RunLog]:
    """Record a run of a periodic job (a MaintenanceJob) as the job's latest run.

    Yields a :class:`RunLog` for the job's summary. The run counts as failed when
    the job marks it so or raises (the error is kept, and raised again). Only the
    latest run of each job is kept.
    """
    started = timezone.now()
    MaintenanceRun.objects.update_or_create(
        job=job, defaults={"started_at": started, "finished_at": None, "ok": None, "summary": ""}
    )
    run = RunLog()
    try:
        yield run
    except Exception as err:
        _finish_run(job, ok=False, summary=f"failed: {type(err).__name__}: {err}")
        raise
    _finish_run(job, ok=not run.failed, summary="; ".join(run.lines))


def _finish_run(job: str, *, ok: bool, summary: str) -> None:
    MaintenanceRun.objects.filter(job=job).update(finished_at=timezone.now(), ok=ok, summary=summary[:4000])


def describe_redrive(result: RedriveResult, *, inline: bool = False) -> str:
    """A redrive's result in words."""
    verb = "ran" if inline else "queued"
    return (
        f"{verb} {len(result.ids)} row(s) ({result.issue} issue, {result.revoke} revoke, {result.reconcile} "
        f"reconcile); replayed {result.replayed} rejected event(s), {result.replay_failed} replay(s) failed"
    )


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


def default_stuck_after() -> timedelta:
    """How long work may stay due before its row counts as stuck: a lease and the redrive's grace."""
    return timedelta(seconds=get_setting("LEASE_SECONDS") + get_setting("REDRIVE_GRACE_SECONDS"))


def stuck_filter(stuck_after: timedelta | None = None) -> Q:
    """The condition selecting stuck rows (for lists and links)."""
    return ledger.stuck_condition(stuck_after or default_stuck_after())


def ledger_health(stuck_after: timedelta | None = None) -> LedgerHealth:
    """Ledger counts; a row is stuck when its work has been due for longer than ``stuck_after``."""
    by_state = dict(BadgeIssuance.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    stuck = BadgeIssuance.objects.filter(stuck_filter(stuck_after)).count()
    return LedgerHealth(by_state=by_state, stuck=stuck, dead=by_state.get(IssuanceState.DEAD, 0))


#: Health buckets of the ledger states, as the overview and the course badge list count them.
BUCKETS: dict[str, tuple[str, ...]] = {
    "issued": (IssuanceState.ISSUED,),
    "in_progress": (
        IssuanceState.PENDING,
        IssuanceState.ISSUING,
        IssuanceState.REVOKE_PENDING,
        IssuanceState.WAITING_CONSENT,
        IssuanceState.AWAITING_APPROVAL,
    ),
    "failing": (IssuanceState.FAILED,),
    "dead": (IssuanceState.DEAD,),
    "closed": (
        IssuanceState.REVOKED,
        IssuanceState.REJECTED,
        IssuanceState.NOT_MET,
        IssuanceState.RETIRED,
        IssuanceState.DECLINED,
    ),
}
_BUCKET_OF = {state: bucket for bucket, states in BUCKETS.items() for state in states}

#: Warn this long before a provider token expires.
TOKEN_WARNING = timedelta(days=21)
#: How many dead-row causes the overview lists.
DEAD_REASONS_SHOWN = 10


def state_label(state: str, operation: str) -> str:
    """A state in an operator's words, telling a failing issue from a failing revoke."""
    if state == IssuanceState.FAILED:
        return "Failing to issue, will retry" if operation == Operation.ISSUE else "Failing to revoke, will retry"
    if state == IssuanceState.DEAD:
        return "Dead: could not issue" if operation == Operation.ISSUE else "Dead: could not revoke"
    return str(IssuanceState(state).label)


def health_report(stuck_after: timedelta | None = None) -> HealthReport:
    """Everything an operator needs at a glance: the ledger by state, stuck and dead rows, accounts and jobs."""
    grouped = list(
        BadgeIssuance.objects.values_list("course_badge__template__account_id", "state", "operation")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_state: dict[tuple[str, str], int] = defaultdict(int)
    buckets = dict.fromkeys(BUCKETS, 0)
    per_account: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(BUCKETS, 0))
    for account_id, state, operation, count in grouped:
        key_operation = operation if state in (IssuanceState.FAILED, IssuanceState.DEAD) else ""
        by_state[(state, key_operation)] += count
        buckets[_BUCKET_OF[state]] += count
        per_account[account_id][_BUCKET_OF[state]] += count
    states = [
        StateCount(state, operation, state_label(state, operation or Operation.ISSUE), count)
        for (state, operation), count in sorted(by_state.items(), key=lambda item: _state_order(*item[0]))
    ]
    stuck = BadgeIssuance.objects.filter(stuck_filter(stuck_after)).count()
    account_rows = [_account_status(account, per_account[account.pk]) for account in ProviderAccount.objects.all()]
    report = HealthReport(
        generated_at=timezone.now(),
        buckets=buckets,
        states=states,
        stuck=stuck,
        dead_reasons=_dead_reasons(),
        accounts=account_rows,
        jobs=[_job_status(job) for job in MaintenanceJob],
        problems=[],
    )
    report.problems.extend(_problems(report))
    return report


def _state_order(state: str, operation: str) -> tuple[int, int]:
    return list(IssuanceState.values).index(state), 0 if operation in ("", Operation.ISSUE) else 1


def _dead_reasons() -> list[DeadReason]:
    dead = BadgeIssuance.objects.filter(state=IssuanceState.DEAD)
    counts = dead.values_list("error_cause").annotate(n=Count("id")).order_by("-n", "error_cause")
    reasons = []
    for cause, count in counts[:DEAD_REASONS_SHOWN]:
        example = dead.filter(error_cause=cause).order_by("-state_changed_at").values_list("last_error", flat=True)
        label = ErrorCause(cause).label if cause in ErrorCause.values else "Cause not recorded"
        reasons.append(DeadReason(cause, str(label), causes.next_step(cause), count, example.first() or ""))
    return reasons


def _token_status(account: ProviderAccount, now: datetime) -> TokenStatus:
    if not account.has_token:
        return TokenStatus.MISSING
    if account.token_expires_at is None:
        return TokenStatus.UNKNOWN
    if account.token_expires_at <= now:
        return TokenStatus.EXPIRED
    return TokenStatus.EXPIRING if account.token_expires_at <= now + TOKEN_WARNING else TokenStatus.OK


def _account_status(account: ProviderAccount, counts: dict[str, int]) -> AccountStatus:
    return AccountStatus(
        account_id=account.pk,
        name=account.name,
        provider=account.provider_display_name,
        enabled=account.enabled,
        token_status=_token_status(account, timezone.now()),
        token_expires_at=account.token_expires_at,
        check_ok=account.last_check_ok,
        check_at=account.last_check_at,
        check_message=account.last_check_message,
        sync_ok=account.last_sync_ok,
        sync_at=account.last_sync_attempt_at,
        sync_message=account.last_sync_message,
        counts=counts,
    )


_JOB_INTERVALS = {MaintenanceJob.REDRIVE: "REDRIVE_INTERVAL_SECONDS", MaintenanceJob.DRIFT: "DRIFT_INTERVAL_SECONDS"}


def _job_status(job: MaintenanceJob) -> JobStatus:
    run = MaintenanceRun.objects.filter(job=job).first()
    interval = get_setting(_JOB_INTERVALS[job])
    if run is None:
        warning = "never recorded: schedule it (Celery beat) or run its management command" if interval else ""
        return JobStatus(job.value, str(job.label), None, None, None, "", warning)
    warning = ""
    if run.ok is False:
        warning = "the latest run failed"
    elif interval and run.started_at < timezone.now() - timedelta(seconds=3 * interval):
        warning = f"not run for more than {3 * interval // 60} minutes: is Celery beat running?"
    return JobStatus(job.value, str(job.label), run.started_at, run.finished_at, run.ok, run.summary, warning)


def _problems(report: HealthReport) -> list[str]:
    problems = []
    if report.buckets["dead"]:
        problems.append(f"{report.buckets['dead']} dead row(s) need an operator")
    if report.stuck:
        problems.append(f"{report.stuck} row(s) stuck: their work is due but nobody does it")
    for account in report.accounts:
        if not account.enabled:
            continue
        if account.token_status in (TokenStatus.MISSING, TokenStatus.EXPIRED):
            problems.append(f"account {account.name}: API token {account.token_status}")
        elif account.token_status == TokenStatus.EXPIRING:
            problems.append(f"account {account.name}: API token expires {format_time(account.token_expires_at)}")
        if account.check_ok is False:
            problems.append(f"account {account.name}: the latest connection test failed")
        if account.sync_ok is False:
            problems.append(f"account {account.name}: the latest template sync failed")
    problems += [f"{job.label}: {job.warning}" for job in report.jobs if job.warning]
    return problems


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
