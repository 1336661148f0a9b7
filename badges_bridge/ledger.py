"""The issuance ledger's state machine.

Rows move through the states of :class:`~badges_bridge.models.IssuanceState`;
every move is written with an :class:`~badges_bridge.models.AuditEntry`. This
module only changes rows: it never calls a provider and never queues work. It
returns the ids that need work so that the caller can queue it after commit.
The one thing it defers is the Open edX event of a badge announced or withdrawn
(:mod:`badges_bridge.outgoing`), sent after the commit of the transition that
decided it.

Provider-side changes (notifications, the drift check) and a learner's
retirement also change rows only through this module.

Each award of a badge to a learner has its own identity (``award_number``): a
re-award after a revoke starts a new award with no provider badge, and every
badge a row ever had is kept as an :class:`~badges_bridge.models.IssuedBadge`.
A worker owns a row through a lease that it renews before every provider call;
a worker that finds its lease gone records what it touched at the provider as
unconfirmed, for a reconcile task to adopt or undo (see ADR 0005).

A learner who opted out, or who has not consented while the site requires consent,
gets no new badge: a qualifying row waits in ``waiting_consent`` instead of being
queued, a claim for an issue puts a row there instead of taking it, and the issue
pipeline asks again before every provider request (see :mod:`badges_bridge.privacy`).
"""

from __future__ import annotations

import enum
import logging
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from badges_bridge import outgoing, privacy, tombstones
from badges_bridge.causes import ErrorCause
from badges_bridge.conf import get_setting
from badges_bridge.data import BadgeRule, LearnerEvent
from badges_bridge.exceptions import LeaseLostError
from badges_bridge.models import (
    AuditEntry,
    AwardStatus,
    BadgeIssuance,
    BadgeTemplate,
    CleanupAction,
    CourseSettings,
    IssuanceState,
    IssuedBadge,
    Lane,
    Operation,
    Origin,
    ProviderCleanup,
    RevokedBy,
    RevokePolicy,
)
from badges_bridge.providers.base import AwardState

log = logging.getLogger(__name__)

S = IssuanceState

#: Work that is not an operation of the row: check badges touched by a worker that lost its lease.
RECONCILE = "reconcile"
#: Badges of retired learners wait in ProviderCleanup, to be revoked or deleted at their provider.
CLEANUP = "cleanup"

#: Allowed transitions (from -> to). Anything else is a bug and raises. Every state may also move to
#: ``retired`` (the learner retired), which is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    state: targets | {S.RETIRED}
    for state, targets in {
        S.PENDING: frozenset({S.ISSUING, S.REVOKE_PENDING, S.REVOKED, S.DEAD, S.ISSUED, S.WAITING_CONSENT}),
        S.ISSUING: frozenset(
            {S.ISSUING, S.ISSUED, S.FAILED, S.DEAD, S.REVOKE_PENDING, S.REJECTED, S.PENDING, S.WAITING_CONSENT}
        ),
        S.ISSUED: frozenset({S.REVOKE_PENDING, S.REJECTED, S.REVOKED, S.PENDING}),
        S.FAILED: frozenset(
            {S.ISSUING, S.REVOKE_PENDING, S.PENDING, S.DEAD, S.REVOKED, S.ISSUED, S.REJECTED, S.WAITING_CONSENT}
        ),
        S.DEAD: frozenset({S.PENDING, S.REVOKE_PENDING, S.ISSUED, S.REJECTED}),
        S.REVOKE_PENDING: frozenset({S.REVOKED, S.FAILED, S.DEAD, S.ISSUED, S.PENDING, S.REJECTED}),
        S.REVOKED: frozenset({S.PENDING, S.REVOKE_PENDING, S.WAITING_CONSENT, S.AWAITING_APPROVAL}),
        S.REJECTED: frozenset(),
        S.NOT_MET: frozenset({S.PENDING, S.WAITING_CONSENT, S.AWAITING_APPROVAL}),
        S.WAITING_CONSENT: frozenset({S.PENDING, S.REVOKE_PENDING, S.REVOKED, S.NOT_MET}),
        # Nothing was sent for these two: staff approve (pending, or waiting for the learner), decline,
        # or the criterion stops being met (under a revoke policy that says so).
        S.AWAITING_APPROVAL: frozenset({S.PENDING, S.WAITING_CONSENT, S.DECLINED, S.NOT_MET, S.REVOKED}),
        # Declined is final for events; only a manual award re-opens it.
        S.DECLINED: frozenset({S.PENDING, S.WAITING_CONSENT}),
    }.items()
}
TRANSITIONS[S.RETIRED] = frozenset()

#: Moves only an operator may ask for: issuing again a badge the learner rejected (see operator_reissue).
OPERATOR_TRANSITIONS: dict[str, frozenset[str]] = {S.REJECTED: frozenset({S.PENDING})}

#: States in which the learner holds (or is about to hold) the badge.
HOLDING_STATES = frozenset({S.PENDING, S.ISSUING, S.ISSUED, S.FAILED})
#: States in which a row that wants its badge has none yet.
AWAITING_STATES = frozenset({S.PENDING, S.ISSUING, S.FAILED, S.DEAD})
#: The audit message of a row that enters the approval queue.
AWAITING_MESSAGE = "awaiting approval by course staff"


class TransitionError(Exception):
    """A state change the ledger does not allow."""


@dataclass(frozen=True)
class Work:
    """A row that needs a task: ``operation`` is "issue", "revoke" or "reconcile"."""

    issuance_id: int
    operation: str


def _check(from_state: str, to_state: str, *, operator: bool = False) -> None:
    """Raise unless the ledger allows this move (staying put is always allowed, except re-issuing)."""
    allowed = TRANSITIONS[from_state] | (OPERATOR_TRANSITIONS.get(from_state, frozenset()) if operator else set())
    if (from_state != to_state or to_state == S.ISSUING) and to_state not in allowed:
        raise TransitionError(f"{from_state} -> {to_state} is not allowed")


def _audit(row: BadgeIssuance, from_state: str, actor: str, message: str = "", event_id: str = "") -> AuditEntry:
    return AuditEntry(
        issuance_id=row.pk,
        from_state=from_state,
        to_state=row.state,
        actor=actor[:100],
        event_id=event_id,
        message=message,
        at=row.state_changed_at,
    )


def _move(row: BadgeIssuance, to_state: str, now: datetime, *, operator: bool = False) -> str:
    """Change the row's state in memory; return the previous one.

    The first move of an award to *issued* records when it was issued.
    """
    from_state = row.state
    _check(from_state, to_state, operator=operator)
    row.state = to_state
    row.state_changed_at = now
    if to_state == S.ISSUED and row.issued_at is None:
        row.issued_at = now
    return from_state


def _reset_attempts(row: BadgeIssuance) -> None:
    """A new wish, or an operator's retry: no attempt made yet, due now."""
    row.attempts = 0
    row.next_attempt_at = None


def _start_new_award(row: BadgeIssuance) -> None:
    """A new award of the badge: a new identity, and no provider badge until one is obtained for it."""
    row.award_number += 1
    row.award_attempts = row.provider_requests = 0
    row.external_id = row.public_url = row.provider_state = ""
    row.provider_public = row.confirmed_at = row.revoked_at = row.provider_seen_at = row.issued_at = None
    row.revoked_by = row.revoke_reason = ""


#: Statuses of a badge that the learner no longer holds.
_ENDED = frozenset({AwardStatus.REVOKED, AwardStatus.GONE, AwardStatus.UNDONE})


def _record_badge(row: BadgeIssuance, external_id: str, status: str, provider_state: str = "") -> None:
    """Write what became of one of the row's provider badges, announcing or withdrawing it.

    A badge is announced (BADGE_AWARDED) when it first becomes live, and withdrawn
    (BADGE_REVOKED) when an announced badge ends; the flag changes with the row, in
    its transaction, and the event is sent after commit.
    """
    if not external_id:
        return
    record = IssuedBadge.objects.filter(issuance_id=row.pk, external_id=external_id).first()
    if record is None:
        record = IssuedBadge(issuance_id=row.pk, external_id=external_id)
    record.status, record.number = status, row.award_number
    if provider_state:
        record.provider_state = provider_state
    event = ""
    if status == AwardStatus.LIVE and not record.announced:
        record.announced, event = True, outgoing.AWARDED
    elif status in _ENDED and record.announced:
        record.announced, event = False, outgoing.REVOKED
    record.save()
    if event:
        outgoing.on_commit(event, row.user_id, row.course_badge_id, external_id)


# -- event side ---------------------------------------------------------------------------------------

_EVENT_FIELDS = [
    "state",
    "operation",
    "state_changed_at",
    "event_time",
    "attempts",
    "next_attempt_at",
    "last_error",
    "error_cause",
    "qualified_at",
    "issued_at",
    "event_id",
    "event_type",
    "grade",
    "config_version",
    "course_run_key",
    "award_number",
    "award_attempts",
    "provider_requests",
    "external_id",
    "public_url",
    "provider_state",
    "provider_public",
    "provider_seen_at",
    "confirmed_at",
    "revoked_at",
    "revoked_by",
    "revoke_reason",
    "lane",
    "origin",
    "reviewed_by",
    "reviewed_at",
    "review_note",
]


