"""The public Python API of badges_bridge.

Admin actions, management commands, REST views and other apps call these
functions; they never touch providers or the ledger directly. Nothing here
returns a model instance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from badges_bridge import accounts, config_cache, criteria, events, ledger
from badges_bridge.conf import get_setting
from badges_bridge.data import AccountHealth, LearnerBadge, LearnerEvent, RedriveResult, SyncResult
from badges_bridge.exceptions import BadgesBridgeError
from badges_bridge.ledger import Work
from badges_bridge.models import BadgeIssuance, IssuanceState, Operation, ProviderAccount, RejectedEvent

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
    event_id: str, event_type: str, reason: str, course_key: str = "", user_id: int | None = None
) -> None:
    """Keep a learning event that could not be processed, for operators to see."""
    with transaction.atomic():  # a savepoint: a failure here must not spoil the sender's transaction
        RejectedEvent.objects.create(
            event_id=event_id[:64],
            event_type=event_type[:128],
            reason=events.clip(reason, REASON_MAX_CHARS),
            course_key=course_key[:255],
            user_id=user_id,
        )


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
    """Queue (or, with ``inline``, run here) the work of every row that is due.

    This recovers from lost broker messages, killed workers and scheduled retries.
    """
    from badges_bridge.tasks import enqueue, issue_badge, revoke_badge

    result = RedriveResult()
    for work in ledger.due_work(limit or get_setting("REDRIVE_BATCH_SIZE")):
        if inline:
            task = issue_badge if work.operation == Operation.ISSUE else revoke_badge
            task(work.issuance_id)
        elif not enqueue(work):
            continue
        result.ids.append(work.issuance_id)
        if work.operation == Operation.ISSUE:
            result.issue += 1
        else:
            result.revoke += 1
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


_LEARNER_STATUS = {
    IssuanceState.ISSUED: "issued",
    IssuanceState.REVOKE_PENDING: "revoked",
    IssuanceState.REVOKED: "revoked",
    IssuanceState.REJECTED: "rejected",
}


def learner_badges(user_id: int) -> list[LearnerBadge]:
    """Every badge of one learner, newest first, in learner-facing terms."""
    rows = (
        BadgeIssuance.objects.filter(user_id=user_id)
        .select_related("course_badge__template__account")
        .order_by("-issued_at", "-id")
    )
    return [
        LearnerBadge(
            course_key=str(row.course_badge.course_key),
            name=row.course_badge.template.name,
            description=row.course_badge.template.description,
            image_url=row.course_badge.template.image_url,
            provider=row.course_badge.template.account.provider,
            status=_LEARNER_STATUS.get(row.state, "processing"),
            public_url=row.public_url if row.state == IssuanceState.ISSUED else "",
            issued_at=row.issued_at,
            revoked_at=row.revoked_at,
        )
        for row in rows
    ]
