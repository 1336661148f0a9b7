"""The issue and revoke pipeline run by the Celery tasks.

Each step claims a ledger row, talks to the provider, records the outcome and
returns the follow-up work (a retry, or a revoke requested while issuing) for
the task layer to queue. A badge is never created blindly: the provider is
asked first whether the learner already holds it, so a lost response or a
lost message can never produce a second badge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from badges_bridge import compat, ledger
from badges_bridge.accounts import provider_for
from badges_bridge.conf import get_setting
from badges_bridge.exceptions import (
    BadgesBridgeError,
    ConfigurationError,
    DuplicateAwardError,
    LearnerError,
    NotFoundError,
    PermanentProviderError,
    RateLimitedError,
    TransientProviderError,
)
from badges_bridge.ledger import Work
from badges_bridge.models import BadgeIssuance, BadgeTemplate, IssuanceState, Operation
from badges_bridge.providers.base import Award, AwardState, BaseProvider, Evidence, IssueRequest, Recipient

log = logging.getLogger(__name__)
S = IssuanceState


@dataclass
class Outcome:
    """What one task run did, and what must be queued next."""

    summary: str
    follow_up: list[tuple[Work, float | None]] = field(default_factory=list)


def learner_of(row: BadgeIssuance):
    """The row's learner, read now (contact data is never copied at event time)."""
    user = get_user_model().objects.filter(pk=row.user_id).first()
    if user is None:
        raise LearnerError(f"The learner (user id {row.user_id}) does not exist")
    return user


def recipient_for(user) -> Recipient:
    """The learner's current contact data; a missing part of the name falls back to another part."""
    email = (user.email or "").strip()
    if not email:
        raise LearnerError("The learner has no e-mail address")
    first, last = (user.first_name or "").strip(), (user.last_name or "").strip()
    full = " ".join(part for part in (first, last) if part) if first and last else compat.learner_full_name(user)
    if not (first and last):
        if " " in full:
            first, _, last = full.rpartition(" ")
        else:
            first = last = full or first or last or user.username
    return Recipient(
        email=email,
        first_name=first,
        last_name=last,
        earner_id=f"{get_setting('EARNER_ID_PREFIX')}{user.pk}",
        name=full or first,
    )


def issue_request_for(row: BadgeIssuance) -> IssueRequest:
    """The provider request for a ledger row."""
    badge = row.course_badge
    issued_at = row.issued_at or row.created
    course_name = compat.course_display_name(badge.course_key)
    course_url = compat.course_about_url(row.course_run_key or badge.course_key)
    evidence = (
        Evidence(name=course_name, description=f"{badge.get_criterion_display()} in {course_name}", url=course_url),
    )
    attributes = {"course_key": str(badge.course_key), "criterion": badge.criterion}
    grade = row.grade.normalize() if row.grade is not None else None
    if grade is not None:
        attributes["grade"] = f"{grade:f}"
    expires_at = issued_at + timedelta(days=badge.expires_after_days) if badge.expires_after_days else None
    return IssueRequest(
        template_id=badge.template.external_id,
        recipient=recipient_for(learner_of(row)),
        issued_at=issued_at,
        expires_at=expires_at,
        suppress_notification=badge.suppress_notification,
        course_name=course_name,
        course_url=course_url,
        evidence=evidence,
        attributes=attributes,
        grade=grade,
    )


def _provider(row: BadgeIssuance) -> BaseProvider:
    badge = row.course_badge
    return provider_for(badge.template.account)


def _award_fields(award: Award) -> dict:
    return {
        "external_id": award.external_id,
        "public_url": award.public_url[:500],
        "provider_state": award.state.value,
        "confirmed_at": timezone.now(),
    }


def _obtain_award(provider: BaseProvider, request: IssueRequest) -> tuple[Award, str]:
    """Adopt the learner's existing badge or create one; returns (award, how)."""
    existing = provider.find_award(request.template_id, request.recipient)
    if existing is not None and (existing.state.is_live or existing.state == AwardState.REJECTED):
        return existing, "adopted the badge already at the provider"
    try:
        return provider.issue(request), "issued"
    except DuplicateAwardError:
        existing = provider.find_award(request.template_id, request.recipient)
        if existing is None or not existing.state.is_live:
            found = f"the one found is {existing.state.value}" if existing else "it cannot be found"
            raise PermanentProviderError(f"The provider says the learner already has this badge, but {found}") from None
        return existing, "the provider reported a duplicate; adopted the existing badge"