def _qualify(row: BadgeIssuance, rule: BadgeRule, event: LearnerEvent) -> None:
    """Record the qualifying event as the row's evidence."""
    row.qualified_at = event.occurred_at
    row.event_id = event.event_id
    row.event_type = event.event_type
    row.grade = event.percent_grade
    row.config_version = rule.version
    row.course_run_key = event.run_key
    row.origin = Origin.CRITERIA
    row.operation = Operation.ISSUE
    _reset_attempts(row)
    _clear_error(row)


def _clear_error(row: BadgeIssuance) -> None:
    row.last_error = row.error_cause = ""


def _wants_revoke(row: BadgeIssuance) -> bool:
    return row.state == S.REVOKE_PENDING or (row.state in (S.FAILED, S.DEAD) and row.operation == Operation.REVOKE)


def _plan_met(
    row: BadgeIssuance, rule: BadgeRule, event: LearnerEvent, now: datetime, held: Callable[[], str]
) -> tuple[str, str] | None:
    """The criterion is met: (message, operation to queue) when the row changes.

    ``held()`` says why the learner's data may not be sent ('' when it may).
    """
    if row.revoked_by in (RevokedBy.OPERATOR, RevokedBy.PROVIDER, RevokedBy.LEARNER):
        return None  # taken back by a person or at the provider: never re-awarded automatically
    if row.state in (S.AWAITING_APPROVAL, S.DECLINED):
        return None  # waiting for staff, or declined by staff: only a person changes that
    if row.state in (S.REVOKED, S.NOT_MET):
        reason = held()
        if reason == privacy.RETIRED:
            return None
        if rule.requires_approval:
            if _move(row, S.AWAITING_APPROVAL, now) == S.REVOKED:
                _start_new_award(row)
            _qualify(row, rule, event)
            row.reviewed_by_id, row.reviewed_at, row.review_note = None, None, ""  # a new decision is needed
            return f"criterion met again; {AWAITING_MESSAGE}", ""
        if _move(row, S.WAITING_CONSENT if reason else S.PENDING, now) == S.REVOKED:
            _start_new_award(row)
        _qualify(row, rule, event)
        if reason:
            return f"criterion met again; {privacy.HOLD_MESSAGES[reason]}", ""
        return "criterion met again; badge will be awarded", Operation.ISSUE
    if row.state == S.REVOKE_PENDING and _leased(row, now):
        # A task holds the row: record the wish; finish() applies it when the task ends.
        if row.operation == Operation.ISSUE:
            return None
        row.operation = Operation.ISSUE
        return "criterion met again while a task holds the row; it will be kept or re-awarded", ""
    if not _wants_revoke(row):
        return None
    revoke_attempted = row.attempts > 0
    row.revoked_by = row.revoke_reason = ""
    _clear_error(row)
    row.operation = Operation.ISSUE
    _reset_attempts(row)
    if row.external_id and not revoke_attempted:
        _move(row, S.ISSUED, now)
        return "criterion met again before the revoke ran; revoke cancelled", ""
    _move(row, S.PENDING, now)
    if row.external_id:  # a revoke may have reached the provider: the issue task checks the badge first
        return "criterion met again after a revoke attempt; the badge will be checked and kept or re-awarded", (
            Operation.ISSUE
        )
    return "criterion met again before the revoke ran", Operation.ISSUE


def policy_revokes(rule: BadgeRule, event: LearnerEvent) -> bool:
    """Whether the badge's revoke policy takes the badge back for an event that says the criterion is not met.

    "When the criterion is no longer met": any such event. "Only when the certificate is revoked":
    only a certificate revocation (a failing grade or a not-passing status revokes nothing).
    """
    if rule.revoke_policy == RevokePolicy.CRITERION_UNMET:
        return True
    return rule.revoke_policy == RevokePolicy.CERTIFICATE_REVOKED and event.certificate_revoked


def _plan_unmet(row: BadgeIssuance, rule: BadgeRule, event: LearnerEvent, now: datetime) -> tuple[str, str] | None:
    """The criterion is no longer met: (message, operation to queue) when the row changes."""
    if not policy_revokes(rule, event):
        return None
    if row.origin == Origin.MANUAL:
        return None  # a person awarded it, whatever the criterion says: only a person revokes it
    if row.state == S.AWAITING_APPROVAL:
        _move(row, S.NOT_MET, now)
        return "criterion no longer met while awaiting approval; removed from the approval queue", ""
    if row.state == S.WAITING_CONSENT:
        if not _may_exist_at_provider(row):
            _move(row, S.NOT_MET, now)
            return "criterion no longer met while waiting for the learner; nothing was sent", ""
        _move(row, S.REVOKE_PENDING, now)
        row.operation = Operation.REVOKE
        row.revoked_by = RevokedBy.POLICY
        _reset_attempts(row)
        return "criterion no longer met; a badge may exist at the provider and will be revoked", Operation.REVOKE
    if row.state == S.REVOKE_PENDING and row.operation == Operation.ISSUE:
        row.operation = Operation.REVOKE
        return "criterion no longer met again; the revoke goes on", ""
    if row.state in HOLDING_STATES or (row.state == S.DEAD and row.operation == Operation.ISSUE):
        if row.state == S.FAILED and row.operation == Operation.REVOKE:
            return None
        _move(row, S.REVOKE_PENDING, now)
        row.operation = Operation.REVOKE
        row.revoked_by = RevokedBy.POLICY
        _reset_attempts(row)
        return "criterion no longer met; badge will be revoked", Operation.REVOKE
    return None


def apply_event(
    event: LearnerEvent, decisions: list[tuple[BadgeRule, bool]], lane: str = Lane.INTERACTIVE
) -> list[Work]:
    """Upsert the ledger rows of one learner for the rules an event decides.

    Runs in a savepoint of the caller's transaction and uses a constant number
    of queries whatever the number of rules. Returns the work to queue after commit.
    New rows get ``lane``; the work of backfill rows is left to the feeder (never returned).
    A learning event that meets the criterion of a backfill row still waiting for the
    feeder makes it interactive, and returns its work.
    """
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _apply(event, decisions, lane)
        except IntegrityError:
            if attempt:
                raise
            log.info("badges_bridge: concurrent ledger insert for event %s; re-reading", event.event_id)
    return []  # pragma: no cover - the loop returns or raises


def _new_row(
    event: LearnerEvent, rule: BadgeRule, met: bool, now: datetime, held: Callable[[], str]
) -> BadgeIssuance | None:
    """The first row of a learner and badge, or None when the event needs none.

    A "not met" event is recorded only when the revoke policy would revoke for it, so that an
    older "met" event delivered later cannot issue a badge that this newer event denies. A met
    criterion of a badge that requires approval waits for course staff; otherwise, for a learner
    whose data may not be sent (``held()``), it waits for the learner. A retired learner gets no
    row at all.
    """
    if not met and not policy_revokes(rule, event):
        return None
    reason = held()
    if reason == privacy.RETIRED:
        return None
    if not met:
        state = S.NOT_MET
    elif rule.requires_approval:
        state = S.AWAITING_APPROVAL
    else:
        state = S.WAITING_CONSENT if reason else S.PENDING
    row = BadgeIssuance(
        user_id=event.user_id,
        course_badge_id=rule.course_badge_id,
        state=state,
        state_changed_at=now,
        event_time=event.occurred_at,
    )
    if met:
        _qualify(row, rule, event)
    else:
        row.event_id, row.event_type, row.course_run_key = event.event_id, event.event_type, event.run_key
        row.grade = event.percent_grade  # the learner's standing, shown on the learner page
    return row


def _held_check(user_id: int) -> Callable[[], str]:
    """Why the learner's data may not be sent (or that they retired), read once and only when a row asks."""
    known: list[str] = []

    def held() -> str:
        if not known:
            known.append(privacy.event_gate(user_id))
        return known[0]

    return held


def _promoted(row: BadgeIssuance, met: bool, lane: str) -> bool:
    """Make interactive a backfill row waiting for the feeder whose criterion a learning event meets."""
    if not (met and lane == Lane.INTERACTIVE and row.lane == Lane.BACKFILL):
        return False
    if row.state != S.PENDING or row.next_attempt_at is not None:
        return False
    row.lane = Lane.INTERACTIVE
    return True


