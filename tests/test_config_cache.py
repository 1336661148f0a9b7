"""The badge configuration seen by the event receivers: the per-course rules in the cache, and each
process's snapshot of the courses that have badges."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from opaque_keys.edx.keys import CourseKey

from badges_bridge import config_cache
from badges_bridge.models import CourseBadge
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

pytestmark = pytest.mark.django_db
COURSE = CourseKey.from_string("course-v1:Org+Cache+2026")


def test_a_change_is_invalidated_again_once_committed(credly, django_capture_on_commit_callbacks, monkeypatch):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE, enabled=False)
    assert config_cache.rules_for_course(COURSE) == ()
    with django_capture_on_commit_callbacks(execute=True):
        badge.enabled = True
        badge.save()
        with monkeypatch.context() as patch:
            # Another process reads the configuration between the save and its commit: it still sees no
            # badge, and caches that.
            patch.setattr(config_cache, "_load", lambda course_key: ())
            assert config_cache.rules_for_course(COURSE) == ()
    assert [rule.course_badge_id for rule in config_cache.rules_for_course(COURSE)] == [badge.pk]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def disabled_badge(credly):
    return make_course_badge(make_template(make_account(credly), credly), COURSE, enabled=False)


def enable(badge, callbacks):
    """Enable the badge in a transaction that commits (its on-commit work runs)."""
    with callbacks(execute=True):
        badge.enabled = True
        badge.save()


def test_another_process_sees_a_course_s_first_badge_within_the_check_interval(
    disabled_badge, clock, settings, django_capture_on_commit_callbacks
):
    settings.BADGES_BRIDGE_CONFIG_CHECK_SECONDS = 2
    other = config_cache.CourseSnapshot(clock)  # another process: it shares the cache, not this module's snapshot
    assert not other.has_badges(str(COURSE))
    enable(disabled_badge, django_capture_on_commit_callbacks)
    assert config_cache.course_has_badges(str(COURSE))  # the process that made the change knows at once
    with CaptureQueriesContext(connection) as queries:
        clock.now += 1.9
        assert not other.has_badges(str(COURSE))  # inside the window: nothing is read
    assert len(queries) == 0
    clock.now += 0.1
    assert other.has_badges(str(COURSE))


def test_a_snapshot_read_between_a_change_and_its_commit_is_reloaded(
    disabled_badge, clock, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.BADGES_BRIDGE_CONFIG_CHECK_SECONDS = 1
    other = config_cache.CourseSnapshot(clock)
    with django_capture_on_commit_callbacks(execute=True):
        disabled_badge.enabled = True
        disabled_badge.save()
        with monkeypatch.context() as patch:
            # The other process reloads before the commit: its database does not show the badge yet.
            patch.setattr(config_cache, "_courses_with_badges", frozenset)
            assert not other.has_badges(str(COURSE))
    clock.now += 1
    assert other.has_badges(str(COURSE))  # the generation stamped after the commit makes it reload


def test_between_checks_the_snapshot_costs_no_query_and_no_cache_read(disabled_badge, clock, monkeypatch):
    other = config_cache.CourseSnapshot(clock)
    other.has_badges(str(COURSE))
    reads = []
    monkeypatch.setattr(config_cache, "shared_generation", lambda: reads.append(1))
    with CaptureQueriesContext(connection) as queries:
        for _ in range(100):
            other.has_badges(str(COURSE))
    assert (len(queries), reads) == (0, [])


def test_an_unchanged_stamp_costs_one_cache_read_and_no_query(disabled_badge, clock):
    other = config_cache.CourseSnapshot(clock)
    other.has_badges(str(COURSE))
    clock.now += 5
    with CaptureQueriesContext(connection) as queries:
        assert not other.has_badges(str(COURSE))
    assert len(queries) == 0


def test_a_lost_stamp_makes_every_process_reload(disabled_badge, clock):
    other = config_cache.CourseSnapshot(clock)
    assert not other.has_badges(str(COURSE))
    CourseBadge.objects.filter(pk=disabled_badge.pk).update(enabled=True)  # a bulk change: no signal
    cache.clear()  # the cache was flushed or restarted
    clock.now += 1
    assert other.has_badges(str(COURSE))


def test_a_change_that_announced_nothing_is_seen_once_the_snapshot_expires(disabled_badge, clock, settings):
    settings.BADGES_BRIDGE_CONFIG_CACHE_SECONDS = 60
    other = config_cache.CourseSnapshot(clock)
    assert not other.has_badges(str(COURSE))
    CourseBadge.objects.filter(pk=disabled_badge.pk).update(enabled=True)  # a bulk change: no signal, no stamp
    clock.now += 59
    assert not other.has_badges(str(COURSE))
    clock.now += 1
    assert other.has_badges(str(COURSE))


def test_a_check_interval_of_zero_reads_the_stamp_on_every_event(
    disabled_badge, clock, settings, django_capture_on_commit_callbacks
):
    settings.BADGES_BRIDGE_CONFIG_CHECK_SECONDS = 0
    other = config_cache.CourseSnapshot(clock)
    assert not other.has_badges(str(COURSE))
    enable(disabled_badge, django_capture_on_commit_callbacks)
    assert other.has_badges(str(COURSE))  # no time has passed


def test_without_a_cache_that_keeps_the_stamp_every_check_reloads(disabled_badge, clock, monkeypatch):
    monkeypatch.setattr(config_cache, "shared_generation", lambda: None)  # a dummy cache keeps nothing
    other = config_cache.CourseSnapshot(clock)
    assert not other.has_badges(str(COURSE))
    CourseBadge.objects.filter(pk=disabled_badge.pk).update(enabled=True)
    clock.now += 1
    assert other.has_badges(str(COURSE))


def test_an_announcement_that_fails_after_the_commit_is_logged_not_raised(
    disabled_badge, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def unreachable(*args, **kwargs):
        raise ConnectionError("cache unreachable")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        disabled_badge.enabled = True
        disabled_badge.save()
    monkeypatch.setattr(config_cache.cache, "set", unreachable)
    for callback in callbacks:
        callback()
    assert "could not announce a configuration change" in caplog.text
    assert CourseBadge.objects.get(pk=disabled_badge.pk).enabled
