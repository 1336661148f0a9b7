"""Bulk creates: first awards of one account sent in one provider request.

An issue task that claims a row whose badge can be created without a look-up
(the first attempt of its award) checks whether other such rows of the same
account are ready. When at least ``BADGES_BRIDGE_BULK_MIN_ROWS`` are, and the
provider has a bulk create, it claims up to ``bulk_size`` of them under one
lease and sends them together. Nothing ever waits for a batch to fill: an
isolated event is issued on its own at once, and a burst (the end of a term, a
backfill) is carried by whichever task runs first; the tasks of the rows it
carried find them taken and do nothing.

Each result is mapped back to its row like a single create: created is issued
(unpublished ones with a note), a duplicate is looked up and adopted, a
refusal makes the row dead with the provider's message. When the outcome of the
whole request is unknown (timeout, lost answer), every row fails and its retry
looks the badge up first, as for a single create.
"""

from __future__ import annotations

import logging

from badges_bridge import issuing, ledger, privacy
from badges_bridge.accounts import provider_for, rate_limiter
from badges_bridge.conf import get_setting
from badges_bridge.exceptions import (
    DuplicateAwardError,
    LearnerHoldError,
    LeaseLostError,
    RateLimitedError,
    TransientProviderError,
)
from badges_bridge.issuing import ISSUE_ACTOR, Outcome, RequestCount
from badges_bridge.models import BadgeIssuance, IssuanceState, Lane, Operation
from badges_bridge.providers import get_provider_class
from badges_bridge.providers.base import BaseProvider, BulkOutcome, IssueRequest

log = logging.getLogger(__name__)
S = IssuanceState


def claim_partners(row: BadgeIssuance) -> list[BadgeIssuance]:
    """The other ready first awards of the row's account that one bulk create can carry (claimed); [] for none."""
    minimum = get_setting("BULK_MIN_ROWS")
    account = row.course_badge.template.account
    size = get_provider_class(account.provider).bulk_size
    if not minimum or size < 2 or not _creates_directly(row):
        return []
    limiter = rate_limiter(account, issuing.budget_share([row]))
    if limiter is not None and not limiter.room():
        return []  # the request would wait for the window: carry nobody along
    return ledger.claim_partners(row, account.pk, size - 1, max(1, minimum - 1))


def _creates_directly(row: BadgeIssuance) -> bool:
    """Whether the row's badge is created without a look-up or a badge to bring back."""
    return (
        row.award_attempts == 1
        and not row.external_id
        and not row.course_badge.template.allow_duplicates
        and not ledger.revoked_badges(row)
    )


def process_batch(rows: list[BadgeIssuance]) -> Outcome:
    """Issue the badges of claimed rows of one account in one bulk request."""
    outcome = Outcome(f"bulk create of {len(rows)} badges")
    ready: list[tuple[BadgeIssuance, IssueRequest]] = []
    for row in rows:
        try:
            ready.append((row, issuing.issue_request_for(row)))
        except Exception as error:  # noqa: BLE001 - the row fails on its own (no e-mail address, no learner)
            _merge(outcome, issuing.record_failure(row, error, ISSUE_ACTOR, Operation.ISSUE, [], None))
    if not ready:
        return outcome
    held = [row for row, _request in ready]
    count = RequestCount()

    def heartbeat() -> None:
        ledger.renew_all(held)
        if privacy.held_users(row.user_id for row in held):
            raise LearnerHoldError("a learner of the batch withdrew consent or opted out")
        count.sent += 1

    account = held[0].course_badge.template.account
    provider = provider_for(account, heartbeat=heartbeat, budget_share=issuing.budget_share(held))
    try:
        results = provider.issue_many([request for _row, request in ready])
    except (LeaseLostError, LearnerHoldError) as error:  # nothing was sent: give the attempts back, retry alone
        for row in held:
            delay = ledger.fail(row, error, ISSUE_ACTOR, transient=True, counts=False)
            if delay is not None:
                outcome.follow_up.append((ledger.Work(row.pk, Operation.ISSUE), delay))
        return outcome
    except Exception as error:  # noqa: BLE001 - every row fails; its retry looks the badge up first
        if _refused_here(error):
            return _wait_for_the_window(held, error, count, outcome)
        for row in held:
            _merge(outcome, issuing.record_failure(row, error, ISSUE_ACTOR, Operation.ISSUE, [], count))
        return outcome
    log.info(
        "badges_bridge: bulk create of %d badges at account %s", len(held), held[0].course_badge.template.account_id
    )
    for (row, request), result in zip(ready, results, strict=True):
        _merge(outcome, _record(row, request, result, count.sent, len(held)))
    return outcome


def _refused_here(error: Exception) -> bool:
    """Whether our own rate limit refused the bulk request (it is the last step before the request is sent)."""
    return isinstance(error, RateLimitedError) and error.status_code is None


def _wait_for_the_window(
    held: list[BadgeIssuance], error: RateLimitedError, count: RequestCount, outcome: Outcome
) -> Outcome:
    """Our limit refused the request: the first row waits for the window, the others are given back untouched.

    Each carried row gets its attempt back and returns to pending as it was claimed, so that a
    refusal never turns waiting rows into retries of their own: an interactive row is queued
    again for when the window has room, a backfill row goes back to the feeder (or to the
    next bulk create that carries it).
    """
    _merge(outcome, issuing.record_failure(held[0], error, ISSUE_ACTOR, Operation.ISSUE, [], count))
    message = f"not sent: {error}; given back"
    for row in held[1:]:
        if not ledger.finish(
            row,
            S.PENDING,
            ISSUE_ACTOR,
            message,
            attempts=row.attempts - 1,
            award_attempts=row.award_attempts - 1,
        ):
            continue  # lost to another worker, which carries on
        if row.state == S.REVOKE_PENDING:
            outcome.follow_up.append((ledger.Work(row.pk, Operation.REVOKE), None))
        elif row.state == S.PENDING and row.lane != Lane.BACKFILL:
            outcome.follow_up.append((ledger.Work(row.pk, Operation.ISSUE), error.retry_after))
    return outcome


def _record(row: BadgeIssuance, request: IssueRequest, result: BulkOutcome, shared: int, size: int) -> Outcome:
    """Record one row's result of the bulk request (``shared``: the requests the bulk create itself cost)."""
    count = RequestCount(sent=shared)
    touched: list[str] = []
    if result.award is not None:
        return issuing.record_award(row, result.award, f"issued in a bulk create of {size}", count, touched)
    error = result.error or TransientProviderError("The provider gave no result for this badge")
    try:
        if not isinstance(error, DuplicateAwardError):
            raise error
        provider: BaseProvider = issuing.provider_client(row, count, issuing=True)
        award, how = issuing.after_duplicate(provider, row, request, touched)
    except LeaseLostError:
        return issuing.record_lost(row, touched, ISSUE_ACTOR, "changed badges")
    except LearnerHoldError as error:
        return issuing.record_hold(row, error, touched, count)
    except Exception as error:  # noqa: BLE001 - recorded on the row
        return issuing.record_failure(row, error, ISSUE_ACTOR, Operation.ISSUE, touched, count)
    return issuing.record_award(row, award, how, count, touched)


def _merge(into: Outcome, outcome: Outcome) -> None:
    into.follow_up += outcome.follow_up
    into.cleanup = into.cleanup or outcome.cleanup