def _apply(event: LearnerEvent, decisions: list[tuple[BadgeRule, bool]], lane: str) -> list[Work]:
    now = timezone.now()
    held = _held_check(event.user_id)
    badge_ids = [rule.course_badge_id for rule, _met in decisions]
    existing = {
        row.course_badge_id: row
        for row in BadgeIssuance.objects.select_for_update().filter(
            user_id=event.user_id, course_badge_id__in=badge_ids
        )
    }
    new_rows: list[BadgeIssuance] = []
    changed: list[tuple[BadgeIssuance, str, str]] = []  # (row, from_state, message)
    touched: list[BadgeIssuance] = []
    work_ops: dict[int, str] = {}
    for rule, met in decisions:
        row = existing.get(rule.course_badge_id)
        if row is None:
            row = _new_row(event, rule, met, now, held)
            if row is not None:
                row.lane = lane
                new_rows.append(row)
            continue
        if row.event_time and event.occurred_at < row.event_time:
            log.info(
                "badges_bridge: event %s is older than the last one applied to issuance %s; ignored",
                event.event_id,
                row.pk,
            )
            continue
        from_state = row.state
        plan = _plan_met(row, rule, event, now, held) if met else _plan_unmet(row, rule, event, now)
        if plan is None and _promoted(row, met, lane):
            plan = "criterion met by a learning event while the backfill had not queued the badge yet", Operation.ISSUE
        elif plan is not None and row.lane == Lane.BACKFILL and lane == Lane.INTERACTIVE:
            row.lane = Lane.INTERACTIVE  # a learning event changed the row: its work is no longer backfill
        if plan is not None:
            message, operation = plan
            changed.append((row, from_state, message))
            if operation:
                work_ops[row.pk] = operation
        if plan is not None or row.event_time != event.occurred_at:
            row.event_time = event.occurred_at
            touched.append(row)
    if new_rows:
        BadgeIssuance.objects.bulk_create(new_rows)
        if any(row.pk is None for row in new_rows):  # databases that cannot return ids from bulk inserts
            by_badge = dict(
                BadgeIssuance.objects.filter(
                    user_id=event.user_id, course_badge_id__in=[r.course_badge_id for r in new_rows]
                ).values_list("course_badge_id", "id")
            )
            for row in new_rows:
                row.pk = row.id = by_badge[row.course_badge_id]
    if touched:
        BadgeIssuance.objects.bulk_update(touched, _EVENT_FIELDS)
    actor = f"event:{event.event_type or 'unknown'}"
    qualified = [row for row in new_rows if row.state == S.PENDING]
    audits = [
        _audit(
            row, "", actor, "criterion met" if lane == Lane.INTERACTIVE else "criterion met; backfill", event.event_id
        )
        for row in qualified
    ]
    audits += [
        _audit(row, "", actor, f"criterion met; {privacy.HOLD_MESSAGES[held()]}", event.event_id)
        for row in new_rows
        if row.state == S.WAITING_CONSENT
    ]
    audits += [
        _audit(row, "", actor, f"criterion met; {AWAITING_MESSAGE}", event.event_id)
        for row in new_rows
        if row.state == S.AWAITING_APPROVAL
    ]
    audits += [_audit(row, from_state, actor, message, event.event_id) for row, from_state, message in changed]
    if audits:
        AuditEntry.objects.bulk_create(audits)
    work = [Work(row.pk, Operation.ISSUE) for row in qualified if row.lane == Lane.INTERACTIVE]
    work += [Work(pk, operation) for pk, operation in work_ops.items()]
    return work


# -- task side ------------------------------------------------------------------------------------------


def _leased(row: BadgeIssuance, now: datetime) -> bool:
    """Whether a task currently holds the row."""
    return bool(row.lease_expires_at and row.lease_expires_at > now)


def _free(now: datetime) -> Q:
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)


def _due(now: datetime) -> Q:
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)


def _workable(operation: str, now: datetime) -> Q:
    if operation == Operation.ISSUE:
        states = Q(state=S.PENDING) | Q(state=S.ISSUING) | Q(state=S.FAILED, operation=Operation.ISSUE)
    else:
        states = Q(state=S.REVOKE_PENDING) | Q(state=S.FAILED, operation=Operation.REVOKE)
    return states & _due(now) & _free(now)


def _lease(row: BadgeIssuance, now: datetime) -> None:
    row.lease_token = uuid.uuid4().hex
    row.lease_expires_at = now + timedelta(seconds=get_setting("LEASE_SECONDS"))


def _release(row: BadgeIssuance) -> None:
    row.lease_token = ""
    row.lease_expires_at = None


def _locked(issuance_id: int, condition: Q | None = None) -> BadgeIssuance | None:
    """The row under ``SELECT ... FOR UPDATE``; only the ledger row is locked, never its account or template."""
    queryset = BadgeIssuance.objects.select_for_update().filter(pk=issuance_id)
    return (queryset.filter(condition) if condition is not None else queryset).first()


def claim(issuance_id: int, operation: str, actor: str = "task") -> BadgeIssuance | None:
    """Take a row for work if it is due and nobody else holds it; None otherwise.

    The claim counts an attempt and gives this worker a lease of LEASE_SECONDS. A row
    whose earlier attempts all ended without a word (the worker was killed, ran out of
    memory or hit its time limit) is given up as dead once the maximum is reached.
    """
    now = timezone.now()
    with transaction.atomic():
        row = _locked(issuance_id, _workable(operation, now))
        if row is None:
            return None
        if tombstones.is_retired(row.user_id):  # retired after the row was written: erase it, send nothing
            _erase(row, now, "task:retirement")
            return None
        if row.attempts >= get_setting("MAX_ATTEMPTS"):
            _give_up(row, now, actor)
            return None
        reason = privacy.hold_reason(row.user_id) if operation == Operation.ISSUE else ""
        if reason:
            _hold(row, now, actor, privacy.HOLD_MESSAGES[reason])
            return None
        target = S.ISSUING if operation == Operation.ISSUE else S.REVOKE_PENDING
        from_state = _move(row, target, now)
        if operation == Operation.ISSUE:
            row.operation = operation  # a revoke claim keeps a re-award wish (see _plan_met)
            row.award_attempts += 1
        row.attempts += 1
        _lease(row, now)
        row.save(
            update_fields=[
                "state",
                "state_changed_at",
                "operation",
                "attempts",
                "award_attempts",
                "lease_token",
                "lease_expires_at",
                "modified",
            ]
        )
        if from_state != target or row.attempts > 1:
            AuditEntry.objects.create(**_audit_fields(row, from_state, actor, f"attempt {row.attempts}"))
    return row


def _hold(row: BadgeIssuance, now: datetime, actor: str, message: str) -> None:
    """Put a locked row that wants its badge in waiting_consent: nothing is sent until the learner agrees."""
    from_state = _move(row, S.WAITING_CONSENT, now)
    _reset_attempts(row)
    row.last_error = ""
    _release(row)
    row.save()
    AuditEntry.objects.create(**_audit_fields(row, from_state, actor, message))


def _give_up(row: BadgeIssuance, now: datetime, actor: str) -> None:
    reason = (
        f"gave up after {row.attempts} attempts: the worker never reported back "
        "(killed, out of memory or past its time limit?)"
    )
    from_state = _move(row, S.DEAD, now)
    row.last_error = reason
    row.error_cause = ErrorCause.WORKER_LOST
    row.next_attempt_at = None
    _release(row)
    row.save()
    AuditEntry.objects.create(**_audit_fields(row, from_state, actor, reason))
    log.error("badges_bridge: issuance %s is dead (%s): %s", row.pk, ErrorCause.WORKER_LOST, reason)


def renew(row: BadgeIssuance) -> None:
    """Extend the lease of a row this worker holds; LeaseLostError when another worker took it over.

    Called before every provider request, so a worker never talks to the provider for a
    row it no longer owns, and the lease only has to outlast one request.
    """
    expires = timezone.now() + timedelta(seconds=get_setting("LEASE_SECONDS"))
    if not BadgeIssuance.objects.filter(pk=row.pk, lease_token=row.lease_token).update(lease_expires_at=expires):
        raise LeaseLostError(f"Issuance {row.pk} was taken over by another worker")
    row.lease_expires_at = expires


def renew_all(rows: list[BadgeIssuance]) -> None:
    """Extend the shared lease of the rows of one bulk request; LeaseLostError when any of them was taken over."""
    expires = timezone.now() + timedelta(seconds=get_setting("LEASE_SECONDS"))
    token = rows[0].lease_token
    renewed = BadgeIssuance.objects.filter(pk__in=[row.pk for row in rows], lease_token=token).update(
        lease_expires_at=expires
    )
    if renewed != len(rows):
        raise LeaseLostError(f"{len(rows) - renewed} of the {len(rows)} rows of a bulk request were taken over")
    for row in rows:
        row.lease_expires_at = expires


