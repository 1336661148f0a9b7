"""The badge configuration that the event receivers read, cached so that events cost no query.

Two layers (see ``docs/decisions/0012-course-snapshot-for-the-receivers.rst``):

* **Which courses have badges**: a snapshot per process (:class:`CourseSnapshot`). An event of a course
  outside it is dropped by the receiver before its payload is parsed, without touching the cache or the
  database. Each process checks its snapshot against a generation stamp in the shared cache at most every
  ``BADGES_BRIDGE_CONFIG_CHECK_SECONDS``, and reloads it (one query) when the stamp changed, or after
  ``BADGES_BRIDGE_CONFIG_CACHE_SECONDS`` whatever the stamp says.
* **The rules of one course**, in the Django cache: one read per event of a course that has badges. A
  course without badges is cached as an empty tuple.

Any change to a course badge, its template or its account deletes the affected course entries and forgets
this process's snapshot at once; after the transaction commits it does both again and stamps a new
generation, so that every process reloads within the check interval. Doing it again after the commit
matters: another process may read the configuration between the change and its commit, and cache what it
saw then.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, QuerySet
from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey

from badges_bridge.conf import get_setting
from badges_bridge.data import BadgeRule

log = logging.getLogger(__name__)

_KEY_PREFIX = "badges_bridge.course_rules.v2."
#: Cache key of the configuration's generation stamp, shared by every process.
GENERATION_KEY = "badges_bridge.config_generation.v1"


def _cache_key(course_key: CourseKey | str) -> str:
    return _KEY_PREFIX + hashlib.sha256(str(course_key).encode()).hexdigest()


def _enabled_badges() -> QuerySet:
    """Course badges that take events: enabled, with an active template and an enabled account, in a course
    whose badges are on (the Course App toggle, :class:`~badges_bridge.models.CourseSettings`)."""
    from badges_bridge.models import CourseBadge, CourseSettings

    switched_off = CourseSettings.objects.filter(badges_enabled=False).values("course_key")
    return CourseBadge.objects.filter(enabled=True, template__state="active", template__account__enabled=True).exclude(
        course_key__in=switched_off
    )


def member_courses(criterion: str, series: object) -> set[str]:
    """The keys (as text) of the courses of a stored series (empty unless the criterion is a series)."""
    from badges_bridge.models import Criterion

    if criterion != Criterion.SERIES or not isinstance(series, list):
        return set()
    courses = set()
    for item in series:
        try:
            courses.add(str(CourseKey.from_string(str(item.get("course_key", "")).strip())))
        except (AttributeError, InvalidKeyError):
            continue  # not a course (CourseBadge.clean refuses it): no event can come from it
    return courses


def _load(course_key: CourseKey) -> tuple[BadgeRule, ...]:
    """The rules an event of the course decides: its own badges and the series badges that list it.

    A series badge lives on its own course, which may not be in the series; it is judged by the events
    of its member courses only. Series badges are few: they are all read and filtered here (the result
    is cached).
    """
    from badges_bridge.models import Criterion

    text = str(course_key)
    badges = _enabled_badges().filter(Q(course_key=course_key) | Q(criterion=Criterion.SERIES))
    return tuple(
        rule_for(badge)
        for badge in badges.select_related(None)
        if (text in member_courses(badge.criterion, badge.series))
        or (badge.criterion != Criterion.SERIES and str(badge.course_key) == text)
    )


def badges_of_course(course_key: CourseKey) -> tuple[BadgeRule, ...]:
    """The rules of the enabled badges that belong to the course (series included), read now, not cached."""
    return tuple(rule_for(badge) for badge in _enabled_badges().filter(course_key=course_key).select_related(None))


def rule_for(badge) -> BadgeRule:
    """The ORM-free rule of one course badge."""
    return BadgeRule(
        course_badge_id=badge.id,
        criterion=badge.criterion,
        grade_threshold=badge.grade_threshold,
        certificate_modes=badge.modes(),
        revoke_policy=badge.revoke_policy,
        version=badge.version,
        course_key=str(badge.course_key),
        series=tuple(badge.series_courses()),
        series_required=badge.required_count() if badge.series_courses() else 0,
        earned_after=badge.earned_after,
        earned_before=badge.earned_before,
        requires_approval=badge.requires_approval,
    )


def rules_for_course(course_key: CourseKey) -> tuple[BadgeRule, ...]:
    """The enabled badge rules of a course, from the cache when possible."""
    key = _cache_key(course_key)
    rules = cache.get(key)
    if rules is None:
        rules = _load(course_key)
        cache.set(key, rules, get_setting("CONFIG_CACHE_SECONDS"))
    return rules


def _courses_with_badges() -> frozenset[str]:
    """Courses whose events may decide a badge: those with a badge, and every course of a series badge."""
    courses: set[str] = set()
    for course_key, criterion, series in _enabled_badges().order_by().values_list("course_key", "criterion", "series"):
        courses.add(str(course_key))
        courses |= member_courses(criterion, series)
    return frozenset(courses)


def shared_generation() -> str | None:
    """The configuration's generation stamp in the shared cache, created when missing.

    None only when the cache keeps nothing (a dummy cache): snapshots are then reloaded at every check.
    """
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        cache.add(GENERATION_KEY, uuid.uuid4().hex, None)
        generation = cache.get(GENERATION_KEY)
    return generation


@dataclass(frozen=True)
class _Snapshot:
    courses: frozenset[str]
    generation: str | None
    #: Monotonic time of the next generation check.
    check_at: float
    #: Monotonic time after which the snapshot is reloaded whatever the generation says.
    expires_at: float


class CourseSnapshot:
    """The courses that have an enabled badge, as this process last read them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()

    def has_badges(self, course: str) -> bool:
        """Whether the course (its key as text) has an enabled badge.

        Reads nothing between checks; a check reads the generation stamp from the cache, and a reload
        runs one query. Raises what the cache or the database raise.
        """
        snapshot = self._snapshot
        if snapshot is None or self.clock() >= snapshot.check_at:
            snapshot = self._refresh()
        return course in snapshot.courses

    def forget(self) -> None:
        """Drop the snapshot: the next event reloads it."""
        self._snapshot = None

    def _refresh(self) -> _Snapshot:
        with self._lock:
            now = self.clock()
            snapshot = self._snapshot
            if snapshot is not None and now < snapshot.check_at:
                return snapshot  # another thread checked it meanwhile
            generation = shared_generation()
            check_at = now + max(0.0, float(get_setting("CONFIG_CHECK_SECONDS")))
            current = snapshot is not None and generation is not None and generation == snapshot.generation
            if current and now < snapshot.expires_at:
                snapshot = replace(snapshot, check_at=check_at)
            else:
                expires_at = now + get_setting("CONFIG_CACHE_SECONDS")
                snapshot = _Snapshot(_courses_with_badges(), generation, check_at, expires_at)
            self._snapshot = snapshot
            return snapshot


