"""The issue, revoke and reconcile pipeline run by the Celery tasks.

Each step claims a ledger row, talks to the provider, records the outcome and
returns the follow-up work (a retry, or a revoke requested while issuing) for
the task layer to queue. A badge is never created blindly: the provider is
asked first whether the learner already holds it, so a lost response or a
lost message can never produce a second badge.

The lease on the row is renewed before every provider request; a worker that
finds it gone stops, and records whatever it already changed at the provider
as unconfirmed. A reconcile task then checks those badges and adopts or undoes
them, so that no provider result is ever silently dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone

from badges_bridge import compat, ledger, privacy
from badges_bridge.accounts import account_problem, provider_for
from badges_bridge.causes import ErrorCause
from badges_bridge.conf import get_setting
from badges_bridge.exceptions import (
    AuthenticationError,
    BadgesBridgeError,
    ConfigurationError,
    DuplicateAwardError,
    LearnerError,
    LearnerHoldError,
    LeaseLostError,
    NotFoundError,
    PermanentProviderError,
    RateLimitedError,
    TransientProviderError,
)
from badges_bridge.ledger import CLEANUP, RECONCILE, Settlement, Work
from badges_bridge.models import (
    AwardStatus,
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    EvidenceFact,
    IssuanceState,
    Lane,
    Operation,
)
from badges_bridge.providers.base import Award, AwardState, BaseProvider, Evidence, IssueRequest, Recipient

log = logging.getLogger(__name__)
S = IssuanceState
ISSUE_ACTOR = "task:issue"


@dataclass
class Outcome:
    """What one task run did, and what must be queued next."""

    summary: str
    follow_up: list[tuple[Work, float | None]] = field(default_factory=list)
    #: An account whose templates should be synced again: the provider refused an issue in a way that
    #: may mean a template changed there (archived, removed) since the last sync.
    resync_account: int | None = None
    #: Whether badges of retired learners were queued for the retirement clean-up.
    cleanup: bool = False


def learner_of(row: BadgeIssuance):
    """The row's learner, read now (contact data is never copied at event time)."""
    user = get_user_model().objects.filter(pk=row.user_id).first()
    if user is None:
        raise LearnerError(
            f"The learner (user id {row.user_id}) does not exist: nobody can receive this badge",
            cause=ErrorCause.NO_LEARNER,
        )
    return user


def recipient_for(user) -> Recipient:
    """The learner's current contact data; a missing part of the name falls back to another part."""
    email = (user.email or "").strip()
    if not email:
        raise LearnerError(
            "The learner has no e-mail address: add one to the learner's account, then retry the row",
            cause=ErrorCause.NO_EMAIL,
        )
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
    return build_issue_request(
        row.course_badge,
        recipient_for(learner_of(row)),
        qualified_at=row.qualified_at or row.created,
        grade=row.grade,
        run_key=row.course_run_key,
    )


#: The learner of a payload preview: never a real person.
SAMPLE_RECIPIENT_EMAIL = "learner@example.com"
SAMPLE_GRADE = Decimal("87.5")


def sample_issue_request(badge: CourseBadge) -> IssueRequest:
    """The provider request of a course badge for a sample learner ("Sample Learner", grade 87.5, met now)."""
    recipient = Recipient(
        email=SAMPLE_RECIPIENT_EMAIL,
        first_name="Sample",
        last_name="Learner",
        earner_id=f"{get_setting('EARNER_ID_PREFIX')}sample",
        name="Sample Learner",
    )
    return build_issue_request(badge, recipient, qualified_at=timezone.now(), grade=SAMPLE_GRADE, run_key="")


