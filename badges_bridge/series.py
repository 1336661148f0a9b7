"""Series badges: all, or N, of a list of courses, each with its own condition (see ADR 0015).

An event of a course of the series is judged against that course's condition
(:func:`badges_bridge.criteria.evaluate_course`) and recorded in the learner's
:class:`~badges_bridge.models.SeriesProgress` row of that course; an event older than
the one recorded for the course is ignored. The series is then decided from the
learner's rows of every course of the series, whatever order their events came in,
and the decision goes through the ledger like any other (leases, consent, lanes and
revoke policies apply).

Locking: the learner's progress rows of every course of the series are created when
missing, then locked with ``SELECT ... FOR UPDATE`` in course key order (and badge by
badge in id order), so that two events of two courses handled at the same moment in two
transactions are serialised: the second one sees the first one's progress.

The ledger ignores an event older than its row's; events of different courses have
unrelated times, so the series decision is applied with the latest event time recorded
in any course of the series, which never goes back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from opaque_keys.edx.keys import CourseKey

from badges_bridge import criteria, ledger, tombstones
from badges_bridge.data import BadgeRule, LearnerEvent
from badges_bridge.models import Lane, RevokePolicy, SeriesProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Standing:
    """What the learner's rows of one series say after an update."""

    #: Whether enough courses are met.
    met: bool
    #: When the last needed course was met (the required-th earliest moment among the met courses).
    met_at: datetime | None
    #: The latest event time recorded in any course of the series.
    latest: datetime | None


def required(rule: BadgeRule) -> int:
    """How many courses of the series must be met."""
    return rule.series_required or len(rule.series)


def _locked_rows(user_id: int, rule: BadgeRule) -> dict[str, SeriesProgress] | None:
    """The learner's progress rows of every course of the series, created when missing, locked in course order.

    None for a retired learner (no row is created for them).
    """
    keys = sorted(str(course.course_key) for course in rule.series)
    rows = SeriesProgress.objects.filter(user_id=user_id, course_badge_id=rule.course_badge_id)
    existing = {str(key) for key in rows.values_list("course_key", flat=True)}
    missing = [key for key in keys if key not in existing]
    if missing:
        if tombstones.is_retired(user_id):
            return None
        SeriesProgress.objects.bulk_create(
            [
                SeriesProgress(
                    user_id=user_id, course_badge_id=rule.course_badge_id, course_key=CourseKey.from_string(key)
                )
                for key in missing
            ],
            ignore_conflicts=True,
        )
    locked = rows.select_for_update().order_by("course_key")
    return {str(row.course_key): row for row in locked if str(row.course_key) in keys}


def _record(row: SeriesProgress, met: bool, moment: datetime, grade: Decimal | None) -> None:
    if met and not row.met:
        row.met_at = moment
    elif not met:
        row.met_at = None
    row.met, row.event_time = met, moment
    if grade is not None:
        row.grade = grade
    row.save(update_fields=["met", "met_at", "event_time", "grade"])


def standing(rule: BadgeRule, rows: list[SeriesProgress]) -> Standing:
    """Whether the rows meet the series, when the last needed course was met, and the latest event time."""
    met_times = sorted(row.met_at or row.event_time for row in rows if row.met)
    times = [row.event_time for row in rows if row.event_time is not None]
    needed = required(rule)
    met = len(met_times) >= needed
    return Standing(met, met_times[needed - 1] if met else None, max(times) if times else None)


def _decision(rule: BadgeRule, result: Standing) -> bool | None:
    """What the ledger is told: met within the window, not met, or nothing (met outside the window)."""
    if result.met:
        return True if criteria.in_window(rule, result.met_at) else None
    if rule.revoke_policy == RevokePolicy.NEVER:
        return None  # "not met" changes nothing under this policy: spare the ledger its queries
    return False


def record_event(event: LearnerEvent, decisions: list[tuple[BadgeRule, bool]]) -> list[ledger.Work]:
    """Record what an event says of its course in each series, and apply each series' decision to the ledger.

    ``decisions``: the series rules with whether the event's course meets its condition. Runs in one
    transaction; returns the work to queue after commit.
    """
    work: list[ledger.Work] = []
    with transaction.atomic():
        for rule, course_met in sorted(decisions, key=lambda decision: decision[0].course_badge_id):
            rows = _locked_rows(event.user_id, rule)
            row = None if rows is None else rows.get(str(event.course_key))
            if row is None:
                continue
            if row.event_time is not None and event.occurred_at < row.event_time:
                log.info(
                    "badges_bridge: event %s is older than the last one recorded for its course in series badge %s; "
                    "ignored",
                    event.event_id,
                    rule.course_badge_id,
                )
                continue
            _record(row, course_met, event.occurred_at, event.percent_grade)
            result = standing(rule, list(rows.values()))
            met = _decision(rule, result)
            if met is not None:
                work += ledger.apply_event(replace(event, occurred_at=result.latest), [(rule, met)])
    return work


def record_standing(
    user_id: int,
    rule: BadgeRule,
    courses: dict[str, bool | None],
    event: LearnerEvent,
    *,
    record_badge: bool = True,
    dry_run: bool = False,
) -> bool:
    """Record a learner's standing in the courses of a series, read from the platform (a backfill).

    ``courses``: per course key, whether its condition is met (None: nothing known). ``event`` is the
    backfill's event (its time is when the standing was read). With ``record_badge``, records a backfill
    ledger row when the series is met within the window (the caller knows the learner has none yet).
    Returns whether the series is met within the window. With ``dry_run`` nothing is written.
    """
    if dry_run:
        met_count = sum(1 for met in courses.values() if met)
        return met_count >= required(rule) and criteria.in_window(rule, event.occurred_at)
    with transaction.atomic():
        rows = _locked_rows(user_id, rule)
        if rows is None:
            return False
        for key, row in rows.items():
            met = courses.get(key)
            if met is not None and (row.event_time is None or row.event_time <= event.occurred_at):
                _record(row, met, event.occurred_at, None)
        result = standing(rule, list(rows.values()))
        if _decision(rule, result) is not True:
            return False
        if record_badge:
            ledger.apply_event(replace(event, occurred_at=result.latest), [(rule, True)], lane=Lane.BACKFILL)
    return True