#: This process's snapshot, read by the receivers.
snapshot = CourseSnapshot()


def course_has_badges(course: str) -> bool:
    """Whether the course (its key as text) has an enabled badge, by this process's snapshot."""
    return snapshot.has_badges(course)


def invalidate(*course_keys: CourseKey | str) -> None:
    """Forget the cached rules of these courses and this process's snapshot, now and again after commit.

    After the commit a new generation is stamped too, so that other processes reload their snapshot.
    """
    _forget(course_keys)
    transaction.on_commit(lambda: _forget_after_commit(course_keys))


def _forget(course_keys: tuple[CourseKey | str, ...]) -> None:
    if course_keys:
        cache.delete_many([_cache_key(key) for key in course_keys])
    snapshot.forget()


def _forget_after_commit(course_keys: tuple[CourseKey | str, ...]) -> None:
    try:
        _forget(course_keys)
        cache.set(GENERATION_KEY, uuid.uuid4().hex, None)
    except Exception:  # noqa: BLE001 - the change is committed; the caller must not see an error for it
        log.exception(
            "badges_bridge: could not announce a configuration change through the cache; other processes may "
            "use the previous configuration for up to BADGES_BRIDGE_CONFIG_CACHE_SECONDS"
        )


def _affected(badges: QuerySet) -> set[str]:
    """The courses whose rules these course badges are part of: their own, and the courses of their series."""
    courses: set[str] = set()
    for course_key, criterion, series in badges.order_by().values_list("course_key", "criterion", "series"):
        courses.add(str(course_key))
        courses |= member_courses(criterion, series)
    return courses


def invalidate_before_course_badge_change(sender, instance, **kwargs) -> None:
    """pre_save receiver for CourseBadge: forget the courses of the stored badge (a series may lose courses)."""
    if instance.pk is not None:
        invalidate(*_affected(type(instance).objects.filter(pk=instance.pk)))


def invalidate_for_course_badge(sender, instance, **kwargs) -> None:
    """post_save/post_delete receiver for CourseBadge: its course and the courses of its series."""
    invalidate(str(instance.course_key), *member_courses(instance.criterion, instance.series))


def invalidate_for_template(sender, instance, **kwargs) -> None:
    """post_save/post_delete receiver for BadgeTemplate."""
    invalidate(*_affected(instance.course_badges.all()))


def invalidate_for_account(sender, instance, **kwargs) -> None:
    """post_save/post_delete receiver for ProviderAccount."""
    from badges_bridge.models import CourseBadge

    invalidate(*_affected(CourseBadge.objects.filter(template__account=instance)))


def invalidate_for_course_settings(sender, instance, **kwargs) -> None:
    """post_save/post_delete receiver for CourseSettings: the course's badges, series courses included."""
    from badges_bridge.models import CourseBadge

    invalidate(str(instance.course_key), *_affected(CourseBadge.objects.filter(course_key=instance.course_key)))