def claim_partners(lead: BadgeIssuance, account_id: int, limit: int, minimum: int) -> list[BadgeIssuance]:
    """Claim up to ``limit`` other rows of an account that a bulk create can carry along with ``lead``.

    They share the lead's lease. Only rows whose badge can be created without a look-up qualify:
    pending, no attempt yet in their award, no provider badge, an enabled course badge on an active
    template that refuses duplicates, and no badge this plugin could bring back. Nothing is claimed
    when fewer than ``minimum`` are ready; rows another worker is locking are skipped.
    """
    now = timezone.now()
    ready = Q(state=S.PENDING, award_attempts=0, external_id="") & _due(now) & _free(now)
    revocable = IssuedBadge.objects.filter(
        issuance=OuterRef("pk"), status=AwardStatus.REVOKED, provider_state="expired"
    )
    eligible = (
        BadgeIssuance.objects.filter(
            ready,
            course_badge__enabled=True,
            course_badge__template__account_id=account_id,
            course_badge__template__state=BadgeTemplate.State.ACTIVE,
            course_badge__template__allow_duplicates=False,
        )
        .filter(privacy.sendable())
        .exclude(Exists(revocable))
        .values_list("pk", "user_id")
    )
    # The rows after the lead first, then the newest before it: tasks queued for consecutive
    # chunks of rows (the backfill feeder's) each take their own chunk instead of racing for
    # the oldest rows, and a newer lead takes rows no other lead is about to take.
    found = list(eligible.filter(pk__gt=lead.pk).order_by("id")[:limit])
    if len(found) < limit:
        found += list(eligible.filter(pk__lt=lead.pk).order_by("-id")[: limit - len(found)])
    retired = tombstones.retired_among(user_id for _pk, user_id in found)  # left for their own claim to erase
    candidates = [pk for pk, user_id in found if user_id not in retired]
    if not candidates or len(candidates) < minimum:
        return []
    with transaction.atomic():
        rows = list(
            BadgeIssuance.objects.select_for_update(skip_locked=True).filter(ready, pk__in=candidates).order_by("id")
        )
        if len(rows) < minimum:
            return []
        for row in rows:
            _move(row, S.ISSUING, now)
            row.operation = Operation.ISSUE
            row.attempts += 1
            row.award_attempts += 1
            row.lease_token, row.lease_expires_at = lead.lease_token, lead.lease_expires_at
        BadgeIssuance.objects.bulk_update(
            rows,
            ["state", "state_changed_at", "operation", "attempts", "award_attempts", "lease_token", "lease_expires_at"],
        )
        message = f"attempt 1, in a bulk create with issuance {lead.pk}"
        AuditEntry.objects.bulk_create([_audit(row, S.PENDING, "task:issue", message) for row in rows])
    return rows


def hold(issuance_id: int) -> BadgeIssuance | None:
    """Lease a row without changing its state (to reconcile its badges); None while another worker holds it."""
    now = timezone.now()
    with transaction.atomic():
        row = _locked(issuance_id, _free(now))
        if row is None:
            return None
        _lease(row, now)
        row.save(update_fields=["lease_token", "lease_expires_at"])
    return row


def _audit_fields(row: BadgeIssuance, from_state: str, actor: str, message: str) -> dict:
    return {
        "issuance_id": row.pk,
        "from_state": from_state,
        "to_state": row.state,
        "actor": actor[:100],
        "message": message,
        "at": row.state_changed_at,
    }


def _locked_own_row(row: BadgeIssuance) -> BadgeIssuance | None:
    """Re-read a claimed row under lock; None when the lease was lost to another worker."""
    current = _locked(row.pk)
    if current is None or current.lease_token != row.lease_token:
        log.warning("badges_bridge: lost the lease on issuance %s; leaving it to its new owner", row.pk)
        return None
    return current


def _refresh(row: BadgeIssuance, current: BadgeIssuance) -> None:
    row.__dict__.update({k: v for k, v in current.__dict__.items() if not k.startswith("_")})


#: Fields describing the provider's badge, kept even when the row's state must not change.
_PROVIDER_FIELDS = frozenset({"external_id", "public_url", "provider_state", "provider_public", "confirmed_at"})


def finish(row: BadgeIssuance, to_state: str, actor: str, message: str = "", **fields) -> bool:
    """Record the outcome of a claimed row's work, release it and refresh ``row``.

    Returns False, changing nothing, when the lease was lost to another worker.
    Events may have changed what is wanted while the task ran (``operation``):
    - an issue ended but a revoke is now wanted: the row stays revoke-pending and
      keeps what was learnt of the provider's badge; the caller queues the revoke;
    - a revoke ended but the badge is wanted again: a revoked badge is re-awarded
      as a new award; after a failed revoke the badge is checked before it is kept
      (pending, queued by the caller).
    """
    now = timezone.now()
    with transaction.atomic():
        current = _locked_own_row(row)
        if current is None:
            return False
        wanted = current.operation
        if fields.get("last_error") == "":
            fields["error_cause"] = ""
        # The learner's rejection is final: it wins over a revoke asked for meanwhile.
        rejected = to_state == S.REJECTED
        if wanted != row.operation and not rejected:
            fields = {name: value for name, value in fields.items() if name in _PROVIDER_FIELDS}
        for name, value in fields.items():
            setattr(current, name, value)
        _release(current)
        if wanted == row.operation or rejected:
            from_state = _move(current, to_state, now)
            _record_outcome(current, to_state)
            if wanted != row.operation:
                current.operation, current.revoked_by, current.revoke_reason = row.operation, "", ""
                message = f"{message}; the revoke requested meanwhile is moot"
        elif wanted == Operation.REVOKE:
            from_state = current.state
            _record_badge(current, current.external_id, AwardStatus.LIVE, current.provider_state)
            message = f"{message}; a revoke was requested meanwhile"
        else:
            from_state = _move(current, S.PENDING, now)
            if to_state == S.REVOKED:
                _record_outcome(current, to_state)
                _start_new_award(current)
            current.revoked_by = current.revoke_reason = ""
            _reset_attempts(current)
            message = f"{message}; the criterion was met again meanwhile"
        current.save()
        AuditEntry.objects.create(**_audit_fields(current, from_state, actor, message))
    _refresh(row, current)
    return True


def _record_outcome(row: BadgeIssuance, to_state: str) -> None:
    """Keep the provider badge named by a finished row in its history."""
    if to_state == S.ISSUED:
        _record_badge(row, row.external_id, AwardStatus.LIVE, row.provider_state)
    elif to_state == S.REJECTED:
        _record_badge(row, row.external_id, AwardStatus.GONE, row.provider_state)
    elif to_state == S.REVOKED:
        _record_badge(row, row.external_id, AwardStatus.REVOKED, row.provider_state)


def retire_badge(row: BadgeIssuance, provider_state: str, actor: str) -> None:
    """The held row's badge is no longer live at the provider: keep it in the history and start a new award.

    Used by an issue task that finds the badge of a row it is about to issue gone (a
    revoke attempt reached the provider after all). Raises LeaseLostError.
    """
    with transaction.atomic():
        current = _locked_own_row(row)
        if current is None:
            raise LeaseLostError(f"Issuance {row.pk} was taken over by another worker")
        gone = current.external_id
        _record_badge(current, gone, AwardStatus.REVOKED, provider_state)
        _start_new_award(current)
        current.award_attempts = 1  # this claim is the new award's first attempt
        current.save()
        AuditEntry.objects.create(
            **_audit_fields(current, current.state, actor, f"badge {gone} is {provider_state} at the provider")
        )
    _refresh(row, current)


def revoked_badges(row: BadgeIssuance) -> list[str]:
    """Provider ids of the row's badges that this plugin expired and could bring back, newest first."""
    return list(
        row.awards.filter(status=AwardStatus.REVOKED, provider_state="expired").values_list("external_id", flat=True)
    )


def known_badges(row: BadgeIssuance) -> set[str]:
    """Provider ids of every badge the row ever had (those undone by mistake excepted)."""
    return set(row.awards.exclude(status=AwardStatus.UNDONE).values_list("external_id", flat=True))