def build_issue_request(
    badge: CourseBadge, recipient: Recipient, *, qualified_at: datetime, grade: Decimal | None, run_key: str
) -> IssueRequest:
    """The provider request of a course badge for one learner, with only the evidence the badge chose.

    * ``grade``: the grade (``IssueRequest.grade`` and the ``grade`` attribute);
    * ``course``: the course name and link, its evidence item and the ``course_key`` attribute;
    * ``completion_date``: the badge carries the date the learner met the criterion (``issued_at``)
      and a ``completion_date`` attribute; without it, the badge carries the day it is issued.

    A fact that is not chosen is left out of the request, so no provider can send it.
    """
    facts = set(badge.evidence_facts())
    attributes = {"criterion": badge.criterion}
    course_name = course_url = ""
    evidence: tuple[Evidence, ...] = ()
    if EvidenceFact.COURSE in facts:
        course_name = compat.course_display_name(badge.course_key)
        course_url = compat.course_about_url(run_key or badge.course_key)
        description = f"{badge.get_criterion_display()} in {course_name}"
        evidence = (Evidence(name=course_name, description=description, url=course_url),)
        attributes["course_key"] = str(badge.course_key)
    sent_grade = grade.normalize() if grade is not None and EvidenceFact.GRADE in facts else None
    if sent_grade is not None:
        attributes["grade"] = f"{sent_grade:f}"
    issued_at = qualified_at
    if EvidenceFact.COMPLETION_DATE in facts:
        attributes["completion_date"] = qualified_at.date().isoformat()
    else:
        issued_at = timezone.now()
    expires_at = issued_at + timedelta(days=badge.expires_after_days) if badge.expires_after_days else None
    return IssueRequest(
        template_id=badge.template.external_id,
        recipient=recipient,
        issued_at=issued_at,
        expires_at=expires_at,
        suppress_notification=badge.suppress_notification,
        course_name=course_name,
        course_url=course_url,
        evidence=evidence,
        attributes=attributes,
        grade=sent_grade,
    )


@dataclass
class RequestCount:
    """Provider requests sent by one task run."""

    sent: int = 0


def budget_share(rows: list[BadgeIssuance]) -> float:
    """The share of the account's request limit that the first award of these rows may fill.

    Backfill work stops at BADGES_BRIDGE_BACKFILL_BUDGET_SHARE of each window, leaving the rest to
    interactive work; a request that carries any interactive row (or a revoke) may use the whole limit.
    """
    if all(row.lane == Lane.BACKFILL and row.operation == Operation.ISSUE for row in rows):
        return float(get_setting("BACKFILL_BUDGET_SHARE"))
    return 1.0


def provider_client(row: BadgeIssuance, count: RequestCount | None = None, *, issuing: bool = False) -> BaseProvider:
    """The row's provider client; every request first renews the row's lease (LeaseLostError when gone).

    ``count`` counts the requests about to be sent. With ``issuing``, every request first checks
    that the learner's data may still be sent (LearnerHoldError when they withdrew consent or opted out).
    The client fills the account's request limit up to the row's share (see :func:`budget_share`).
    """

    def heartbeat() -> None:
        ledger.renew(row)
        if issuing:
            check_learner(row.user_id)
        if count is not None:
            count.sent += 1

    return provider_for(row.course_badge.template.account, heartbeat=heartbeat, budget_share=budget_share([row]))


def check_learner(user_id: int) -> None:
    """Raise LearnerHoldError when the learner's personal data may not be sent now."""
    reason = privacy.hold_reason(user_id)
    if reason:
        raise LearnerHoldError(reason)


def record_hold(row: BadgeIssuance, error: LearnerHoldError, touched: list[str], count: RequestCount) -> Outcome:
    """The learner withdrew consent or opted out mid-task: the row waits for them (what was touched is checked).

    ``count``: the requests this run sent; with none, the attempt is given back.
    """
    message = privacy.HOLD_MESSAGES[error.reason]
    stopped = f"{message}; stopped before the next provider request"
    if not ledger.hold_claimed(row, ISSUE_ACTOR, stopped, nothing_sent=not count.sent):
        return record_lost(row, touched, ISSUE_ACTOR, "changed badges")
    outcome = _after(row, Outcome(message))
    if touched and ledger.record_unconfirmed(row.pk, touched, ISSUE_ACTOR, "changed badges before the hold"):
        outcome.follow_up.append((Work(row.pk, RECONCILE), None))
    return outcome


