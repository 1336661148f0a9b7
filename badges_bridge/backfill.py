"""Backfills: badges for learners who met a course badge's criterion before it existed, and their feeder.

:func:`record` reads each learner's standing in the course (grade, passing
status, certificate, through :mod:`badges_bridge.compat`) and records a ledger
row through the same path as a learning event, marked as backfill. A learner
who already has a row for the badge is left as they are. Nothing is queued
there: :func:`feed`, run by the feeder task, queues backfill rows a few at a
time, only as many as the backfill share of each account's request budget has
room for in the current window. Interactive work (events of learners who just
passed or failed) is queued at once and may use the whole budget, so it never
waits behind a backfill (see ADR 0013).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey

from badges_bridge import accounts, compat, config_cache, criteria, ledger
from badges_bridge.conf import get_setting
from badges_bridge.data import BadgeRule, EventKind, LearnerEvent
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.models import BadgeIssuance, Lane, ProviderAccount
from badges_bridge.providers import get_provider_class

log = logging.getLogger(__name__)

#: The event type recorded on backfill rows (their evidence: the learner's standing when the backfill ran).
EVENT_TYPE = "badges_bridge.backfill"
#: Learners read and recorded per transaction.
CHUNK = 200


@dataclass
class BackfillResult:
    """What a backfill of one course found and recorded."""

    course_key: str
    learners: int = 0
    #: Rows recorded (with ``dry_run``: that would be recorded).
    recorded: int = 0
    #: Learners who already had a row for every badge they meet (left as they are).
    existing: int = 0
    #: Learners who meet no badge of the course.
    not_met: int = 0
    dry_run: bool = False
    row_ids: list[int] = field(default_factory=list)

    def describe(self) -> str:
        """The counts in words."""
        verb = "would record" if self.dry_run else "recorded"
        return (
            f"{self.course_key}: {self.learners} learner(s) read, {verb} {self.recorded} badge(s), "
            f"{self.existing} learner(s) already recorded, {self.not_met} not meeting a criterion"
        )


def parse_course_key(text: str) -> CourseKey:
    """The course key, or ConfigurationError with what is wrong."""
    try:
        return CourseKey.from_string(text)
    except InvalidKeyError:
        raise ConfigurationError(f"{text!r} is not a course key (e.g. course-v1:Org+Course+Run)") from None


def _events(user_id: int, course_key: CourseKey, user) -> list[LearnerEvent]:
    """The learner's standing in the course, as the learning events that would have said it."""
    now = timezone.now()

    def event(kind: EventKind, **facts) -> LearnerEvent:
        return LearnerEvent(
            event_id=f"backfill-{uuid.uuid4().hex}",
            event_type=EVENT_TYPE,
            occurred_at=now,
            kind=kind,
            user_id=user_id,
            course_key=course_key,
            run_key=str(course_key),
            **facts,
        )

    found: list[LearnerEvent] = []
    grade = compat.course_grade(user, course_key)
    if grade is not None and grade.passed is not None:
        found.append(event(EventKind.PASSING_STATUS, is_passing=grade.passed, percent_grade=grade.percent))
    if grade is not None and grade.percent is not None:
        found.append(event(EventKind.GRADE, percent_grade=grade.percent))
    certificate = compat.course_certificate(user, course_key)
    if certificate is not None:
        found.append(
            event(EventKind.CERTIFICATE, certificate_mode=certificate.mode, certificate_status=certificate.status)
        )
    return found


def _met(rules: tuple[BadgeRule, ...], events: list[LearnerEvent], skip: set[int]) -> dict[LearnerEvent, list]:
    """The met rules (not in ``skip``), each with the first event that meets it."""
    by_event: dict[LearnerEvent, list] = {}
    for rule in rules:
        if rule.course_badge_id in skip:
            continue
        event = next((event for event in events if criteria.evaluate(rule, event)), None)
        if event is not None:
            by_event.setdefault(event, []).append((rule, True))
    return by_event