def retry_delay(attempts: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: exponential backoff with jitter, at least Retry-After."""
    base = float(get_setting("RETRY_BASE_SECONDS"))
    cap = float(get_setting("RETRY_MAX_SECONDS"))
    backoff = min(cap, base * (2 ** max(0, attempts - 1)))
    delay = backoff * random.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


def fail(
    row: BadgeIssuance, error: Exception, actor: str, *, transient: bool, counts: bool = True, **fields
) -> float | None:
    """Record a failed attempt: FAILED with a next attempt time, or DEAD; ``fields`` are saved too.

    ``counts=False`` gives the attempt back (it never reached the provider, e.g.
    our own rate limit refused it), so waiting can never make a row dead, and a
    refused first attempt of an award stays a first attempt.
    Returns the delay before the next attempt, or None when the row is dead or the lease was lost.
    """
    message = str(error)[:2000] or type(error).__name__
    cause = getattr(error, "cause", ErrorCause.UNEXPECTED)
    extra = {**fields, "error_cause": cause}
    if not counts:
        extra["attempts"] = row.attempts - 1
        if row.operation == Operation.ISSUE:
            extra["award_attempts"] = row.award_attempts - 1
    if transient and (not counts or row.attempts < get_setting("MAX_ATTEMPTS")):
        delay = retry_delay(row.attempts, getattr(error, "retry_after", None))
        recorded = finish(
            row,
            S.FAILED,
            actor,
            f"attempt {row.attempts} failed: {message}; retry in {delay:.0f}s",
            last_error=message,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            **extra,
        )
        return delay if recorded else None
    reason = message if not transient else f"gave up after {row.attempts} attempts: {message}"
    if finish(row, S.DEAD, actor, reason, last_error=reason, next_attempt_at=None, error_cause=cause, **fields):
        log.error("badges_bridge: issuance %s is dead (%s): %s", row.pk, cause, reason)
    return None


# -- badges touched without a lease -------------------------------------------------------------------------


def record_unconfirmed(issuance_id: int, external_ids: Iterable[str], actor: str, what: str) -> str:
    """Keep badges a worker changed at the provider after it lost its lease, to be checked by a reconcile.

    Returns RECONCILE when the badges wait for a reconcile, CLEANUP when the row's learner retired
    meanwhile (the badges then wait for the retirement clean-up, unlinked from the row), and ''
    when nothing was recorded.
    """
    external_ids = [external_id for external_id in dict.fromkeys(external_ids) if external_id]
    if not external_ids:
        return ""
    with transaction.atomic():
        row = _locked(issuance_id)
        if row is None:
            return ""
        if row.state == S.RETIRED:
            account_id = row.course_badge.template.account_id
            _queue_cleanups(account_id, external_ids, get_setting("RETIREMENT_ACTION"))
            AuditEntry.objects.create(**_audit_fields(row, row.state, actor, f"{what} after the learner retired"))
            log.warning("badges_bridge: issuance %s: %s after the learner retired; queued for clean-up", row.pk, what)
            return CLEANUP
        for external_id in external_ids:
            _record_badge(row, external_id, AwardStatus.UNCONFIRMED)
        message = f"{what} ({', '.join(external_ids)}) after its lease had run out; to be checked at the provider"
        AuditEntry.objects.create(**_audit_fields(row, row.state, actor, message))
    log.warning("badges_bridge: issuance %s: %s", issuance_id, message)
    return RECONCILE


def unconfirmed_badges(row: BadgeIssuance) -> list[str]:
    """Provider ids of the row's badges waiting for a reconcile."""
    return list(row.awards.filter(status=AwardStatus.UNCONFIRMED).values_list("external_id", flat=True))


def has_unconfirmed(issuance_id: int) -> bool:
    """Whether the row has badges waiting for a reconcile."""
    return IssuedBadge.objects.filter(issuance_id=issuance_id, status=AwardStatus.UNCONFIRMED).exists()


@dataclass
class Settlement:
    """What a reconcile decided for a held row's badges (see issuing.process_reconcile)."""

    #: external id -> (status, provider state) to record.
    badges: dict[str, tuple[str, str]]
    #: A live badge to adopt as the row's own: (external id, public url, provider state).
    adopt: tuple[str, str, str] | None = None
    #: The row's own badge turned out not to be live while the row wants it: start a new award.
    reaward: bool = False
    #: The row's own badge turned out to be live while the row says revoked: revoke it again.
    revoke_again: bool = False


def settle(row: BadgeIssuance, settlement: Settlement, actor: str, message: str) -> Work | None:
    """Apply a reconcile's decisions to the held row, release it, and return the work that follows."""
    now = timezone.now()
    with transaction.atomic():
        current = _locked_own_row(row)
        if current is None:
            return None
        from_state = current.state
        for external_id, (status, provider_state) in settlement.badges.items():
            _record_badge(current, external_id, status, provider_state)
        work = None
        if settlement.reaward and current.operation == Operation.ISSUE:
            _move(current, S.PENDING, now)
            _start_new_award(current)
            _reset_attempts(current)
            work = Work(current.pk, Operation.ISSUE)
        if settlement.revoke_again and current.state == S.REVOKED:
            _move(current, S.REVOKE_PENDING, now)
            _reset_attempts(current)
            work = Work(current.pk, Operation.REVOKE)
        if settlement.adopt is not None:
            current.external_id, current.public_url, current.provider_state = settlement.adopt
            current.confirmed_at = now
            _clear_error(current)
            current.next_attempt_at = None
            _move(current, S.ISSUED, now)
            _record_badge(current, current.external_id, AwardStatus.LIVE, current.provider_state)
            work = None
        _release(current)
        current.save()
        AuditEntry.objects.create(**_audit_fields(current, from_state, actor, message))
    _refresh(row, current)
    return work


def release(row: BadgeIssuance) -> None:
    """Give a held row back without changing it (a reconcile that could not finish)."""
    BadgeIssuance.objects.filter(pk=row.pk, lease_token=row.lease_token).update(lease_token="", lease_expires_at=None)


# -- operator side -----------------------------------------------------------------------------------------


#: States an operator's retry applies to.
RETRYABLE_STATES = frozenset({S.FAILED, S.DEAD})


def operator_retry(issuance_id: int, actor: str, *, forced_past: str = "") -> Work | None:
    """Make a failed or dead row due now (keeping its operation); return the work to queue.

    None, changing nothing, when the row is in another state. ``forced_past`` names a cause
    the operator chose to retry despite; it is kept in the audit log.
    """
    now = timezone.now()
    with transaction.atomic():
        row = _locked(issuance_id)
        if row is None or row.state not in RETRYABLE_STATES:
            return None
        target = S.PENDING if row.operation == Operation.ISSUE else S.REVOKE_PENDING
        from_state = _move(row, target, now)
        _reset_attempts(row)
        row.save()
        message = f"retry forced although {forced_past}" if forced_past else "retry requested"
        AuditEntry.objects.create(**_audit_fields(row, from_state, actor, message))
    return Work(row.pk, row.operation)


def operator_revoke(
    issuance_id: int, actor: str, reason: str, revoked_by: str = RevokedBy.OPERATOR, user_id: int | None = None
) -> Work | None:
    """Ask for a badge to be revoked whatever its criterion says; return the work to queue.

    ``revoked_by`` is the operator (default) or the learner; with ``user_id``, only a row of
    that learner is revoked. A row awaiting approval, or waiting for the learner while its
    badge cannot exist at the provider, is revoked at once, with no work.
    """
    now = timezone.now()
    with transaction.atomic():
        row = _locked(issuance_id)
        if row is None or row.state in (S.REJECTED, S.NOT_MET, S.DECLINED) or user_id not in (None, row.user_id):
            return None
        if row.state in (S.REVOKED, S.REVOKE_PENDING):
            # Already taken back (or on its way) by the policy: make it a person's decision, so
            # that a later event never re-awards it.
            if row.revoked_by != revoked_by:
                row.revoked_by, row.revoke_reason, row.operation = revoked_by, reason, Operation.REVOKE
                row.save()
                AuditEntry.objects.create(**_audit_fields(row, row.state, actor, f"revocation confirmed: {reason}"))
            return None
        if row.state == S.AWAITING_APPROVAL or (row.state == S.WAITING_CONSENT and not _may_exist_at_provider(row)):
            from_state = _move(row, S.REVOKED, now)
            row.operation, row.revoked_by, row.revoke_reason, row.revoked_at = Operation.REVOKE, revoked_by, reason, now
            row.save()
            AuditEntry.objects.create(**_audit_fields(row, from_state, actor, f"{reason} (nothing was sent)"))
            return None
        from_state = _move(row, S.REVOKE_PENDING, now)
        row.operation = Operation.REVOKE
        row.revoked_by = revoked_by
        row.revoke_reason = reason
        _reset_attempts(row)
        _clear_error(row)
        row.save()
        AuditEntry.objects.create(**_audit_fields(row, from_state, actor, reason))
    return Work(row.pk, Operation.REVOKE)


def stuck_condition(stuck_after: timedelta) -> Q:
    """Rows whose work has been due for longer than ``stuck_after``: nobody is doing it."""
    cutoff = timezone.now() - stuck_after
    waiting = Q(state__in=[S.PENDING, S.ISSUING, S.REVOKE_PENDING], state_changed_at__lte=cutoff)
    return waiting | Q(state=S.FAILED, next_attempt_at__lte=cutoff)


def due_work(limit: int) -> list[Work]:
    """Rows whose work is due but may have no task queued (lost messages, dead workers, retries).

    Rows with badges waiting for a reconcile come last, once nobody holds them.
    """
    now = timezone.now()
    grace = now - timedelta(seconds=get_setting("REDRIVE_GRACE_SECONDS"))
    stale_new = Q(state__in=[S.PENDING, S.REVOKE_PENDING], state_changed_at__lte=grace, next_attempt_at__isnull=True)
    retry_due = Q(state__in=[S.FAILED, S.PENDING, S.REVOKE_PENDING], next_attempt_at__lte=now)
    retry_due &= ~Q(state=S.PENDING, lane=Lane.BACKFILL)  # the feeder's, also when queued long ago
    stale_new &= ~Q(state=S.PENDING, lane=Lane.BACKFILL)
    stuck = Q(state=S.ISSUING)  # with no live lease: its worker died
    rows = (
        BadgeIssuance.objects.filter((stale_new | retry_due | stuck) & _free(now))
        .order_by("next_attempt_at", "id")
        .values_list("id", "state", "operation")[:limit]
    )
    by_state = {S.PENDING: Operation.ISSUE, S.ISSUING: Operation.ISSUE, S.REVOKE_PENDING: Operation.REVOKE}
    work = [Work(pk, by_state.get(state, operation)) for pk, state, operation in rows]
    if len(work) < limit:
        unconfirmed = IssuedBadge.objects.filter(issuance=OuterRef("pk"), status=AwardStatus.UNCONFIRMED)
        reconcile = (
            BadgeIssuance.objects.filter(Exists(unconfirmed) & _free(now))
            .exclude(pk__in=[item.issuance_id for item in work])
            .order_by("id")
            .values_list("id", flat=True)[: limit - len(work)]
        )
        work += [Work(pk, RECONCILE) for pk in reconcile]
    return work


# -- backfill ----------------------------------------------------------------------------------------------


def _account_badges(account_id: int) -> list[int]:
    """Ids of the course badges of an account (so that row queries need no join, and lock no other table)."""
    from badges_bridge.models import CourseBadge

    return list(CourseBadge.objects.filter(template__account_id=account_id).values_list("id", flat=True))


def _fed_until() -> datetime:
    """Rows marked as queued before this are waiting again: their task was lost, or its lead was carried along."""
    seconds = max(30.0, 3 * float(get_setting("BACKFILL_FEED_SECONDS")))
    return timezone.now() - timedelta(seconds=seconds)


def backfill_waiting(account_id: int | None = None) -> Q:
    """Backfill rows the feeder must queue (of one account, or of all).

    Those not queued yet, and those queued long enough ago that their task should have run: the
    feeder queues one task per bulk of rows, and when another request carried the row of that
    task along, the other rows of the bulk have no task left. Rows of a course whose badges are
    switched off (the Course App toggle) wait until they are switched on again.
    """
    fed_long_ago = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=_fed_until())
    switched_off = CourseSettings.objects.filter(badges_enabled=False).values("course_key")
    waiting = Q(lane=Lane.BACKFILL, state=S.PENDING) & fed_long_ago & ~Q(course_badge__course_key__in=switched_off)
    return waiting & Q(course_badge_id__in=_account_badges(account_id)) if account_id is not None else waiting