def _award_fields(award: Award) -> dict:
    return {
        "external_id": award.external_id,
        "public_url": award.public_url[:500],
        "provider_state": award.state.value,
        "provider_public": award.public,
        "confirmed_at": timezone.now(),
    }


def _fetch(provider: BaseProvider, external_id: str) -> Award | None:
    """One badge as the provider has it now; None when it is gone."""
    try:
        return provider.get_award(external_id)
    except NotFoundError:
        return None


def _check_usable(row: BadgeIssuance) -> None:
    problem = _badge_problem(row)
    if problem is not None:
        raise ConfigurationError(problem[1], cause=problem[0])


def _badge_problem(row: BadgeIssuance) -> tuple[str, str] | None:
    """(cause, message) when the row's course badge cannot issue badges; None when it can."""
    badge = row.course_badge
    if not badge.enabled:
        return ErrorCause.BADGE_DISABLED, "The course badge is disabled: enable it if its badges should be issued"
    template = badge.template
    if template.state != BadgeTemplate.State.ACTIVE:
        return ErrorCause.TEMPLATE_INACTIVE, (
            f"The badge template {template.name!r} is {template.get_state_display().lower()} (as of the last "
            "template sync): reactivate it at the provider and sync templates, or attach an active template"
        )
    return None


def retry_blocker(row: BadgeIssuance) -> tuple[str, str] | None:
    """(cause, message) when a known cause would make a retry of the row fail again; None when none is known.

    Checks what can be checked without calling the provider: the account, and for an
    issue the course badge, its template and the learner's e-mail address.
    """
    problem = account_problem(row.course_badge.template.account)
    if problem:
        return ErrorCause.ACCOUNT, problem
    if row.operation != Operation.ISSUE:
        return None
    badge_problem = _badge_problem(row)
    if badge_problem is not None:
        return badge_problem
    try:
        recipient_for(learner_of(row))
    except LearnerError as err:
        return err.cause, str(err)
    return None


def _reinstated(provider: BaseProvider, external_id: str, request: IssueRequest, touched: list[str]) -> Award | None:
    """Bring back one of the row's badges that this plugin revoked, or None."""
    touched.append(external_id)  # before the call: its answer may be lost
    try:
        award = provider.reinstate(external_id, request)
    except NotFoundError:
        award = None
    if award is None:
        touched.remove(external_id)
    return award


def _may_exist(row: BadgeIssuance) -> bool:
    """Whether the learner may already hold this award's badge, so that a look-up must come before a create.

    Only an earlier attempt of the same award may have reached the provider (a lost answer, a
    timeout, a worker killed mid-call). On a first attempt the provider itself refuses a second
    badge, except where the template allows duplicates: there the look-up always comes first.
    """
    return row.award_attempts > 1 or row.course_badge.template.allow_duplicates


def _obtain_award(
    provider: BaseProvider, row: BadgeIssuance, request: IssueRequest, touched: list[str]
) -> tuple[Award, str]:
    """Keep, bring back, adopt or create the learner's badge for the row's current award; returns (award, how).

    ``touched`` collects the badges changed at the provider before the answer is known.
    """
    if row.external_id:  # a revoke attempt may have reached the provider: check the badge before keeping it
        current = _fetch(provider, row.external_id)
        if current is not None and current.state.is_live:
            return current, "the badge was still live at the provider; kept"
        ledger.retire_badge(row, current.state.value if current else AwardState.DELETED.value, ISSUE_ACTOR)
    for external_id in ledger.revoked_badges(row):
        award = _reinstated(provider, external_id, request, touched)
        if award is not None:
            return award, "brought back the badge revoked earlier"
    if _may_exist(row):
        existing = provider.find_award(request.template_id, request.recipient)
        if existing is not None and (existing.state.is_live or _rejected_in_this_award(existing, row)):
            return existing, "adopted the badge already at the provider"
    try:
        return provider.issue(request), "issued"
    except DuplicateAwardError:
        return after_duplicate(provider, row, request, touched)


