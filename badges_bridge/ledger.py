"""The issuance ledger's state machine.

Rows move through the states of :class:`~badges_bridge.models.IssuanceState`;
every move is written with an :class:`~badges_bridge.models.AuditEntry`. This
module only changes rows: it never calls a provider and never queues work. It
returns the ids that need work so that the caller can queue it after commit.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from badges_bridge.conf import get_setting
from badges_bridge.data import BadgeRule, LearnerEvent
from badges_bridge.models import AuditEntry, BadgeIssuance, IssuanceState, Operation, RevokedBy, RevokePolicy

log = logging.getLogger(__name__)

S = IssuanceState

#: Allowed transitions (from -> to). Anything else is a bug and raises.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.ISSUING, S.REVOKE_PENDING, S.REVOKED, S.DEAD}),
    S.ISSUING: frozenset({S.ISSUING, S.ISSUED, S.FAILED, S.DEAD, S.REVOKE_PENDING, S.REJECTED}),
    S.ISSUED: frozenset({S.REVOKE_PENDING, S.REJECTED, S.REVOKED, S.PENDING}),
    S.FAILED: frozenset({S.ISSUING, S.REVOKE_PENDING, S.PENDING, S.DEAD, S.REVOKED, S.ISSUED}),
    S.DEAD: frozenset({S.PENDING, S.REVOKE_PENDING}),
    S.REVOKE_PENDING: frozenset({S.REVOKED, S.FAILED, S.DEAD, S.ISSUED, S.PENDING, S.REJECTED}),
    S.REVOKED: frozenset({S.PENDING}),
    S.REJECTED: frozenset(),
}

#: States in which the learner holds (or is about to hold) the badge.
HOLDING_STATES = frozenset({S.PENDING, S.ISSUING, S.ISSUED, S.FAILED})


class TransitionError(Exception):
    """A state change the ledger does not allow."""


@dataclass(frozen=True)
class Work:
    """A row that needs a task: ``operation`` is "issue" or "revoke"."""

    issuance_id: int
    operation: str


def _check(from_state: str, to_state: str) -> None:
    """Raise unless the ledger allows this move (staying put is always allowed, except re-issuing)."""
    if (from_state != to_state or to_state == S.ISSUING) and to_state not in TRANSITIONS[from_state]:
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


def _move(row: BadgeIssuance, to_state: str, now: datetime) -> str:
    """Change the row's state in memory; return the previous one."""
    from_state = row.state
    _check(from_state, to_state)
    row.state = to_state
    row.state_changed_at = now
    return from_state


# -- event side ---------------------------------------------------------------------------------------

_EVENT_FIELDS = [
    "state",
    "operation",
    "state_changed_at",
    "event_time",
    "attempts",
    "next_attempt_at",
    "last_error",
    "issued_at",
    "event_id",
    "event_type",
    "grade",
    "config_version",
    "course_run_key",
    "revoked_at",
    "revoked_by",
    "revoke_reason",
]


def _qualify(row: BadgeIssuance, rule: BadgeRule, event: LearnerEvent) -> None:
    """Record the qualifying event as the row's evidence."""
    row.issued_at = event.occurred_at
    row.event_id = event.event_id
    row.event_type = event.event_type
    row.grade = event.percent_grade
    row.config_version = rule.version
    row.course_run_key = event.run_key
    row.operation = Operation.ISSUE
    row.attempts = 0
    row.next_attempt_at = None
    row.last_error = ""