def backfill_in_flight(account_id: int) -> int:
    """Backfill rows of an account queued by the feeder whose first award has not ended yet.

    Rows failed with a retry due within a minute count too: they are about to spend the budget.
    """
    soon = timezone.now() + timedelta(seconds=60)
    fed = Q(state=S.PENDING, next_attempt_at__gte=_fed_until()) | Q(state=S.ISSUING)
    fed |= Q(state=S.FAILED, next_attempt_at__lte=soon)  # waiting for the next window (or a quick retry)
    return BadgeIssuance.objects.filter(
        fed, lane=Lane.BACKFILL, operation=Operation.ISSUE, course_badge_id__in=_account_badges(account_id)
    ).count()


def feed_backfill(account_id: int, limit: int) -> list[int]:
    """Mark up to ``limit`` waiting backfill rows of an account as queued, oldest first; returns their ids.

    Each row is marked by a conditional update, so two feeders never queue the same row. A
    marked row is due at once; when it is still pending a while later (see ``backfill_waiting``),
    the feeder queues it again.
    """
    if limit <= 0:
        return []
    candidates = BadgeIssuance.objects.filter(backfill_waiting(account_id)).order_by("id").values_list("id", flat=True)
    return mark_fed(list(candidates[:limit]))


def mark_fed(ids: list[int]) -> list[int]:
    """Mark backfill rows as queued, each only if it still waits; returns the ids this caller marked."""
    now = timezone.now()
    waiting = backfill_waiting()
    return [pk for pk in ids if BadgeIssuance.objects.filter(waiting, pk=pk).update(next_attempt_at=now)]


def _reissuable(row: BadgeIssuance) -> bool:
    """Rejected by the learner, or taken back by an operator or at the provider: never re-awarded on its own."""
    return row.state == S.REJECTED or (
        row.state == S.REVOKED and row.revoked_by in (RevokedBy.OPERATOR, RevokedBy.PROVIDER)
    )


def operator_reissue(issuance_id: int, actor: str) -> Work | None:
    """Issue again, on purpose, a badge the learner rejected or that was taken back by an operator or at the provider.

    Starts a new award (no provider badge yet) whatever the criterion says; returns the work
    to queue, or None when the row is in no such state.
    """
    now = timezone.now()
    with transaction.atomic():
        row = _locked(issuance_id)
        if row is None or not _reissuable(row):
            return None
        if row.state == S.REJECTED:
            was = "rejected by the learner"
        else:
            was = f"revoked ({row.get_revoked_by_display().lower()})"
        from_state = _move(row, S.PENDING, now, operator=True)
        _start_new_award(row)
        row.operation = Operation.ISSUE
        _reset_attempts(row)
        row.last_error = ""
        row.save()
        AuditEntry.objects.create(
            **_audit_fields(row, from_state, actor, f"issued again on purpose; the badge had been {was}")
        )
    return Work(row.pk, Operation.ISSUE)


# -- provider side -----------------------------------------------------------------------------------------


class ProviderUpdate(enum.StrEnum):
    """What became of a provider's news about one badge."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    #: No ledger row has this badge as its current badge.
    NOT_CURRENT = "not_current"
    #: A worker holds the row: try again once its lease is over.
    BUSY = "busy"
    #: Older than the latest provider news already applied to the row.
    STALE = "stale"


@dataclass(frozen=True)
class ProviderResult:
    """The outcome of :func:`record_provider_badge`."""

    outcome: ProviderUpdate
    issuance_id: int | None = None
    message: str = ""


def record_provider_badge(
    account_id: int,
    external_id: str,
    state: AwardState,
    actor: str,
    *,
    public: bool | None = None,
    occurred_at: datetime | None = None,
    issuance_id: int | None = None,
) -> ProviderResult:
    """Apply what the provider says of a badge to the ledger row whose current badge it is.

    * A badge the learner rejected ends an issued row, or a row that wants its badge revoked:
      ``rejected``, which is final.
    * A badge no longer held (revoked, expired, replaced, deleted) ends an issued row: ``revoked``,
      by the provider, never re-awarded automatically.
    * A live badge updates an issued row's provider state (e.g. accepted) and public flag.

    Rows in other states are left to the pipeline. A row a worker holds is BUSY; news that
    occurred before the latest news applied to the row (``occurred_at``) is STALE.
    ``issuance_id`` names the row when the caller knows it (the drift check).
    """
    now = timezone.now()
    if issuance_id is None:
        issuance_id = (
            BadgeIssuance.objects.filter(external_id=external_id, course_badge__template__account_id=account_id)
            .values_list("pk", flat=True)
            .first()
        )
    if not external_id or issuance_id is None:
        return ProviderResult(ProviderUpdate.NOT_CURRENT)
    with transaction.atomic():
        row = _locked(issuance_id, Q(external_id=external_id))
        if row is None:
            return ProviderResult(ProviderUpdate.NOT_CURRENT)
        if _leased(row, now):
            return ProviderResult(ProviderUpdate.BUSY, row.pk, "a worker holds the row")
        if occurred_at is not None and row.provider_seen_at is not None and occurred_at < row.provider_seen_at:
            return ProviderResult(ProviderUpdate.STALE, row.pk, "older than the news already applied")
        from_state = row.state
        message = _provider_change(row, state, public, now)
        if occurred_at is not None:
            row.provider_seen_at = occurred_at
        if message is None:
            if occurred_at is not None:
                row.save(update_fields=["provider_seen_at"])
            return ProviderResult(ProviderUpdate.UNCHANGED, row.pk, f"nothing to change (the row is {row.state})")
        row.save()
        AuditEntry.objects.create(**_audit_fields(row, from_state, actor, message))
    log.info("badges_bridge: issuance %s: %s", row.pk, message)
    return ProviderResult(ProviderUpdate.CHANGED, row.pk, message)


def _provider_change(row: BadgeIssuance, state: AwardState, public: bool | None, now: datetime) -> str | None:
    """Change the locked row for what the provider says; the audit message, or None when nothing changed."""
    if state == AwardState.REJECTED:
        if row.state != S.ISSUED and not _wants_revoke(row):
            return None
        _move(row, S.REJECTED, now)
        row.provider_state = state.value
        row.revoked_by = row.revoke_reason = row.last_error = ""
        _reset_attempts(row)
        _record_badge(row, row.external_id, AwardStatus.GONE, state.value)
        return "the learner rejected the badge at the provider"
    if row.state != S.ISSUED:
        return None
    if not state.is_live:
        _move(row, S.REVOKED, now)
        row.provider_state, row.revoked_at, row.revoked_by = state.value, now, RevokedBy.PROVIDER
        _record_badge(row, row.external_id, AwardStatus.GONE, state.value)
        return f"the badge is {state.value} at the provider"
    changes = []
    if state.value != row.provider_state:
        changes.append("the learner accepted the badge" if state == AwardState.ACCEPTED else f"the badge is {state}")
        row.provider_state = state.value
        IssuedBadge.objects.filter(issuance_id=row.pk, external_id=row.external_id).update(provider_state=state.value)
    if public is not None and public != row.provider_public:
        changes.append("the badge is public" if public else "the badge is private")
        row.provider_public = public
    return f"{' and '.join(changes)} at the provider" if changes else None


# -- retirement ----------------------------------------------------------------------------------------------


def retire_learner(user_id: int, actor: str) -> tuple[int, int]:
    """Erase a retired learner's personal data from their ledger rows; returns (rows erased, badges to clean up).

    Each row is kept for anonymous counts, in state ``retired``, without its user id, provider
    badge ids, public URL, grade, dates or evidence; its audit entries lose their messages and
    event ids, and its provider badge history is deleted. The provider badges that the clean-up
    must revoke or delete (BADGES_BRIDGE_RETIREMENT_ACTION) are first copied to ProviderCleanup,
    which has no link to the learner. A worker holding one of the rows loses its lease; what it
    still changes at the provider goes to the clean-up too (see record_unconfirmed).
    """
    now = timezone.now()
    with transaction.atomic():
        rows = list(BadgeIssuance.objects.select_for_update().filter(user_id=user_id).order_by("pk"))
        badges = sum(_erase(row, now, actor) for row in rows)
    return len(rows), badges


def _cleanup_ids(row: BadgeIssuance, action: str) -> list[str]:
    """Provider ids of the row's badges that the retirement clean-up must revoke or delete."""
    records = row.awards.values_list("external_id", "status")
    if action == CleanupAction.DELETE:
        return [external_id for external_id, status in records if status != AwardStatus.UNDONE]
    return [external_id for external_id, status in records if status in (AwardStatus.LIVE, AwardStatus.UNCONFIRMED)]