def record(
    course_key_text: str,
    user_ids: Iterable[int] | None = None,
    *,
    badge_ids: Iterable[int] | None = None,
    dry_run: bool = False,
    progress: Callable[[BackfillResult], None] | None = None,
) -> BackfillResult:
    """Record backfill rows for the learners of a course who meet one of its enabled badges' criteria.

    ``user_ids``: the learners to consider (default: the course's active enrollments, read from the
    platform). ``badge_ids``: only these course badges of the course (default: all its enabled ones).
    ``progress`` is called after every chunk of learners. Raises ConfigurationError for a malformed
    course key, a course without an enabled badge (of ``badge_ids``), or no way to list its learners.
    """
    course_key = parse_course_key(course_key_text)
    rules = config_cache.rules_for_course(course_key)
    if badge_ids is not None:
        wanted = {int(badge_id) for badge_id in badge_ids}
        rules = tuple(rule for rule in rules if rule.course_badge_id in wanted)
        if not rules:
            raise ConfigurationError(f"Course {course_key} has no enabled course badge with id(s) {sorted(wanted)}")
    if not rules:
        raise ConfigurationError(f"Course {course_key} has no enabled course badge: configure one first")
    if user_ids is None:
        user_ids = compat.enrolled_user_ids(course_key)
        if user_ids is None:
            raise ConfigurationError("Enrollments can only be read inside the LMS: give the learners' user ids")
    ids = sorted({int(user_id) for user_id in user_ids})
    result = BackfillResult(str(course_key), dry_run=dry_run)
    badge_ids = [rule.course_badge_id for rule in rules]
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        users = get_user_model().objects.in_bulk(chunk)
        has_rows: dict[int, set[int]] = {}
        for user_id, badge_id in BadgeIssuance.objects.filter(
            user_id__in=chunk, course_badge_id__in=badge_ids
        ).values_list("user_id", "course_badge_id"):
            has_rows.setdefault(user_id, set()).add(badge_id)
        with transaction.atomic():
            for user_id in chunk:
                _record_one(result, rules, course_key, user_id, users.get(user_id), has_rows.get(user_id, set()))
        if dry_run:
            result.row_ids.clear()
        if progress is not None:
            progress(result)
    if result.recorded and not dry_run:
        transaction.on_commit(lambda: start_feeder(0))
    log.info("badges_bridge: backfill %s", result.describe())
    return result


def _record_one(result: BackfillResult, rules, course_key: CourseKey, user_id: int, user, skip: set[int]) -> None:
    result.learners += 1
    if user is None:
        result.not_met += 1
        return
    events = _events(user_id, course_key, user)
    wanted = _met(rules, events, skip)
    if not wanted:
        already = _met(rules, events, set())
        if already:
            result.existing += 1
        else:
            result.not_met += 1
        return
    if result.dry_run:
        result.recorded += sum(len(decisions) for decisions in wanted.values())
        return
    before = result.recorded
    for event, decisions in wanted.items():
        ledger.apply_event(event, decisions, lane=Lane.BACKFILL)
    rows = BadgeIssuance.objects.filter(
        user_id=user_id,
        course_badge_id__in=[rule.course_badge_id for decisions in wanted.values() for rule, _met in decisions],
        lane=Lane.BACKFILL,
    ).values_list("id", flat=True)
    result.row_ids += list(rows)
    result.recorded = before + len(rows)


# -- the feeder -------------------------------------------------------------------------------------------------


@dataclass
class FeedResult:
    """What one run of the feeder queued, per account id, and whether backfill rows still wait."""

    queued: dict[int, int] = field(default_factory=dict)
    waiting: bool = False


def per_request(account: ProviderAccount) -> int:
    """First awards one request carries at this account: the bulk size where bulk creates are on, else 1."""
    size = get_provider_class(account.provider).bulk_size
    return size if get_setting("BULK_MIN_ROWS") and size >= 2 else 1


def feed(send: Callable[[int], bool]) -> FeedResult:
    """Queue, for each account, the waiting backfill rows its backfill budget has room for now.

    ``send(issuance_id)`` queues the issue task of one row. Where bulk creates are on, one task is
    queued per bulk of rows marked, and carries the others along (ledger.claim_partners).
    """
    result = FeedResult()
    account_ids = set(
        BadgeIssuance.objects.filter(ledger.backfill_waiting()).values_list(
            "course_badge__template__account_id", flat=True
        )
    )
    batch = get_setting("BACKFILL_FEED_BATCH")
    for account in ProviderAccount.objects.filter(pk__in=account_ids).order_by("pk"):
        rows = room(account, batch)
        ids = ledger.feed_backfill(account.pk, rows)
        for lead in ids[:: per_request(account)]:
            send(lead)  # a refused send leaves the rows marked: the redrive queues them after its grace time
        result.queued[account.pk] = len(ids)
    result.waiting = BadgeIssuance.objects.filter(ledger.backfill_waiting()).exists()
    return result


def room(account: ProviderAccount, batch: int) -> int:
    """How many more backfill rows of the account may be queued now (at most ``batch``)."""
    step = per_request(account)
    in_flight = ledger.backfill_in_flight(account.pk)
    limiter = accounts.rate_limiter(account, float(get_setting("BACKFILL_BUDGET_SHARE")))
    if limiter is None:
        return max(0, batch - in_flight)
    requests = limiter.room() - math.ceil(in_flight / step)
    return max(0, min(batch, requests * step))


def start_feeder(countdown: float | None = None) -> bool:
    """Queue the feeder task unless it is already queued; never raises."""
    from badges_bridge.tasks import schedule_feeder

    return schedule_feeder(countdown)