def _plan_met(row: BadgeIssuance, rule: BadgeRule, event: LearnerEvent, now: datetime) -> tuple[str, str] | None:
    """The criterion is met: (message, operation to queue) when the row changes."""
    if row.revoked_by in (RevokedBy.OPERATOR, RevokedBy.PROVIDER):
        return None  # taken back by a person or at the provider: never re-awarded automatically
    if row.state == S.REVOKED:
        _move(row, S.PENDING, now)
        _qualify(row, rule, event)
        row.revoked_at = None
        row.revoked_by = row.revoke_reason = ""
        return "criterion met again; badge will be re-awarded", Operation.ISSUE
    if row.state == S.REVOKE_PENDING and _leased(row, now):
        # A task holds the row: record the wish; finish() applies it when the task ends.
        if row.operation == Operation.ISSUE:
            return None
        row.operation = Operation.ISSUE
        return "criterion met again while a task holds the row; it will be kept or re-awarded", ""
    if row.state == S.REVOKE_PENDING or (row.state == S.FAILED and row.operation == Operation.REVOKE):
        row.revoked_by = ""
        row.operation = Operation.ISSUE
        row.next_attempt_at = None
        row.attempts = 0
        if row.external_id:
            _move(row, S.ISSUED, now)
            return "criterion met again before the revoke ran; revoke cancelled", ""
        _move(row, S.PENDING, now)
        return "criterion met again before the revoke ran", Operation.ISSUE
    return None


def _plan_unmet(row: BadgeIssuance, rule: BadgeRule, now: datetime) -> tuple[str, str] | None:
    """The criterion is no longer met: (message, operation to queue) when the row changes."""
    if rule.revoke_policy != RevokePolicy.CRITERION_UNMET:
        return None
    if row.state == S.REVOKE_PENDING and row.operation == Operation.ISSUE:
        row.operation = Operation.REVOKE
        return "criterion no longer met again; the revoke goes on", ""
    if row.state in HOLDING_STATES or (row.state == S.DEAD and row.operation == Operation.ISSUE):
        if row.state == S.FAILED and row.operation == Operation.REVOKE:
            return None
        _move(row, S.REVOKE_PENDING, now)
        row.operation = Operation.REVOKE
        row.revoked_by = RevokedBy.POLICY
        row.attempts = 0
        row.next_attempt_at = None
        return "criterion no longer met; badge will be revoked", Operation.REVOKE
    return None


def apply_event(event: LearnerEvent, decisions: list[tuple[BadgeRule, bool]]) -> list[Work]:
    """Upsert the ledger rows of one learner for the rules an event decides.

    Runs in a savepoint of the caller's transaction and uses a constant number
    of queries whatever the number of rules. Returns the work to queue after commit.
    """
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _apply(event, decisions)
        except IntegrityError:
            if attempt:
                raise
            log.info("badges_bridge: concurrent ledger insert for event %s; re-reading", event.event_id)
    return []  # pragma: no cover - the loop returns or raises


def _apply(event: LearnerEvent, decisions: list[tuple[BadgeRule, bool]]) -> list[Work]:
    now = timezone.now()
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
            if met:
                row = BadgeIssuance(
                    user_id=event.user_id,
                    course_badge_id=rule.course_badge_id,
                    state=S.PENDING,
                    state_changed_at=now,
                    event_time=event.occurred_at,
                )
                _qualify(row, rule, event)
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
        plan = _plan_met(row, rule, event, now) if met else _plan_unmet(row, rule, now)
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
    audits = [_audit(row, "", actor, "criterion met", event.event_id) for row in new_rows]
    audits += [_audit(row, from_state, actor, message, event.event_id) for row, from_state, message in changed]
    if audits:
        AuditEntry.objects.bulk_create(audits)
    work = [Work(row.pk, Operation.ISSUE) for row in new_rows]
    work += [Work(pk, operation) for pk, operation in work_ops.items()]
    return work


# -- task side ------------------------------------------------------------------------------------------


def _leased(row: BadgeIssuance, now: datetime) -> bool:
    """Whether a task currently holds the row."""
    return bool(row.lease_expires_at and row.lease_expires_at > now)


def _workable(operation: str, now: datetime) -> Q:
    if operation == Operation.ISSUE:
        states = Q(state=S.PENDING) | Q(state=S.ISSUING) | Q(state=S.FAILED, operation=Operation.ISSUE)
    else:
        states = Q(state=S.REVOKE_PENDING) | Q(state=S.FAILED, operation=Operation.REVOKE)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    return states & due & free