def _rejected_in_this_award(award: Award, row: BadgeIssuance) -> bool:
    """A badge the learner rejected, created by an earlier attempt of this award (not one of an earlier award)."""
    return award.state == AwardState.REJECTED and award.external_id not in ledger.known_badges(row)


def after_duplicate(
    provider: BaseProvider, row: BadgeIssuance, request: IssueRequest, touched: list[str]
) -> tuple[Award, str]:
    """The provider refused a create as a duplicate: adopt the learner's live badge, or bring back one of ours.

    Raises PermanentProviderError when the badge found is not live (and not one this plugin can bring back).
    """
    existing = provider.find_award(request.template_id, request.recipient)
    if existing is not None and not existing.state.is_live and existing.external_id in ledger.known_badges(row):
        award = _reinstated(provider, existing.external_id, request, touched)
        if award is not None:
            return award, "the provider reported a duplicate; brought back the badge revoked earlier"
    if existing is None or not existing.state.is_live:
        found = f"the one found is {existing.state.value}" if existing else "it cannot be found"
        raise PermanentProviderError(f"The provider says the learner already has this badge, but {found}")
    return existing, "the provider reported a duplicate; adopted the existing badge"


def record_lost(row: BadgeIssuance, touched: list[str], actor: str, what: str) -> Outcome:
    """The lease was lost: keep what this worker changed at the provider for a reconcile (or clean-up) to check."""
    recorded = ledger.record_unconfirmed(row.pk, touched, actor, what)
    if recorded == RECONCILE:
        return Outcome(f"lease lost after the worker {what}", [(Work(row.pk, RECONCILE), None)])
    if recorded == CLEANUP:
        return Outcome(f"the learner retired while the worker {what}; queued for clean-up", cleanup=True)
    return Outcome("lease lost; the new owner carries on")


def record_failure(
    row: BadgeIssuance, error: Exception, actor: str, operation: str, touched: list[str], count: RequestCount | None
) -> Outcome:
    """Record a failed attempt on a claimed row and return what must be queued next."""
    return _after(row, _handle_failure(row, error, actor, operation, touched, count))


def _handle_failure(
    row: BadgeIssuance, error: Exception, actor: str, operation: str, touched: list[str], count: RequestCount | None
) -> Outcome:
    transient = isinstance(error, TransientProviderError) or not isinstance(error, BadgesBridgeError)
    if not isinstance(error, BadgesBridgeError):
        log.error("badges_bridge: unexpected error on %s of issuance %s", operation, row.pk, exc_info=error)
    else:
        log.warning("badges_bridge: %s of issuance %s failed: %s", operation, row.pk, error)
    # Our own rate limit refused before anything was sent: that wait is not a failed attempt.
    counts = not (isinstance(error, RateLimitedError) and error.status_code is None)
    fields = {} if count is None else {"provider_requests": row.provider_requests + count.sent - (not counts)}
    delay = ledger.fail(row, error, actor, transient=transient, counts=counts, **fields)
    if row.lease_token:
        return record_lost(row, touched, actor, f"failed on {operation}")
    outcome = Outcome(f"{operation} failed: {error}")
    if delay is not None and row.state == S.FAILED:
        outcome.follow_up.append((Work(row.pk, operation), delay))
    if operation == Operation.ISSUE and _may_concern_the_template(error):
        outcome.resync_account = row.course_badge.template.account_id
    return outcome


def _may_concern_the_template(error: Exception) -> bool:
    """Whether a refusal may come from a template changed at the provider (archived, removed) since the last sync."""
    return isinstance(error, PermanentProviderError) and not isinstance(
        error, (AuthenticationError, DuplicateAwardError)
    )