def _queue_cleanups(account_id: int, external_ids: Iterable[str], action: str) -> None:
    """Keep badges to revoke or delete at the provider, unlinked from any learner; a delete wins over a revoke."""
    for external_id in external_ids:
        cleanup, created = ProviderCleanup.objects.get_or_create(
            account_id=account_id, external_id=external_id, defaults={"action": action}
        )
        if not created and action == CleanupAction.DELETE and cleanup.action != action:
            ProviderCleanup.objects.filter(pk=cleanup.pk).update(action=action)


def _erase(row: BadgeIssuance, now: datetime, actor: str) -> int:
    """Retire one locked row (see retire_learner); returns how many of its badges wait for the clean-up."""
    action = get_setting("RETIREMENT_ACTION")
    external_ids = _cleanup_ids(row, action)
    account_id = BadgeTemplate.objects.filter(course_badges__pk=row.course_badge_id).values_list("account_id")[0][0]
    _queue_cleanups(account_id, external_ids, action)
    row.awards.all().delete()
    row.audit_entries.update(message="", event_id="")
    from_state = _move(row, S.RETIRED, now)
    row.user_id = None
    row.external_id = row.public_url = row.provider_state = row.revoked_by = row.revoke_reason = ""
    row.last_error = row.event_id = row.course_run_key = ""
    row.provider_public = row.provider_seen_at = row.issued_at = row.confirmed_at = row.revoked_at = None
    row.qualified_at = row.event_time = row.grade = row.next_attempt_at = row.reviewed_at = None
    row.review_note = ""
    _release(row)
    row.save()
    message = f"the learner retired: personal data erased; {len(external_ids)} badge(s) to {action} at the provider"
    AuditEntry.objects.create(**_audit_fields(row, from_state, actor, message))
    return len(external_ids)


def claim_cleanup(cleanup_id: int) -> ProviderCleanup | None:
    """Take a due clean-up for work, with a lease of LEASE_SECONDS; None when it is not due or gone."""
    now = timezone.now()
    lease_end = now + timedelta(seconds=get_setting("LEASE_SECONDS"))
    claimed = ProviderCleanup.objects.filter(_due(now), pk=cleanup_id).update(
        next_attempt_at=lease_end, attempts=F("attempts") + 1
    )
    return ProviderCleanup.objects.select_related("account").filter(pk=cleanup_id).first() if claimed else None


def finish_cleanup(cleanup: ProviderCleanup, error: str = "", delay: float | None = None) -> None:
    """Delete a clean-up the provider confirmed, or record its error and when to try again (``delay``)."""
    mine = ProviderCleanup.objects.filter(pk=cleanup.pk, next_attempt_at=cleanup.next_attempt_at)
    if delay is None:
        mine.delete()
    else:
        mine.update(last_error=error[:2000], next_attempt_at=timezone.now() + timedelta(seconds=delay))


def due_cleanups(limit: int) -> list[int]:
    """Clean-ups due now (new ones, retries, and those whose worker died)."""
    due = ProviderCleanup.objects.filter(_due(timezone.now())).order_by("next_attempt_at", "id")
    return list(due.values_list("pk", flat=True)[:limit])


# -- the learner's privacy choices -------------------------------------------------------------------------


def _may_exist_at_provider(row: BadgeIssuance) -> bool:
    """Whether the row's current award may have a badge at the provider (an issue attempt was made)."""
    return bool(row.external_id) or row.award_attempts > 0


def hold_learner(user_id: int, actor: str, message: str) -> int:
    """Put the learner's rows that wait for their badge (and that no worker holds) in waiting_consent.

    A row a worker holds is stopped by the worker itself, before its next provider request.
    Returns the number of rows held.
    """
    now = timezone.now()
    waiting = Q(state=S.PENDING) | Q(state=S.FAILED, operation=Operation.ISSUE)
    with transaction.atomic():
        rows = list(BadgeIssuance.objects.select_for_update().filter(waiting & _free(now), user_id=user_id))
        for row in rows:
            _hold(row, now, actor, message)
    return len(rows)


def hold_claimed(row: BadgeIssuance, actor: str, message: str, *, nothing_sent: bool = False) -> bool:
    """Put a row this worker holds in waiting_consent and release it; False when the lease was lost.

    ``nothing_sent``: the worker sent no request in this attempt, which is then given back, so that
    the award counts as never attempted (a later revoke looks nothing up by e-mail address).
    """
    now = timezone.now()
    with transaction.atomic():
        current = _locked_own_row(row)
        if current is None:
            return False
        if nothing_sent:
            current.award_attempts = max(0, current.award_attempts - 1)
        if current.operation == Operation.ISSUE:
            _hold(current, now, actor, message)
        else:  # a revoke was asked for meanwhile: it goes on (a revoke sends no personal data)
            from_state = _move(current, S.REVOKE_PENDING, now)
            _release(current)
            current.save()
            AuditEntry.objects.create(**_audit_fields(current, from_state, actor, f"{message}; the revoke goes on"))
    _refresh(row, current)
    return True


def release_waiting(user_id: int | None, actor: str, limit: int | None = None) -> list[Work]:
    """Queue the rows waiting for their learner (one learner, or any) whose data may now be sent.

    Used when a learner consents or opts back in, and by the redrive (which heals a choice
    made while a worker was putting a row on hold). Returns the work to queue after commit.
    """
    now = timezone.now()
    queryset = BadgeIssuance.objects.filter(state=S.WAITING_CONSENT).filter(privacy.sendable())
    if user_id is not None:
        queryset = queryset.filter(user_id=user_id)
    ids = list(queryset.order_by("id").values_list("id", flat=True)[:limit])
    work: list[Work] = []
    with transaction.atomic():
        rows = BadgeIssuance.objects.select_for_update().filter(pk__in=ids, state=S.WAITING_CONSENT)
        for row in rows:
            from_state = _move(row, S.PENDING, now)
            row.operation = Operation.ISSUE
            _reset_attempts(row)
            row.save()
            AuditEntry.objects.create(
                **_audit_fields(row, from_state, actor, "the learner's data may be sent now; badge will be sent")
            )
            work.append(Work(row.pk, Operation.ISSUE))
    return work


# -- manual awards -------------------------------------------------------------------------------------------


class ManualOutcome(enum.StrEnum):
    """What the ledger did with a manual award of one learner (see :func:`manual_award`)."""

    AWARDED = "awarded"
    ALREADY_HELD = "already_held"
    NOT_ALLOWED = "not_allowed"


#: States a manual award re-opens: no badge, or only a decision of the criterion or of course staff.
_MANUAL_REOPENS = frozenset({S.REVOKED, S.NOT_MET, S.AWAITING_APPROVAL, S.DECLINED})

#: Why a row that was taken back by a person or at the provider is not awarded again by a manual award.
_REISSUE_HINT = 'use "issue again on purpose" on the ledger row instead'