def claim(issuance_id: int, operation: str, actor: str = "task") -> BadgeIssuance | None:
    """Take a row for work if it is due and nobody else holds it; None otherwise.

    The claim counts an attempt and gives this worker a lease of LEASE_SECONDS.
    """
    now = timezone.now()
    with transaction.atomic():
        row = (
            BadgeIssuance.objects.select_for_update()
            .select_related("course_badge__template__account")
            .filter(_workable(operation, now), pk=issuance_id)
            .first()
        )
        if row is None:
            return None
        target = S.ISSUING if operation == Operation.ISSUE else S.REVOKE_PENDING
        from_state = _move(row, target, now)
        if operation == Operation.ISSUE:
            row.operation = operation  # a revoke claim keeps a re-award wish (see _plan_met)
        row.attempts += 1
        row.lease_token = uuid.uuid4().hex
        row.lease_expires_at = now + timedelta(seconds=get_setting("LEASE_SECONDS"))
        row.save(
            update_fields=[
                "state",
                "state_changed_at",
                "operation",
                "attempts",
                "lease_token",
                "lease_expires_at",
                "modified",
            ]
        )
        if from_state != target or row.attempts > 1:
            AuditEntry.objects.create(**_audit_fields(row, from_state, actor, f"attempt {row.attempts}"))
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
    current = BadgeIssuance.objects.select_for_update().filter(pk=row.pk).first()
    if current is None or current.lease_token != row.lease_token:
        log.warning("badges_bridge: lost the lease on issuance %s; leaving it to its new owner", row.pk)
        return None
    return current


def _release(row: BadgeIssuance) -> None:
    row.lease_token = ""
    row.lease_expires_at = None


#: Fields describing the provider's badge, kept even when the row's state must not change.
_PROVIDER_FIELDS = frozenset({"external_id", "public_url", "provider_state", "confirmed_at"})


def finish(row: BadgeIssuance, to_state: str, actor: str, message: str = "", **fields) -> None:
    """Record the outcome of a claimed row's work, release it and refresh ``row``.

    Events may have changed what is wanted while the task ran (``operation``):
    - an issue ended but a revoke is now wanted: the row stays revoke-pending and
      keeps what was learnt of the provider's badge; the caller queues the revoke;
    - a revoke ended but the badge is wanted again: a revoked badge is re-awarded
      (pending, queued by the caller); a failed revoke leaves the badge issued.
    """
    now = timezone.now()
    with transaction.atomic():
        current = _locked_own_row(row)
        if current is None:
            return
        wanted = current.operation
        if wanted != row.operation:
            fields = {name: value for name, value in fields.items() if name in _PROVIDER_FIELDS}
        for name, value in fields.items():
            setattr(current, name, value)
        _release(current)
        if wanted == row.operation:
            from_state = _move(current, to_state, now)
        elif wanted == Operation.REVOKE:
            from_state = current.state
            message = f"{message}; a revoke was requested meanwhile"
        else:
            if to_state == S.REVOKED:
                current.external_id = current.public_url = ""
                current.revoked_at = None
            from_state = _move(current, S.ISSUED if current.external_id else S.PENDING, now)
            current.revoked_by = current.revoke_reason = ""
            current.attempts = 0
            current.next_attempt_at = None
            message = f"{message}; the criterion was met again meanwhile"
        current.save()
        AuditEntry.objects.create(**_audit_fields(current, from_state, actor, message))
    row.__dict__.update({k: v for k, v in current.__dict__.items() if not k.startswith("_")})


