"""Backfills: badges for learners who met a course badge's criterion before it existed, and their feeder.

:func:`record` streams the course's learners a chunk at a time, reads their
standing in the course (grade, passing status, certificate, in bulk through
:mod:`badges_bridge.compat`) and records a ledger row through the same path as
a learning event, marked as backfill; for a series badge it reads the standing
in every course of the series and records it as progress. A learner who
already has a row for the badge is left as they are. :func:`preview` counts the
learners who qualify the same way, writing nothing. Nothing is queued
there: :func:`feed`, run by the feeder task, queues backfill rows a few at a
time, only as many as the backfill share of each account's request budget has
room for in the current window. Interactive work (events of learners who just
passed or failed) is queued at once and may use the whole budget, so it never
waits behind a backfill (see ADR 0013).
"""

from __future__ import annotations

import heapq
import logging
import math
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, groupby, islice

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey

from badges_bridge import accounts, compat, config_cache, criteria, ledger, series
from badges_bridge.conf import get_setting
from badges_bridge.data import BadgeRule, CourseStanding, EventKind, LearnerEvent, QualifierPreview
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.models import BadgeIssuance, Lane, ProviderAccount
from badges_bridge.providers import get_provider_class

log = logging.getLogger(__name__)

#: The event type recorded on backfill rows (their evidence: the learner's standing when the backfill ran).
EVENT_TYPE = "badges_bridge.backfill"
#: Learners read and recorded per transaction.
CHUNK = 200
#: Learners read per step of a preview (it writes nothing, so its steps may be larger).
PREVIEW_CHUNK = 500


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


def _events(user_id: int, course_key: CourseKey, standing: CourseStanding | None, now: datetime) -> list[LearnerEvent]:
    """The learner's standing in the course, as the learning events that would have said it."""
    if standing is None:
        return []

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
    grade, certificate = standing.grade, standing.certificate
    if grade is not None and grade.passed is not None:
        found.append(event(EventKind.PASSING_STATUS, is_passing=grade.passed, percent_grade=grade.percent))
    if grade is not None and grade.percent is not None:
        found.append(event(EventKind.GRADE, percent_grade=grade.percent))
    if certificate is not None:
        found.append(
            event(EventKind.CERTIFICATE, certificate_mode=certificate.mode, certificate_status=certificate.status)
        )
    return found


def _verdict(rule: BadgeRule, events: list[LearnerEvent]) -> tuple[bool | None, LearnerEvent | None]:
    """(met, the first event that meets it): met if any event meets the rule; None when no event decides it."""
    verdicts = [(met, event) for event in events if (met := criteria.evaluate(rule, event)) is not None]
    meeting = next((event for met, event in verdicts if met), None)
    return (meeting is not None if verdicts else None), meeting


def courses_of(rules: Iterable[BadgeRule]) -> list[CourseKey]:
    """The courses whose standing decides these rules: a badge's course, or the courses of its series."""
    keys: dict[str, CourseKey] = {}
    for rule in rules:
        for key in [item.course_key for item in rule.series] or [CourseKey.from_string(rule.course_key)]:
            keys[str(key)] = key
    return [keys[text] for text in sorted(keys)]


def learner_chunks(courses: list[CourseKey], chunk_size: int | None = None) -> Iterator[list[int]]:
    """The learners of any of these courses in user id order, ``chunk_size`` (default CHUNK) at a time, streamed.

    Each course's learners come from :func:`compat.iter_enrolled_user_ids`, a chunk at a time: memory
    holds one chunk per course, whatever the number of learners.
    """
    chunk_size = chunk_size or CHUNK
    streams = [chain.from_iterable(compat.iter_enrolled_user_ids(key, chunk_size)) for key in courses]
    learners = (user_id for user_id, _same in groupby(heapq.merge(*streams)))
    while chunk := list(islice(learners, chunk_size)):
        yield chunk


def _given_chunks(user_ids: Iterable[int]) -> Iterator[list[int]]:
    ids = sorted({int(user_id) for user_id in user_ids})
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


Standings = dict[str, dict[int, CourseStanding]]


def read_standings(courses: list[CourseKey], chunk: list[int]) -> Standings:
    """Each course's standings of the learners of a chunk (two queries per course)."""
    return {str(key): compat.course_standings(key, chunk) for key in courses}


def course_verdicts(rule: BadgeRule, standings: Standings, user_id: int, now: datetime) -> dict[str, bool | None]:
    """For a series badge: whether the learner meets the condition of each of its courses (None: not known)."""
    verdicts = {}
    for item in rule.series:
        key = str(item.course_key)
        member = criteria.course_rule(rule, key)
        verdicts[key] = _verdict(member, _events(user_id, item.course_key, standings[key].get(user_id), now))[0]
    return verdicts


def qualifies(rule: BadgeRule, standings: Standings, user_id: int, now: datetime) -> LearnerEvent | bool:
    """Whether the learner meets the rule now, within its window (judged at ``now``).

    For a single-course badge, the event that meets it; for a series, True. False when not met.
    """
    if not criteria.in_window(rule, now):
        return False
    if rule.series:
        met = sum(1 for verdict in course_verdicts(rule, standings, user_id, now).values() if verdict)
        return met >= series.required(rule)
    key = rule.course_key
    events = _events(user_id, CourseKey.from_string(key), standings[key].get(user_id), now)
    return _verdict(rule, events)[1] or False


def _rules(course_key: CourseKey, badge_ids: Iterable[int] | None) -> tuple[BadgeRule, ...]:
    rules = config_cache.badges_of_course(course_key)
    if badge_ids is not None:
        wanted = {int(badge_id) for badge_id in badge_ids}
        rules = tuple(rule for rule in rules if rule.course_badge_id in wanted)
        if not rules:
            raise ConfigurationError(f"None of these course badges is an enabled course badge of course {course_key}")
    if not rules:
        raise ConfigurationError(f"Course {course_key} has no enabled course badge: configure one first")
    return rules