def _handle_failure(row: BadgeIssuance, error: Exception, actor: str, operation: str) -> Outcome:
    transient = isinstance(error, TransientProviderError) or not isinstance(error, BadgesBridgeError)
    if not isinstance(error, BadgesBridgeError):
        log.error("badges_bridge: unexpected error on %s of issuance %s", operation, row.pk, exc_info=error)
    else:
        log.warning("badges_bridge: %s of issuance %s failed: %s", operation, row.pk, error)
    # Our own rate limit refused before anything was sent: that wait is not a failed attempt.
    counts = not (isinstance(error, RateLimitedError) and error.status_code is None)
    delay = ledger.fail(row, error, actor, transient=transient, counts=counts)
    outcome = Outcome(f"{operation} failed: {error}")
    if delay is not None and row.state == S.FAILED:
        outcome.follow_up.append((Work(row.pk, operation), delay))
    return outcome


def _after(row: BadgeIssuance, outcome: Outcome) -> Outcome:
    """Queue what events asked for while the task held the row."""
    if row.lease_token:
        return outcome  # the lease was lost: the new owner decides
    if row.state == S.REVOKE_PENDING:
        outcome.follow_up.append((Work(row.pk, Operation.REVOKE), None))
    elif row.state == S.PENDING:
        outcome.follow_up.append((Work(row.pk, Operation.ISSUE), None))
    return outcome


def process_issue(issuance_id: int) -> Outcome:
    """Issue the badge of one ledger row, if it is due."""
    row = ledger.claim(issuance_id, Operation.ISSUE)
    if row is None:
        return Outcome("not due or taken by another worker")
    actor = "task:issue"
    try:
        badge = row.course_badge
        if not badge.enabled:
            raise ConfigurationError("The course badge is disabled")
        if badge.template.state != BadgeTemplate.State.ACTIVE:
            raise ConfigurationError(f"The badge template is {badge.template.state} at the provider")
        request = issue_request_for(row)
        award, how = _obtain_award(_provider(row), request)
    except Exception as error:  # noqa: BLE001 - every failure is recorded on the row
        return _after(row, _handle_failure(row, error, actor, Operation.ISSUE))
    if award.state == AwardState.REJECTED:
        ledger.finish(row, S.REJECTED, actor, "the learner rejected this badge at the provider", **_award_fields(award))
        return _after(row, Outcome("rejected by the learner"))
    message = how if award.published else f"{how}; created but not published by the provider"
    ledger.finish(row, S.ISSUED, actor, message, last_error="", next_attempt_at=None, **_award_fields(award))
    return _after(row, Outcome(how))


def _live_award_id(provider: BaseProvider, row: BadgeIssuance) -> str:
    """The provider id of the learner's live badge, or '' when there is none (or no learner to look for)."""
    try:
        recipient = recipient_for(learner_of(row))
    except LearnerError:
        return ""  # no such learner, or no e-mail address: nothing can have been issued
    found = provider.find_award(row.course_badge.template.external_id, recipient)
    return found.external_id if found is not None and found.state.is_live else ""


def process_revoke(issuance_id: int) -> Outcome:
    """Revoke the badge of one ledger row, if it is due."""
    row = ledger.claim(issuance_id, Operation.REVOKE)
    if row is None:
        return Outcome("not due or taken by another worker")
    actor = "task:revoke"
    try:
        provider = _provider(row)
        external_id = row.external_id or _live_award_id(provider, row)
        if external_id:
            try:
                award = provider.revoke(external_id, row.revoke_reason or get_setting("REVOKE_REASON"))
                state, message = award.state.value, "revoked at the provider"
            except NotFoundError:
                state, message = AwardState.DELETED.value, "the badge was already gone at the provider"
        else:
            state, message = "", "no badge at the provider; nothing to revoke"
    except Exception as error:  # noqa: BLE001 - every failure is recorded on the row
        return _after(row, _handle_failure(row, error, actor, Operation.REVOKE))
    ledger.finish(
        row,
        S.REVOKED,
        actor,
        message,
        provider_state=state,
        revoked_at=timezone.now(),
        external_id=external_id,
        last_error="",
        next_attempt_at=None,
    )
    return _after(row, Outcome(message))