def retry_delay(attempts: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: exponential backoff with jitter, at least Retry-After."""
    base = float(get_setting("RETRY_BASE_SECONDS"))
    cap = float(get_setting("RETRY_MAX_SECONDS"))
    backoff = min(cap, base * (2 ** max(0, attempts - 1)))
    delay = backoff * random.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


def fail(row: BadgeIssuance, error: Exception, actor: str, *, transient: bool, counts: bool = True) -> float | None:
    """Record a failed attempt: FAILED with a next attempt time, or DEAD.

    ``counts=False`` gives the attempt back (it never reached the provider, e.g.
    our own rate limit refused it), so waiting can never make a row dead.
    Returns the delay before the next attempt, or None when the row is dead.
    """
    message = str(error)[:2000] or type(error).__name__
    extra = {} if counts else {"attempts": row.attempts - 1}
    if transient and (not counts or row.attempts < get_setting("MAX_ATTEMPTS")):
        delay = retry_delay(row.attempts, getattr(error, "retry_after", None))
        finish(
            row,
            S.FAILED,
            actor,
            f"attempt {row.attempts} failed: {message}; retry in {delay:.0f}s",
            last_error=message,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            **extra,
        )
        return delay
    reason = message if not transient else f"gave up after {row.attempts} attempts: {message}"
    finish(row, S.DEAD, actor, reason, last_error=reason, next_attempt_at=None)
    return None


# -- operator side -----------------------------------------------------------------------------------------


def operator_retry(issuance_id: int, actor: str) -> Work | None:
    """Make a failed or dead row due now (keeping its operation); return the work to queue."""
    now = timezone.now()
    with transaction.atomic():
        row = BadgeIssuance.objects.select_for_update().filter(pk=issuance_id).first()
        if row is None or row.state not in (S.FAILED, S.DEAD):
            return None
        target = S.PENDING if row.operation == Operation.ISSUE else S.REVOKE_PENDING
        from_state = _move(row, target, now)
        row.attempts = 0
        row.next_attempt_at = None
        row.save()
        AuditEntry.objects.create(**_audit_fields(row, from_state, actor, "retry requested"))
    return Work(row.pk, row.operation)


def operator_revoke(issuance_id: int, actor: str, reason: str) -> Work | None:
    """Ask for a badge to be revoked whatever its criterion says; return the work to queue."""
    now = timezone.now()
    with transaction.atomic():
        row = BadgeIssuance.objects.select_for_update().filter(pk=issuance_id).first()
        if row is None or row.state == S.REJECTED:
            return None
        if row.state in (S.REVOKED, S.REVOKE_PENDING):
            # Already taken back (or on its way) by the policy: make it the operator's decision, so
            # that a later event never re-awards it.
            if row.revoked_by != RevokedBy.OPERATOR:
                row.revoked_by, row.revoke_reason, row.operation = RevokedBy.OPERATOR, reason, Operation.REVOKE
                row.save()
                AuditEntry.objects.create(**_audit_fields(row, row.state, actor, f"revocation confirmed: {reason}"))
            return None
        from_state = _move(row, S.REVOKE_PENDING, now)
        row.operation = Operation.REVOKE
        row.revoked_by = RevokedBy.OPERATOR
        row.revoke_reason = reason
        row.attempts = 0
        row.next_attempt_at = None
        row.last_error = ""
        row.save()
        AuditEntry.objects.create(**_audit_fields(row, from_state, actor, reason))
    return Work(row.pk, Operation.REVOKE)


def due_work(limit: int) -> list[Work]:
    """Rows whose work is due but may have no task queued (lost messages, dead workers, retries)."""
    now = timezone.now()
    grace = now - timedelta(seconds=get_setting("REDRIVE_GRACE_SECONDS"))
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    stale_new = Q(state__in=[S.PENDING, S.REVOKE_PENDING], state_changed_at__lte=grace, next_attempt_at__isnull=True)
    retry_due = Q(state__in=[S.FAILED, S.PENDING, S.REVOKE_PENDING], next_attempt_at__lte=now)
    stuck = Q(state=S.ISSUING, lease_expires_at__lte=now)
    rows = (
        BadgeIssuance.objects.filter((stale_new | retry_due | stuck) & free)
        .order_by("next_attempt_at", "id")
        .values_list("id", "state", "operation")[:limit]
    )
    by_state = {S.PENDING: Operation.ISSUE, S.ISSUING: Operation.ISSUE, S.REVOKE_PENDING: Operation.REVOKE}
    return [Work(pk, by_state.get(state, operation)) for pk, state, operation in rows]