def record(
    course_key_text: str,
    user_ids: Iterable[int] | None = None,
    *,
    badge_ids: Iterable[int] | None = None,
    dry_run: bool = False,
    progress: Callable[[BackfillResult], None] | None = None,
) -> BackfillResult:
    """Record backfill rows for the learners of a course who meet one of its enabled badges' criteria.

    ``user_ids``: the learners to consider (default: the course's learners, streamed a chunk at a time:
    its active enrollments inside the LMS, else the learners the plugin recorded; for a series badge, the
    learners of any of its courses). ``badge_ids``: only these badges of the course (default: all its
    enabled badges). A series badge also records the learners' progress in each of its courses. Running
    it again, or twice at once, records nothing twice: a learner keeps one row per badge. ``progress``
    is called after every chunk of learners. Raises ConfigurationError for a malformed course key, or a
    course without an enabled badge (among ``badge_ids``).
    """
    course_key = parse_course_key(course_key_text)
    rules = _rules(course_key, badge_ids)
    courses = courses_of(rules)
    chunks = _given_chunks(user_ids) if user_ids is not None else learner_chunks(courses)
    result = BackfillResult(str(course_key), dry_run=dry_run)
    ids_of_badges = [rule.course_badge_id for rule in rules]
    for chunk in chunks:
        users = set(get_user_model().objects.filter(pk__in=chunk).values_list("pk", flat=True))
        standings = read_standings(courses, chunk)
        has_rows: dict[int, set[int]] = {}
        for user_id, badge_id in BadgeIssuance.objects.filter(
            user_id__in=chunk, course_badge_id__in=ids_of_badges
        ).values_list("user_id", "course_badge_id"):
            has_rows.setdefault(user_id, set()).add(badge_id)
        now = timezone.now()
        with transaction.atomic():
            for user_id in chunk:
                if user_id not in users:
                    result.learners += 1
                    result.not_met += 1
                    continue
                _record_one(result, rules, standings, user_id, has_rows.get(user_id, set()), now)
        if progress is not None:
            progress(result)
    if result.recorded and not dry_run:
        transaction.on_commit(lambda: start_feeder(0))
    log.info("badges_bridge: backfill %s", result.describe())
    return result


def _record_one(
    result: BackfillResult,
    rules: tuple[BadgeRule, ...],
    standings: Standings,
    user_id: int,
    skip: set[int],
    now: datetime,
) -> None:
    result.learners += 1
    wanted: list[tuple[LearnerEvent, BadgeRule]] = []
    met_any = False
    series_recorded: list[int] = []
    for rule in rules:
        if rule.series:
            record_badge = rule.course_badge_id not in skip
            event = _backfill_event(user_id, rule, now)
            verdicts = course_verdicts(rule, standings, user_id, now)
            if all(verdict is None for verdict in verdicts.values()):
                continue  # nothing known of the learner in any course of the series: no progress to record
            met = series.record_standing(
                user_id, rule, verdicts, event, record_badge=record_badge, dry_run=result.dry_run
            )
            met_any |= met
            if met and record_badge:
                series_recorded.append(rule.course_badge_id)
            continue
        event = qualifies(rule, standings, user_id, now)
        if event:
            met_any = True
            if rule.course_badge_id not in skip:
                wanted.append((event, rule))
    if not wanted and not series_recorded:
        if met_any:
            result.existing += 1
        else:
            result.not_met += 1
        return
    if result.dry_run:
        result.recorded += len(wanted) + len(series_recorded)
        return
    by_event: dict[LearnerEvent, list[tuple[BadgeRule, bool]]] = {}
    for event, rule in wanted:
        by_event.setdefault(event, []).append((rule, True))
    for event, decisions in by_event.items():
        ledger.apply_event(event, decisions, lane=Lane.BACKFILL)
    result.recorded += BadgeIssuance.objects.filter(
        user_id=user_id,
        course_badge_id__in=[rule.course_badge_id for _event, rule in wanted] + series_recorded,
        lane=Lane.BACKFILL,
    ).count()


def _backfill_event(user_id: int, rule: BadgeRule, now: datetime) -> LearnerEvent:
    """The event a backfill records a series badge with (its time: when the standing was read)."""
    return LearnerEvent(
        event_id=f"backfill-{uuid.uuid4().hex}",
        event_type=EVENT_TYPE,
        occurred_at=now,
        kind=EventKind.PASSING_STATUS,
        user_id=user_id,
        course_key=CourseKey.from_string(rule.course_key),
        run_key=rule.course_key,
    )


def preview(rule: BadgeRule, sample_size: int = 10) -> QualifierPreview:
    """How many learners meet the rule now, streamed a chunk of learners at a time; changes nothing."""
    courses = courses_of([rule])
    result = QualifierPreview(source="platform" if compat.reads_platform() else "recorded")
    now = timezone.now()
    for chunk in learner_chunks(courses, PREVIEW_CHUNK):
        standings = read_standings(courses, chunk)
        recorded = set(
            BadgeIssuance.objects.filter(course_badge_id=rule.course_badge_id, user_id__in=chunk).values_list(
                "user_id", flat=True
            )
        )
        result.learners_read += len(chunk)
        for user_id in chunk:
            if not qualifies(rule, standings, user_id, now):
                continue
            result.qualify += 1
            result.already_recorded += user_id in recorded
            if len(result.sample) < sample_size:
                result.sample.append(user_id)
    return result


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