def _manual_refusal(row: BadgeIssuance) -> str:
    """Why an existing row may not be awarded manually ('' when it may)."""
    if row.state == S.RETIRED:
        return "the learner retired"
    if row.state == S.REJECTED:
        return f"the learner rejected this badge at the provider; {_REISSUE_HINT}"
    if row.state in (S.REVOKED, S.REVOKE_PENDING) or _wants_revoke(row):
        if row.revoked_by == RevokedBy.LEARNER:
            return "the learner asked for this badge to be taken back"
        if row.revoked_by in (RevokedBy.OPERATOR, RevokedBy.PROVIDER):
            who = "by an operator or course staff" if row.revoked_by == RevokedBy.OPERATOR else "at the provider"
            return f"the badge was revoked {who}; {_REISSUE_HINT}"
        if row.state != S.REVOKED:
            return "a revoke of this badge is in progress; award it again once it is revoked"
    return ""


def _start_manual(row: BadgeIssuance, now: datetime) -> None:
    """Make a (new or re-opened) row a manual award that wants its badge."""
    row.origin = Origin.MANUAL
    row.operation = Operation.ISSUE
    row.lane = Lane.INTERACTIVE
    row.qualified_at = now
    row.event_id = row.event_type = row.course_run_key = ""
    row.grade = None
    _reset_attempts(row)
    _clear_error(row)


def manual_award(user_id: int, course_badge_id: int, actor: str, reason: str = "") -> tuple[str, str, Work | None]:
    """Award a badge to one learner by hand, whatever the criterion says: (outcome, detail, work to queue).

    The row is created, or re-opened when the revoke policy had taken the badge back (a new
    award), the latest event said the criterion was not met, or the award awaits approval or was
    declined by course staff (awarding by hand is a staff decision too). It is marked ``manual``, so the
    revoke policy never takes it back. A learner whose data may not be sent waits in
    ``waiting_consent`` like any other award. The audit entry names ``actor`` and ``reason``.
    """
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _manual_award(user_id, course_badge_id, actor, reason)
        except IntegrityError:  # another submission created the row meanwhile: read it again
            if attempt:
                raise
            log.info("badges_bridge: concurrent manual award of course badge %s; re-reading", course_badge_id)
    return ManualOutcome.NOT_ALLOWED, "", None  # pragma: no cover - the loop returns or raises


def _learner_row(user_id: int, course_badge_id: int) -> BadgeIssuance | None:
    """The learner's row of a course badge, locked (None when there is none yet)."""
    return BadgeIssuance.objects.select_for_update().filter(user_id=user_id, course_badge_id=course_badge_id).first()


def _manual_award(user_id: int, course_badge_id: int, actor: str, reason: str) -> tuple[str, str, Work | None]:
    now = timezone.now()
    row = _learner_row(user_id, course_badge_id)
    gate = privacy.event_gate(user_id)
    if gate == privacy.RETIRED:
        return ManualOutcome.NOT_ALLOWED, "the learner retired", None
    message = "awarded manually" + (f": {reason}" if reason else "")
    if gate:
        message = f"{message}; {privacy.HOLD_MESSAGES[gate]}"
    if row is None:
        row = BadgeIssuance(
            user_id=user_id,
            course_badge_id=course_badge_id,
            state=S.WAITING_CONSENT if gate else S.PENDING,
            state_changed_at=now,
        )
        _start_manual(row, now)
        with transaction.atomic():
            row.save(force_insert=True)
        from_state = ""
    else:
        refusal = _manual_refusal(row)
        if refusal:
            return ManualOutcome.NOT_ALLOWED, refusal, None
        if row.state not in _MANUAL_REOPENS:
            if row.state == S.WAITING_CONSENT:
                return ManualOutcome.ALREADY_HELD, "the award waits for the learner's consent or opt-in", None
            return ManualOutcome.ALREADY_HELD, f"the badge is {row.get_state_display().lower()}", None
        from_state = _move(row, S.WAITING_CONSENT if gate else S.PENDING, now)
        if from_state == S.REVOKED:
            _start_new_award(row)
        _start_manual(row, now)
        row.save()
    AuditEntry.objects.create(**_audit_fields(row, from_state, actor, message))
    detail = privacy.HOLD_MESSAGES[gate] if gate else ""
    return ManualOutcome.AWARDED, detail, (None if gate else Work(row.pk, Operation.ISSUE))


# -- staff approval ------------------------------------------------------------------------------------------


#: Rows reviewed per transaction (each transaction locks its rows).
REVIEW_CHUNK = 200


@dataclass
class Review:
    """What a staff review of some rows did: the ids done, those skipped with why, and the work to queue."""

    done: list[int]
    skipped: list[tuple[int, str]]
    work: list[Work]
    #: Whether approved backfill rows now wait for the backfill feeder.
    feed_backfill: bool = False


def _review_refusal(row: BadgeIssuance | None, course_badge_id: int) -> str:
    """Why a row cannot be approved or declined now ('' when it can)."""
    if row is None:
        return "no such ledger row"
    if row.course_badge_id != course_badge_id:
        return "not an award of this course badge"
    if row.state == S.AWAITING_APPROVAL:
        return ""
    if row.state == S.DECLINED:
        return "already declined by course staff"
    if row.reviewed_at is not None:
        return f"already approved by course staff (it is {row.get_state_display().lower()})"
    return f"not awaiting approval (it is {row.get_state_display().lower()})"


def review(
    course_badge_id: int, issuance_ids: Iterable[int], actor: str, reviewer_id: int | None, decline_reason: str = ""
) -> Review:
    """Approve (no ``decline_reason``) or decline the rows of a course badge that await approval.

    Each row is locked and checked: a row of another course badge, or no longer awaiting approval
    (another staff member reviewed it first, an event took it out of the queue), is skipped with
    why. An approved row becomes pending in its lane (waiting_consent when the learner's data may
    not be sent); the work of interactive rows is returned, backfill rows wait for the feeder. A
    declined row keeps ``decline_reason`` as its review note and is never re-queued by events.
    """
    ids = list(dict.fromkeys(int(pk) for pk in issuance_ids))
    result = Review(done=[], skipped=[], work=[])
    for start in range(0, len(ids), REVIEW_CHUNK):
        chunk = ids[start : start + REVIEW_CHUNK]
        with transaction.atomic():
            by_id = {
                row.pk: row for row in BadgeIssuance.objects.select_for_update().filter(pk__in=chunk).order_by("pk")
            }
            reviewable = []
            for pk in chunk:
                refusal = _review_refusal(by_id.get(pk), course_badge_id)
                if refusal:
                    result.skipped.append((pk, refusal))
                else:
                    reviewable.append(by_id[pk])
            if decline_reason:
                audits = [_decline(row, actor, reviewer_id, decline_reason) for row in reviewable]
            else:
                gates = privacy.gates(row.user_id for row in reviewable)
                audits = [audit for row in reviewable if (audit := _approve(row, actor, reviewer_id, gates, result))]
            BadgeIssuance.objects.bulk_update([by_id[audit.issuance_id] for audit in audits], _REVIEW_FIELDS)
            AuditEntry.objects.bulk_create(audits)
            result.done += [audit.issuance_id for audit in audits]
    return result


#: The fields an approval or a decline changes.
_REVIEW_FIELDS = [
    "state",
    "state_changed_at",
    "operation",
    "attempts",
    "next_attempt_at",
    "last_error",
    "error_cause",
    "reviewed_by",
    "reviewed_at",
    "review_note",
    "modified",
]


def _reviewed(row: BadgeIssuance, to_state: str, reviewer_id: int | None, note: str) -> str:
    """Move a locked row out of the approval queue, recording who reviewed it and when; the previous state."""
    now = timezone.now()
    from_state = _move(row, to_state, now)
    row.reviewed_by_id, row.reviewed_at, row.review_note = reviewer_id, now, note
    row.modified = now
    return from_state


def _approve(
    row: BadgeIssuance, actor: str, reviewer_id: int | None, gates: dict[int, str], result: Review
) -> AuditEntry | None:
    """Approve one locked row in memory; its audit entry, or None when it was skipped (the learner retired)."""
    gate = gates.get(row.user_id, "")
    if gate == privacy.RETIRED:
        result.skipped.append((row.pk, "the learner retired"))
        return None
    from_state = _reviewed(row, S.WAITING_CONSENT if gate else S.PENDING, reviewer_id, "")
    row.operation = Operation.ISSUE
    _reset_attempts(row)
    _clear_error(row)
    message = f"approved by {actor}" + (f"; {privacy.HOLD_MESSAGES[gate]}" if gate else "")
    if not gate and row.lane == Lane.BACKFILL:
        result.feed_backfill = True
    elif not gate:
        result.work.append(Work(row.pk, Operation.ISSUE))
    return _audit(row, from_state, actor, message)


def _decline(row: BadgeIssuance, actor: str, reviewer_id: int | None, reason: str) -> AuditEntry:
    """Decline one locked row in memory; its audit entry."""
    from_state = _reviewed(row, S.DECLINED, reviewer_id, reason)
    return _audit(row, from_state, actor, f"declined by {actor}: {reason}")