def claim_resync(account_id: int) -> bool:
    """Whether a template sync of the account should be queued now: at most one per TEMPLATE_RESYNC_SECONDS."""
    seconds = get_setting("TEMPLATE_RESYNC_SECONDS")
    return bool(seconds) and cache.add(f"badges_bridge:template-resync:{account_id}", 1, timeout=seconds)


def _after(row: BadgeIssuance, outcome: Outcome) -> Outcome:
    """Queue what events asked for while the task held the row."""
    if row.state == S.REVOKE_PENDING:
        outcome.follow_up.append((Work(row.pk, Operation.REVOKE), None))
    elif row.state == S.PENDING:
        outcome.follow_up.append((Work(row.pk, Operation.ISSUE), None))
    return outcome


def process_issue(issuance_id: int) -> Outcome:
    """Issue the badge of one ledger row, if it is due; with other ready rows of its account, in one bulk create."""
    from badges_bridge import bulk

    row = ledger.claim(issuance_id, Operation.ISSUE)
    if row is None:
        return Outcome("not due or taken by another worker")
    touched: list[str] = []
    count = RequestCount()
    try:
        _check_usable(row)
        partners = bulk.claim_partners(row)
        if partners:
            return bulk.process_batch([row, *partners])
        request = issue_request_for(row)
        award, how = _obtain_award(provider_client(row, count, issuing=True), row, request, touched)
    except LeaseLostError:
        return record_lost(row, touched, ISSUE_ACTOR, "changed badges")
    except LearnerHoldError as error:
        return record_hold(row, error, touched, count)
    except Exception as error:  # noqa: BLE001 - every failure is recorded on the row
        return record_failure(row, error, ISSUE_ACTOR, Operation.ISSUE, touched, count)
    return record_award(row, award, how, count, touched)


def record_award(row: BadgeIssuance, award: Award, how: str, count: RequestCount, touched: list[str]) -> Outcome:
    """Record the badge obtained for a claimed row (issued, or rejected by the learner) and what follows."""
    if award.state == AwardState.REJECTED:
        to_state, message = S.REJECTED, "the learner rejected this badge at the provider"
    else:
        to_state, message = S.ISSUED, how if award.published else f"{how}; created but not published by the provider"
    fields = {**_award_fields(award), "provider_requests": row.provider_requests + count.sent}
    if not ledger.finish(row, to_state, ISSUE_ACTOR, message, last_error="", next_attempt_at=None, **fields):
        return record_lost(row, [award.external_id, *touched], ISSUE_ACTOR, f"{how} badge")
    return _after(row, Outcome(message))


