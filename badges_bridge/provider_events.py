"""Provider notifications, task side: fetch the event back from the provider and act on what was fetched.

A notification only gives an event id (see :mod:`badges_bridge.webhooks`). The
task fetches that event from the provider with the account's credentials; an id
the provider does not know (a forged or mistaken notification) changes nothing.
What the fetched event says is applied through the ledger:

* a badge event applies the badge as it was when the event occurred (its state
  and public flag, or its deletion) to the ledger row whose current badge it is
  (:func:`badges_bridge.ledger.record_provider_badge`); news older than what the
  row already knows is ignored, so deliveries in any order converge;
* a template event re-syncs that template; a template the provider no longer
  has disables its course badges and leaves a notice for staff;
* other events are recorded and ignored.

Each event is handled once per account: the record of its id stays for
BADGES_BRIDGE_PROVIDER_EVENT_RETENTION_DAYS. A transient failure is retried
with the ledger's backoff by the redrive, up to BADGES_BRIDGE_MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from badges_bridge import accounts, ledger
from badges_bridge.accounts import provider_for
from badges_bridge.conf import get_setting
from badges_bridge.exceptions import BadgesBridgeError, NotFoundError, TransientProviderError
from badges_bridge.models import ProviderAccount, ProviderEvent, ProviderEventStatus
from badges_bridge.providers.base import AwardState, RemoteEvent, RemoteEventKind

log = logging.getLogger(__name__)
St = ProviderEventStatus

#: Longest result kept on a record.
RESULT_MAX_CHARS = 1000


def receive(account_id: int, event_id: str) -> ProviderEvent | None:
    """Record a notified event id; the new record, or None when the id was seen before (a replay)."""
    with transaction.atomic():
        record, created = ProviderEvent.objects.get_or_create(account_id=account_id, event_id=event_id)
    return record if created else None


def _claim(account_id: int, event_id: str) -> ProviderEvent | None:
    """Take a due record for work with a lease of LEASE_SECONDS, counting an attempt; None when not due or taken."""
    now = timezone.now()
    due_now = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    mine = ProviderEvent.objects.filter(account_id=account_id, event_id=event_id)
    lease_end = now + timedelta(seconds=get_setting("LEASE_SECONDS"))
    claimed = mine.filter(due_now, status__in=[St.RECEIVED, St.WAITING]).update(
        next_attempt_at=lease_end, attempts=F("attempts") + 1
    )
    return mine.select_related("account").first() if claimed else None


def _close(record: ProviderEvent, status: str, result: str, event_type: str = "", delay: float | None = None) -> None:
    """Record what became of a claimed event (``delay``: when it waits for a retry)."""
    values = {"status": status, "result": result[:RESULT_MAX_CHARS]}
    if event_type:
        values["event_type"] = event_type[:100]
    if delay is None:
        values.update(next_attempt_at=None, processed_at=timezone.now())
    else:
        values["next_attempt_at"] = timezone.now() + timedelta(seconds=delay)
    ProviderEvent.objects.filter(pk=record.pk, next_attempt_at=record.next_attempt_at).update(**values)


def process(account_id: int, event_id: str) -> str:
    """Fetch one notified event from its provider and apply it; returns a summary."""
    record = _claim(account_id, event_id)
    if record is None:
        return "not due or taken by another worker"
    try:
        event = provider_for(record.account).get_event(record.event_id)
    except NotFoundError:
        _close(record, St.NOT_FOUND, "the provider does not know this event: nothing changed")
        log.warning("badges_bridge: notified event %s is unknown at account %s; ignored", record.pk, record.account_id)
        return "unknown at the provider"
    except Exception as error:  # noqa: BLE001 - recorded on the event; retried when transient
        return _failed(record, error)
    try:
        status, result, delay = _apply(record.account, event)
    except Exception as error:  # noqa: BLE001 - recorded on the event; retried when transient
        return _failed(record, error, event.event_type)
    if status == St.WAITING:  # a worker holds the row: not an attempt of ours
        ProviderEvent.objects.filter(pk=record.pk).update(attempts=F("attempts") - 1)
    _close(record, status, result, event.event_type, delay)
    return result


def _failed(record: ProviderEvent, error: Exception, event_type: str = "") -> str:
    transient = isinstance(error, TransientProviderError) or not isinstance(error, BadgesBridgeError)
    message = str(error)[:RESULT_MAX_CHARS] or type(error).__name__
    if transient and record.attempts < get_setting("MAX_ATTEMPTS"):
        delay = ledger.retry_delay(record.attempts, getattr(error, "retry_after", None))
        _close(record, St.WAITING, f"attempt {record.attempts} failed: {message}", event_type, delay)
    else:
        _close(record, St.FAILED, message, event_type)
    log.warning("badges_bridge: provider event %s of account %s failed: %s", record.pk, record.account_id, message)
    return f"failed: {message}"


def _apply(account: ProviderAccount, event: RemoteEvent) -> tuple[str, str, float | None]:
    """Act on a fetched event: (status, result, delay before a retry or None)."""
    if event.kind in (RemoteEventKind.TEMPLATE_CHANGED, RemoteEventKind.TEMPLATE_DELETED):
        if not event.template_id:
            return St.DONE, "the event names no template: nothing changed", None
        return St.DONE, accounts.sync_template(account, event.template_id), None
    if event.kind == RemoteEventKind.OTHER:
        return St.DONE, f"ignored: nothing to do for {event.event_type or 'this event type'}", None
    if event.kind == RemoteEventKind.BADGE_CHANGED and event.award is None:
        return St.DONE, "the event carries no badge: nothing changed", None
    deleted = event.kind == RemoteEventKind.BADGE_DELETED
    result = ledger.record_provider_badge(
        account.pk,
        event.badge_id,
        AwardState.DELETED if deleted else event.award.state,
        f"webhook:{event.event_type}"[:100],
        public=None if deleted or event.award is None else event.award.public,
        occurred_at=event.occurred_at,
    )
    if result.outcome == ledger.ProviderUpdate.BUSY:
        delay = ledger.retry_delay(1, None)
        return St.WAITING, f"issuance {result.issuance_id} is held by a worker; will retry", delay
    if result.outcome == ledger.ProviderUpdate.NOT_CURRENT:
        return St.DONE, "no ledger row has this badge as its current badge: nothing changed", None
    return St.DONE, f"issuance {result.issuance_id}: {result.message}", None


def due(limit: int) -> list[tuple[int, str]]:
    """Records whose fetch is due: retries, and new ones whose task seems lost (older than the redrive grace)."""
    now = timezone.now()
    grace = now - timedelta(seconds=get_setting("REDRIVE_GRACE_SECONDS"))
    lost = Q(next_attempt_at__isnull=True, received_at__lte=grace)
    queryset = ProviderEvent.objects.filter((lost | Q(next_attempt_at__lte=now)), status__in=[St.RECEIVED, St.WAITING])
    return list(queryset.order_by("received_at", "id").values_list("account_id", "event_id")[:limit])


def prune() -> int:
    """Delete the records of handled events older than BADGES_BRIDGE_PROVIDER_EVENT_RETENTION_DAYS; how many."""
    cutoff = timezone.now() - timedelta(days=get_setting("PROVIDER_EVENT_RETENTION_DAYS"))
    done = [St.DONE, St.NOT_FOUND, St.FAILED]
    deleted, _by_model = ProviderEvent.objects.filter(status__in=done, received_at__lt=cutoff).delete()
    return deleted
