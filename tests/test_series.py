"""Series badges: all or N of a list of courses, each with its own condition, whatever order the events come in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, config_cache
from badges_bridge.data import EventKind, LearnerEvent
from badges_bridge.models import (
    BadgeIssuance,
    IssuanceState,
    Operation,
    RevokePolicy,
    SeriesProgress,
    StandaloneCourse,
)
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

S = IssuanceState
A, B, C = (CourseKey.from_string(f"course-v1:Org+Part{n}+2026") for n in (1, 2, 3))
HOME = CourseKey.from_string("course-v1:Org+Programme+2026")
T0 = datetime(2026, 3, 1, tzinfo=UTC)
pytestmark = pytest.mark.django_db


@pytest.fixture
def template(credly):
    return make_template(make_account(credly), credly)


def passed_condition(*courses: CourseKey) -> list[dict]:
    return [{"course_key": str(course), "criterion": "passed"} for course in courses]


def series_badge(template, series=None, required=None, **fields):
    return make_course_badge(
        template,
        HOME,
        criterion="series",
        series=series if series is not None else passed_condition(A, B, C),
        series_required=required,
        **fields,
    )


def passing(user, course: CourseKey, is_passing: bool, minute: int) -> LearnerEvent:
    return LearnerEvent(
        event_id=f"{course.course}-{minute}-{is_passing}",
        event_type="org.openedx.learning.course.passing.status.updated.v1",
        occurred_at=T0 + timedelta(minutes=minute),
        kind=EventKind.PASSING_STATUS,
        user_id=user.pk,
        course_key=course,
        run_key=str(course),
        is_passing=is_passing,
    )


def grade(user, course: CourseKey, percent: str, minute: int) -> LearnerEvent:
    return LearnerEvent(
        event_id=f"{course.course}-{minute}-grade",
        event_type="org.openedx.learning.course.persistent_grade_summary.changed.v1",
        occurred_at=T0 + timedelta(minutes=minute),
        kind=EventKind.GRADE,
        user_id=user.pk,
        course_key=course,
        run_key=str(course),
        percent_grade=Decimal(percent),
    )


def row_of(badge, user) -> BadgeIssuance | None:
    return BadgeIssuance.objects.filter(course_badge=badge, user=user).first()


def state_of(badge, user) -> str | None:
    row = row_of(badge, user)
    return row.state if row else None


# -- order independence ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("arrival", list(itertools.permutations(range(3))))
def test_all_of_three_courses_qualifies_when_the_last_course_is_met_in_any_order(template, learner, arrival):
    badge = series_badge(template)
    minutes = {0: 30, 1: 10, 2: 20}  # the events' own times have nothing to do with their arrival order
    courses = [A, B, C]
    for count, index in enumerate(arrival, 1):
        work = api.record_learner_event(passing(learner, courses[index], True, minutes[index]))
        if count < 3:
            assert state_of(badge, learner) is None
            assert work == []
    row = row_of(badge, learner)
    assert row.state == S.PENDING
    assert work == [api.Work(row.pk, Operation.ISSUE)]
    assert row.event_time == T0 + timedelta(minutes=30)  # the latest time recorded in the series
    assert SeriesProgress.objects.filter(course_badge=badge, user=learner, met=True).count() == 3


@pytest.mark.parametrize("arrival", list(itertools.permutations(range(3), 2)))
def test_two_of_three_courses_qualifies_at_the_second_course_met(template, learner, arrival):
    badge = series_badge(template, required=2)
    courses = [A, B, C]
    first, second = arrival
    api.record_learner_event(passing(learner, courses[first], True, 50 - first))
    assert state_of(badge, learner) is None
    api.record_learner_event(passing(learner, courses[second], True, 5 + second))
    assert state_of(badge, learner) == S.PENDING


def test_each_course_is_judged_by_its_own_condition(template, learner):
    badge = series_badge(
        template,
        series=[
            {"course_key": str(A), "criterion": "passed"},
            {"course_key": str(B), "criterion": "grade_at_least", "grade_threshold": "80"},
        ],
    )
    api.record_learner_event(grade(learner, B, "79.99", 1))
    api.record_learner_event(passing(learner, A, True, 2))
    assert state_of(badge, learner) is None  # the exam's grade is below its threshold
    api.record_learner_event(passing(learner, B, True, 3))  # passing status decides nothing for a grade condition
    assert state_of(badge, learner) is None
    api.record_learner_event(grade(learner, B, "80", 4))
    assert state_of(badge, learner) == S.PENDING


def test_a_course_met_then_unmet_does_not_count(template, learner):
    badge = series_badge(template)
    api.record_learner_event(passing(learner, A, True, 1))
    api.record_learner_event(passing(learner, A, False, 2))
    api.record_learner_event(passing(learner, B, True, 3))
    api.record_learner_event(passing(learner, C, True, 4))
    assert state_of(badge, learner) is None
    api.record_learner_event(passing(learner, A, True, 5))
    assert state_of(badge, learner) == S.PENDING


def test_an_older_event_of_a_course_is_ignored_and_duplicates_change_nothing(template, learner):
    badge = series_badge(template, required=2)
    api.record_learner_event(passing(learner, A, True, 10))
    api.record_learner_event(passing(learner, A, False, 5))  # older than the recorded one: ignored
    progress = SeriesProgress.objects.get(course_badge=badge, user=learner, course_key=A)
    assert (progress.met, progress.event_time) == (True, T0 + timedelta(minutes=10))
    api.record_learner_event(passing(learner, B, True, 1))  # older than A's event, but of another course
    row = row_of(badge, learner)
    assert row.state == S.PENDING
    assert api.record_learner_event(passing(learner, B, True, 1)) == []  # the same event again
    assert BadgeIssuance.objects.count() == 1
    assert row.audit_entries.count() == 1


def test_a_series_decision_is_not_dropped_because_another_course_had_a_newer_event(template, learner):
    badge = series_badge(template, series=passed_condition(A, B), revoke_policy=RevokePolicy.CRITERION_UNMET)
    api.record_learner_event(passing(learner, A, True, 100))
    api.record_learner_event(passing(learner, B, True, 1))
    assert state_of(badge, learner) == S.PENDING
    api.record_learner_event(passing(learner, B, False, 2))  # B's own newer event, older than A's: it still counts
    assert state_of(badge, learner) == S.REVOKE_PENDING


def test_revoke_when_unmet_revokes_only_below_the_required_count(template, learner):
    badge = series_badge(template, required=2, revoke_policy=RevokePolicy.CRITERION_UNMET)
    for minute, course in enumerate((A, B, C), 1):
        api.record_learner_event(passing(learner, course, True, minute))
    row = row_of(badge, learner)
    row.state = S.ISSUED
    row.save()
    api.record_learner_event(passing(learner, A, False, 10))
    assert state_of(badge, learner) == S.ISSUED  # two of three are still met
    work = api.record_learner_event(passing(learner, B, False, 11))
    assert state_of(badge, learner) == S.REVOKE_PENDING
    assert [item.operation for item in work] == [Operation.REVOKE]


def test_never_policy_keeps_a_series_badge_and_records_no_row_for_unmet(template, learner):
    badge = series_badge(template, series=passed_condition(A, B))
    api.record_learner_event(passing(learner, A, False, 1))
    assert state_of(badge, learner) is None
    api.record_learner_event(passing(learner, A, True, 2))
    api.record_learner_event(passing(learner, B, True, 3))
    api.record_learner_event(passing(learner, B, False, 4))
    assert state_of(badge, learner) == S.PENDING


def test_a_series_badge_and_a_plain_badge_of_the_same_course_are_decided_together(template, credly, learner):
    plain = make_course_badge(make_template(template.account, credly, "Part one"), A)
    badge = series_badge(template, series=passed_condition(A, B))
    api.record_learner_event(passing(learner, B, True, 1))
    api.record_learner_event(passing(learner, A, True, 2))
    assert (state_of(plain, learner), state_of(badge, learner)) == (S.PENDING, S.PENDING)


def test_learners_are_independent(template, django_user_model, learner):
    other = django_user_model.objects.create_user(username="bob", email="bob@example.com")
    badge = series_badge(template, series=passed_condition(A, B))
    api.record_learner_event(passing(learner, A, True, 1))
    api.record_learner_event(passing(other, B, True, 2))
    assert (state_of(badge, learner), state_of(badge, other)) == (None, None)


def test_a_series_event_costs_a_small_constant_number_of_queries(template, learner, django_assert_max_num_queries):
    series_badge(template)
    api.record_learner_event(passing(learner, A, True, 1))  # creates the learner's progress rows
    config_cache.rules_for_course(B), config_cache.rules_for_course(C)  # the rules are cached
    with django_assert_max_num_queries(3 + 2):  # progress: read, lock, update (+ savepoints); no ledger call
        api.record_learner_event(passing(learner, B, True, 2))
    with django_assert_max_num_queries(7 + 4):  # the same, and the ledger: lock, consent, insert, audit
        api.record_learner_event(passing(learner, C, True, 3))


# -- configuration --------------------------------------------------------------------------------------------


def test_the_rules_of_a_member_course_include_the_series_badge(template):
    badge = series_badge(template, series=passed_condition(A, B))
    assert [rule.course_badge_id for rule in config_cache.rules_for_course(A)] == [badge.pk]
    assert config_cache.rules_for_course(C) == ()
    assert config_cache.rules_for_course(HOME) == ()  # the badge's own course is not in its series
    assert [rule.course_badge_id for rule in config_cache.badges_of_course(HOME)] == [badge.pk]
    assert config_cache.course_has_badges(str(A))
    assert config_cache.course_has_badges(str(B))
    assert not config_cache.course_has_badges(str(C))


def test_changing_a_series_forgets_the_rules_of_old_and_new_member_courses(template):
    badge = series_badge(template, series=passed_condition(A, B))
    assert config_cache.rules_for_course(A)
    assert config_cache.rules_for_course(B)
    assert config_cache.rules_for_course(C) == ()
    badge.series = passed_condition(B, C)
    badge.save()
    assert config_cache.rules_for_course(A) == ()
    assert [rule.course_badge_id for rule in config_cache.rules_for_course(C)] == [badge.pk]
    assert not config_cache.course_has_badges(str(A))
    badge.delete()
    assert config_cache.rules_for_course(B) == config_cache.rules_for_course(C) == ()


def test_a_disabled_template_forgets_the_member_courses(template):
    series_badge(template, series=passed_condition(A, B))
    assert config_cache.rules_for_course(A)
    template.state = "archived"
    template.save()
    assert config_cache.rules_for_course(A) == ()


@pytest.mark.usefixtures("receivers")
def test_the_receivers_take_events_of_a_member_course_through_the_fast_path(template, learner):
    badge = series_badge(template, series=passed_condition(A, B))
    send.send_passing_status(learner, A, True)
    send.send_passing_status(learner, B, True)
    assert state_of(badge, learner) == S.PENDING


# -- retirement ----------------------------------------------------------------------------------------------


def test_retirement_erases_series_progress_and_later_events_record_none(template, learner):
    series_badge(template)
    api.record_learner_event(passing(learner, A, True, 1))
    assert SeriesProgress.objects.filter(user=learner).count() == 3
    api.retire_learner(learner.pk)
    assert not SeriesProgress.objects.filter(user_id=learner.pk).exists()
    api.record_learner_event(passing(learner, B, True, 2))
    assert not SeriesProgress.objects.filter(user_id=learner.pk).exists()


def test_member_courses_are_read_as_course_keys():
    series = [{"course_key": f" {A} "}, {"course_key": "not a key"}, "junk", {"criterion": "passed"}]
    assert config_cache.member_courses("series", series) == {str(A)}
    assert config_cache.member_courses("passed", series) == set()
    assert config_cache.member_courses("series", "junk") == set()


@pytest.mark.usefixtures("receivers")
def test_a_certificate_condition_counts_only_its_modes_and_a_revoked_certificate_unmeets_it(template, learner):
    badge = series_badge(
        template,
        series=[
            {"course_key": str(A), "criterion": "passed"},
            {"course_key": str(B), "criterion": "certificate", "certificate_modes": ["verified"]},
        ],
        revoke_policy=RevokePolicy.CRITERION_UNMET,
    )
    send.send_passing_status(learner, A, True)
    send.send_certificate_created(learner, B, mode="audit")
    assert state_of(badge, learner) == S.NOT_MET
    send.send_certificate_created(learner, B, mode="verified")
    assert state_of(badge, learner) == S.PENDING
    send.send_certificate_revoked(learner, B, mode="verified")
    assert state_of(badge, learner) == S.REVOKE_PENDING


# -- the learner page -------------------------------------------------------------------------------------------


def test_the_learner_page_offers_a_series_badge_with_its_courses_and_progress(template, learner, monkeypatch):
    for course, name in ((A, "Part one"), (B, "Part two"), (C, "Part three")):
        StandaloneCourse.objects.create(course_key=course, display_name=name)
    badge = series_badge(template, required=2, revoke_policy=RevokePolicy.CRITERION_UNMET)
    monkeypatch.setattr("badges_bridge.compat.enrolled_course_keys", lambda user: [B])  # a course of the series
    (offered,) = api.available_badges(learner.pk)
    assert (offered.course_badge_id, offered.criterion) == (badge.pk, "series")
    assert offered.criterion_text == "Complete 2 of these 3 courses: Part one, Part two, Part three."
    assert (offered.progress.met, offered.progress.percent_done) == (False, 0)
    api.record_learner_event(passing(learner, A, True, 1))
    (offered,) = api.available_badges(learner.pk)
    assert (offered.progress.text, offered.progress.percent_done) == ("1 of the 2 courses needed are done.", 50)
    api.record_learner_event(passing(learner, C, True, 2))
    assert api.available_badges(learner.pk) == []  # earned: no longer offered
    monkeypatch.setattr("badges_bridge.compat.enrolled_course_keys", lambda user: [HOME])
    assert api.available_badges(learner.pk) == []