def _live_award_id(provider: BaseProvider, row: BadgeIssuance) -> str:
    """The provider id of the learner's live badge, or '' when there is none (or no learner to look for).

    No look-up (which sends the learner's e-mail address) is made for a learner whose data may not
    be sent when no issue attempt of the current award was made: nothing can have been created.
    """
    if row.award_attempts == 0 and privacy.hold_reason(row.user_id):
        return ""
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
    touched: list[str] = []
    try:
        provider = provider_client(row)
        external_id = row.external_id or _live_award_id(provider, row)
        if external_id:
            touched.append(external_id)
            try:
                award = provider.revoke(external_id, row.revoke_reason or get_setting("REVOKE_REASON"))
                state, message = award.state.value, "revoked at the provider"
            except NotFoundError:
                state, message = AwardState.DELETED.value, "the badge was already gone at the provider"
        else:
            state, message = "", "no badge at the provider; nothing to revoke"
    except LeaseLostError:
        return record_lost(row, touched, actor, "revoked a badge")
    except Exception as error:  # noqa: BLE001 - every failure is recorded on the row
        return record_failure(row, error, actor, Operation.REVOKE, touched, None)
    recorded = ledger.finish(
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
    if not recorded:
        return record_lost(row, touched, actor, "revoked a badge")
    return _after(row, Outcome(message))


# -- reconcile ------------------------------------------------------------------------------------------------------


def plan_settlement(row: BadgeIssuance, found: dict[str, Award | None]) -> tuple[Settlement, list[str]]:
    """Decide what becomes of unconfirmed badges, as the provider has them now (None: gone).

    A live badge is adopted when the row wants a badge and has no live one; any other live
    badge is undone (returned for discarding). When the row's own badge turns out not to be
    live while the row wants it, a new award starts; when it is live while the row says
    revoked, it is revoked again.
    """
    settlement = Settlement(badges={})
    discard: list[str] = []
    wants_badge = row.operation == Operation.ISSUE and row.state in (ledger.AWAITING_STATES | {S.ISSUED})
    has_badge = bool(row.external_id)
    if row.external_id in found:
        award = found[row.external_id]
        if award is not None and award.state.is_live:
            settlement.badges[row.external_id] = (AwardStatus.LIVE, award.state.value)
            settlement.revoke_again = row.state == S.REVOKED
        else:
            settlement.badges[row.external_id] = (AwardStatus.REVOKED, _state_of(award))
            has_badge = False
            settlement.reaward = wants_badge
    for external_id, award in found.items():
        if external_id == row.external_id:
            continue
        if award is None or not award.state.is_live:
            settlement.badges[external_id] = (AwardStatus.GONE, _state_of(award))
        elif wants_badge and not has_badge:
            settlement.adopt = (external_id, award.public_url[:500], award.state.value)
            has_badge = True
        else:
            settlement.badges[external_id] = (AwardStatus.UNDONE, AwardState.DELETED.value)
            discard.append(external_id)
    return settlement, discard


def _state_of(award: Award | None) -> str:
    return award.state.value if award is not None else AwardState.DELETED.value


def _describe(settlement: Settlement, discard: list[str]) -> str:
    parts = []
    if settlement.adopt:
        parts.append(f"adopted badge {settlement.adopt[0]}")
    if discard:
        parts.append(f"undone at the provider: {', '.join(discard)}")
    if settlement.reaward:
        parts.append("the row's badge is no longer live; it will be awarded again")
    if settlement.revoke_again:
        parts.append("the row's badge is live again at the provider; it will be revoked again")
    checked = ", ".join(f"{external_id} {status}" for external_id, (status, _state) in settlement.badges.items())
    return "; ".join([*parts, f"checked {checked}"]) if checked else "; ".join(parts)


def process_reconcile(issuance_id: int) -> Outcome:
    """Check the badges a worker changed after it lost its lease, and adopt or undo them."""
    row = ledger.hold(issuance_id)
    if row is None:
        if ledger.has_unconfirmed(issuance_id):
            return Outcome("held by another worker", [(Work(issuance_id, RECONCILE), get_setting("LEASE_SECONDS"))])
        return Outcome("nothing to check")
    actor = "task:reconcile"
    external_ids = ledger.unconfirmed_badges(row)
    if not external_ids:
        ledger.release(row)
        return Outcome("nothing to check")
    try:
        provider = provider_client(row)
        settlement, discard = plan_settlement(
            row, {external_id: _fetch(provider, external_id) for external_id in external_ids}
        )
        for external_id in discard:
            provider.discard(external_id)
    except LeaseLostError:
        return Outcome("lease lost; the badges stay unconfirmed for the next check")
    except Exception as error:  # noqa: BLE001 - the badges stay unconfirmed; retried later
        ledger.release(row)
        log.warning("badges_bridge: reconcile of issuance %s failed: %s", issuance_id, error)
        delay = ledger.retry_delay(1, getattr(error, "retry_after", None))
        return Outcome(f"reconcile failed: {error}", [(Work(issuance_id, RECONCILE), delay)])
    message = _describe(settlement, discard)
    work = ledger.settle(row, settlement, actor, message)
    return Outcome(message, [(work, None)] if work else [])
